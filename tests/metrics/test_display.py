"""The text and HTML helpers behind the result classes' reprs and notebook tables."""

from __future__ import annotations

import pytest

from simscale.metrics.display import format_value, html_table, repr_value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "True"),
        (12_345, "12,345"),
        (0.998765, "0.999"),
        (0.0, "0.000"),
        (0.00037, "0.00037"),
        (float("nan"), "nan"),
        (1234.5, "1,234.500"),
        ("redis", "redis"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_repr_value_quotes_text_only() -> None:
    assert repr_value("a") == "'a'"
    assert repr_value(3) == "3"


def test_html_table_escapes_names_and_values() -> None:
    html = html_table("<title>", [("a<b", "x&y")])
    assert "<title>" not in html and "&lt;title&gt;" in html
    assert "a&lt;b" in html and "x&amp;y" in html
    assert html.count("<tr>") == 1
