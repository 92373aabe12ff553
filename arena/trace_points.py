"""Points of a boot log and our memblock state at each: what ``map --diff A B`` compares.

Points of a log (:func:`parse_point`):

* ``start`` — before the first line (no memory, nothing reserved);
* ``end`` — after the last line;
* ``dump:N`` — at the N-th ``MEMBLOCK configuration`` dump of the log (1 = the first; negative
  numbers count from the last, ``dump:-1``);
* ``line:N`` (or just ``N``) — after line N of the log: every memblock line up to and including
  line N has been replayed (an allocation counts once the reserve line that answers it is in).
  "Before and after line 120" is ``--diff 119 120``.

A state is our replay of the log up to the point (:func:`state_at`) with the settings the whole
log implies (direction, trimming, node ids, ...), so both states follow the kernel's answers.
The picture of the difference is :func:`arena.render_diff.svg_diff`. Complexity: two replays
of the log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from arena.trace import Settings, replay

__all__ = ["Point", "parse_point", "state_at"]


@dataclass(frozen=True)
class Point:
    """A point of a log: ``kind`` is ``"start"``, ``"end"``, ``"dump"`` (the ``n``-th dump,
    1-based; negative from the last) or ``"line"`` (after line ``n``)."""

    kind: str
    n: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind in ("start", "end") else f"{self.kind} {self.n}"


_POINT_RE = re.compile(r"^(?:(?P<kind>dump|line):)?(?P<n>[+-]?\d+)$")


def parse_point(text: str) -> Point:
    """A :class:`Point` from its text (``start``, ``end``, ``dump:N``, ``line:N`` or ``N``).
    Raises ``ValueError`` for anything else, ``dump:0`` and negative line numbers."""
    if not isinstance(text, str):
        raise TypeError(f"a point must be a str, not {type(text).__name__}")
    t = text.strip().lower()
    if t in ("start", "end"):
        return Point(t)
    m = _POINT_RE.match(t)
    if m is None:
        raise ValueError(f"not a point of the log: {text!r} (use start, end, dump:N or line:N)")
    kind, n = m["kind"] or "line", int(m["n"])
    if kind == "dump" and n == 0:
        raise ValueError("dumps are numbered from 1 (dump:-1 is the last)")
    if kind == "line" and n < 0:
        raise ValueError(f"a line number must not be negative: {text!r}")
    return Point(kind, n)


def _prefix(trace: Any, point: Point) -> list[Any]:
    """The operations of ``trace`` that happened before ``point``."""
    ops = list(trace.ops)
    if point.kind == "start":
        return []
    if point.kind == "end":
        return ops
    if point.kind == "dump":
        dumps = [i for i, op in enumerate(ops) if op.kind == "dump"]
        if not dumps or not -len(dumps) <= (point.n - 1 if point.n > 0 else point.n) < len(dumps):
            raise ValueError(f"the log has {len(dumps)} MEMBLOCK configuration dump(s); "
                             f"there is no dump {point.n}")
        return ops[:dumps[point.n - 1 if point.n > 0 else point.n] + 1]
    if point.n > len(trace.lines):
        raise ValueError(f"the log has {len(trace.lines)} lines; there is no line {point.n}")
    return [op for op in ops
            if (getattr(op, "result_lineno", None) or op.lineno) <= point.n]


def state_at(trace: Any, point: Point, settings: Any = None) -> Any:
    """Our replay (:func:`arena.trace.replay`) of ``trace`` (a :class:`arena.trace.Trace`) up
    to ``point``, with ``settings`` (default: those the replay of the whole log infers).
    Returns the :class:`arena.trace.Report`; ``ValueError`` when the point is not in the log.
    Two replays (one when ``settings`` are given). O(ops × regions)."""
    if not isinstance(point, Point):
        raise TypeError(f"point must be a Point, not {type(point).__name__}")
    ops = _prefix(trace, point)
    if settings is None:
        settings = replay(trace).settings
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a Settings, not {type(settings).__name__}")
    return replay(replace(trace, ops=ops), replace(settings, infer=False))
