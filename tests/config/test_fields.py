"""The shared field helper: limits, units from names, type checks and messages that name the field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from simscale.config.fields import (
    allowed_text,
    describe,
    field_unit,
    parse_text,
    setting,
    suffix_unit,
    validate_fields,
)


@dataclass(frozen=True, slots=True)
class Example:
    """A small settings class using every kind of field the helper knows."""

    count: int = setting(3, ge=1, le=10, unit="items", section="sizes", source="test", help="How many.")
    wait_s: float = setting(0.05, ge=0, le=3600, section="timers", source="test", help="How long.")
    rate_per_s: float = setting(1.0, gt=0, section="timers", source="test", help="How often.")
    payload_bytes: int = setting(64, ge=0, section="sizes", source="test", help="How big.")
    share_fraction: float = setting(0.5, ge=0, le=1, section="sizes", source="test", help="How much.")
    latency_ms: float = setting(1.0, ge=0, unit="milliseconds", section="timers", source="test", help="Override.")
    kind: Literal["a", "b"] = setting("a", section="choices", source="test", help="Which.")
    enabled: bool = setting(True, section="choices", source="test", help="Whether.")
    label: str = setting("x", section="choices", source="test", help="What.")
    delays_s: tuple[float, ...] = setting((0.0, 1.0), ge=0, section="timers", source="test", help="When.")
    token: str | None = setting(None, flag="--token", section="choices", source="test", help="Who.")
    urls: tuple[str, ...] = setting(
        ("http://x",),
        check=lambda urls: len(urls) > 0,
        allowed="one or more URLs",
        section="choices",
        source="test",
        help="Where.",
    )
    notes: dict[str, Any] = setting(default_factory=dict, section="choices", source="test", help="Anything.")

    def __post_init__(self) -> None:
        validate_fields(self)


def spec(name: str) -> dataclasses.Field[Any]:
    return {each.name: each for each in dataclasses.fields(Example)}[name]


def test_the_defaults_are_valid_and_the_metadata_is_stored() -> None:
    example = Example()
    assert example.count == 3 and example.notes == {}
    assert spec("count").metadata["ge"] == 1 and spec("count").metadata["le"] == 10
    assert spec("rate_per_s").metadata["gt"] == 0 and spec("rate_per_s").metadata["ge"] is None
    assert spec("wait_s").metadata["section"] == "timers"


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("wait_s", "s"),
        ("rate_per_s", "/s"),
        ("payload_bytes", "B"),
        ("share_fraction", "fraction"),
        ("delays_s", "s"),
        ("count", "items"),  # no suffix: the explicit unit
        ("latency_ms", "milliseconds"),  # an explicit unit wins over the suffix
        ("label", ""),
    ],
)
def test_the_unit_comes_from_the_suffix_unless_given(name: str, unit: str) -> None:
    assert field_unit(spec(name)) == unit


def test_suffixes() -> None:
    assert suffix_unit("time_wait_s") == "s"
    assert suffix_unit("broadcast_rate_per_s") == "/s"  # not "s": the longer suffix is tried first
    assert suffix_unit("memory_base_bytes") == "B"
    assert suffix_unit("latency_ms") == "ms"
    assert suffix_unit("servers") == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [("count", 1), ("count", 10), ("wait_s", 0), ("wait_s", 3600.0), ("rate_per_s", 1e-9), ("share_fraction", 1)],
)
def test_limits_are_inclusive_for_ge_and_le(name: str, value: float) -> None:
    Example(**{name: value})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("count", 0, "count must be an integer >= 1 and <= 10, got 0"),
        ("count", 11, "count must be an integer >= 1 and <= 10, got 11"),
        ("count", 2.0, "count must be an integer >= 1 and <= 10, got 2.0"),
        ("count", True, "count must be an integer >= 1 and <= 10, got True"),
        ("wait_s", -0.1, "wait_s must be a number >= 0 and <= 3600, got -0.1"),
        ("wait_s", float("nan"), "wait_s must be a number >= 0 and <= 3600, got nan"),
        ("wait_s", "1", "wait_s must be a number >= 0 and <= 3600, got '1'"),
        ("rate_per_s", 0.0, "rate_per_s must be a number > 0, got 0.0"),
        ("payload_bytes", -1, "payload_bytes must be a non-negative integer, got -1"),
        ("kind", "c", "kind must be one of 'a', 'b', got 'c'"),
        ("enabled", 1, "enabled must be true or false, got 1"),
        ("label", 3, "label must be text, got 3"),
        ("delays_s", (1.0, -2.0), "delays_s must be a list of non-negative numbers, got (1.0, -2.0)"),
        ("delays_s", [1.0], "delays_s must be a list of non-negative numbers, got [1.0]"),
        ("token", 5, "token (--token) must be text or None, got 5"),
        ("urls", (), "urls must be one or more URLs, got ()"),
        ("notes", [], "notes must be a mapping, got []"),
    ],
)
def test_a_bad_value_names_the_field_and_what_is_allowed(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Example(**{name: value})  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_optional_and_bool_values_that_are_allowed() -> None:
    assert Example(token="abc").token == "abc"
    assert Example(enabled=False).enabled is False
    assert Example(kind="b").kind == "b"


def test_context_goes_in_front_of_the_message() -> None:
    example = Example()
    object.__setattr__(example, "count", 0)
    with pytest.raises(ValueError, match=r"^calibration count must be an integer >= 1"):
        validate_fields(example, context="calibration ")


def test_ge_and_gt_together_are_refused() -> None:
    with pytest.raises(ValueError, match="ge or gt"):
        setting(1.0, ge=0, gt=0)


def test_describe_gives_one_row_per_field_with_section_unit_and_allowed() -> None:
    rows = {row["field"]: row for row in describe(Example(count=4))}
    assert list(rows) == [each.name for each in dataclasses.fields(Example)]
    assert rows["count"] == {
        "field": "count",
        "section": "sizes",
        "value": 4,
        "unit": "items",
        "default": 3,
        "allowed": "an integer >= 1 and <= 10",
        "source": "test",
        "help": "How many.",
    }
    assert rows["delays_s"]["value"] == [0.0, 1.0]  # JSON-ready
    assert rows["notes"]["default"] == {}
    assert allowed_text(Example, "urls") == "one or more URLs"


def test_parse_text_turns_command_line_text_into_the_fields_type() -> None:
    assert parse_text(Example, "count", "4") == 4
    assert parse_text(Example, "wait_s", "2.5") == 2.5
    assert parse_text(Example, "enabled", "off") is False
    assert parse_text(Example, "enabled", "YES") is True
    assert parse_text(Example, "delays_s", "0, 1,5") == (0.0, 1.0, 5.0)
    assert parse_text(Example, "kind", "b") == "b"
    with pytest.raises(ValueError, match="count must be an integer >= 1 and <= 10, got 'four'"):
        parse_text(Example, "count", "four")
    with pytest.raises(ValueError, match="enabled must be true or false"):
        parse_text(Example, "enabled", "maybe")
