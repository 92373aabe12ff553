"""Family 4: operations per second of boot-log replay and of the kernel test plan.

* **Boot-log replay**: the three real ``memblock=debug`` logs of ``tests/data/`` are parsed
  (:func:`arena.trace.parse`) and replayed (:func:`arena.trace.replay`, settings inferred as
  ``python -m arena replay LOG`` does; when the direction must be inferred the log is replayed
  once per direction). Operations per second = operations in the trace / median time.
* **Kernel test plan**: our ports of the kernel's memblock test plan
  (``tests/test_basic_api.py`` .. ``tests/test_alloc_exact_nid_api.py``) are run once under
  pytest with a recorder that logs every outermost public ``Memblock`` call (arguments, result),
  then the recorded calls are replayed on fresh ``Memblock`` instances, without pytest, and
  timed; every replayed result must equal the recorded one. Needs pytest (a test dependency);
  skipped with a note without it. ``--quick`` records ``basic_api`` only.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from arena.memblock import Memblock, MemblockType
from arena.physmem import PhysicalMemory
from arena.trace import parse, replay
from bench.common import (
    REPO_DIR,
    Config,
    FamilyResult,
    Stat,
    Table,
    family_main,
    fmt_time,
    measure,
    measure_each,
    progress,
)

__all__ = ["run", "record_test_plan", "replay_recorded"]

LOGS = ("x86_64-qemu-numa-6.6.41.log", "mips32-bmips5200-5.11.log", "arm32-hisi-ca9-5.10.log")
PLAN = ("test_basic_api.py", "test_alloc_api.py", "test_alloc_helpers_api.py",
        "test_alloc_nid_api.py", "test_alloc_exact_nid_api.py")
QUICK_PLAN = PLAN[:1]


# -- recording the kernel test plan ---------------------------------------------------------------

@dataclass(frozen=True)
class _View:
    """A numpy view argument or result, kept as its physical range."""

    phys: int
    nbytes: int


@dataclass(frozen=True)
class _Type:
    """A ``MemblockType`` argument, kept by name."""

    name: str


_ITER = "<iterator>"


@dataclass
class RecordedMemblock:
    """One ``Memblock`` a test built: its constructor arguments, its physical memory (size and
    base, or ``None``) and its outermost public calls ``(name, args, kwargs, outcome)``, where
    outcome is ``("ok", result)`` or ``("raise", exception class)``."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    physmem: tuple[int, int] | None
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any], tuple[str, Any]]] = field(
        default_factory=list)
    replayable: bool = True


def _public_methods() -> list[str]:
    """The public methods of ``Memblock``, those of its parts (mixins) included."""
    names: dict[str, None] = {}
    for cls in Memblock.__mro__:
        for name, fn in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(fn):
                names.setdefault(name)
    return list(names)


_INHERITED = object()   # marks a method the class takes from one of its parts


class _Recorder:
    """Patches ``Memblock`` so that every outermost public call of a recorded instance is
    logged; a context manager (the patch is undone on exit)."""

    def __init__(self) -> None:
        self.records: list[RecordedMemblock] = []
        self._by_id: dict[int, tuple[Memblock, RecordedMemblock]] = {}
        self._depth = 0
        self._saved: dict[str, Any] = {}

    def _conv(self, mb: Memblock, rec: RecordedMemblock, v: Any) -> Any:
        if isinstance(v, np.ndarray):
            try:   # not mb.virt_to_phys: that is a recorded method
                return _View(int(mb.phys_memory.phys_of(v)), v.nbytes)
            except (AttributeError, ValueError):
                rec.replayable = False
                return None
        if isinstance(v, MemblockType):
            return _Type(v.name)
        if isinstance(v, Iterator):
            return _ITER
        if v is None or isinstance(v, (bool, int, str, float, tuple)):
            return v
        rec.replayable = False
        return None

    def __enter__(self) -> _Recorder:
        recorder = self
        init = Memblock.__init__
        self._saved["__init__"] = init

        def __init__(mb: Memblock, physmem: Any = None, *args: Any, **kwargs: Any) -> None:
            init(mb, physmem, *args, **kwargs)
            pm = None if physmem is None else (physmem.size, physmem.phys_base)
            rec = RecordedMemblock(args, dict(kwargs), pm)
            recorder.records.append(rec)
            recorder._by_id[id(mb)] = (mb, rec)

        Memblock.__init__ = __init__  # type: ignore[method-assign,assignment]
        for name in _public_methods():
            fn = getattr(Memblock, name)
            self._saved[name] = vars(Memblock).get(name, _INHERITED)
            setattr(Memblock, name, self._wrap(name, fn))
        return self

    def _wrap(self, name: str, fn: Any) -> Any:
        recorder = self

        def wrapper(mb: Memblock, *args: Any, **kwargs: Any) -> Any:
            entry = recorder._by_id.get(id(mb))
            if entry is None or entry[0] is not mb or recorder._depth:
                return fn(mb, *args, **kwargs)
            rec = entry[1]
            cargs = tuple(recorder._conv(mb, rec, a) for a in args)
            ckw = {k: recorder._conv(mb, rec, v) for k, v in kwargs.items()}
            recorder._depth += 1
            try:
                result = fn(mb, *args, **kwargs)
            except Exception as e:
                rec.calls.append((name, cargs, ckw, ("raise", type(e))))
                raise
            finally:
                recorder._depth -= 1
            rec.calls.append((name, cargs, ckw, ("ok", recorder._conv(mb, rec, result))))
            return result

        wrapper.__name__ = name
        return wrapper

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            if fn is _INHERITED:        # a method of one of the class's parts
                delattr(Memblock, name)
            else:
                setattr(Memblock, name, fn)
        self._by_id.clear()


