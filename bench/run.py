"""The benchmark harness: ``python -m bench`` (or ``python bench/run.py``) runs every family in
one process and prints the target summary. Only when asked does it write the report
``RESULTS.md`` (machine, versions, every table, each target against its goal) and the plot
``scaling.svg`` (the scaling curves): with ``--write`` into ``bench/`` (replacing the committed
results), with ``--out DIR`` into ``DIR``.

Options: ``--quick`` (a short run, a few minutes),
``--only arena,small,large,memblock,replay,numpy,shared,monitor``, ``--write``, ``--out DIR``,
``--quiet`` (no progress line; it is drawn on stderr only when that is a terminal).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena.progress import Progress  # noqa: E402
from bench import (  # noqa: E402
    bench_arena,
    bench_large,
    bench_memblock,
    bench_monitor,
    bench_numpy_hook,
    bench_replay,
    bench_shared,
    bench_small,
)
from bench.common import (  # noqa: E402
    BENCH_DIR,
    Config,
    FamilyResult,
    fmt_bytes,
    machine_info,
    progress,
    use_reporter,
)
from bench.plot import Panel, write_svg  # noqa: E402

__all__ = ["FAMILIES", "main", "render_markdown"]

#: key -> module with ``run(cfg) -> FamilyResult``, in report order.
FAMILIES = {
    "arena": bench_arena,
    "small": bench_small,
    "large": bench_large,
    "memblock": bench_memblock,
    "replay": bench_replay,
    "numpy": bench_numpy_hook,
    "shared": bench_shared,
    "monitor": bench_monitor,
}

PLOT_NAME = "scaling.svg"

#: The measurements code comments refer to (kept with every rewrite of RESULTS.md).
CODE_MEASUREMENTS = """## Measurements behind choices in the code

The code keeps the reasons for its fast paths and sizes in comments; the numbers are here.
Measured on the machine above with `timeit` (best of 5 repeats, the call through a lambda
included) unless the row says otherwise.

| where | choice | measurement |
|---|---|---|
| `arena/_args.py` `int_arg` | test `type(value) is int` before anything else | 134 ns against 426 ns for the `isinstance` chain with `operator.index` (3.2x) |
| `arena/physmem.py` `PhysicalMemory.phys_of` | the address of a contiguous array through `ctypes.c_char.from_buffer` | 1.0 µs against 4.1 µs for `__array_interface__` (when written: 0.9 against 2.7 µs) |
| `arena/memblock_store.py` region storage | chunks of at most 64 regions instead of one flat column | one flat `'Q'` column of 100 000 regions: 87 µs per insert + delete at the front, about ten times an allocation at 100 regions; a chunk scan in Python costs about 300 ns a region, the numpy search of the per-chunk bounds about 5 µs for 3 000 chunks, so 64-region chunks keep a chunk scan at 10–20 µs with 3 100 chunks at 100 000 regions |
| `arena/memblock_index.py` chunk search | numpy above 64 chunks, a Python loop below | numpy `max()` then `flatnonzero()`: about 4 µs for 64 to 3 000 chunks, 7 µs for 30 000; the loop about 70 ns a chunk |
| `arena/arena.py` small-allocation fast path | `_take()` written out in `alloc` | the extra call was about 5% of the path |
| `arena/arena_release.py` collection loop | `_reclaim_unit()` + `_give()` written out for slots | half the cost per unit given back |
| `arena/slab.py` slab size | at least 8 slots a slab | the page source costs tens of µs per block, a slot pop well under one |

