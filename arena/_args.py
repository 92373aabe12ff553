"""Argument checks shared by every module: one definition of "an integer" and "a bool".

A caller's mistake raises ``TypeError`` naming the parameter, its type and its value.
numpy integers count as integers; ``bool`` does not (``True`` is an ``int`` in
Python, but passing it as a size or an address is always a mistake).
"""

from __future__ import annotations

import operator
from typing import IO, Any

import numpy as np

__all__ = ["bool_arg", "file_arg", "int_arg"]


def int_arg(name: str, value: Any) -> int:
    """``value`` as a Python int (ints and numpy integers); ``TypeError`` for anything else."""
    if type(value) is int:  # the common case first (the isinstance chain is slower: bench/RESULTS.md)
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not a bool ({value!r})")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} "
                        f"({value!r})") from None


def bool_arg(name: str, value: Any, *, allow_int: bool = False) -> bool:
    """``value`` as a bool; ``allow_int`` also takes integers (a C ``bool`` parameter)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if allow_int and isinstance(value, (int, np.integer)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, not {type(value).__name__} ({value!r})")


def file_arg(name: str, value: Any) -> IO[str] | None:
    """A ``file=`` argument of a printing function: ``None`` (standard output) or an object
    with a callable ``write`` (what :func:`print` needs), returned unchanged; ``TypeError``
    naming the parameter for anything else (``file=-1`` would otherwise fail deep inside
    :func:`print` with an ``AttributeError``). Check it before doing any work."""
    if value is None or callable(getattr(value, "write", None)):
        return value
    raise TypeError(f"{name} must be a text stream with a write() method (or None for "
                    f"standard output), not {type(value).__name__} ({value!r})")
