"""Shared pieces of the benchmark harness: timing statistics, run configuration, result records,
the machine description and number formatting.

Timing follows ``timeit``: the garbage collector is off while a sample runs, each sample times
``number`` calls and is divided by ``number``, and a family reports the median and the spread
(interquartile range, min, max) of the samples. Every baseline is timed in the same process and
run as the thing it is compared with, so the *ratios* are what to read: absolute times drift
from run to run on shared machines (``bench/RESULTS.md`` records the load average).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Config",
    "FamilyResult",
    "Series",
    "Stat",
    "Table",
    "Target",
    "fmt_bytes",
    "fmt_time",
    "machine_info",
    "measure",
    "measure_each",
    "measure_many",
    "family_main",
    "fmt_ratio",
    "progress",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


@dataclass(frozen=True)
class Config:
    """One run's settings: ``quick`` shrinks sizes, counts and repeats (< 60 s in all)."""

    quick: bool = False
    seed: int = 20240601

    @property
    def repeat(self) -> int:
        """Samples per measurement of a cheap operation."""
        return 7 if self.quick else 15

    @property
    def sample_seconds(self) -> float:
        """Target duration of one sample of a cheap operation (``number`` is chosen for it)."""
        return 0.004 if self.quick else 0.02

    @property
    def budget(self) -> float:
        """Upper bound in seconds on one measurement of an expensive operation (at least three
        samples are always taken)."""
        return 1.0 if self.quick else 4.0


@dataclass(frozen=True)
class Stat:
    """Seconds per operation of repeated samples; ``median``, quartiles and extremes."""

    samples: tuple[float, ...]
    number: int = 1

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.samples)

    @property
    def median(self) -> float:
        """Median seconds per operation."""
        return statistics.median(self.samples)

    def _quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def q1(self) -> float:
        """First quartile (seconds per operation)."""
        return self._quartiles()[0]

    @property
    def q3(self) -> float:
        """Third quartile (seconds per operation)."""
        return self._quartiles()[1]

    @property
    def min(self) -> float:
        """Fastest sample (seconds per operation)."""
        return min(self.samples)

    @property
    def max(self) -> float:
        """Slowest sample (seconds per operation)."""
        return max(self.samples)

    def spread(self) -> str:
        """``q1–q3`` as text (the interquartile range)."""
        return f"{fmt_time(self.q1)}–{fmt_time(self.q3)}"

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON output."""
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.min,
                "max": self.max, "n": self.n, "number": self.number}


def measure(fn: Callable[[], Any], cfg: Config, *, repeat: int | None = None,
            sample_seconds: float | None = None, budget: float | None = None) -> Stat:
    """Time ``fn()`` with ``timeit``: ``number`` calls per sample chosen so that a sample takes
    about ``sample_seconds``; ``repeat`` samples, fewer (at least 3) if they would take longer
    than ``budget`` seconds. Returns seconds per call. One untimed warm-up call comes first."""
    repeat = repeat or cfg.repeat
    sample_seconds = sample_seconds or cfg.sample_seconds
    budget = budget or cfg.budget
    timer = timeit.Timer(fn)
    fn()   # warm-up
    number, per_sample = _calibrate(timer, sample_seconds)
    repeat = max(3, min(repeat, int(budget / max(per_sample, 1e-9))))
    samples = [s / number for s in timer.repeat(repeat, number)]
    return Stat(tuple(samples), number)


def _calibrate(timer: timeit.Timer, sample_seconds: float) -> tuple[int, float]:
    """``(number, seconds per sample)`` so that a sample takes about ``sample_seconds``."""
    number = 1
    while True:   # as timeit.autorange does
        t = timer.timeit(number)
        if t >= 0.2 * sample_seconds:
            break
        number *= 10 if t < 0.02 * sample_seconds else 2
    scaled = max(1, int(number * sample_seconds / t))
    return scaled, t * scaled / number


def measure_many(fns: dict[str, Callable[[], Any]], cfg: Config, *,
                 repeat: int | None = None) -> dict[str, Stat]:
    """Time several operations that will be compared, **interleaved**: after one warm-up and
    calibration each, every round takes one sample of each operation in turn, so a change of
    machine load during the measurement weighs on all of them alike (the ratios stay fair on
    a shared machine). ``repeat`` rounds, fewer (at least 3) past ``cfg.budget`` seconds per
    operation. Returns seconds per call for each name."""
    repeat = repeat or cfg.repeat
    timers = {}
    worst = 0.0
    for name, fn in fns.items():
        fn()   # warm-up
        timer = timeit.Timer(fn)
        number, per_sample = _calibrate(timer, cfg.sample_seconds)
        timers[name] = (timer, number)
        worst = max(worst, per_sample)
    rounds = max(3, min(repeat, int(cfg.budget / max(worst, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (timer, number) in timers.items():
            samples[name].append(timer.timeit(number) / number)
    return {name: Stat(tuple(samples[name]), timers[name][1]) for name in fns}


def measure_each(fn: Callable[[], Any], cfg: Config, *, setup: Callable[[], Any] | None = None,
                 repeat: int | None = None, budget: float | None = None) -> Stat:
    """Time single calls of ``fn()``, each after an untimed ``setup()`` (for operations whose
    state must be renewed between calls, such as "memory never touched"). GC off while timing;
    ``repeat`` samples, fewer (at least 3) past ``budget`` seconds."""
    repeat = repeat or cfg.repeat
    budget = budget or cfg.budget
    samples: list[float] = []
    start = time.perf_counter()
    gc_was = gc.isenabled()
    try:
        while len(samples) < repeat:
            if setup is not None:
                setup()
            gc.disable()
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            if gc_was:
                gc.enable()
            samples.append(t1 - t0)
            if len(samples) >= 3 and time.perf_counter() - start > budget:
                break
    finally:
        if gc_was:
            gc.enable()
    return Stat(tuple(samples), 1)


@dataclass
class Target:
    """One target of the issue: the measured ratio against the goal, and what limits it."""

    name: str
    measured: str
    goal: str
    met: bool | None          # None: not measured in this run (say why in ``limits``)
    limits: str = ""

    @property
    def status(self) -> str:
        """``MET``, ``NOT MET`` or ``not measured``."""
        return {True: "MET", False: "NOT MET", None: "not measured"}[self.met]


@dataclass
class Table:
    """A Markdown table: ``header`` and ``rows`` of already formatted cells."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        """The table as GitHub Markdown (right-aligned numbers are the caller's text)."""
        out = []
        if self.title:
            out.append(f"**{self.title}**\n")
        out.append("| " + " | ".join(self.header) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.header)))
                   + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.note:
            out.append("\n" + self.note)
        return "\n".join(out)


