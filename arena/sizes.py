"""Byte counts as text: the one way every report, map and command prints a size.

:func:`human_size` picks the largest binary unit (powers of 1024) that keeps the number at least
1, prints one decimal below 10 and none above, and drops a trailing ``.0``: ``"4 GiB"`` (also
for 3.99 GiB), ``"1.5 MiB"``, ``"73 B"``. :func:`parse_size` reads sizes back (also
importable from :mod:`arena.physmem`).
"""

from __future__ import annotations

import re
from typing import Any

from arena._args import int_arg

__all__ = ["human_size", "parse_size"]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_SHIFTS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE_RE = re.compile(r"^\s*(0x[0-9a-f]+|\d+)\s*([kmgtpe]?)(i?b)?\s*$", re.IGNORECASE)


def human_size(n: float) -> str:
    """``n`` bytes as a short binary size: ``"6 GiB"``, ``"1.5 MiB"``, ``"73 B"``.

    Below 10 units one decimal is kept (``"2.5 GiB"``), unless it is 0 (``"4 GiB"``, never
    ``"4.0 GiB"``); from 10 units on the number is rounded to a whole one. Negative counts keep
    their sign. O(1)."""
    if n < 0:
        return "-" + human_size(-n)
    if n < 1024:
        return f"{n:.0f} B" if n == int(n) else f"{n:.1f} B".replace(".0 ", " ")
    v = float(n)
    unit = _UNITS[0]
    for unit in _UNITS:
        v /= 1024
        if v < 1024 or unit == _UNITS[-1]:
            break
    text = f"{v:.1f}" if v < 10 else f"{v:.0f}"
    if text.endswith(".0"):
        text = text[:-2]
    if text == "1024" and unit != _UNITS[-1]:   # 1023.6 MiB rounds to the next unit
        text, unit = "1", _UNITS[_UNITS.index(unit) + 1]
    return f"{text} {unit}"


def parse_size(value: Any, *, name: str = "size", allow_zero: bool = False) -> int:
    """Parse a byte count: an int, a numpy integer or a string such as ``"64 GiB"``.

    Strings: a decimal or ``0x`` hex number, optionally followed by a binary unit ``K``/``M``/
    ``G``/``T``/``P``/``E`` (powers of 1024, as the kernel's ``memparse``), written alone
    (``"1G"``) or with ``iB`` (``"4KiB"``, ``"2 MiB"``), or a plain ``B``. Decimal-looking units
    (``"GB"``) are refused as ambiguous.

    Returns the count in bytes. Raises ``TypeError`` for bools, floats, None and other types,
    ``ValueError`` for malformed strings, negative counts and (unless ``allow_zero``) zero.
    O(1).
    """
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m is None:
            raise ValueError(f"{name}: cannot parse {value!r} (examples: 4096, '4 KiB', '1G')")
        number, unit, suffix = m.group(1), m.group(2).upper(), (m.group(3) or "")
        if unit and suffix.lower() == "b":
            raise ValueError(
                f"{name}: {value!r} is ambiguous; write {unit}iB (binary, 1024-based) or {unit}")
        if not unit and suffix.lower() == "ib":
            raise ValueError(f"{name}: cannot parse {value!r} ('iB' needs a unit such as KiB)")
        result = int(number, 0) << _SHIFTS[unit]
    else:
        result = int_arg(name, value)
    if result < 0 or (result == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return result
