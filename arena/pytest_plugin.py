"""pytest plugin: an ``arena`` fixture that fails the test on leaks, overruns and writes after free.

Kernel counterpart: none (the kernel's KUnit tests run with SLUB debugging and kmemleak; this
is the same idea for :class:`arena.Arena`). Registered through the ``pytest11`` entry point
``arena``; without the installed entry point, load it with ``-p arena.pytest_plugin``.
Works with pytest >= 7.4 and pluggy >= 1.0 (the oldest pair is tested).

* The ``arena`` fixture gives each test a fresh :class:`arena.Arena` — by default 64 MiB
  (mapped ``MAP_NORESERVE``, so only touched pages cost RAM) in debug mode.
* ``@pytest.mark.arena(size=..., debug=..., **kwargs)`` configures it: any keyword of
  :class:`arena.Arena` (``nodes``, ``budget``, ``align``, ``quarantine``, ``hugepages``,
  ``lifetime``, ``redzone``, ...), plus the plugin's own options (:data:`MARKER_OPTIONS`):
  ``check_leaks=False`` to allow allocations still live at the end of the test, and
  ``guard=True`` (or ``"end"`` / ``"start"``) for an arena in guard mode
  (``debug="guard"``), the test then running in a forked child process: a faulting access
  fails that test alone, with the fault note (the allocation's site) and the Python traceback
  of the faulting line, and the session goes on; ``numpy=True`` runs the test body inside
  :meth:`arena.Arena.numpy_allocator` (numpy's own allocations then come from the arena and
  get its checks).
* A leak is an allocation still live after the test body: in the default garbage-collected
  lifetime, one never freed whose array is still referenced (a dropped array is reclaimed);
  with ``lifetime="manual"``, any allocation never freed.
* After the test body passes, the plugin runs :meth:`arena.Arena.check` (red zones and the
  quarantine in debug mode, memblock's invariants always) and :meth:`arena.Arena.leaks`; any
  finding fails the test (phase "call") with the full report — which allocation, how many
  bytes past its end were written, where it was allocated and freed. ``--arena-leaks=warn``
  turns leaks into an :class:`arena.errors.ArenaLeakWarning`, ``--arena-leaks=off`` ignores
  them (corruption always fails the test).
* When the test body fails by itself, its failure stays the test's own and the findings are
  added to the report as an extra section ("Captured arena call").
* At teardown the arena is reset and closed; if arrays of it are still referenced (say, by a
  failed test's traceback) it is left to the garbage collector instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import pytest

from arena.arena import Arena
from arena.errors import ArenaLeakWarning, CorruptionError

__all__ = ["DEFAULT_SIZE", "LEAK_MODES", "MARKER_OPTIONS", "arena", "arena_report",
           "marker_options"]

#: Size of the fixture's arena unless the marker says otherwise (bytes).
DEFAULT_SIZE = 64 << 20
#: Values of ``--arena-leaks``: fail the test, warn, or ignore leaks.
LEAK_MODES = ("error", "warn", "off")
#: The marker's own options and their defaults; every other keyword goes to :class:`Arena`.
MARKER_OPTIONS: dict[str, Any] = {"check_leaks": True, "guard": False, "numpy": False}

_ARENA_KEY = pytest.StashKey[Arena]()
_OPTIONS_KEY = pytest.StashKey[dict[str, Any]]()
_CHECKED_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--arena-leaks=error|warn|off``."""
    parser.getgroup("arena").addoption(
        "--arena-leaks", choices=LEAK_MODES, default="error", dest="arena_leaks",
        help="what a leak in the `arena` fixture does: fail the test (error, the default), "
             "issue an ArenaLeakWarning (warn), or nothing (off)")
_NUMPY_KEY = pytest.StashKey[Any]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``arena`` marker."""
    config.addinivalue_line(
        "markers",
        "arena(size=..., debug=..., check_leaks=True, guard=False, numpy=False, **arena_kwargs): "
        "configure "
        "the `arena` fixture (an arena.Arena); the test fails on leaks, overruns and writes "
        "after free; guard=True runs it in a forked child with guard pages; numpy=True: numpy's own "
        "allocations come from the arena during the test.")
    if not config.pluginmanager.has_plugin("arena-numpy-block"):
        config.pluginmanager.register(_NumpyBlock(), "arena-numpy-block")


def marker_options(item: pytest.Item) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(Arena keyword arguments, plugin options)`` of ``item``'s ``arena`` marker: the keys
    of :data:`MARKER_OPTIONS` are the plugin's, the rest go to :class:`Arena`. Raises
    ``pytest.UsageError`` for positional arguments."""
    kwargs: dict[str, Any] = {"size": DEFAULT_SIZE, "debug": True}
    options = dict(MARKER_OPTIONS)
    marker = item.get_closest_marker("arena")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.arena takes keyword arguments only "
                                    "(size=..., debug=..., ...)")
        for key, value in marker.kwargs.items():
            (options if key in MARKER_OPTIONS else kwargs)[key] = value
    guard = options["guard"]
    if guard:
        kwargs["debug"] = "guard"
        if isinstance(guard, str):
            kwargs["guard"] = guard
    elif kwargs["debug"] == "guard":   # asked for through Arena's own keyword: forked too
        options["guard"] = kwargs.get("guard", True)
    return kwargs, options