(The last five rows were measured when the code was written, with the benchmark harness's
families 0, 1 and 3.)
"""


def render_markdown(results: list[FamilyResult], info: dict[str, str], cfg: Config,
                    seconds: float, plot: str | None) -> str:
    """The text of ``RESULTS.md``."""
    kind = "quick run (`--quick`: fewer sizes and samples)" if cfg.quick else "full run"
    out = ["# Benchmark results", "",
           f"Written by `python -m bench` ({kind}) on {info['date']}, in {seconds:.0f} s. "
           "Every baseline ran in the same process and run as what it is compared with; read "
           "the ratios, as absolute times drift between runs on shared machines. Times are "
           "medians of repeated samples (`timeit`, GC off), spread as the interquartile range "
           "(q1–q3).", "",
           "## Machine", "",
           "| CPU | cores | RAM | OS | Python | numpy | pyarrow | psutil | commit | load |",
           "|---|---:|---:|---|---|---|---|---|---|---|",
           f"| {info['cpu']} | {info['cores']} | {info['ram']} | {info['os']} | "
           f"{info['python']} | {info['numpy']} | {info['pyarrow']} | {info['psutil']} | "
           f"`{info['commit']}` | {info['load']} → {info.get('load_end', '?')} |", "",
           "(load: the 1-minute load average at the start and at the end of the run; above "
           "about 1 on this machine, other processes shared its cores and the spreads widen.)",
           "",
           "## Targets", "",
           "| target | measured | goal | status |", "|---|---|---|---|"]
    limits = []
    for res in results:
        for t in res.targets:
            out.append(f"| {t.name} | {t.measured} | {t.goal} | **{t.status}** |")
            if t.limits:
                limits.append(f"* **{t.name}** ({t.status}): {t.limits}")
    if limits:
        out += ["", "What limits the targets not reached:", "", *limits]
    if plot:
        out += ["", "## Scaling curves", "", f"![scaling curves]({plot})", "",
                "Left: family 3, time per operation against the number of reserved regions "
                "(solid `Memblock`, dashed the linear reference; one colour per operation). "
                "Middle: family 2, time per zeroed allocation + free against its size (dashed: "
                "the baselines). Right: family 0, the steady state (each size served before) "
                "of a zeroed allocation and its release in both lifetimes against `np.zeros` and a "
                "memset, 64 B to 64 MiB (`np.zeros` of a large size maps fresh pages that are "
                "zeroed only when touched). Log-log axes; bars are the interquartile range."]
    for res in results:
        out += ["", f"## {res.title}", "", res.intro, ""]
        for table in res.tables:
            out += [table.markdown(), ""]
        out += [f"* {n}" for n in res.notes]
        if res.notes:
            out.append("")
        out.append(f"_Family time: {res.seconds:.1f} s._")
    out += ["", CODE_MEASUREMENTS.rstrip(), "", "## Reproduce", "",
            "```", "pip install -e '.[bench,test]'   # pyarrow is optional: its rows are "
            "skipped without it", "python -m bench --write    # full run, a few minutes; rewrites bench/RESULTS.md",
            "python -m bench --quick --out /tmp/bench    # under a minute", "```", ""]
    return "\n".join(out)


def _plot(results: list[FamilyResult], path: Path) -> bool:
    series = {k: v for res in results for k, v in res.series.items()}
    panels = []
    if "memblock" in series:
        panels.append(Panel("memblock: reserved regions (family 3)", "reserved regions",
                            series["memblock"], lambda x: f"{int(x):,}"))
    if "large" in series:
        panels.append(Panel("zeroed allocation + free (family 2)", "size", series["large"],
                            fmt_bytes))
    if "arena" in series:
        panels.append(Panel("steady state, 64 B .. 64 MiB (family 0)", "size",
                            series["arena"], fmt_bytes))
    if not panels:
        return False
    write_svg(str(path), panels, "log-log; points are medians, bars the interquartile range")
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the families, write the report and the plot, print the target summary."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmark families and print each target against its goal. "
                    f"Nothing is written unless asked: --write replaces bench/RESULTS.md and "
                    f"bench/{PLOT_NAME}, --out DIR writes them into DIR instead.")
    p.add_argument("--quick", action="store_true", help="short run (under a minute)")
    p.add_argument("--only", default="", help="comma-separated families: " + ",".join(FAMILIES))
    w = p.add_mutually_exclusive_group()
    w.add_argument("--write", action="store_true",
                   help=f"write RESULTS.md and {PLOT_NAME} into bench/ (the committed results)")
    w.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help=f"write RESULTS.md and {PLOT_NAME} into DIR")
    w.add_argument("--no-write", action="store_true",
                   help="print the summary only (the default)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line (drawn on stderr only when it is a terminal)")
    args = p.parse_args(argv)
    out: Path | None = BENCH_DIR if args.write else args.out
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or list(FAMILIES)
    unknown = [k for k in keys if k not in FAMILIES]
    if unknown:
        p.error(f"unknown family {', '.join(unknown)} (choose from {', '.join(FAMILIES)})")
    cfg = Config(quick=args.quick)
    info = machine_info()
    t0 = time.perf_counter()
    results = []
    with Progress(len(keys), label="bench", quiet=args.quiet) as bar:
        use_reporter(bar)
        try:
            for key in keys:
                progress(f"family {key} ...")
                results.append(FAMILIES[key].run(cfg))
                bar.update()
        finally:
            use_reporter(None)
    seconds = time.perf_counter() - t0
    info["load_end"] = machine_info()["load"]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot = PLOT_NAME if _plot(results, out / PLOT_NAME) else None
        (out / "RESULTS.md").write_text(render_markdown(results, info, cfg, seconds, plot),
                                        encoding="utf-8")
        if not args.quiet:
            progress(f"wrote {out / 'RESULTS.md'}" + (f" and {out / plot}" if plot else ""))
    print(f"benchmarks ({'quick' if cfg.quick else 'full'} run, {seconds:.0f} s):")
    for res in results:
        for t in res.targets:
            print(f"  [{t.status}] {t.name}: {t.measured} (goal {t.goal})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