@dataclass
class Series:
    """One curve of the scaling plot: ``(x, Stat)`` points in ascending x."""

    label: str
    points: list[tuple[float, Stat]]
    dashed: bool = False
    color: int | None = None   # palette index; None = the series' position


@dataclass
class FamilyResult:
    """What a family script returns: its tables, targets, plot curves and notes."""

    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    series: dict[str, list[Series]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- formatting ------------------------------------------------------------------------------------

def fmt_time(seconds: float) -> str:
    """``1.23 µs``-style text with three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    raise AssertionError


def fmt_bytes(n: float) -> str:
    """``4 KiB``-style text: :func:`arena.sizes.human_size`, the one size format."""
    from arena.sizes import human_size

    return human_size(n)


def fmt_ratio(x: float) -> str:
    """``3.2x``-style text."""
    return f"{x:.3g}x" if x < 1000 else f"{x:.0f}x"


# -- the machine -----------------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(mod, "__version__", "?"))


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python and library versions, commit and date (UTC)."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem = next((int(line.split()[1]) * 1024 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal:")), 0)
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": fmt_bytes(mem) if mem else "unknown",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": _version("numpy"),
        "pyarrow": _version("pyarrow"),
        "psutil": _version("psutil"),
        "commit": _git_commit(),
        "load": _load(),
    }


def _load() -> str:
    """The 1-minute load average: how busy the machine was besides this run."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


# -- standalone family scripts -----------------------------------------------------------------

def family_main(run: Callable[[Config], FamilyResult], argv: list[str] | None = None) -> int:
    """``python -m bench.<family> [--quick]``: run one family and print its tables."""
    p = argparse.ArgumentParser(description=(run.__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run")
    args = p.parse_args(argv)
    res = run(Config(quick=args.quick))
    print(f"## {res.title}\n")
    for table in res.tables:
        print(table.markdown() + "\n")
    for target in res.targets:
        print(f"* {target.name}: {target.measured} (goal {target.goal}) — {target.status}")
    for n in res.notes:
        print(f"* {n}")
    return 0


#: The status line of ``python -m bench`` (:func:`use_reporter`); ``None``: plain lines.
_REPORTER: Any = None


def use_reporter(reporter: Any) -> None:
    """Send :func:`progress` to ``reporter`` (an :class:`arena.progress.Progress`, which draws
    on a terminal only) instead of printing lines; ``None`` prints lines again."""
    global _REPORTER
    _REPORTER = reporter


def progress(text: str) -> None:
    """One progress line on stderr (the report goes to files), or the note of the reporter
    :func:`use_reporter` set."""
    if _REPORTER is not None:
        _REPORTER.status(text.strip())
        return
    print(text, file=sys.stderr, flush=True)
