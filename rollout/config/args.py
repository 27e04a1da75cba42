"""Numbers given as task options, parsed once with an error that names the flag (exit 2)."""

from __future__ import annotations

from typing import Optional

from rollout.core.errors import UsageError


def whole(value, flag: str, default: int, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """`value` (text from the command line, or None for `default`) as a whole number within bounds."""
    if value is None:
        return default
    text = str(value).strip()
    if not text.isdigit() or int(text) < minimum or (maximum is not None and int(text) > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise UsageError(f"{flag}={value!r} is not valid: give a whole number, {bounds}")
    return int(text)


def seconds(value, flag: str, default: float) -> float:
    """`value` (text, or None for `default`) as a number of seconds, 0 or more."""
    if value is None:
        return default
    try:
        number = float(str(value).strip())
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise UsageError(f"{flag}={value!r} is not valid: give a number of seconds, 0 or more")
    return number
