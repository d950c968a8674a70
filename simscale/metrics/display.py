"""Short text and HTML for results in a terminal or a notebook (standard library only).

A run holds hundreds of thousands of records; the generated dataclass ``repr`` prints them all,
which freezes a notebook. Result classes use these helpers instead: a one-line ``repr`` of the
headline figures and a small ``<table>`` for ``_repr_html_`` (what Jupyter displays).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

__all__ = ["format_value", "html_table", "repr_value"]


def format_value(value: object) -> str:
    """A figure as people read it: thousands separated, 3 decimals, ``None`` as ``-``.

    >>> format_value(12345), format_value(0.98765), format_value(60.0), format_value(0.0004), format_value(None)
    ('12,345', '0.988', '60.000', '0.0004', '-')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        # Three decimals read a fraction (0.998) and a latency in ms alike; a tiny figure such as an
        # idle CPU's 0.0004 would print as 0.000, so it keeps three significant digits instead.
        return f"{value:,.3f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"
    return str(value)


def repr_value(value: object) -> str:
    """:func:`format_value`, except that text keeps its quotes (``scenario='backplane'``).

    >>> repr_value("backplane"), repr_value(0.5)
    ("'backplane'", '0.500')
    """
    return repr(value) if isinstance(value, str) else format_value(value)


def html_table(title: str, rows: Sequence[tuple[str, object]]) -> str:
    """A two-column HTML table (name, formatted value) under a bold ``title``; text is escaped.

    >>> html_table("RunSummary", [("servers", 3)])
    '<table><caption><b>RunSummary</b></caption><tr><th style="text-align:left">servers</th><td>3</td></tr></table>'
    """
    cells = "".join(
        f'<tr><th style="text-align:left">{html.escape(name)}</th><td>{html.escape(format_value(value))}</td></tr>'
        for name, value in rows
    )
    return f"<table><caption><b>{html.escape(title)}</b></caption>{cells}</table>"
