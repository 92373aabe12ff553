"""The arena factory the arena test files share: each wraps it in a ``make`` fixture with the
defaults its tests prove (size, lifetime, debug, callers)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from arena import Arena


def arena_factory(size: int, *, defer: bool = False,
                  **defaults: Any) -> Iterator[Callable[..., Arena]]:
    """Body of a fixture: yields ``make(size=size, **kwargs)``, an :class:`Arena` with
    ``defaults`` under ``kwargs``; at teardown every arena made is closed (``defer``: after a
    collection, unmapped once arrays a test still holds are gone)."""
    made: list[Arena] = []

    def make(size: int = size, **kwargs: Any) -> Arena:
        a = Arena(size, **{**defaults, **kwargs})
        made.append(a)
        return a

    yield make
    if defer:
        gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for a in made:
            a.close(defer=defer)
