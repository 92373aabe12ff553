"""The pytest plugin (``arena.pytest_plugin``): the ``arena`` fixture and marker fail a test on
leaks, overruns and writes after free, with the report in the failure message."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import arena.pytest_plugin  # noqa: F401  (imported once: pytester's in-process runs reuse it)

pytest_plugins = ["pytester"]


def _plugin_args() -> list[str]:
    """``-p arena.pytest_plugin`` unless the ``pytest11`` entry point already loads it."""
    installed = any(ep.value == "arena.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "arena.pytest_plugin"]


QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")

CASES = '''
import numpy as np
import pytest


def test_clean(arena):
    v = arena.alloc(100)
    v[:] = 1
    arena.free(v)
    with arena.scope():
        arena.alloc_array((4, 4), np.float32)


def make_buffer(arena):
    return arena.alloc(100)


def test_overrun(arena):
    v = make_buffer(arena)
    arena.physmem.view(arena.info(v).phys, 101)[100] = 1   # one byte past the end
    arena.free(v)


def test_overrun_not_freed(arena):
    v = make_buffer(arena)
    arena.physmem.view(arena.info(v).phys, 101)[100] = 1
    assert v.sum() == 0


def test_write_after_free(arena):
    v = arena.alloc(64)
    arena.free(v)
    v[7] = 3


KEPT = []


def test_leak(arena):
    KEPT.append(make_buffer(arena))       # still referenced after the test: a leak


def test_dropped_is_no_leak(arena):
    make_buffer(arena)                     # garbage-collected lifetime: reclaimed


@pytest.mark.arena(lifetime="manual")
def test_leak_manual(arena):
    make_buffer(arena)                     # manual lifetime: never freed is a leak


@pytest.mark.arena(check_leaks=False)
def test_leak_allowed(arena):
    KEPT.append(make_buffer(arena))


@pytest.mark.arena(size=1 << 20, debug=False, nodes=2, budget=4096)
def test_marker_configures(arena):
    assert arena.capacity == 1 << 20 and not arena.debug
    assert arena.nodes == (0, 1) and arena.budget == 4096


def test_own_failure(arena):
    v = arena.alloc(10)
    assert v[0] == 1, "the test's own assertion"
'''


def test_plugin_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest(*_plugin_args(), *QUIET, "-rf")
    result.assert_outcomes(passed=4, failed=6)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "FAILED test_cases.py::test_overrun - arena.errors.CorruptionError: arena: 1 m*",
        "FAILED test_cases.py::test_overrun_not_freed - Failed: arena: memory errors*",
        "FAILED test_cases.py::test_leak - Failed: arena: memory errors*",
        "FAILED test_cases.py::test_leak_manual - Failed: arena: memory errors*",
    ])
    # Overruns name the bytes past the end and where the allocation was made.
    assert out.count("1 byte(s) past its end were written") >= 2
    assert "in make_buffer" in out and "test_cases.py:" in out
    assert "write after free to the 64-byte allocation" in out and "freed at:" in out
    # Twice per leaking test when pytest, seeing CI set, does not shorten its summary; once
    # more for test_overrun, whose refused free() leaves its allocation live (reported in
    # the extra section of a test that failed by itself).
    assert out.count("leak: 1 allocation(s) still live (100 bytes)") in (3, 5)
    # A test failing by itself reports its own assertion, not ours.
    assert "the test's own assertion" in out
    for name in ("test_clean", "test_dropped_is_no_leak", "test_leak_allowed",
                 "test_marker_configures"):
        assert f"FAILED test_cases.py::{name}" not in out


def test_plugin_marker_registered_and_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marker='''
        import pytest

        @pytest.mark.arena(1 << 20)
        def test_positional(arena):
            pass
    ''')
    result = pytester.runpytest(*_plugin_args(), *QUIET, "--strict-markers")
    assert "arena(size=..." in pytester.runpytest(*_plugin_args(), "--markers").stdout.str()
    result.assert_outcomes(errors=1)
    assert "keyword arguments only" in result.stdout.str()


# -- the oldest supported pytest / pluggy pair ------------------------------------------------

OLDEST = ("pytest==7.4.*", "pluggy==1.0.*")    # pyproject.toml's minimums (test extra)

OLD_CASES = '''
import pluggy
import pytest


def test_versions():
    assert pytest.__version__.startswith("7.4."), pytest.__version__
    assert pluggy.__version__.startswith("1.0."), pluggy.__version__


def test_clean(arena):
    arena.free(arena.alloc(100))


KEPT = []


def test_leak(arena):
    KEPT.append(arena.alloc(100))    # referenced after the test: a leak in either lifetime


def test_without_the_fixture():
    pass
'''


def test_plugin_on_the_oldest_supported_pytest_and_pluggy(tmp_path) -> None:
    """pytest 7.4 with pluggy 1.0 (a pair pytest 7.4 allows): loading the plugin must not break
    the run, and it still fails a leaking test. The two packages are installed from PyPI into
    a private directory put first on ``sys.path`` of a child interpreter (numpy and the rest
    come from this environment); without PyPI the test is skipped."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", "--retries", "1", "--timeout", "20", "--target", str(target), *OLDEST],
        capture_output=True, text=True, timeout=600)
    if pip.returncode:
        pytest.skip(f"pip could not install {' and '.join(OLDEST)} (PyPI unreachable?): "
                    + (pip.stderr.strip().splitlines() or ["no message"])[-1])
    (tmp_path / "test_old.py").write_text(OLD_CASES)
    repo = Path(arena.pytest_plugin.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(target), str(repo))),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "arena.pytest_plugin", *QUIET,
         "-o", "addopts=", "test_old.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert "unexpected keyword argument" not in out, out
    assert "3 passed" in out and "1 failed" in out, out
    assert "FAILED test_old.py::test_leak" in out, out
    assert "leak: 1 allocation(s) still live (100 bytes)" in out, out