def record_test_plan(files: tuple[str, ...]) -> tuple[list[RecordedMemblock], int, float]:
    """Run the test files under pytest with the recorder: ``(records, pytest exit code,
    seconds)``. Raises ImportError without pytest."""
    import pytest

    paths = [str(REPO_DIR / "tests" / f) for f in files]
    t0 = time.perf_counter()
    with _Recorder() as rec, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        code = pytest.main([*paths, "-qq", "--no-header", "-p", "no:cacheprovider",
                            f"--rootdir={REPO_DIR}"])
    return [r for r in rec.records if r.calls], int(code), time.perf_counter() - t0


# -- replaying it ----------------------------------------------------------------------------------

def _unconv(v: Any, mb: Memblock, pm: PhysicalMemory | None) -> Any:
    if isinstance(v, _View):
        assert pm is not None
        return pm.view(v.phys, v.nbytes) if v.nbytes else pm.view(v.phys, 1)[:0]
    if isinstance(v, _Type):
        return getattr(mb, v.name)
    return v


def _result(v: Any, mb: Memblock) -> Any:
    if isinstance(v, np.ndarray):
        return _View(mb.virt_to_phys(v), v.nbytes)
    if isinstance(v, Iterator):
        list(v)   # the tests consume what the iterators yield; so does the replay
        return _ITER
    if isinstance(v, MemblockType):
        return _Type(v.name)
    return v


def replay_recorded(records: list[RecordedMemblock],
                    memories: dict[tuple[int, int], PhysicalMemory]) -> tuple[int, int]:
    """Replay every recorded instance on a fresh ``Memblock``: ``(calls, mismatches)``."""
    calls = mismatches = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rec in records:
            pm = memories[rec.physmem] if rec.physmem else None
            mb = Memblock(pm, *rec.args, **rec.kwargs)
            for name, args, kwargs, outcome in rec.calls:
                a = [_unconv(x, mb, pm) for x in args]
                kw = {k: _unconv(x, mb, pm) for k, x in kwargs.items()}
                calls += 1
                try:
                    got = ("ok", _result(getattr(mb, name)(*a, **kw), mb))
                except Exception as e:  # the recorded outcome says which (tests of errors)
                    got = ("raise", type(e))
                if got != outcome:
                    mismatches += 1
    return calls, mismatches


def _test_plan(cfg: Config, res: FamilyResult) -> Table | None:
    files = QUICK_PLAN if cfg.quick else PLAN
    try:
        records, code, rec_s = record_test_plan(files)
    except ImportError as e:
        res.notes.append(f"Kernel test plan skipped: pytest is not importable ({e}).")
        return None
    records = [r for r in records if r.replayable]
    memories = {key: PhysicalMemory(key[0], phys_base=key[1])
                for key in {r.physmem for r in records if r.physmem}}
    for pm in memories.values():   # filled once, as the harness does (it refills per test)
        pm.fill(pm.phys_base, pm.size, 0x01)
    try:
        calls, mismatches = replay_recorded(records, memories)
        stat = measure_each(lambda: replay_recorded(records, memories), cfg,
                            repeat=3 if cfg.quick else 5)
    finally:
        import gc

        gc.collect()
        for pm in memories.values():
            pm.close()
    per_call = Stat(tuple(s / calls for s in stat.samples))
    kinds = Counter(name for r in records for name, *_ in r.calls)
    top = ", ".join(f"{name} {n}" for name, n in kinds.most_common(6))
    tbl = Table("Kernel test plan, recorded under pytest and replayed without it",
                ["files", "Memblock instances", "calls", "median time", "IQR",
                 "calls per second", "results as recorded"])
    tbl.rows.append([", ".join(f"`{f}`" for f in files), f"{len(records):,}", f"{calls:,}",
                     fmt_time(stat.median), stat.spread(), f"{1 / per_call.median:,.0f}",
                     "all" if not mismatches else f"{mismatches} differ"])
    tbl.note = (f"Recording ran pytest once ({rec_s:.1f} s, exit code {code}). Most frequent "
                f"calls: {top}. The harness's refill of its 16 MiB with 0x01 before every test is "
                "not memblock work and is left out (the memory is filled once).")
    if cfg.quick:
        tbl.note += " Quick run: only the first file."
    return tbl


def run(cfg: Config) -> FamilyResult:
    """Family 4: boot-log replay and kernel test plan, operations per second."""
    t_start = time.perf_counter()
    res = FamilyResult(
        "replay", "4. Boot-log replay and the kernel test plan: operations per second",
        "Boot logs: `arena.trace.parse` and `arena.trace.replay` (pure simulation, settings "
        "inferred as `python -m arena replay LOG` does; when the direction is not given the "
        "log is replayed once per direction, so a replay runs the operations twice). "
        "Operations = the trace's add/reserve/free/alloc/dump operations.")
    tbl = Table("Boot-log replay", ["log", "operations", "parse (median)", "replay (median)",
                                    "IQR", "operations per second (replay)",
                                    "allocations reproduced"])
    for name in LOGS:
        progress(f"  replay: {name}")
        text = (REPO_DIR / "tests" / "data" / name).read_text(encoding="utf-8", errors="replace")
        p = measure(partial(parse, text), cfg)
        trace = parse(text)
        report = replay(trace)
        r = measure(partial(replay, trace), cfg)
        tbl.rows.append([f"`{name}`", str(len(trace)), fmt_time(p.median), fmt_time(r.median),
                         r.spread(), f"{len(trace) / r.median:,.0f}",
                         f"{report.allocations_reproduced}/{len(report.allocations)}"])
    res.tables.append(tbl)
    progress("  replay: kernel test plan (recording under pytest)")
    plan = _test_plan(cfg, res)
    if plan is not None:
        res.tables.append(plan)
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(family_main(run))
