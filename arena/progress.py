"""Progress of long work on a terminal: one status line redrawn in place on stderr.

Kernel counterpart: none. :class:`Progress` draws ``label  done/total (pct%)  rate/s  seconds
note`` on one line (a carriage return, the text, the rest of the old line cleared) at most every
``interval`` seconds, and ends the line at :meth:`Progress.close`. It draws only when its
stream is a terminal (``isatty()``) and it is not ``quiet``: piped or redirected output, logs
and captured test output stay exactly as they were. ``force=True`` draws on any stream (tests).

Used by ``python -m arena soak``, ``python -m arena replay``, ``python -m bench`` (each with
``--quiet``) and the ``long`` Hypothesis profile of the test suite. No dependency.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["Progress", "DEFAULT_INTERVAL"]

#: Seconds between two redraws at most (the first update draws at once).
DEFAULT_INTERVAL = 0.2


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):   # no isatty, or a closed stream
        return False


class Progress:
    """A rate-limited status line for long work.

    ``Progress(total=None, *, label="", file=None, quiet=False, force=False,
    interval=DEFAULT_INTERVAL, clock=True)``

    * ``total`` — units of work expected (``None``: unknown, no percentage).
    * ``label`` — the line's first word(s).
    * ``file`` — the stream (default ``sys.stderr`` at each draw).
    * ``quiet`` — never draw; ``force`` — draw even when ``file`` is not a terminal.
    * ``interval`` — seconds between redraws at most (>= 0).
    * ``clock`` — show the parts that depend on time: the rate and the seconds since the start
      (``False`` when the note has them, or for text that must not vary).

    :meth:`update` counts work done, :meth:`status` sets the note, :meth:`close` (or leaving
    a ``with`` block) draws the last state and ends the line. Raises TypeError/ValueError for
    bad arguments. Not thread-safe (one reporter per loop).
    """

    def __init__(self, total: int | None = None, *, label: str = "",
                 file: IO[str] | None = None, quiet: bool = False, force: bool = False,
                 interval: float = DEFAULT_INTERVAL, clock: bool = True) -> None:
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)
                                  or total < 0):
            raise ValueError(f"total must be a non-negative int or None, not {total!r}")
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or \
                not interval >= 0:
            raise ValueError(f"interval must be a number >= 0, not {interval!r}")
        self.total = total
        self.label = label
        self.done = 0
        self.note = ""
        self._file = file
        self._quiet = bool(quiet)
        self._force = bool(force)
        self._interval = float(interval)
        self._clock = bool(clock)
        self._start = time.monotonic()
        self._last = float("-inf")
        self._width = 0   # characters of the line drawn last
        self.drawn = 0    # redraws so far
        self._closed = False

    @property
    def enabled(self) -> bool:
        """True if this reporter draws (not quiet, and a terminal or forced)."""
        return not self._quiet and not self._closed and (self._force or _is_tty(self._stream()))

    def _stream(self) -> Any:
        return self._file if self._file is not None else sys.stderr

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; redraw if ``interval`` has passed. O(1)."""
        self.done += n
        self._maybe_draw()

    def set(self, done: int) -> None:
        """Set the units done to ``done``; redraw if ``interval`` has passed. O(1)."""
        self.done = done
        self._maybe_draw()

    def status(self, note: str) -> None:
        """Set the note shown after the counts; redraw if ``interval`` has passed."""
        self.note = note
        self._maybe_draw()

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval and self.enabled:
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The status text as it would be drawn now."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        parts = [self.label] if self.label else []
        if self.total is not None:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            parts.append(f"{self.done:,}/{self.total:,} ({pct:.0f}%)")
        elif self.done:
            parts.append(f"{self.done:,}")
        if self._clock:
            if self.done:
                parts.append(f"{self.done / elapsed:,.0f}/s")
            parts.append(f"{elapsed:.1f} s")
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        pad = " " * max(0, self._width - len(text))
        stream = self._stream()
        stream.write("\r" + text + pad)
        stream.flush()
        self._width = len(text)
        self.drawn += 1

    def close(self) -> None:
        """Draw the final state and end the line (nothing if nothing was ever drawn or the
        reporter does not draw). Idempotent."""
        if self._closed:
            return
        if self.enabled and self.drawn:
            self._draw(time.monotonic())
            stream = self._stream()
            stream.write("\n")
            stream.flush()
        self._closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
