"""What memblock prints: the ``memblock=debug`` lines (``%pa`` addresses, the caller's name
as ``%pS``), its warnings, and ``memblock_dump_all()``.

A part of :class:`arena.memblock.Memblock` (its methods declare ``self: Memblock``).
Debug lines go to the ``arena.memblock`` logger at INFO.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

from arena.errors import MemblockWarning
from arena.memblock_store import MemblockType

if TYPE_CHECKING:
    from arena.memblock import Memblock

__all__ = ["Dump"]

_log = logging.getLogger("arena.memblock")
_INFO = logging.INFO

# Frames in these files are skipped when naming the caller of a debug line (the kernel's %pS):
# the modules of Memblock's parts and arena.kernel.
_HERE = os.path.dirname(os.path.abspath(__file__))
_SKIP_FILES = frozenset(os.path.join(_HERE, name) for name in (
    "memblock.py", "memblock_regions.py", "memblock_query.py", "memblock_alloc.py",
    "memblock_dump.py", "memblock_handover.py", "kernel.py"))


def _caller() -> str:
    """Name of the first Python function outside Memblock's modules and ``arena.kernel``."""
    f: Any = sys._getframe(1)
    while f is not None and f.f_code.co_filename in _SKIP_FILES:
        f = f.f_back
    return f.f_code.co_name if f is not None else "?"


class Dump:
    """The debug lines, warnings and dump of :class:`arena.memblock.Memblock` (a part of the
    class)."""

    # ========================================================================================
    # Debug lines and warnings (memblock_dbg, %pa, WARN)
    # ========================================================================================

    def _pa(self: Memblock, v: int) -> str:
        """``%pa``: 0x + zero-padded hex of a phys_addr_t."""
        return f"0x{v & self._mask:0{self._hexw}x}"

    def _dbg_range(self: Memblock, func: str, base: int, size: int, extra: str = "") -> None:
        """``memblock_dbg("%s: [%pa-%pa]...%pS")`` of add/remove/reserve/free (end inclusive)."""
        _log.info(f"{func}: [{self._pa(base)}-{self._pa(base + size - 1)}]{extra} {_caller()}")

    def _warn(self: Memblock, msg: str) -> None:
        warnings.warn(msg, MemblockWarning, stacklevel=3)

    def _warn_once(self: Memblock, key: str, msg: str) -> None:
        if key not in self._warned_once:
            self._warned_once.add(key)
            self._warn(msg)

    @staticmethod
    def _ret_ip() -> str:
        """``%pS`` of ``_RET_IP_`` in a debug line: :func:`_caller`."""
        return _caller()

    # ========================================================================================
    # Dump (memblock_dump, __memblock_dump_all)
    # ========================================================================================

    def _dump_type(self: Memblock, t: MemblockType, out: list[str]) -> None:
        """``memblock_dump()``: the cnt line and one line per region."""
        out.append(f" {t.name}.cnt  = {t.cnt:#x}")
        pa = self._pa
        numa = self._numa
        valid_rule = self._v_numa_valid
        mx = self._max_numnodes
        for i, r in enumerate(t.regions):
            nid = r.nid
            node = ""
            if numa and ((0 <= nid < mx) if valid_rule else nid != mx):
                node = f" on node {nid}"
            out.append(f" {t.name}[{i:#x}]\t[{pa(r.base)}-{pa(r.base + r.size - 1)}], "
                       f"{pa(r.size)} bytes{node} flags: {int(r.flags):#x}")

    def dump_all(self: Memblock, log: bool = True) -> str:
        """``memblock_dump_all()``: the kernel's ``MEMBLOCK configuration:`` text.

        Returns the lines joined with ``"\\n"`` (no timestamps); with ``log`` each line is also
        logged at INFO on ``arena.memblock``. O(n).
        """
        out = ["MEMBLOCK configuration:",
               f" memory size = {self._pa(self.memory.total_size)} "
               f"reserved size = {self._pa(self.reserved.total_size)}"]
        self._dump_type(self.memory, out)
        self._dump_type(self.reserved, out)
        if self._phys_map:
            self._dump_type(self.physmem, out)
        if log and _log.isEnabledFor(_INFO):
            for line in out:
                _log.info(line)
        return "\n".join(out)
