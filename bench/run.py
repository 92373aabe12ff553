"""The benchmark harness: ``python -m bench`` (or ``python bench/run.py``) runs every family in
one process, writes ``bench/RESULTS.md`` (machine, versions, every table, each target against
its goal) and ``bench/scaling.svg`` (the scaling curves), and prints the target summary.

Options: ``--quick`` (a short run, a few minutes),
``--only arena,small,large,memblock,replay,numpy,monitor``, ``--out DIR`` (where to write;
default ``bench/``), ``--no-write``, ``--quiet`` (no progress line; it is drawn on stderr only
when that is a terminal).
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
    "monitor": bench_monitor,
}

PLOT_NAME = "scaling.svg"


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
    out += ["", "## Reproduce", "",
            "```", "pip install -e '.[bench,test]'   # pyarrow is optional: its rows are "
            "skipped without it", "python -m bench            # full run, a few minutes",
            "python -m bench --quick    # under a minute", "```", ""]
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
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run (under a minute)")
    p.add_argument("--only", default="", help="comma-separated families: " + ",".join(FAMILIES))
    p.add_argument("--out", type=Path, default=BENCH_DIR, help="directory for RESULTS.md and "
                   f"{PLOT_NAME} (default: bench/)")
    p.add_argument("--no-write", action="store_true", help="print the summary only")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line (drawn on stderr only when it is a terminal)")
    args = p.parse_args(argv)
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
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        plot = PLOT_NAME if _plot(results, args.out / PLOT_NAME) else None
        (args.out / "RESULTS.md").write_text(render_markdown(results, info, cfg, seconds, plot),
                                             encoding="utf-8")
        if not args.quiet:
            progress(f"wrote {args.out / 'RESULTS.md'}"
                     + (f" and {args.out / plot}" if plot else ""))
    print(f"benchmarks ({'quick' if cfg.quick else 'full'} run, {seconds:.0f} s):")
    for res in results:
        for t in res.targets:
            print(f"  [{t.status}] {t.name}: {t.measured} (goal {t.goal})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
