"""Notebook figures: interactive where plotly.js runs, a static PNG beside it everywhere else.

One call at the top of a notebook, :func:`notebook_setup`, does three things:

* registers the house template (:data:`simscale.figures.style.HOUSE_TEMPLATE`: white background,
  the house font, no grey plot area) and makes it plotly's default, so notebook figures look like the
  documentation figures;
* registers a PNG renderer that draws through kaleido with the system's Chromium (the browser
  :func:`simscale.figures.export.find_browser` finds; MathJax off, so the page loads nothing from the
  network) and keeps one browser open for the whole notebook;
* sets plotly's default renderer to ``plotly_mimetype+simscale_png``: each figure's output then
  carries both the plotly JSON (interactive in JupyterLab and VS Code, no CDN script) and an
  ``image/png`` in the same bundle, which is what GitHub, ``nbconvert --to html`` and a reader
  without JavaScript show.

Without a browser the PNG is skipped (interactive output only) and the call prints what to install.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kaleido
import plotly.io as pio
from plotly.io.base_renderers import ImageRenderer

from simscale.figures.export import find_browser
from simscale.figures.style import FIGURE_HEIGHT_PX, FIGURE_WIDTH_PX, HOUSE_TEMPLATE, house_template

__all__ = ["NO_BROWSER_NOTE", "PNG_RENDERER", "notebook_setup"]

PNG_RENDERER = "simscale_png"
"""The name under which :func:`notebook_setup` registers its PNG renderer with plotly."""

NO_BROWSER_NOTE = (
    "simscale.figures.notebook_setup: no Chrome/Chromium found, so figures are interactive only (no static PNG); "
    "install it with `apt-get install chromium` or set BROWSER_PATH to a Chrome-family browser"
)
"""What :func:`notebook_setup` prints when it cannot draw PNGs."""

_INTERACTIVE = "plotly_mimetype"


class _KaleidoPngRenderer(ImageRenderer):  # type: ignore[misc]  # plotly ships no type hints
    """plotly's image renderer, drawing with one long-lived kaleido browser that loads nothing remote."""

    def __init__(self, browser: Path) -> None:
        super().__init__(mime_type="image/png", b64_encode=True, format="png")
        self.browser = browser

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, str]:
        # A no-op when the server already runs: one browser serves every figure of the notebook.
        kaleido.start_sync_server(path=str(self.browser), mathjax=False, silence_warnings=True)
        layout = fig_dict.get("layout", {})
        opts = {
            "format": "png",
            "width": int(layout.get("width") or FIGURE_WIDTH_PX),
            "height": int(layout.get("height") or FIGURE_HEIGHT_PX),
            "scale": 1,
        }
        image = kaleido.calc_fig_sync(fig_dict, opts=opts)
        return {self.mime_type: base64.b64encode(image).decode("ascii")}


def notebook_setup(*, browser: Path | bool | None = True) -> str:
    """Set plotly's default template and renderer for a simscale notebook (call once, first).

    Args:
        browser: ``True`` to look one up with :func:`find_browser`, a path to a Chrome-family browser,
            or ``False``/``None`` for interactive output without a PNG.

    Returns:
        The renderer string now in ``plotly.io.renderers.default``.

    Example (it changes plotly's defaults for the whole process, so this one puts them back):

        >>> import plotly.io as pio
        >>> from simscale.figures import notebook_setup
        >>> before = pio.renderers.default, pio.templates.default
        >>> notebook_setup(browser=False)  # doctest: +ELLIPSIS
        simscale.figures.notebook_setup: no Chrome/Chromium found, ...
        'plotly_mimetype'
        >>> pio.renderers.default, pio.templates.default = before
    """
    pio.templates[HOUSE_TEMPLATE] = house_template()
    pio.templates.default = HOUSE_TEMPLATE
    chosen = find_browser() if browser is True else (browser or None)
    if isinstance(chosen, Path):
        pio.renderers[PNG_RENDERER] = _KaleidoPngRenderer(chosen)
        pio.renderers.default = f"{_INTERACTIVE}+{PNG_RENDERER}"
    else:
        pio.renderers.default = _INTERACTIVE
        print(NO_BROWSER_NOTE)
    return str(pio.renderers.default)
