"""Every ```python block of README.md and docs/*.md runs, and prints what the docs say.

Each block is one test (parametrized by file and the block's first line), run in a process of
its own (a fresh namespace, nothing left over from another block) whose working directory is a
new temporary directory holding a link ``tests`` to the repository's ``tests/`` (so the docs'
``tests/data/...`` paths work as they do from the repository root). The processes are forked
from one clean interpreter that has imported numpy and the package once (a fork server), so a
block costs its own run time, not an interpreter start. When the block is
immediately followed by an ```output block, the block's standard output must equal that text:
each line's trailing whitespace stripped, trailing blank lines ignored. ```bash, ```text and
other blocks are not run.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\S*)\s*$")


def blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """``(first line number, code, expected output or None)`` of each ```python block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fences: list[tuple[int, str, str, int]] = []   # (open index, language, text, close index)
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        fences.append((i, m[1], "\n".join(lines[i + 1:j]), j))
        i = j + 1
    out: list[tuple[int, str, str | None]] = []
    for k, (opened, lang, text, closed) in enumerate(fences):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(fences) and fences[k + 1][1] == "output":
            between = lines[closed + 1:fences[k + 1][0]]
            if not any(s.strip() for s in between):
                expected = fences[k + 1][2]
        out.append((opened + 2, text, expected))
    return out


def _normal(text: str) -> list[str]:
    out = [line.rstrip() for line in text.splitlines()]
    while out and not out[-1]:
        out.pop()
    return out


#: The fork server: reads one JSON request per line (code, working directory, output files),
#: runs the code in a forked child with fresh ``__main__`` globals, answers its exit status.
_SERVER = r"""
import json, os, sys, traceback
import numpy, arena, arena.kernel, arena.memblock, arena.physmem, arena.buddy  # preloaded
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.chdir(req["cwd"])
            for fd, name in ((1, "out"), (2, "err")):
                os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            sys.stdin = open(os.devnull)
            try:
                exec(compile(req["code"], "<doc block>", "exec"), {"__name__": "__main__"})
                status = 0
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)
    _, wait = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(wait)), flush=True)
"""


@pytest.fixture(scope="module")
def fork_server() -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    env.pop("ARENA_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    yield proc
    proc.kill()
    proc.wait()


def run_block(server: subprocess.Popen[str], code: str, cwd: Path,
              timeout: float = 120) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``code`` run by the fork server in ``cwd``."""
    out, err = cwd.parent / f"{cwd.name}.stdout", cwd.parent / f"{cwd.name}.stderr"
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(json.dumps({"code": code, "cwd": str(cwd), "out": str(out),
                                   "err": str(err)}) + "\n")
    server.stdin.flush()
    ready, _, _ = select.select([server.stdout], [], [], timeout)
    if not ready:
        server.kill()
        pytest.fail(f"a docs block ran longer than {timeout} s")
    status = json.loads(server.stdout.readline())
    return status, out.read_text(), err.read_text()


CASES = [pytest.param(path, line, code, expected, id=f"{path.relative_to(ROOT)}:{line}")
         for path in DOCS for line, code, expected in blocks(path)]


def test_the_docs_have_python_blocks():
    assert len(CASES) >= 10
    assert any(expected is not None for *_, expected in (c.values for c in CASES))


@pytest.mark.parametrize("path, line, code, expected", CASES)
def test_block_runs_and_prints_what_the_docs_say(path, line, code, expected, tmp_path,
                                                fork_server):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    status, stdout, stderr = run_block(fork_server, code, cwd)
    where = f"{path.relative_to(ROOT)}, block at line {line}"
    assert status == 0, f"{where} failed:\n{stderr}"
    if expected is not None:
        assert _normal(stdout) == _normal(expected), f"{where} printed:\n{stdout}"


def test_a_failing_block_fails(tmp_path, fork_server):
    status, stdout, stderr = run_block(fork_server, "print('a')\nraise ValueError('b')",
                                       tmp_path)
    assert status == 1 and stdout == "a\n" and "ValueError: b" in stderr


def test_block_parser_pairs_output_blocks(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("```python\nprint(1)\n```\n\n```output\n1\n```\n\n```python\nx = 2\n```\n"
                   "text\n\n```output\nnot this one\n```\n```bash\nls\n```\n")
    assert blocks(doc) == [(2, "print(1)", "1"), (10, "x = 2", None)]


def test_handover_example_shows_every_line_it_prints():
    """The hand-over example's output block includes the "refused" line the code prints."""
    (_, code, expected), = [b for b in blocks(ROOT / "docs" / "handover.md")
                            if "free_all(buddy)" in b[1]]
    assert expected is not None and 'print("refused:", e)' in code
    assert expected.rstrip().splitlines()[-1].startswith("refused: memblock has handed")


def test_docs_name_the_physmem_command_for_the_physmem_tour():
    """The physical-memory tour is ``physmem``; ``demo`` has no ``--size``."""
    for path in DOCS:
        assert not re.search(r"demo \[?--size", path.read_text(encoding="utf-8")), path
    assert "physmem [--size" in (ROOT / "docs" / "physmem.md").read_text(encoding="utf-8")


def test_docs_cite_nothing_outside_the_repository():
    """No spec sections, style rules, issue numbers or paths outside the repository; every
    relative link points at a file of the repository."""
    bad = re.compile(r"spec §|§\s*\d|\brule \d|\bissue \d|\.\./shared|shared/spec|"
                     r"PERF_NOTES|HOUSE_STYLE|the lead\b", re.I)
    for path in [*DOCS, ROOT / "tests" / "README.md", ROOT / "bench" / "RESULTS.md"]:
        text = path.read_text(encoding="utf-8")
        assert not bad.search(text), (path, bad.search(text))
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), (path, target)
