"""Who allocated what: caller capture, :class:`AllocationInfo` and leak reports.

Kernel counterpart: SLUB's owner tracking (``slub_debug=U``), which records the allocating
call site only when asked. The arena records callers in debug mode (up to
:data:`STACK_DEPTH` frames) or with ``Arena(track_callers=True)`` (one frame); otherwise an
allocation's ``caller`` is :data:`UNTRACKED`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AllocationInfo",
    "LeakSite",
    "HIDDEN_FRAMES",
    "STACK_DEPTH",
    "UNTRACKED",
    "capture",
    "site",
    "fmt_stack",
    "frame_site",
    "leak_sites",
    "format_leaks",
]

#: Frames of the allocating stack kept per allocation in debug mode (one frame otherwise).
STACK_DEPTH = 8
#: Frames from files whose path contains one of these are left out of allocation stacks.
HIDDEN_FRAMES = (f"{os.sep}_pytest{os.sep}", f"{os.sep}pluggy{os.sep}", f"{os.sep}pytest{os.sep}",
                 "<frozen runpy>", f"{os.sep}arena{os.sep}pytest_plugin.py",
                 f"{os.sep}arena{os.sep}_pytest_fork.py")
#: The ``caller`` of an allocation made while callers were not tracked.
UNTRACKED = "? (caller not tracked: use Arena(track_callers=True) or debug mode)"

Frame = tuple[str, int, str]


def capture(frame: Any, limit: int) -> tuple[Frame, ...]:
    """Up to ``limit`` ``(filename, line, function)`` frames, innermost first: the caller, then
    its callers minus the frames of test runners (:data:`HIDDEN_FRAMES`). O(limit + hidden).
    ``frame`` ``None`` (a call from the outermost frame of a thread) gives no frames."""
    if frame is None:
        return ()
    code = frame.f_code
    out = [(code.co_filename, frame.f_lineno, code.co_name)]
    frame = frame.f_back
    while frame is not None and len(out) < limit:  # only in debug mode (limit > 1)
        code = frame.f_code
        name = code.co_filename
        if not any(h in name for h in HIDDEN_FRAMES):
            out.append((name, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return tuple(out)


def site(frame: Frame | None) -> str:
    """``"file:line in function"``, or ``"?"``."""
    return "?" if frame is None else f"{frame[0]}:{frame[1]} in {frame[2]}"


def fmt_stack(stack: tuple[Frame, ...], indent: str = "    ") -> str:
    """One line per frame, each starting with a newline and ``indent``."""
    return "".join(f"\n{indent}{site(f)}" for f in stack)


def frame_site(code: Any, lasti: int) -> Frame:
    """The frame a code object and instruction offset stand for (the line found lazily:
    recording the two costs less than reading ``f_lineno`` on every allocation)."""
    line = next((ln for s, e, ln in code.co_lines() if s <= lasti < e), None)
    return (code.co_filename, code.co_firstlineno if line is None else line, code.co_name)


@dataclass(frozen=True)
class AllocationInfo:
    """One live allocation, as :meth:`arena.Arena.info` and :meth:`arena.Arena.live` report it.

    ``phys``: physical address of the first byte; ``address``: its real virtual address;
    ``size``: bytes requested; ``reserved``: bytes held for it (its size class, granule padding
    and red zones included); ``align``: the alignment both addresses satisfy; ``node``: the node
    holding the memory; ``requested_node``: the ``node=`` argument (``None`` = any);
    ``caller``: ``"file:line in function"`` of the call that allocated it (:data:`UNTRACKED`
    unless callers are tracked); ``stack``: the allocating stack (innermost first, up to
    :data:`STACK_DEPTH` frames in debug mode, one frame with ``track_callers``); ``seq``:
    allocation number (0, 1, 2, ... in allocation order); ``guard_gap``: in guard mode with
    ``guard="end"``, the bytes between the end of the allocation and its guard page (the
    alignment could not put it flush; an access there is found at ``free()``, not at once),
    else 0.
    """

    phys: int
    address: int
    size: int
    reserved: int
    align: int
    node: int
    requested_node: int | None
    caller: str
    stack: tuple[str, ...]
    seq: int
    guard_gap: int = 0


@dataclass(frozen=True)
class LeakSite:
    """Live allocations grouped by call site (:meth:`arena.Arena.leaks`): ``count``
    allocations of ``nbytes`` bytes in total (requested sizes) made at ``site``; ``stack`` is
    the stack of the first of them; ``phys`` their physical addresses."""

    site: str
    count: int
    nbytes: int
    stack: tuple[str, ...]
    phys: tuple[int, ...]


def leak_sites(infos: list[AllocationInfo]) -> list[LeakSite]:
    """``infos`` grouped by caller, most bytes first. O(n log n)."""
    groups: dict[str, list[AllocationInfo]] = {}
    for info in infos:
        groups.setdefault(info.caller, []).append(info)
    sites = [LeakSite(where, len(group), sum(i.size for i in group), group[0].stack,
                      tuple(i.phys for i in group))
             for where, group in groups.items()]
    sites.sort(key=lambda s: (-s.nbytes, -s.count, s.site))
    return sites


def format_leaks(sites: list[LeakSite]) -> str:
    """:func:`leak_sites` as text (empty string if there are none)."""
    if not sites:
        return ""
    count = sum(s.count for s in sites)
    total = sum(s.nbytes for s in sites)
    lines = [f"{count} allocation(s) still live ({total} bytes), by call site:"]
    for s in sites:
        lines.append(f"  {s.count} x, {s.nbytes} bytes, allocated at {s.site}"
                     + "".join(f"\n      {frame}" for frame in s.stack[1:]))
    return "\n".join(lines)
