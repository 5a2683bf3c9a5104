"""TOML in and out for config files: reading through tomllib (tomli on Python 3.10), and a small writer of the
plain tables a :class:`~art_rslad.experiments.config.Config` holds."""

from __future__ import annotations

import json
import math
import re
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the optional backport, else TOML files cannot be read
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]


def loads_toml(text: str) -> dict[str, Any]:
    """The tables of a TOML document; a ValueError says how to read TOML where tomllib is missing."""
    if tomllib is None:
        raise ValueError("Reading TOML on Python 3.10 needs `pip install tomli`; or use a .json config.")
    return tomllib.loads(text)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ValueError(f"Cannot write a {type(value).__name__} as a TOML value.")


def dumps_toml(data: dict[str, Any]) -> str:
    """Write a dict of scalars, lists of scalars and nested dicts (tables) as TOML."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []

    def emit(table: dict[str, Any], path: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                tables.append((f"{path}{_toml_key(key)}", value))
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")

    emit(data, "")
    while tables:
        path, table = tables.pop(0)
        lines.extend(["", f"[{path}]"])
        emit(table, f"{path}.")
    return "\n".join(lines) + "\n"


__all__ = ["dumps_toml", "loads_toml"]
