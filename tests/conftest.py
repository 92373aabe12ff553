"""Shared pytest configuration: Hypothesis profiles and the opt-in slow marker.

``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run`` and tox) keeps property tests short;
``HYPOTHESIS_PROFILE=long`` runs them for real (hours; how long is in ``tests/README.md``), and
then every test is reported by name as it finishes, with its duration, so a long run shows
its progress. Kernel-harness fixtures live in ``tests/harness.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI runs the same examples every time (a red CI must mean a change broke something); the dev
# and long profiles explore new ones, and print the blob that reproduces a failure.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True, print_blob=True,
)
settings.register_profile("dev", max_examples=150, deadline=None, print_blob=True)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.load_profile(PROFILE)


def pytest_configure(config: pytest.Config) -> None:
    """Under the long profile, report each test by name as it ends (pytest's ``-v``), and
    (on a terminal, unless ``--no-progress``) show how far the run is while a test runs."""
    if PROFILE == "long" and config.option.verbose < 1:
        config.option.verbose = 1
    if PROFILE == "long" and not config.getoption("--no-progress"):
        from tests.long_progress import LongProgress

        config.pluginmanager.register(LongProgress(config), "arena-long-progress")


def pytest_report_teststatus(report: pytest.TestReport,
                             config: pytest.Config) -> tuple[str, str, str] | None:
    """Under the long profile, each test's line ends with how long it took."""
    if PROFILE != "long" or report.when != "call":
        return None
    word = report.outcome.upper()
    letter = {"passed": ".", "failed": "F", "skipped": "s"}.get(report.outcome, "?")
    return report.outcome, letter, f"{word} ({report.duration:.0f} s)"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow (soaks)")
    parser.addoption("--no-progress", action="store_true",
                     help="long Hypothesis profile: no progress note on the terminal")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow soak: opt in with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# -- the kernel harness on real memory (see tests/harness.py) -----------------------------------

@pytest.fixture(scope="session")
def harness_physmem():
    from arena.physmem import PhysicalMemory
    from tests.harness import PHYS_BASE, PHYS_MEM_SIZE

    pm = PhysicalMemory(PHYS_MEM_SIZE, phys_base=PHYS_BASE)
    yield pm
    import gc

    gc.collect()
    pm.close()


@pytest.fixture
def h(harness_physmem):
    """A fresh memblock over the shared physical memory, with the kernel harness's parameters."""
    from arena.memblock import Memblock
    from tests.harness import MAX_NUMNODES, SMP_CACHE_BYTES, Harness

    mb = Memblock(harness_physmem, smp_cache_bytes=SMP_CACHE_BYTES, max_numnodes=MAX_NUMNODES)
    harness = Harness(harness_physmem, mb)
    harness.fill()
    return harness


@pytest.fixture(params=["top_down", "bottom_up"])
def direction(request, h):
    """Runs the test once top-down and once bottom-up (``run_top_down`` / ``run_bottom_up``)."""
    h.mb.set_bottom_up(request.param == "bottom_up")
    return request.param


@pytest.fixture(params=["zeroed", "raw", "exact"])
def variant(request):
    """The allocation variant: zeroed (try_nid), raw (try_nid_raw), exact (exact_nid_raw)."""
    return request.param
