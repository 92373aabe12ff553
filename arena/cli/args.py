"""The argument types every command shares: one meaning of "a size", "an address", "a node
count", "a kernel version".

Each is an ``argparse`` ``type=`` function: it returns the parsed value or raises
``argparse.ArgumentTypeError`` with a one-line reason, which argparse prints as
``usage: ...`` plus ``error: argument --x: <reason>`` and exit status 2 — the same for every
command, before anything is mapped or booted.

* :func:`size` — a positive byte count: ``4096``, ``0x1000``, ``64M``, ``'2 MiB'``
  (:func:`arena.physmem.parse_size`: binary units, decimal ``GB`` refused as ambiguous);
* :func:`address` — a physical address or alignment, ``>= 0``, written the same ways
  (``0x100000000`` or ``4G``);
* :func:`power_of_two` — an address that is a power of two (page and cache-line sizes);
* :func:`node_count` — a NUMA node count in ``1 .. maximum`` (a factory: the maximum depends
  on the command);
* :func:`columns` — a terminal width, at least 8;
* :func:`kernel_version` — ``X.Y`` (``X.Y.Z`` accepted, ``Z`` ignored) of a kernel whose
  memblock exists and is modelled: 2.6 up to :data:`arena.memblock.NEWEST_KERNEL`;
* :func:`inclusive_range` / :func:`node_range` — ``START-END`` (``@NID``), the end inclusive
  as the kernel prints ranges;
* :func:`dump_number` — the N-th configuration dump (1 = the first, 0 = never).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

__all__ = ["size", "address", "power_of_two", "node_count", "columns", "kernel_version",
           "inclusive_range", "node_range", "dump_number", "OLDEST_KERNEL", "LAST_MINOR"]

#: The oldest kernel with memblock (2.6.35); versions before it are refused.
OLDEST_KERNEL = (2, 6)
#: The last minor version of each finished kernel series.
LAST_MINOR = {2: 6, 3: 19, 4: 20, 5: 19}


def _parse_size(text: str, name: str, allow_zero: bool) -> int:
    from arena.physmem import parse_size

    try:
        return parse_size(text.strip(), name=name, allow_zero=allow_zero)
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def size(text: str) -> int:
    """A positive byte count (``64M``, ``'2 MiB'``, ``0x1000``, ``4096``), in bytes."""
    return _parse_size(text, "size", False)


def address(text: str) -> int:
    """A physical address, ``>= 0`` (``0x100000000``, ``4G``), in bytes."""
    return _parse_size(text, "address", True)


def power_of_two(text: str) -> int:
    """A positive power of two (``4096``, ``0x40``, ``4K``), in bytes."""
    value = _parse_size(text, "value", False)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"not a power of two: {text!r}")
    return value


def node_count(maximum: int, what: str = "node count") -> Callable[[str], int]:
    """The ``type=`` of a count (NUMA nodes by default; ``what`` names it) in
    ``1 .. maximum``."""

    def count(text: str) -> int:
        try:
            n = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
        if not 1 <= n <= maximum:
            raise argparse.ArgumentTypeError(f"{what} must be in 1..{maximum}, not {n}")
        return n

    count.__name__ = what
    return count


def columns(text: str) -> int:
    """A terminal width in columns, at least 8."""
    try:
        n = int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a width: {text!r}") from None
    if n < 8:
        raise argparse.ArgumentTypeError(f"must be at least 8, not {n}")
    return n


def kernel_version(text: str) -> tuple[int, int]:
    """``X.Y`` as ``(X, Y)``; refused unless a kernel of that version exists with memblock
    and is not newer than the newest one modelled."""
    from arena.memblock import NEWEST_KERNEL

    m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})(?:\.\d{1,4})?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"kernel version must be X.Y: {text!r}")
    v = int(m[1]), int(m[2])
    newest = f"{NEWEST_KERNEL[0]}.{NEWEST_KERNEL[1]}"
    if not OLDEST_KERNEL <= v <= NEWEST_KERNEL or v[1] > LAST_MINOR.get(v[0], v[1]):
        raise argparse.ArgumentTypeError(
            f"no kernel {v[0]}.{v[1]} with memblock is modelled (2.6 .. {newest})")
    return v


_RANGE_RE = re.compile(r"(?P<b>[0-9a-fA-Fx]+)-(?P<e>[0-9a-fA-Fx]+)(?:@(?P<nid>-?\d+))?")


def _range(text: str, node: bool) -> tuple[int, int] | tuple[int, int, int | None]:
    m = _RANGE_RE.fullmatch(text.strip())
    if m is None or (m["nid"] is not None and not node):
        form = "START-END[@NID]" if node else "START-END"
        raise argparse.ArgumentTypeError(f"expected {form} (inclusive end), not {text!r}")
    try:
        base, end = int(m["b"], 0), int(m["e"], 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address range: {text!r}") from None
    if end < base or end >= 1 << 64:
        raise argparse.ArgumentTypeError(f"empty or too large range: {text!r}")
    nid = None if m["nid"] is None else int(m["nid"])
    return (base, end - base + 1, nid) if node else (base, end - base + 1)


def node_range(text: str) -> tuple[int, int] | tuple[int, int, int | None]:
    """``START-END[@NID]`` (inclusive end) as ``(base, size, nid)``; nid ``None`` if absent."""
    return _range(text, True)


def inclusive_range(text: str) -> tuple[int, int] | tuple[int, int, int | None]:
    """``START-END`` (inclusive end, as the kernel prints it) as ``(base, size)``."""
    return _range(text, False)


def dump_number(text: str) -> int:
    """The N-th configuration dump of a log (1 = the first; 0 = never)."""
    if not text.isdigit() or len(text) > 6:
        raise argparse.ArgumentTypeError(f"expected a dump number (1 = the first, 0 = never), "
                                         f"not {text!r}")
    return int(text)
