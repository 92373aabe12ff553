"""Progress of long work: :class:`arena.progress.Progress` draws on a terminal and stays silent
otherwise (or with ``quiet``), and the long commands use it (``soak``, ``replay``, ``bench``)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from arena.progress import Progress

DATA = Path(__file__).parent / "data"


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_draws_on_a_terminal() -> None:
    out = FakeTTY()
    with Progress(10, label="work", file=out, interval=0) as bar:
        bar.update()
        bar.update(2)
        bar.status("halfway")
    text = out.getvalue()
    assert text.startswith("\rwork  1/10 (10%)")
    assert "\rwork  3/10 (30%)" in text and "halfway" in text
    assert text.endswith("\n") and text.count("\n") == 1


def test_silent_when_not_a_terminal_or_quiet() -> None:
    plain = io.StringIO()
    tty = FakeTTY()
    for bar in (Progress(5, file=plain, interval=0), Progress(5, file=tty, quiet=True,
                                                             interval=0)):
        with bar:
            bar.update()
            bar.status("x")
        assert not bar.enabled and bar.drawn == 0
    assert plain.getvalue() == "" and tty.getvalue() == ""


def test_force_draws_on_any_stream() -> None:
    out = io.StringIO()
    with Progress(label="x", file=out, force=True, interval=0) as bar:
        bar.update()
    assert out.getvalue().startswith("\rx  1")


def test_rate_limited() -> None:
    out = FakeTTY()
    bar = Progress(1000, file=out, interval=3600)
    for _ in range(1000):
        bar.update()
    assert bar.drawn == 1          # the first update only
    bar.close()
    assert bar.drawn == 2 and "1,000/1,000 (100%)" in out.getvalue()


def test_a_shorter_line_clears_the_longer_one() -> None:
    out = FakeTTY()
    bar = Progress(file=out, interval=0, clock=False)
    bar.status("a long note")
    bar.status("short")
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("short") and len(last) == len("a long note")


def test_closed_stream_and_no_isatty_are_not_terminals() -> None:
    closed = io.StringIO()
    closed.close()
    assert not Progress(file=closed).enabled
    assert not Progress(file=object()).enabled  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"total": -1}, {"total": 1.5}, {"total": True},
                                    {"interval": -1}, {"interval": "1"}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Progress(**kwargs)


def test_bad_label() -> None:
    with pytest.raises(TypeError):
        Progress(label=3)  # type: ignore[arg-type]


# -- the commands ----------------------------------------------------------------------------


def _soak_args(*argv: str) -> argparse.Namespace:
    from arena.soak import add_soak_arguments

    p = argparse.ArgumentParser()
    add_soak_arguments(p)
    return p.parse_args(list(argv))


def test_soak_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import arena.soak as soak

    times = iter(range(0, 10_000, 2))   # every step looks two seconds later
    monkeypatch.setattr(soak.time, "monotonic", lambda: float(next(times)))
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    out = io.StringIO()
    assert soak.soak_command(_soak_args("--seed", "1", "--episodes", "3", "--ops", "20"),
                             out) == 0
    assert "\rsoak  " in tty.getvalue() and "ops/s" in tty.getvalue()
    assert "\r" not in out.getvalue()
    tty2 = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty2)
    times = iter(range(0, 10_000, 2))
    assert soak.soak_command(_soak_args("--seed", "1", "--episodes", "3", "--ops", "20",
                                        "--quiet"), io.StringIO()) == 0
    assert tty2.getvalue() == ""


def test_replay_counts_its_operations() -> None:
    from arena.bootlog import read_log
    from arena.trace import parse, replay

    trace = parse(read_log(str(DATA / "x86_64-qemu-numa-6.6.41.log"))[0])
    out = io.StringIO()
    bar = Progress(label="replay", file=out, force=True, interval=0)
    replay(trace, progress=bar)
    bar.close()
    assert "\rreplay  " in out.getvalue() and "top-down" in out.getvalue()
    assert bar.done == bar.total and bar.total


def test_replay_refuses_a_progress_of_another_type() -> None:
    from arena.trace import replay

    with pytest.raises(TypeError):
        replay([], progress="yes")  # type: ignore[arg-type]


def test_replay_command_has_quiet(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from arena.cli.replay import add_replay_arguments, replay_command

    p = argparse.ArgumentParser()
    add_replay_arguments(p)
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    replay_command(p.parse_args([str(DATA / "x86_64-qemu-numa-6.6.41.log"), "--quiet"]))
    assert tty.getvalue() == ""
    replay_command(p.parse_args([str(DATA / "x86_64-qemu-numa-6.6.41.log")]))
    assert "\rreplay  " in tty.getvalue()
    assert "\r" not in capsys.readouterr().out


def test_bench_progress_goes_to_the_reporter(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import common

    bar = Progress(2, label="bench", file=io.StringIO())   # not a terminal: silent
    common.use_reporter(bar)
    try:
        common.progress("  family x ...")
    finally:
        common.use_reporter(None)
    assert bar.note == "family x ..."
    assert capsys.readouterr().err == ""
    common.progress("a line")
    assert capsys.readouterr().err == "a line\n"


def test_bench_has_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import run

    with pytest.raises(SystemExit):
        run.main(["--help"])
    assert "--quiet" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["arena.progress", "arena.tmtrace", "arena.notebook",
                                  "arena.arena_monitor"])
def test_new_modules_document_their_public_names(name: str) -> None:
    import importlib
    import inspect

    module = importlib.import_module(name)
    assert inspect.getdoc(module)
    missing = []
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            if not inspect.getdoc(obj):
                missing.append(attr)
            if inspect.isclass(obj):
                missing += [f"{attr}.{m}" for m, v in vars(obj).items()
                            if not m.startswith("_") and (inspect.isfunction(v)
                                                          or isinstance(v, property))
                            and not inspect.getdoc(v)]
    assert not missing


class _Writer:
    """The parts of pytest's terminal writer the long-profile note uses."""

    def __init__(self, tty: bool) -> None:
        self._file = FakeTTY() if tty else io.StringIO()
        self.fullwidth = 120
        self.width_of_current_line = 10

    def write(self, text: str, flush: bool = False) -> None:
        self._file.write(text)


