"""The benchmark harness's own pieces (``bench/``): statistics, the report and the SVG plot.
The families themselves are run by ``python -m bench``, never by the test suite (tests do not
assert timings)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bench.common import (
    Config,
    FamilyResult,
    Series,
    Stat,
    Table,
    Target,
    fmt_bytes,
    fmt_time,
    measure,
    measure_each,
    measure_many,
)
from bench.plot import Panel, svg
from bench.run import main, render_markdown


def test_stat_median_and_quartiles():
    s = Stat((5.0, 1.0, 3.0, 2.0, 4.0))
    assert (s.median, s.q1, s.q3, s.min, s.max, s.n) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert Stat((7.0,)).q1 == Stat((7.0,)).q3 == 7.0


def test_measure_counts_calls():
    calls = []
    s = measure(lambda: calls.append(1), Config(quick=True), repeat=3)
    assert s.n == 3 and s.number >= 1
    assert len(calls) >= 1 + 3 * s.number       # warm-up + samples (+ calibration)
    seen = []
    s = measure_each(lambda: seen.append("fn"), Config(quick=True), setup=lambda: seen.append("setup"),
                     repeat=4)
    assert s.n == 4 and seen == ["setup", "fn"] * 4


def test_measure_many_interleaves():
    """After warm-up and calibration, rounds take one sample of each operation in turn."""
    calls: list[str] = []
    out = measure_many({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                       Config(quick=True), repeat=4)
    assert set(out) == {"a", "b"} and out["a"].n == out["b"].n == 4
    na, nb = out["a"].number, out["b"].number
    tail = calls[-4 * (na + nb):]
    assert tail == (["a"] * na + ["b"] * nb) * 4


def test_formatting():
    assert fmt_time(1.5e-6) == "1.5 µs" and fmt_time(0.25) == "250 ms" and fmt_time(3e-9) == "3 ns"
    assert fmt_bytes(4096) == "4 KiB" and fmt_bytes(1 << 30) == "1 GiB"


def _fake_result() -> FamilyResult:
    st = Stat((1e-6, 2e-6, 3e-6))
    res = FamilyResult("memblock", "3. fake", "intro text")
    res.tables.append(Table("t", ["a", "b"], [["x", "1 µs"]]))
    res.targets.append(Target("goal one", "2x", "≤ 3x", True))
    res.targets.append(Target("goal two", "9x", "≤ 3x", False, "the scan is linear"))
    res.series["memblock"] = [Series("s", [(10, st), (100, st)]), Series("r", [(10, st)], True, 0)]
    return res


def test_report_lists_targets_and_limits():
    info = dict.fromkeys(("date", "cpu", "cores", "ram", "os", "python", "numpy", "pyarrow",
                          "psutil", "commit", "load"), "?")
    text = render_markdown([_fake_result()], info, Config(quick=True), 1.0, "scaling.svg")
    assert "| goal one | 2x | ≤ 3x | **MET** |" in text
    assert "| goal two | 9x | ≤ 3x | **NOT MET** |" in text
    assert "the scan is linear" in text and "quick run" in text and "![scaling curves]" in text


def test_svg_is_well_formed():
    doc = svg([Panel("p", "x", _fake_result().series["memblock"])], "caption & more")
    root = ET.fromstring(doc)
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def test_unknown_family_is_refused():
    with pytest.raises(SystemExit):
        main(["--only", "nonsense", "--no-write"])
