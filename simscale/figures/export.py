"""Figures → files: PNG and SVG through kaleido and the system's Chromium, HTML when there is none.

kaleido 1.x drives a Chrome-family browser (through choreographer) and never downloads one unless
asked to (``kaleido_get_chrome``); we never ask. Left alone, choreographer looks for a browser it
downloaded earlier, then ``BROWSER_PATH``, then ``PATH``. :func:`find_browser` finds the system's
Chromium (``BROWSER_PATH`` first, then ``chromium`` on ``PATH``, then ``/usr/bin/chromium``) and
:func:`export_figures` hands that path to kaleido explicitly, so no other browser is ever used.
Without a browser the figures are written as interactive HTML and the report says what to install.

plotly gives every rendered SVG a random six-hex-digit id (``defs-1a8303``, ``clip1a8303xy`` …);
:func:`normalise_svg` replaces it with one derived from the figure's name, so regenerating a figure
from unchanged inputs writes the same bytes and leaves ``git status`` clean.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import kaleido
import plotly.graph_objects as go
import plotly.io as pio

from simscale.figures.style import FIGURE_HEIGHT_PX, FIGURE_WIDTH_PX

__all__ = ["BROWSER_INSTALL_HINT", "ExportReport", "export_figures", "find_browser", "normalise_svg"]

BROWSER_INSTALL_HINT = (
    "no Chrome/Chromium found for PNG/SVG export: install it with `apt-get install chromium` "
    "(or set BROWSER_PATH to a Chrome-family browser); interactive HTML was written instead"
)
"""What ``simscale figures`` prints when it cannot export images."""

_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
_SVG_UID = re.compile(r'id="defs-([0-9a-f]{6})"')


def find_browser() -> Path | None:
    """The browser kaleido should use: ``BROWSER_PATH`` if it is executable, else one on ``PATH``.

    Example (``None`` on a machine without Chrome or Chromium):

        >>> from simscale.figures import find_browser
        >>> browser = find_browser()
        >>> browser is None or browser.exists()
        True
    """
    configured = os.environ.get("BROWSER_PATH")
    if configured and os.access(configured, os.X_OK):
        return Path(configured)
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    if os.access(_DEBIAN_CHROMIUM, os.X_OK):
        return _DEBIAN_CHROMIUM
    return None


def normalise_svg(svg: str, name: str) -> str:
    """Replace plotly's random per-render id in ``svg`` with a stable one derived from ``name``.

    So a figure exported twice gives the same bytes, and a committed SVG changes only when it does.

    Example:

        >>> from simscale.figures import normalise_svg
        >>> first = normalise_svg('<defs id="defs-1a2b3c"/><g clip-path="url(#clip1a2b3c)"/>', "latency")
        >>> second = normalise_svg('<defs id="defs-9f8e7d"/><g clip-path="url(#clip9f8e7d)"/>', "latency")
        >>> first == second, "1a2b3c" in first
        (True, False)
    """
    stable = hashlib.sha256(name.encode()).hexdigest()[:6]
    for uid in sorted(set(_SVG_UID.findall(svg))):
        svg = svg.replace(uid, stable)
    return svg


@dataclass(slots=True)
class ExportReport:
    """What :func:`export_figures` wrote, and why it fell back to HTML if it did.

    Example: :func:`export_figures` returns one.

        >>> from pathlib import Path
        >>> from simscale.figures import ExportReport
        >>> report = ExportReport(written=[Path("out/latency.png"), Path("out/latency.svg")])
        >>> report.message is None, [path.suffix for path in report.written]
        (True, ['.png', '.svg'])
    """

    written: list[Path] = field(default_factory=list)
    browser: Path | None = None
    message: str | None = None
    """``None`` when PNG and SVG were written; otherwise what to install."""


def export_figures(
    figures: Mapping[str, go.Figure], out_dir: Path, *, browser: Path | bool | None = True
) -> ExportReport:
    """Write each figure as ``NAME.png`` and ``NAME.svg`` in ``out_dir`` (one browser for all).

    Args:
        figures: figure name → figure; names become file names.
        out_dir: the directory (created if missing).
        browser: ``True`` to look one up with :func:`find_browser`, a path to use that browser, or
            ``False``/``None`` to skip images and write ``NAME.html`` only.

    Returns:
        The files written, in order, and the install hint when no browser was available.

    Example (``browser=False``: HTML only, no browser needed):

        >>> import tempfile
        >>> from pathlib import Path
        >>> import plotly.graph_objects as go
        >>> from simscale.figures import export_figures
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     report = export_figures({"demo": go.Figure(go.Bar(x=[1, 2], y=[3, 4]))}, Path(folder), browser=False)
        ...     [path.name for path in report.written], report.message is not None
        (['demo.html'], True)
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = find_browser() if browser is True else (browser or None)
    report = ExportReport(browser=chosen if isinstance(chosen, Path) else None)
    names = list(figures)
    if report.browser is None:
        for name in names:
            path = out_dir / f"{name}.html"
            html = pio.to_html(
                figures[name],
                include_plotlyjs="cdn",
                full_html=True,
                div_id=f"simscale-{name}",
                config={"displaylogo": False},
            )
            path.write_text(html, encoding="utf-8")
            report.written.append(path)
        report.message = BROWSER_INSTALL_HINT
        return report

    png_paths = [out_dir / f"{name}.png" for name in names]
    svg_paths = [out_dir / f"{name}.svg" for name in names]
    jobs = [
        {
            "fig": figures[name].to_dict(),
            "path": str(path),
            "opts": {
                "format": path.suffix[1:],
                # Fixed sizes: kaleido would otherwise use its own default of 700 × 500.
                "width": int(figures[name].layout.width or FIGURE_WIDTH_PX),
                "height": int(figures[name].layout.height or FIGURE_HEIGHT_PX),
                "scale": 1,
            },
        }
        for paths in (png_paths, svg_paths)
        for name, path in zip(names, paths, strict=True)
    ]
    # The browser is named explicitly (and through BROWSER_PATH, which choreographer also reads), so
    # kaleido never looks for, let alone fetches, another one; MathJax is off so the page it renders
    # in loads nothing from the network (plotly.js comes from the installed plotly package).
    previous = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = str(report.browser)
    try:
        kaleido.write_fig_from_object_sync(
            jobs, kopts={"path": str(report.browser), "mathjax": False}, cancel_on_error=True
        )
    finally:
        if previous is None:
            del os.environ["BROWSER_PATH"]
        else:
            os.environ["BROWSER_PATH"] = previous
    for name, png, svg in zip(names, png_paths, svg_paths, strict=True):
        svg.write_text(normalise_svg(svg.read_text(encoding="utf-8"), name), encoding="utf-8")
        report.written += [png, svg]
    return report
