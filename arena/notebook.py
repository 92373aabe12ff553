"""Pictures for notebooks: the SVG memory maps behind ``_repr_svg_`` of
:class:`arena.memblock.Memblock`, :class:`arena.physmem.PhysicalMemory` and
:class:`arena.Arena`.

Jupyter (and any IPython display) shows an object with a ``_repr_svg_`` method as the picture
it returns, and a plain ``repr()`` stays the one-line summary. The pictures are the memory maps
of :func:`arena.render.svg`, a little narrower than a standalone file so they fit a notebook
cell: memblock's memory and reserved regions; for an arena, its memblock (slabs, large blocks
and reservations are memblock's reserved ranges); for a physical memory, its node slices with
the ranges written so far drawn as reserved.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from arena.render import svg

__all__ = ["NOTEBOOK_WIDTH", "memblock_svg", "physmem_svg", "arena_svg"]

#: Width of the notebook pictures, pixels.
NOTEBOOK_WIDTH = 900


class _Piece(NamedTuple):
    base: int
    size: int
    flags: int
    nid: int


class _Table(NamedTuple):
    regions: list[_Piece]


class _Picture(NamedTuple):
    """The two region tables :func:`arena.render.svg` reads, for a memory without memblock."""

    memory: _Table
    reserved: _Table


def memblock_svg(memblock: Any, title: str | None = None) -> str:
    """The memory map of a :class:`arena.memblock.Memblock` (SVG text)."""
    return svg(memblock, title=title if title is not None else "memblock", width=NOTEBOOK_WIDTH)


def physmem_svg(pm: Any) -> str:
    """The node slices of a :class:`arena.physmem.PhysicalMemory`, the ranges written so far
    drawn as reserved (SVG text)."""
    memory = [_Piece(sl.phys_start, sl.size, 0, sl.nid) for sl in pm.slices]
    starts = [sl.phys_start for sl in pm.slices]
    written = []
    for s, e in pm._written_pieces(pm.phys_base, pm.phys_base + pm.size):
        nid = pm.slices[max(i for i, st in enumerate(starts) if st <= s)].nid
        written.append(_Piece(s, e - s, 0, nid))
    pic = _Picture(_Table(memory), _Table(written))
    return svg(pic, title="Physical memory (written ranges shown as reserved)",
               width=NOTEBOOK_WIDTH)


def arena_svg(arena: Any) -> str:
    """The memory map of an :class:`arena.Arena` (its memblock; SVG text)."""
    st = arena.bytes_allocated()
    return memblock_svg(arena.memblock, title=f"Arena: {arena.capacity:,} bytes, "
                                              f"{st:,} bytes allocated")
