"""The shared argument checks of ``arena._args``: integers, bools and printing streams."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from arena._args import bool_arg, file_arg, int_arg


@pytest.mark.parametrize("stream", [None, io.StringIO(), sys.stdout, sys.stderr])
def test_file_arg_accepts_streams_and_none(stream):
    assert file_arg("file", stream) is stream


class _NotCallable:
    write = "not a method"


@pytest.mark.parametrize("bad", [-1, 1, "out.txt", b"", 1.5, [], object(), _NotCallable()])
def test_file_arg_rejects_with_a_typeerror_naming_the_argument(bad):
    with pytest.raises(TypeError, match=r"^file must be a text stream .* not "):
        file_arg("file", bad)


def test_file_arg_is_usable_with_print():
    out = io.StringIO()
    print("hello", file=file_arg("file", out))
    assert out.getvalue() == "hello\n"


def test_int_and_bool_args():
    assert int_arg("n", np.int8(-3)) == -3 and type(int_arg("n", np.uint64(5))) is int
    with pytest.raises(TypeError, match="n must be an integer, not a bool"):
        int_arg("n", True)
    assert bool_arg("b", np.bool_(True)) is True
    with pytest.raises(TypeError):
        bool_arg("b", 1)
    assert bool_arg("b", 1, allow_int=True) is True
