"""Standard streams whose reader may leave early (``astromorph classify ... 2>&1 | head``).

A command's product is its files; its messages are a courtesy. When the reader of stdout or
stderr goes away, the first failed write turns that stream into /dev/null and the command
finishes its work; ``astromorph`` then exits 141 (the shell's status for a tool a closed pipe
stopped) unless it had a status of its own to give. Before, the broken pipe ended the
command at that write: a classify run whose rows were all done lost its output file (kept
only as a resumable journal) because it printed a warning first.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PipeSafeStream"]


class PipeSafeStream:
    """Wrap a text stream: a write or flush that meets a closed pipe sets :attr:`broken`,
    points the stream's file descriptor at /dev/null (so later writes, the interpreter's
    final flush and C libraries' own messages are quiet) and is dropped, not raised."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def writelines(self, lines) -> None:  # noqa: ANN001 - any iterable of str
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.broken = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's StringIO)
            pass

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer ...
        return getattr(self._stream, name)
