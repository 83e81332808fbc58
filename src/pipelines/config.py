"""Config flows one way: dataclass defaults -> run parameters -> `dataclasses.replace` -> functions.

`apply_overrides` is the only door from loosely typed parameters (Airflow Params, CLI flags) into the
frozen config dataclasses: unknown keys and wrongly typed values are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pipelines.errors import ConfigError

C = TypeVar("C")


def apply_overrides(config: C, overrides: Mapping[str, Any] | None) -> C:
    """Return a copy of the frozen dataclass `config` with `overrides` applied, after checking them."""
    if not overrides:
        return config
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError("apply_overrides needs a dataclass instance")
    hints = typing.get_type_hints(type(config))
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        given = ", ".join(f"{name}={overrides[name]!r}" for name in unknown)
        raise ConfigError(f"unknown {type(config).__name__} setting(s): {given}; known: {', '.join(sorted(known))}")
    checked = {name: _coerce(type(config).__name__, name, value, hints[name]) for name, value in overrides.items()}
    return dataclasses.replace(config, **checked)  # type: ignore[type-var]


def _coerce(owner: str, name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(owner, name, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{owner}.{name} must be one of {args}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{owner}.{name} must be a list, got {value!r}")
        inner = args[0] if args else Any
        items = [value_ if inner is Any else _coerce(owner, name, value_, inner) for value_ in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{owner}.{name} must be an object, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{owner}.{name} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{owner}.{name} must be an integer, got {value!r}")
        return value
    if hint in (bool, str) and not isinstance(value, hint):
        raise ConfigError(f"{owner}.{name} must be a {hint.__name__}, got {value!r}")
    return value
