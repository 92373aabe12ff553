"""The public surface is ``__all__``: every name it lists exists, and
every public module, class, function and method has a docstring."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ["arena", "arena.errors", "arena.physmem", "arena.memblock", "arena.buddy",
           "arena.slab", "arena.arena", "arena.trace", "arena.render", "arena.demo",
           "arena.kernel", "arena.soak", "arena.pytest_plugin", "arena.__main__", "arena.cli",
           "arena.cli.args", "arena.cli.demo", "arena.cli.map", "arena.cli.replay",
           "arena.cli.physmem", "arena.trace_callers", "arena.trace_points", "arena.sizes",
           "arena.memblock_regions", "arena.memblock_query", "arena.memblock_alloc",
           "arena.memblock_dump", "arena.memblock_handover", "arena.physmem_host",
           "arena.physmem_pages"]


def _public(module):
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module.__name__} has no __all__"
    return names


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_exists_and_is_documented(name):
    module = importlib.import_module(name)
    assert inspect.getdoc(module), f"module {name} has no docstring"
    undocumented = []
    for attr in _public(module):
        obj = getattr(module, attr)  # AttributeError: __all__ lists a missing name
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            undocumented.append(attr)
        if inspect.isclass(obj):
            for meth, value in vars(obj).items():
                if meth.startswith("_") or not (inspect.isfunction(value)
                                                or isinstance(value, property)):
                    continue
                if not inspect.getdoc(value):
                    undocumented.append(f"{attr}.{meth}")
    assert not undocumented, f"{name}: no docstring on {undocumented}"


def test_package_exports_the_main_classes():
    import arena

    for attr in ("Arena", "Memblock", "PhysicalMemory", "BuddyAllocator", "SlabAllocator",
                 "MemblockFlags", "NUMA_NO_NODE", "ArenaError"):
        assert attr in arena.__all__ and hasattr(arena, attr)
