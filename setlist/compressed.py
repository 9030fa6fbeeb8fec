"""Files read through the compression their name says: one list of compressions and one opener for
the importer, registered feature tables and the erasure scan.

A zip is read when it holds one file, as pandas reads one; a stream compression (gzip, bzip2, xz)
is opened by the standard library's own module.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from setlist.errors import BadInput

#: stream compressions by suffix: each opens a path in the modes the built-in ``open`` takes
STREAMS: dict[str, Callable[..., IO[Any]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
#: every suffix a file is read through
COMPRESSIONS = (*STREAMS, ".zip")


class ArchiveError(BadInput, ValueError):  # a ValueError too: readers that catch unreadable input catch it
    """A zip that holds no file, or several: which of them is the input is not said."""


def compression_of(path: Path) -> str | None:
    """``.gz`` for ``ratings.csv.gz``; None for a file its name says is not compressed."""
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSIONS else None


def open_compressed(
    path: Path, mode: str = "rb", *, encoding: str | None = None, newline: str | None = None, errors: str | None = None
) -> IO[Any]:
    """``path`` opened through the compression its name says: bytes for ``"rb"``, text for ``"rt"``
    (decoded with ``encoding``, ``newline`` and ``errors`` as the built-in ``open`` does)."""
    if mode not in ("rb", "rt"):
        raise ValueError(f"open_compressed reads: mode 'rb' or 'rt', not {mode!r}")
    compression = compression_of(path)
    if compression == ".zip":
        archive = zipfile.ZipFile(path)
        members = [n for n in archive.namelist() if not n.endswith("/")]
        if len(members) != 1:
            archive.close()
            raise ArchiveError(f"{path.name} holds {len(members)} files; a zip is read when it holds one file")
        stream = archive.open(members[0])
        if mode == "rb":
            return stream
        return io.TextIOWrapper(stream, encoding=encoding, newline=newline, errors=errors)
    opener: Callable[..., IO[Any]] = STREAMS[compression] if compression else open
    if mode == "rb":
        return opener(path, "rb")
    return opener(path, "rt", encoding=encoding, newline=newline, errors=errors)
