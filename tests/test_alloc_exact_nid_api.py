"""The kernel's ``tools/testing/memblock/tests/alloc_exact_nid_api.c``, on real memory.

The kernel's exact file does two things, and so does this module:

* ``memblock_alloc_exact_nid_range_checks()`` reruns the range checks of ``alloc_nid_api.c``
  with ``TEST_F_RAW | TEST_F_EXACT``, i.e. through ``memblock_alloc_exact_nid_raw``;
* ``__memblock_alloc_exact_nid_numa_checks()`` runs the NUMA scenarios of ``alloc_nid_api.c``
  with an exact node: where the non-exact call falls back to any node, the exact one fails, or
  (``no_overlap_low``) drops ``min_addr`` and stays in the requested node.

Both reuse the scenario functions of ``test_alloc_nid_api.py`` (which already know whether the
variant is exact): they are collected here again, with the ``variant`` fixture fixed to
``"exact"``. The kernel's ``part_reserved_fail`` is the exact form of ``part_reserved_fallback``.
``alloc_node_on_correct_nid`` has no exact form and is not collected here. Deviations from the
kernel file are listed in ``docs/sections/tests-nid.md``.
"""

from __future__ import annotations

import pytest

from tests.test_alloc_nid_api import (  # noqa: F401  (collected here, run with variant "exact")
    hb,
    test_bad_input,
    test_cap_max,
    test_cap_min,
    test_end_misaligned,
    test_exact_address,
    test_low_max,
    test_max_reserved,
    test_min_reserved,
    test_narrow_range,
    test_numa_large_region,
    test_numa_merge_before_v6_16,
    test_numa_no_overlap_high,
    test_numa_no_overlap_low,
    test_numa_no_overlap_split,
    test_numa_node_reserved,
    test_numa_part_reserved,
    test_numa_reserved_full_merge,
    test_numa_simple,
    test_numa_small_node,
    test_numa_split_all_reserved,
    test_numa_split_range_high,
    test_numa_split_range_low,
    test_reserved_all,
    test_reserved_full_merge,
    test_reserved_no_space,
    test_reserved_with_space,
    test_simple,
    test_start_misaligned,
)
from tests.test_alloc_nid_api import (  # noqa: F401
    test_numa_part_reserved_fallback as test_numa_part_reserved_fail,
)


@pytest.fixture
def variant():
    """``TEST_F_RAW | TEST_F_EXACT``: every allocation goes through ``memblock_alloc_exact_nid_raw``."""
    return "exact"
