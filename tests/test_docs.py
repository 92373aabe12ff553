"""Every ```python block of README.md and docs/*.md runs, and prints what the docs say.

Each block is one test (parametrized by file and the block's first line), run by a fresh
interpreter (a fresh namespace, nothing left over from another block) whose working directory
is a new temporary directory holding a link ``tests`` to the repository's ``tests/`` (so the
docs' ``tests/data/...`` paths work as they do from the repository root). When the block is
immediately followed by an ```output block, the block's standard output must equal that text:
each line's trailing whitespace stripped, trailing blank lines ignored. ```bash, ```text and
other blocks are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


CASES = [pytest.param(path, line, code, expected, id=f"{path.relative_to(ROOT)}:{line}")
         for path in DOCS for line, code, expected in blocks(path)]


def test_the_docs_have_python_blocks():
    assert len(CASES) >= 10
    assert any(expected is not None for *_, expected in (c.values for c in CASES))


@pytest.mark.parametrize("path, line, code, expected", CASES)
def test_block_runs_and_prints_what_the_docs_say(path, line, code, expected, tmp_path):
    (tmp_path / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    env.pop("ARENA_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    where = f"{path.relative_to(ROOT)}, block at line {line}"
    assert proc.returncode == 0, f"{where} failed:\n{proc.stderr}"
    if expected is not None:
        assert _normal(proc.stdout) == _normal(expected), f"{where} printed:\n{proc.stdout}"


def test_block_parser_pairs_output_blocks(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("```python\nprint(1)\n```\n\n```output\n1\n```\n\n```python\nx = 2\n```\n"
                   "text\n\n```output\nnot this one\n```\n```bash\nls\n```\n")
    assert blocks(doc) == [(2, "print(1)", "1"), (10, "x = 2", None)]
