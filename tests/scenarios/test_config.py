"""A bad parameter raises ValueError naming the field and what is allowed."""

from __future__ import annotations

import dataclasses

import pytest

from simscale.scenarios import PRESETS, Scenario, describe_fields, parse_field_value, preset


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("servers", 0, ">= 1"),
        ("servers", -3, ">= 1"),
        ("clients", 0, ">= 1"),
        ("broadcast_rate_per_s", 0.0, "> 0"),
        ("broadcast_rate_per_s", -1.0, "> 0"),
        ("duration_s", 0.0, "> 0"),
        ("duration_s", -5.0, "> 0"),
        ("servers", 2.5, "integer"),
        ("servers", "3", "integer"),
        ("servers", True, "integer"),
        ("message_bytes", 0, ">= 1"),
        ("load_balancer", "random-walk", "round-robin"),
        ("server_profile", "nodejs", "aspnetcore"),
        ("backplane", "kafka", "redis"),
        ("reconnect", "yes", "true or false"),
        ("network_latency_s", float("nan"), "number"),
        ("reconnect_delays_s", (1.0, -2.0), "non-negative"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        Scenario(**{field: value})  # type: ignore[arg-type]
    assert allowed in str(caught.value)


def test_cross_field_rules() -> None:
    with pytest.raises(ValueError, match="warmup_s"):
        Scenario(duration_s=10.0, warmup_s=10.0)
    with pytest.raises(ValueError, match="min_threads"):
        Scenario(min_threads=100, max_threads=10)
    with pytest.raises(ValueError, match="calibration_file"):
        Scenario(calibration_file="x.json")


def test_unknown_preset_and_unknown_field() -> None:
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown field 'bogus'"):
        parse_field_value("bogus", "1")
    with pytest.raises(TypeError):
        Scenario(bogus=1)  # type: ignore[call-arg]


def test_parse_field_values_by_type() -> None:
    assert parse_field_value("servers", "4") == 4
    assert parse_field_value("duration_s", "2.5") == 2.5
    assert parse_field_value("reconnect", "off") is False
    assert parse_field_value("reconnect_delays_s", "0,1,5") == (0.0, 1.0, 5.0)
    with pytest.raises(ValueError, match="servers must be an integer"):
        parse_field_value("servers", "four")


def test_every_field_is_described_with_unit_default_range_and_source() -> None:
    rows = describe_fields(Scenario())
    assert [row["field"] for row in rows] == [spec.name for spec in dataclasses.fields(Scenario)]
    for row in rows:
        assert row["source"], row["field"]
        assert row["help"], row["field"]
        assert row["allowed"], row["field"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_frozen(name: str) -> None:
    scenario = preset(name)
    assert scenario.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.servers = 9  # type: ignore[misc]


def test_every_field_has_a_section_and_the_sections_come_in_declared_order() -> None:
    from simscale.config.scenario import SECTIONS

    sections = [row["section"] for row in describe_fields(Scenario())]
    assert set(sections) == set(SECTIONS)
    # Grouped and in SECTIONS order: once a section ends it does not come back, so --describe lists each once.
    assert sections == sorted(sections, key=SECTIONS.index)


def test_set_accepts_every_field_and_round_trips_its_default() -> None:
    default = Scenario()
    for spec in dataclasses.fields(Scenario):
        value = getattr(default, spec.name)
        text = ",".join(str(each) for each in value) if isinstance(value, tuple) else str(value)
        assert parse_field_value(spec.name, text) == value, spec.name
