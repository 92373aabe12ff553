"""The pieces a memory map names: ``(base, size, caller)`` items, checked and sorted.

The pictures take ``callers=`` as any sequence of ``(base, size, caller)`` items;
:func:`caller_pieces` validates them into :class:`CallerPiece` s. Working out who reserved what
from a boot log is log code: :func:`arena.trace_callers.callers_from_ops` and
:func:`arena.trace_callers.callers_from_log` produce these pieces. Complexity: O(n log n).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["CallerPiece", "caller_pieces"]


class CallerPiece(NamedTuple):
    """``[base, base + size)`` was reserved by ``caller`` (a function name)."""

    base: int
    size: int
    caller: str


def caller_pieces(callers: Any) -> list[CallerPiece]:
    """``callers`` (``None`` or ``(base, size, caller)`` items) checked and sorted as
    :class:`CallerPiece` s, empty pieces dropped. Raises ``TypeError``/``ValueError`` for bad
    items. O(n log n)."""
    if callers is None:
        return []
    if isinstance(callers, (str, bytes)):
        raise TypeError("callers must be a sequence of (base, size, caller) tuples; "
                        "use callers_from_log(text) for a log")
    out = []
    for item in callers:
        try:
            base, size, name = item
        except (TypeError, ValueError):
            raise TypeError(f"callers: each item must be (base, size, caller), not {item!r}") from None
        if isinstance(base, bool) or isinstance(size, bool) or not isinstance(name, str):
            raise TypeError(f"callers: bad item {item!r}")
        base, size = int(base), int(size)
        if base < 0 or size < 0:
            raise ValueError(f"callers: negative base or size in {item!r}")
        if size:
            out.append(CallerPiece(base, size, name))
    out.sort()
    return out

