"""Byte counts as text: the one way every report, map and command prints a size.

:func:`human_size` picks the largest binary unit (powers of 1024) that keeps the number at least
1, prints one decimal below 10 and none above, and drops a trailing ``.0``: ``"4 GiB"`` (also
for 3.99 GiB), ``"1.5 MiB"``, ``"73 B"``. Reading sizes back is
:func:`arena.physmem.parse_size`.
"""

from __future__ import annotations

__all__ = ["human_size"]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


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
