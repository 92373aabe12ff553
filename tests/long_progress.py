"""Progress of the long Hypothesis profile on the terminal (registered by ``conftest.py`` when
``HYPOTHESIS_PROFILE=long``; ``--no-progress`` turns it off).

Before each test a short note (tests done of the total, the elapsed time, and the test's name
unless pytest's ``-v`` printed it already; from :class:`arena.progress.Progress`) is written after what pytest printed on the current
line, and rubbed out (backspaces) before pytest reports the result, so pytest's own output is
left as it is. Only on a terminal.
"""

from __future__ import annotations

from typing import Any

import pytest

from arena.progress import Progress


class LongProgress:
    """The pytest plugin: a :class:`Progress` over the collected tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.bar = Progress(quiet=True)   # counts; drawn here
        self.width = 0   # characters of the note on screen

    def _writer(self) -> Any:
        """pytest's terminal writer when it writes to a terminal, else ``None``."""
        tw = self.config.get_terminal_writer()
        stream = getattr(tw, "_file", None)
        try:
            return tw if stream is not None and stream.isatty() else None
        except (AttributeError, ValueError, OSError):
            return None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.bar.total = len(items)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        tw = self._writer()
        if tw is None:
            return
        verbose = getattr(getattr(self.config, "option", None), "verbose", 0)
        self.bar.note = "" if verbose >= 1 else nodeid   # -v printed the name already
        room = tw.fullwidth - tw.width_of_current_line - 3
        text = f"  [{self.bar.line()}]"
        text = text if len(text) <= room else ""   # no room on this line: no note
        if text:
            tw.write(text, flush=True)
        self.width = len(text)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.bar.update()
        if report.when == "setup" and report.passed:
            return   # the test body runs next: the note stays while it does
        if self.width:
            tw = self._writer()
            n = self.width
            self.width = 0
            if tw is not None:
                tw.write("\b" * n + " " * n + "\b" * n, flush=True)
