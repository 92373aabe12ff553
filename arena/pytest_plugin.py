"""pytest plugin: an ``arena`` fixture that fails the test on leaks, overruns and writes after free.

Kernel counterpart: none (the kernel's KUnit tests run with SLUB debugging and kmemleak; this
is the same idea for :class:`arena.Arena`). Registered through the ``pytest11`` entry point
``arena``; without the installed entry point, load it with ``-p arena.pytest_plugin``.
Works with pytest >= 7.4 and pluggy >= 1.0 (the oldest pair is tested).

* The ``arena`` fixture gives each test a fresh :class:`arena.Arena` — by default 64 MiB
  (mapped ``MAP_NORESERVE``, so only touched pages cost RAM) in debug mode.
* ``@pytest.mark.arena(size=..., debug=..., **kwargs)`` configures it: any keyword of
  :class:`arena.Arena` (``nodes``, ``budget``, ``align``, ``quarantine``, ``hugepages``,
  ``lifetime``, ...), plus ``check_leaks=False`` to allow allocations still live at the end of
  the test, and ``numpy=True`` to run the test body inside
  :meth:`arena.Arena.numpy_allocator` (numpy's own allocations then come from the arena and
  get its checks).
* A leak is an allocation still live after the test body: in the default garbage-collected
  lifetime, one never freed whose array is still referenced (a dropped array is reclaimed);
  with ``lifetime="manual"``, any allocation never freed.
* After the test body passes, the plugin runs :meth:`arena.Arena.check` (red zones and the
  quarantine in debug mode, memblock's invariants always) and :meth:`arena.Arena.leaks`; any
  finding fails the test (phase "call") with the full report — which allocation, how many
  bytes past its end were written, where it was allocated and freed.
* At teardown the arena is reset and closed; if arrays of it are still referenced (say, by a
  failed test's traceback) it is left to the garbage collector instead.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from arena.arena import Arena
from arena.errors import CorruptionError

__all__ = ["DEFAULT_SIZE", "arena", "arena_report"]

#: Size of the fixture's arena unless the marker says otherwise (bytes).
DEFAULT_SIZE = 64 << 20

_ARENA_KEY = pytest.StashKey[Arena]()
_LEAKS_KEY = pytest.StashKey[bool]()
_NUMPY_KEY = pytest.StashKey[Any]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``arena`` marker."""
    config.addinivalue_line(
        "markers",
        "arena(size=..., debug=..., check_leaks=True, numpy=False, **arena_kwargs): configure "
        "the `arena` fixture (an arena.Arena); the test fails on leaks, overruns and writes "
        "after free. numpy=True: numpy's own allocations come from the arena during the test.")
    if not config.pluginmanager.has_plugin("arena-numpy-block"):
        config.pluginmanager.register(_NumpyBlock(), "arena-numpy-block")


def arena_report(a: Arena, *, check_leaks: bool = True) -> str:
    """The findings that fail a test: corruption (repaired, so teardown can go on) and leaks.

    Returns ``""`` when the arena is clean. O(live + quarantined bytes + regions).
    """
    parts = []
    corruption = a.check(repair=True)
    if corruption:
        parts.append(f"{len(corruption)} memory corruption(s):\n" + "\n".join(corruption))
    if check_leaks:
        leaks = a.format_leaks()
        if leaks:
            parts.append("leak: " + leaks)
    if not parts:
        return ""
    return "arena: memory errors in this test\n" + "\n\n".join(parts)


@pytest.fixture
def arena(request: pytest.FixtureRequest) -> Generator[Arena, None, None]:
    """A fresh :class:`arena.Arena` (64 MiB, debug mode unless the marker says otherwise),
    checked for leaks and corruption after the test and closed at teardown."""
    kwargs: dict[str, Any] = {"size": DEFAULT_SIZE, "debug": True}
    check_leaks = True
    numpy = False
    marker = request.node.get_closest_marker("arena")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.arena takes keyword arguments only "
                                    "(size=..., debug=..., ...)")
        kwargs.update(marker.kwargs)
        check_leaks = kwargs.pop("check_leaks", True)
        numpy = kwargs.pop("numpy", False)
    a = Arena(kwargs.pop("size"), **kwargs)
    request.node.stash[_ARENA_KEY] = a
    request.node.stash[_LEAKS_KEY] = bool(check_leaks)
    if numpy:   # entered and left around the test body by pytest_runtest_call
        request.node.stash[_NUMPY_KEY] = a.numpy_allocator()
    try:
        yield a
    finally:
        _leave_numpy(request.node)
        _teardown(a)


def _leave_numpy(item: Any) -> None:
    """Leave the test's ``numpy_allocator()`` block (if it has one; a test body that raised
    skips the hook that leaves it after the body, so teardown does)."""
    block = item.stash.get(_NUMPY_KEY, None)
    if block is not None:
        del item.stash[_NUMPY_KEY]
        block.__exit__(None, None, None)


class _NumpyBlock:
    """A plugin object of its own (a module has one function per hook name): enters the
    arena's ``numpy_allocator()`` block right before the test body of a test marked
    ``numpy=True``."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        block = item.stash.get(_NUMPY_KEY, None)
        if block is not None:
            block.__enter__()


def _teardown(a: Arena) -> None:
    if a.closed:
        return
    try:
        a.reset()
    except CorruptionError:
        a.check(repair=True)
        a.reset()
    a.close(defer=True)  # arrays still referenced (say, by a traceback): the GC unmaps later


# A plain implementation marked ``trylast`` runs after pytest's own ``pytest_runtest_call``
# (which runs the test body) and is skipped when the body raised. It needs no hook wrapper:
# new-style wrappers (``wrapper=True``) need pluggy >= 1.1, and raising from an old-style
# ``hookwrapper`` draws a warning from newer pluggy; this form works the same on every pair.
@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After a passing test body, fail the test if its arena has leaks or corruption."""
    _leave_numpy(item)   # the checks' own numpy work must not come from the arena
    a = item.stash.get(_ARENA_KEY, None)
    if a is not None and not a.closed:
        report = arena_report(a, check_leaks=item.stash.get(_LEAKS_KEY, True))
        if report:
            pytest.fail(report, pytrace=False)
