"""One exception family; the CLI turns each class into its exit code (CONTRACT.md).

Every message starts with the input's path and says what to do, so the CLI can
print it as one line.
"""

from __future__ import annotations

from pathlib import Path


class NsysParseError(Exception):
    """Base of every error a user can cause. ``exit_code`` is CONTRACT.md's."""

    exit_code = 1

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self) -> tuple[type, tuple[str | None, str]]:
        # raised in a batch worker process and raised again in the client
        return (type(self), (self.path, self.message))


class UsageError(NsysParseError):
    """Bad command-line usage (exit 2)."""

    exit_code = 2


class InputMissing(NsysParseError):
    """The input is missing, unreadable or a directory (exit 3)."""

    exit_code = 3


class NotADatabase(NsysParseError):
    """The input is empty, not SQLite, or corrupt (exit 4)."""

    exit_code = 4


class NotAnExport(NsysParseError):
    """Not a usable nsys export: no CUDA activity, unsupported schema, or a
    ``.nsys-rep`` with no nsys to export it (exit 5)."""

    exit_code = 5


class NothingToAnalyse(NsysParseError):
    """A range name or pattern given by the user matches nothing (exit 6)."""

    exit_code = 6


class InputLocked(NotADatabase):
    """The input is locked by a program writing it (exit 4, its own message):
    a file still being exported reads as neither corrupt nor finished."""


class OutputUnwritable(NsysParseError):
    """The output folder cannot be written: permission denied, a read-only file
    system, or the disk is full (exit 8). Nothing of the user's was changed."""

    exit_code = 8
