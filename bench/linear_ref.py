"""Old name of the linear reference memblock, kept for existing imports: the implementation is
:mod:`arena.memblock_linear` (one place, shared by the tests, the soak and the benchmarks)."""

from arena.memblock_linear import NUMA_NO_NODE, PHYS_ADDR_MAX, LinearMemblock, LinearType

__all__ = ["LinearMemblock", "LinearType", "PHYS_ADDR_MAX", "NUMA_NO_NODE"]
