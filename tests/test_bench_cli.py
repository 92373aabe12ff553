"""``python -m bench``'s command line: it writes results only when asked, and its help is
whole. The families are replaced by a fake one: the test suite never runs benchmarks."""

from __future__ import annotations

import types

import pytest

import bench.run as run
from bench.common import FamilyResult


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    """bench/ is a temporary directory and the only family returns at once."""
    fake = types.SimpleNamespace(run=lambda cfg: FamilyResult("fake", "Fake", "intro"))
    monkeypatch.setattr(run, "FAMILIES", {"fake": fake})
    monkeypatch.setattr(run, "BENCH_DIR", tmp_path / "bench")
    return tmp_path


def test_quick_run_writes_nothing(fake_bench, capsys):
    assert run.main(["--quick"]) == 0
    assert not (fake_bench / "bench").exists()
    assert "benchmarks (quick run" in capsys.readouterr().out


def test_write_replaces_the_committed_results(fake_bench):
    assert run.main(["--quick", "--write"]) == 0
    assert (fake_bench / "bench" / "RESULTS.md").exists()


def test_out_writes_into_the_given_directory(fake_bench):
    assert run.main(["--quick", "--out", str(fake_bench / "elsewhere")]) == 0
    assert (fake_bench / "elsewhere" / "RESULTS.md").exists()
    assert not (fake_bench / "bench").exists()


def test_help_is_whole_sentences(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1].replace("\n", " ")
    assert description.rstrip().endswith(".")
    assert "--write" in out and "--out DIR" in out
