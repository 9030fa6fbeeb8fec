"""The pipeline's errors: one base class, each kind with the exit code a command line returns for it.

Every ``python -m <stage>`` maps these to an exit code and a one-line message in one place
(``setlist.cli``), the way ``serving.errors`` maps the server's errors to gRPC codes. Raise the
most specific kind; anything that is not a ``SetlistError`` is a bug and keeps its traceback.

Exit codes: 1 the work was refused or failed (a gate, a check of the data), 2 the command was
used wrongly or its input is absent or unreadable.
"""

from __future__ import annotations

from typing import ClassVar


class SetlistError(Exception):
    """Something the operator can act on, said in one sentence (exit 1 unless a subclass says)."""

    exit_code: ClassVar[int] = 1


class UsageError(SetlistError):
    """A bad option, setting or argument: the command cannot run as given (exit 2)."""

    exit_code = 2


class BadInput(UsageError):
    """The input exists but cannot be read at all (exit 2)."""


class InputMissing(SetlistError):
    """An input does not exist (yet): a gate under ``validation all`` is skipped, a single one exits 2."""

    exit_code = 2


class Refused(SetlistError):
    """A check of the data refused to let the work go on: a gate failed, a batch was quarantined,
    training found nothing it could learn from (exit 1)."""

    exit_code = 1


class NoAccess(SetlistError):
    """A file could not be opened or written because its file system is read-only or the user running the
    command may not (exit 1). Not a fault of the data: the same command run with access finishes the work."""

    exit_code = 1


class StoreDown(SetlistError):
    """A server the command talks to (PostgreSQL, Redis) refused, dropped or did not answer the connection
    (exit 1). The same command run again once it is back finishes the work."""

    exit_code = 1


class DiskFull(SetlistError):
    """A write failed because its disk (or the user's quota on it) is full (exit 1). Not a fault of the
    data or the command: the same command run again once there is room finishes the work."""

    exit_code = 1
