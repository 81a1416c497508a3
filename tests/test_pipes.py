"""pipes.PipeSafeStream: a stream whose reader left drops messages instead of raising."""

import os

from astro_morph.pipes import PipeSafeStream


def test_a_closed_pipe_silences_the_stream_and_says_so():
    read_end, write_end = os.pipe()
    stream = PipeSafeStream(os.fdopen(write_end, "w"))
    stream.write("before the reader leaves\n")
    os.close(read_end)
    assert not stream.broken
    stream.write("x" * 200_000)  # more than a pipe buffer: the write meets the closed pipe
    stream.flush()
    stream.writelines(["a\n", "b\n"])
    assert stream.broken
    assert stream.write("dropped") == len("dropped")
    stream.close()  # the descriptor now points at /dev/null: closing is quiet


def test_an_open_stream_is_passed_through(tmp_path):
    path = tmp_path / "log.txt"
    with open(path, "w") as f:
        stream = PipeSafeStream(f)
        stream.writelines(["one\n", "two\n"])
        stream.flush()
        assert not stream.broken and stream.encoding == f.encoding
    assert path.read_text() == "one\ntwo\n"
