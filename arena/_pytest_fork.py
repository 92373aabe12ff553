"""The pytest plugin's forked runs: a test of an arena in guard mode runs in a child process,
so that a faulting access (``SIGSEGV`` on a guard page or a freed block) fails that test alone.

The child enables ``faulthandler`` and the guard-mode fault note on a temporary file, runs the
test's whole protocol (setup, call, teardown) and sends the reports back over a pipe; the
parent logs them as if the test had run in it. If the child dies instead, the parent fails the
test with the signal and what the child wrote to that file: the note naming the allocation
(allocating and freeing stacks) and the Python traceback of the faulting line. Fixtures of a
wider scope than the function are set up again in the child (and torn down there).
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import sys
import tempfile
import traceback
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from arena.guard import set_note_fd

__all__ = ["run_forked"]


def run_forked(item: pytest.Item) -> list[pytest.TestReport]:
    """Run ``item``'s protocol in a forked child; its reports (or, if the child died, a
    failed report with the child's fault output)."""
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(item, read_end, write_end, err.fileno())
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        err.seek(0)
        output = err.read().decode(errors="replace")
    data = b"".join(chunks)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and data:
        hook = item.config.hook
        return [hook.pytest_report_from_serializable(config=item.config, data=d)
                for d in pickle.loads(data)]
    return _crash_reports(item, status, output)


def _child(item: pytest.Item, read_end: int, write_end: int, err: int) -> None:
    """The child's side: never returns."""
    code = 1
    try:
        os.close(read_end)
        faulthandler.enable(file=err, all_threads=False)
        set_note_fd(err)
        reports = runtestprotocol(item, log=False, nextitem=None)
        hook = item.config.hook
        payload = pickle.dumps([hook.pytest_report_to_serializable(config=item.config,
                                                                   report=rep)
                                for rep in reports])
        view = memoryview(payload)
        while view:
            view = view[os.write(write_end, view):]
        code = 0
    except BaseException:
        os.write(err, traceback.format_exc().encode(errors="replace"))
    finally:
        os._exit(code)


def _crash_reports(item: pytest.Item, status: int, output: str) -> list[pytest.TestReport]:
    """Reports of a test whose child process died: setup passed, call failed (with how it
    died and its fault output), teardown passed."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        how = f"was killed by {name} (signal {sig})"
    else:
        how = f"exited with status {os.WEXITSTATUS(status)} without reporting"
    longrepr = (f"arena: the test's process (forked for guard mode) {how}\n"
                + (output.rstrip() or "(it wrote nothing)"))
    keywords: dict[str, Any] = {k: 1 for k in item.keywords}
    return [pytest.TestReport(item.nodeid, item.location, keywords, "passed", None, "setup"),
            pytest.TestReport(item.nodeid, item.location, keywords, "failed", longrepr, "call"),
            pytest.TestReport(item.nodeid, item.location, keywords, "passed", None,
                              "teardown")]
