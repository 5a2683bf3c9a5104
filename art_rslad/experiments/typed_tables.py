"""Plain tables (read from TOML or JSON) checked against a dataclass's type hints: the dataclass built from them, or
a ValueError that names the wrong key or value by its dotted path (``teacher.nb_epochs``)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def build_dataclass(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from the plain table ``data``; a ValueError names an unknown key or a
    wrongly typed value by its dotted path (``prefix`` + key)."""
    if not isinstance(data, dict):
        raise ValueError(f"Config key `{prefix.rstrip('.')}` must be a table, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    known = [item.name for item in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"Unknown config key `{prefix}{key}`; known keys: {', '.join(known)}.")
        values[key] = coerce(f"{prefix}{key}", value, hints[key])
    return cls(**values)


def coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against ``annotation`` (str, int, float, tuple[int, ...], dict[str, float], a dataclass;
    Any is a value its owner checks later, e.g. a config's ``method_overrides`` entry)."""
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, f"{key}.")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"Config key `{key}` must be a list, got {type(value).__name__} {value!r}.")
        item_type = typing.get_args(annotation)[0]
        return tuple(coerce(f"{key}[{index}]", item, item_type) for index, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"Config key `{key}` must be a table, got {type(value).__name__} {value!r}.")
        value_type = typing.get_args(annotation)[1]
        return {str(name): coerce(f"{key}.{name}", item, value_type) for name, item in value.items()}
    valid = isinstance(value, annotation) and not isinstance(value, bool)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool:
        valid = isinstance(value, bool)
    if not valid:
        raise ValueError(f"Config key `{key}` must be {annotation.__name__}, got {type(value).__name__} {value!r}.")
    return value


__all__ = ["build_dataclass", "coerce"]
