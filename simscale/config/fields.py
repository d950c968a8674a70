"""Fields of simscale's configuration dataclasses: declared once, described and validated one way.

Every settings class of simscale (the model's ``Scenario``, the hub's ``HubSettings``, the load
generator's ``LoadConfig`` and a ``Calibration``) declares its fields with :func:`setting`, which
stores the allowed range, the unit, the section, the source of the default and a line of help in
the field's ``metadata``. :func:`validate_fields` then checks a whole instance against its type hints
and those limits, and :func:`describe` turns the same metadata into rows for ``--describe``.

A field's unit comes from its name when the name ends in a unit suffix (``duration_s`` is in
seconds, ``message_bytes`` in bytes), so the two cannot disagree; an explicit ``unit`` wins.

This module imports nothing of simscale, so configuration can sit below every other layer.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

__all__ = [
    "allowed_text",
    "describe",
    "field_unit",
    "parse_text",
    "setting",
    "suffix_unit",
    "validate_fields",
]

_SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    # Longest first: "_per_s" also ends in "_s".
    ("_per_s", "/s"),
    ("_bytes", "B"),
    ("_fraction", "fraction"),
    ("_ms", "ms"),
    ("_s", "s"),
)
"""Name suffixes that state a unit, and the unit each one states."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    unit: str | None = None,
    section: str = "",
    source: str = "",
    help: str = "",
    flag: str = "",
    allowed: str = "",
    check: Callable[[Any], bool] | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field that carries its limits, unit and documentation.

    Args:
        default: the default value; leave it out for a field that must be given.
        ge: the value (each item, for a tuple) must be >= this.
        gt: the value must be > this (an open lower limit); give ``ge`` or ``gt``, not both.
        le: the value must be <= this.
        unit: the unit when the name's suffix does not say it (``"cores"``), or to override it.
        section: the group the field is listed under (``"thread pool"``).
        source: where the default comes from (a reference, a measurement, ``"user"``).
        help: one or two sentences on what the field does.
        flag: the command-line flag that sets the field, named in error messages when given.
        allowed: a description of what is allowed, for rules that ``check`` implements.
        check: an extra rule the value must pass (after its type and range are checked).
        default_factory: as for :func:`dataclasses.field`, for a mutable default.

    Example:

        >>> from dataclasses import dataclass
        >>> from simscale.config import describe, setting, validate_fields
        >>> @dataclass(frozen=True)
        ... class Pool:
        ...     threads: int = setting(4, ge=1, le=64, unit="threads", section="pool", help="Worker threads.")
        ...     def __post_init__(self) -> None:
        ...         validate_fields(self)
        >>> Pool(threads=0)
        Traceback (most recent call last):
        ...
        ValueError: threads must be an integer >= 1 and <= 64, got 0
        >>> describe(Pool())[0]["allowed"], describe(Pool())[0]["unit"]
        ('an integer >= 1 and <= 64', 'threads')
    """
    if ge is not None and gt is not None:
        raise ValueError("give ge or gt, not both")
    metadata = {
        "ge": ge,
        "gt": gt,
        "le": le,
        "unit": unit,
        "section": section,
        "source": source,
        "help": help,
        "flag": flag,
        "allowed": allowed,
        "check": check,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def suffix_unit(name: str) -> str:
    """The unit a field name's suffix states (``"s"`` for ``time_wait_s``), or ``""``."""
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def field_unit(spec: dataclasses.Field[Any]) -> str:
    """The field's unit: the explicit one if given, else the one its name's suffix states."""
    explicit = spec.metadata.get("unit")
    return suffix_unit(spec.name) if explicit is None else str(explicit)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # Resolved once per class: the annotations are strings (``from __future__ import annotations``).
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _optional_arm(hint: Any) -> Any | None:
    """``X`` for a hint ``X | None``, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return None


def _limit(value: float) -> str:
    # An integer limit is written out in full (1048576, not 1.04858e+06); a float compactly.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_text(metadata: typing.Mapping[str, Any]) -> str:
    ge, gt, le = metadata.get("ge"), metadata.get("gt"), metadata.get("le")
    parts = []
    if ge is not None:
        parts.append(f">= {_limit(ge)}")
    if gt is not None:
        parts.append(f"> {_limit(gt)}")
    if le is not None:
        parts.append(f"<= {_limit(le)}")
    return " and ".join(parts)


def _describe_hint(hint: Any, metadata: typing.Mapping[str, Any], *, plural: bool = False) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    if (arm := _optional_arm(hint)) is not None:
        return _describe_hint(arm, metadata, plural=plural) + " or None"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "text"
    if typing.get_origin(hint) is tuple:
        return "a list of " + _describe_hint(typing.get_args(hint)[0], metadata, plural=True)
    if typing.get_origin(hint) is dict or hint is dict:
        return "a mapping"
    if hint in (int, float):
        noun = ("integer" if hint is int else "number") + ("s" if plural else "")
        if metadata.get("ge") == 0 and metadata.get("le") is None:
            return f"non-negative {noun}" if plural else f"a non-negative {noun}"
        article = "" if plural else ("an " if hint is int else "a ")
        limits = _range_text(metadata)
        return f"{article}{noun} {limits}" if limits else f"{article}{noun}"
    return str(hint)


def allowed_text(cls: type, name: str) -> str:
    """What field ``name`` of ``cls`` allows, as it reads in an error message."""
    spec = {spec.name: spec for spec in dataclasses.fields(cls)}[name]
    return spec.metadata.get("allowed") or _describe_hint(_hints(cls)[name], spec.metadata)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _in_range(value: float, metadata: typing.Mapping[str, Any]) -> bool:
    ge, gt, le = metadata.get("ge"), metadata.get("gt"), metadata.get("le")
    return (ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)


def _fits(hint: Any, value: Any, metadata: typing.Mapping[str, Any]) -> bool:
    """Whether ``value`` has the type ``hint`` and (for numbers) lies within the field's limits."""
    if typing.get_origin(hint) is Literal:
        return value in typing.get_args(hint)
    if (arm := _optional_arm(hint)) is not None:
        return value is None or _fits(arm, value, metadata)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and _in_range(value, metadata)
    if hint is float:
        return _is_number(value) and _in_range(value, metadata)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_fits(item, each, metadata) for each in value)
    if typing.get_origin(hint) is dict or hint is dict:
        return isinstance(value, dict)
    return True  # a type this module does not know is the class's own business