class _Config:
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.option = argparse.Namespace(verbose=0)

    def get_terminal_writer(self) -> _Writer:
        return self.writer


class _Report:
    def __init__(self, when: str, passed: bool = True) -> None:
        self.when = when
        self.passed = passed


def test_long_profile_note_is_written_then_rubbed_out() -> None:
    from tests.long_progress import LongProgress

    w = _Writer(tty=True)
    plugin = LongProgress(_Config(w))  # type: ignore[arg-type]
    plugin.pytest_collection_modifyitems([object(), object()])  # type: ignore[list-item]
    plugin.pytest_runtest_logstart("tests/test_x.py::test_a", None)
    plugin.pytest_runtest_logreport(_Report("setup"))    # the body runs: the note stays
    shown = w._file.getvalue()
    assert "  [0/2 (0%)" in shown and "tests/test_x.py::test_a" in shown
    assert "\b" not in shown
    plugin.pytest_runtest_logreport(_Report("call"))     # pytest reports: rubbed out
    plugin.pytest_runtest_logreport(_Report("teardown"))
    text = w._file.getvalue()
    n = len(shown)
    assert text == shown + "\b" * n + " " * n + "\b" * n
    assert plugin.bar.done == 1


def test_long_profile_note_stays_off_a_pipe() -> None:
    from tests.long_progress import LongProgress

    w = _Writer(tty=False)
    plugin = LongProgress(_Config(w))  # type: ignore[arg-type]
    plugin.pytest_runtest_logstart("tests/test_x.py::test_a", None)
    plugin.pytest_runtest_logreport(_Report("call"))
    assert w._file.getvalue() == ""