def _findings(a: Arena, *, leaks: bool) -> tuple[str, str]:
    """``(corruption report, leak report)`` of an arena (corruption repaired, so teardown can
    go on); empty strings when clean."""
    corruption = a.check(repair=True)
    text = (f"{len(corruption)} memory corruption(s):\n" + "\n".join(corruption)
            if corruption else "")
    leak = a.format_leaks() if leaks else ""
    return text, ("leak: " + leak if leak else "")


def _format(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    if not parts:
        return ""
    return "arena: memory errors in this test\n" + "\n\n".join(parts)


def arena_report(a: Arena, *, check_leaks: bool = True) -> str:
    """The findings that fail a test: corruption (repaired, so teardown can go on) and leaks.

    Returns ``""`` when the arena is clean. O(live + quarantined bytes + regions).
    """
    return _format(list(_findings(a, leaks=check_leaks)))


@pytest.fixture
def arena(request: pytest.FixtureRequest) -> Generator[Arena, None, None]:
    """A fresh :class:`arena.Arena` (64 MiB, debug mode unless the marker says otherwise),
    checked for leaks and corruption after the test and closed at teardown."""
    kwargs, options = marker_options(request.node)
    a = Arena(kwargs.pop("size"), **kwargs)
    request.node.stash[_ARENA_KEY] = a
    request.node.stash[_OPTIONS_KEY] = options
    if options["numpy"]:   # entered and left around the test body by pytest_runtest_call
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


def _leak_mode(item: pytest.Item) -> str:
    if not item.stash[_OPTIONS_KEY]["check_leaks"]:
        return "off"
    return str(item.config.getoption("arena_leaks", "error"))


# A plain implementation marked ``trylast`` runs after pytest's own ``pytest_runtest_call``
# (which runs the test body) and is skipped when the body raised. It needs no hook wrapper:
# new-style wrappers (``wrapper=True``) need pluggy >= 1.1, and raising from an old-style
# ``hookwrapper`` draws a warning from newer pluggy; this form works the same on every pair.
@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After a passing test body, fail the test if its arena has corruption (or leaks, with
    ``--arena-leaks=error``; a warning with ``warn``)."""
    _leave_numpy(item)   # the checks' own numpy work must not come from the arena
    a = item.stash.get(_ARENA_KEY, None)
    if a is None or a.closed:
        return
    item.stash[_CHECKED_KEY] = True
    mode = _leak_mode(item)
    corruption, leaks = _findings(a, leaks=mode != "off")
    if leaks and mode == "warn":
        warnings.warn(ArenaLeakWarning(f"arena: {leaks}"), stacklevel=1)
        leaks = ""
    report = _format([corruption, leaks])
    if report:
        pytest.fail(report, pytrace=False)


# An old-style wrapper that only reads the result: works with pluggy 1.0 and later.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """When the test body failed by itself, add the arena's findings (leaks unless
    ``--arena-leaks=off``, and corruption) to its report as a section."""
    outcome = yield
    if call.when != "call" or item.stash.get(_CHECKED_KEY, False):
        return
    a = item.stash.get(_ARENA_KEY, None)
    rep = outcome.get_result()
    if a is None or a.closed or not rep.failed:
        return
    item.stash[_CHECKED_KEY] = True
    _leave_numpy(item)
    try:
        text = _format(list(_findings(a, leaks=_leak_mode(item) != "off")))
    except Exception as exc:   # a broken invariant: say so, keep the test's own failure
        text = f"arena: the check after the failed test raised {exc!r}"
    if text:
        rep.sections.append(("Captured arena call", text))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a test marked ``@pytest.mark.arena(guard=...)`` in a forked child process
    (:mod:`arena._pytest_fork`); other tests run as usual."""
    if not isinstance(item, pytest.Function) or "arena" not in item.fixturenames:
        return None
    try:
        if not marker_options(item)[1]["guard"]:
            return None
    except pytest.UsageError:
        return None   # the fixture reports it
    from arena._pytest_fork import run_forked
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for rep in run_forked(item):
        item.ihook.pytest_runtest_logreport(report=rep)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
