"""Binding a client's invocation target to a hub method, and checking its arguments.

Clients name methods the .NET way (``SendMessage``); Python hubs define ``send_message``. Like
ASP.NET Core, the lookup ignores case; it also ignores underscores, so both spellings meet. The table
is built once per hub class, never per call.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HubMethod", "build_method_table", "check_arguments", "normalize_target"]

_CHECKED_TYPES: tuple[type, ...] = (str, int, float, bool, list, dict)


def normalize_target(name: str) -> str:
    """The lookup key of a method or target name: lower case, underscores removed."""
    return name.replace("_", "").lower()


@dataclass(frozen=True, slots=True)
class HubMethod:
    """One callable hub method and what it accepts."""

    name: str
    """The Python attribute name."""
    is_stream: bool
    """An async generator: answered with StreamItems then a Completion."""
    min_args: int
    max_args: int | None
    """``None`` when the method takes ``*args``."""
    parameter_types: tuple[Any, ...]
    """The annotation of each positional parameter (``inspect.Parameter.empty`` when absent)."""


def _describe(function: Callable[..., Any], name: str) -> HubMethod:
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: skip type checks, keep count checks
        hints = {}
    min_args = 0
    max_args: int | None = 0
    types_: list[Any] = []
    for parameter in list(signature.parameters.values())[1:]:  # skip self
        if parameter.kind is parameter.VAR_POSITIONAL:
            max_args = None
            break
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.VAR_KEYWORD):
            break
        types_.append(hints.get(parameter.name, inspect.Parameter.empty))
        assert max_args is not None
        max_args += 1
        if parameter.default is parameter.empty:
            min_args += 1
    return HubMethod(
        name=name,
        is_stream=inspect.isasyncgenfunction(function),
        min_args=min_args,
        max_args=max_args,
        parameter_types=tuple(types_),
    )


def build_method_table(hub_class: type, base_class: type) -> Mapping[str, HubMethod]:
    """Every public method a subclass of ``base_class`` defines, keyed by :func:`normalize_target`.

    Methods of the base class itself (``on_connected``, …) and names starting with ``_`` are not
    callable by clients.
    """
    hidden = set(dir(base_class))
    table: dict[str, HubMethod] = {}
    for name in dir(hub_class):
        if name.startswith("_") or name in hidden:
            continue
        function = getattr(hub_class, name)
        if not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)):
            continue
        table[normalize_target(name)] = _describe(function, name)
    return table


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, member) for member in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return value is None
    if origin is not None:
        annotation = origin
    if annotation not in _CHECKED_TYPES:
        return True  # richer types are the method's own business
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is list:
        return isinstance(value, list | tuple)
    return isinstance(value, annotation)


def check_arguments(method: HubMethod, arguments: tuple[Any, ...]) -> str | None:
    """``None`` when ``arguments`` fit ``method``, else the reason, worded like ASP.NET Core."""
    count = len(arguments)
    if count < method.min_args or (method.max_args is not None and count > method.max_args):
        expected = method.min_args if method.max_args == method.min_args else "a different number of"
        return f"Invocation provides {count} argument(s) but target expects {expected}."
    for value, annotation in zip(arguments, method.parameter_types, strict=False):
        if not _matches(value, annotation):
            return (
                "Error binding arguments. Make sure that the types of the provided values match the "
                "types of the hub method being invoked."
            )
    return None
