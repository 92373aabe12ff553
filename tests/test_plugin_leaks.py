"""The pytest plugin's leak reports: shown also when a test fails by itself (as a report
section), and ``--arena-leaks=error|warn|off``."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import arena.pytest_plugin  # noqa: F401  (imported once: pytester's in-process runs reuse it)
from arena.pytest_plugin import MARKER_OPTIONS

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


def _plugin_args() -> list[str]:
    installed = any(ep.value == "arena.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "arena.pytest_plugin"]


CASES = '''
import numpy as np
import pytest

KEPT = []


def make_buffer(arena):
    return arena.alloc(100)


def test_fails_and_leaks(arena):
    KEPT.append(make_buffer(arena))
    assert False, "its own assertion"


def test_fails_and_overruns(arena):
    v = make_buffer(arena)
    np.lib.stride_tricks.as_strided(v, (108,))[100:] = 1
    assert False, "its own assertion too"


def test_fails_clean(arena):
    arena.free(make_buffer(arena))
    assert False, "nothing else to say"


def test_leaks(arena):
    KEPT.append(make_buffer(arena))


def test_overruns(arena):
    v = make_buffer(arena)
    np.lib.stride_tricks.as_strided(v, (104,))[100:] = 1


def test_clean(arena):
    arena.free(make_buffer(arena))
'''


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_leaky=CASES)
    return pytester.runpytest(*_plugin_args(), *QUIET, "-rA", *args)


def _section(out: str, name: str) -> str:
    return out.split(f"_ {name} _", 1)[1].split("\n___", 1)[0].split("\n===", 1)[0]


def test_failed_test_still_reports_its_leaks(pytester: pytest.Pytester) -> None:
    result = _run(pytester)
    out = result.stdout.str()
    result.assert_outcomes(passed=1, failed=5)
    leaky = _section(out, "test_fails_and_leaks")
    assert "its own assertion" in leaky
    assert "Captured arena call" in leaky
    assert "leak: 1 allocation(s) still live (100 bytes)" in leaky and "in make_buffer" in leaky
    overrun = _section(out, "test_fails_and_overruns")
    assert "its own assertion too" in overrun and "Captured arena call" in overrun
    assert "8 byte(s) past its end were written" in overrun
    assert "Captured arena call" not in _section(out, "test_fails_clean")


def test_leaks_warn(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--arena-leaks=warn")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=4, warnings=1)   # the overrun still fails
    assert "PASSED test_leaky.py::test_leaks" in out
    assert "FAILED test_leaky.py::test_overruns" in out
    assert "ArenaLeakWarning: arena: leak: 1 allocation(s) still live (100 bytes)" in out
    # a failing test's section still shows its leak
    assert "leak: 1 allocation(s)" in _section(out, "test_fails_and_leaks")


def test_leaks_off(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--arena-leaks=off")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=4)
    assert "ArenaLeakWarning" not in out and "leak:" not in out
    assert "8 byte(s) past its end" in _section(out, "test_fails_and_overruns")


def test_leaks_option_checked(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--arena-leaks=maybe")
    assert result.ret != 0
    assert "invalid choice: 'maybe'" in result.stderr.str()


def test_marker_options_in_one_table() -> None:
    assert MARKER_OPTIONS == {"check_leaks": True, "guard": False, "numpy": False}


class _Item:
    def __init__(self, **kwargs):
        self.marker = pytest.mark.arena(**kwargs).mark

    def get_closest_marker(self, name):
        return self.marker


def test_marker_guard_through_either_keyword() -> None:
    from arena.pytest_plugin import marker_options
    kwargs, options = marker_options(_Item(guard="start", size=1 << 20))  # type: ignore[arg-type]
    assert kwargs == {"size": 1 << 20, "debug": "guard", "guard": "start"}
    assert options == {"check_leaks": True, "guard": "start", "numpy": False}
    kwargs, options = marker_options(_Item(debug="guard"))  # type: ignore[arg-type]
    assert kwargs["debug"] == "guard" and options["guard"] is True   # forked as well
    kwargs, options = marker_options(_Item(check_leaks=False, redzone=64))  # type: ignore[arg-type]
    assert kwargs == {"size": 64 << 20, "debug": True, "redzone": 64}
    assert options == {"check_leaks": False, "guard": False, "numpy": False}
