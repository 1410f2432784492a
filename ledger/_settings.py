"""What the server's and the client's configurations share: `LEDGER_*` values read by type, files read by name.

Kept apart from both so that the client (which may run on another host) needs nothing of the server's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def parse_setting(name: str, raw: str, default: Any) -> Any:
    """The value of LEDGER_<NAME>=raw, of the type of the field's default (None: a path); ValueError naming it."""
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(raw.replace("_", ""))
        if isinstance(default, float):
            return float(raw)
        if default is None or isinstance(default, Path):
            return Path(raw)
    except ValueError:
        raise ValueError(f"LEDGER_{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
    return raw


def read_setting_file(name: str, path: str | Path) -> bytes:
    """The bytes of the file a setting names (a PEM file, say); ValueError naming the setting otherwise."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None