def validate_fields(instance: Any, *, context: str = "") -> None:
    """Check every field of a dataclass instance; the first bad one raises ``ValueError``.

    The message names the field (and its command-line flag, when the field has one) and what it
    allows, e.g. ``servers must be an integer >= 1 and <= 10000, got 0``. ``context`` is put in
    front, so a calibration file's error can say it is about the calibration.

    Example (a class calls it from ``__post_init__``; :func:`setting` shows that):

        >>> from dataclasses import dataclass
        >>> from simscale.config import setting, validate_fields
        >>> @dataclass
        ... class Link:
        ...     latency_s: float = setting(0.001, ge=0.0, le=1.0)
        >>> validate_fields(Link(latency_s=0.01))
        >>> validate_fields(Link(latency_s=2.0), context="link ")
        Traceback (most recent call last):
        ...
        ValueError: link latency_s must be a number >= 0 and <= 1, got 2.0
    """
    cls = type(instance)
    hints = _hints(cls)
    for spec in dataclasses.fields(instance):
        value = getattr(instance, spec.name)
        check = spec.metadata.get("check")
        if not _fits(hints[spec.name], value, spec.metadata) or (check is not None and not check(value)):
            flag = spec.metadata.get("flag")
            named = f"{spec.name} ({flag})" if flag else spec.name
            raise ValueError(f"{context}{named} must be {allowed_text(cls, spec.name)}, got {value!r}")


def _default_of(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return None  # a field that must be given has no default to show


def _listed(value: Any) -> Any:
    # Tuples become lists, so every row is ready for JSON.
    return list(value) if isinstance(value, tuple) else value


def describe(instance: Any) -> list[dict[str, Any]]:
    """One row per field, in declaration order: field, section, value, unit, default, allowed, source, help.

    Example:

        >>> from simscale.config import Scenario, describe
        >>> row = describe(Scenario(servers=3))[0]
        >>> sorted(row)
        ['allowed', 'default', 'field', 'help', 'section', 'source', 'unit', 'value']
        >>> [(row["field"], row["value"]) for row in describe(Scenario(servers=3)) if row["field"] == "servers"]
        [('servers', 3)]
    """
    cls = type(instance)
    return [
        {
            "field": spec.name,
            "section": spec.metadata.get("section", ""),
            "value": _listed(getattr(instance, spec.name)),
            "unit": field_unit(spec),
            "default": _listed(_default_of(spec)),
            "allowed": allowed_text(cls, spec.name),
            "source": spec.metadata.get("source", ""),
            "help": spec.metadata.get("help", ""),
        }
        for spec in dataclasses.fields(cls)
    ]


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_text(cls: type, name: str, text: str) -> Any:
    """Command-line text for field ``name`` of ``cls``, turned into the field's type.

    Only the type is parsed here; the range is checked when the instance is built. A tuple is
    written with commas (``0,2,10``). ``ValueError`` names the field and what it allows.
    """
    hint = _hints(cls)[name]
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            convert: Callable[[str], Any] = item if item in (int, float) else str.strip
            return tuple(convert(part) for part in text.split(",") if part.strip())
        return text
    except ValueError:
        raise ValueError(f"{name} must be {allowed_text(cls, name)}, got {text!r}") from None
