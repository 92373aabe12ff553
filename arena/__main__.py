"""``python -m arena <command>``: the command line of :mod:`arena.cli`, named as run."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from arena.cli import COMMANDS

__all__ = ["main", "COMMANDS"]


def main(argv: Sequence[str] | None = None) -> int:
    """:func:`arena.cli.main` with usage lines saying ``python -m arena``."""
    from arena.cli import main as cli_main

    return cli_main(argv, prog="python -m arena")


if __name__ == "__main__":
    sys.exit(main())
