"""Files that are no text, told by their first bytes: a database, a data frame's binary format, an
archive, or a compressed file whose name does not say so. Read as delimited text, each would be
refused as having no separator, or worse, split into a few columns of noise; instead the import
names what the file is and how to turn it into something it reads.

A parquet file under another name is the exception: the import reads parquet, so ``parquet_inside``
lets the reader take it as such."""

from __future__ import annotations

import re
import sqlite3
import zipfile
from contextlib import closing
from pathlib import Path

from setlist.compressed import compression_of, open_compressed

#: bytes read off the start of a file to tell its format
_HEAD = 16
#: the stream compressions' signatures, with the suffix that makes the import open them
_COMPRESSED = {
    b"\x1f\x8b": ".gz",
    b"\xfd7zXZ\x00": ".xz",
}
#: bzip2's header: "BZh", the block size's digit, then the first block's magic (pi's digits), since a
#: text file may well open with "BZh"
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_ZSTD = b"\x28\xb5\x2f\xfd"
#: pickle's protocols 2 to 5 open with PROTO and the protocol's number
_PICKLE = tuple(bytes([0x80, n]) for n in range(2, 6))


def _head(path: Path, decompress: bool) -> bytes:
    try:
        with open_compressed(path, "rb") if decompress else open(path, "rb") as f:
            return bytes(f.read(_HEAD))
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):  # a broken archive is said where it is read
        return b""


def parquet_inside(path: Path) -> bool:
    """A parquet file under a text file's name (``ratings.csv`` written by ``to_parquet``): parquet
    needs a file it can seek in, so only an uncompressed one is read as such. It opens and ends with
    its magic, as a text file whose first field is "PAR1…" does not."""
    if compression_of(path) is not None or not _head(path, decompress=False).startswith(b"PAR1"):
        return False
    try:
        with open(path, "rb") as f:
            f.seek(-4, 2)
            return f.read(4) == b"PAR1"
    except OSError:
        return False


def _converted(path: Path, suffix: str = ".parquet") -> str:
    """The name of ``path`` converted to ``suffix``, beside it and never the file itself."""
    out = f"{path.name.split('.')[0]}{suffix}"
    return out if out != path.name else f"{path.name.split('.')[0]}-table{suffix}"


def _to_parquet(path: Path, reader: str, imports: str = "import pandas as pd") -> str:
    """The one line that writes a data frame's file as parquet with the project's own Python."""
    return (
        f'.venv/bin/python -c "{imports}; pd.{reader.format(name=path.name)}'
        f".to_parquet('{_converted(path)}')\", and import that"
    )


def _binary(head: bytes) -> bool:
    """Control bytes that no text holds: a signature of a few letters (ORC's) is also where a text
    file's header may start."""
    return any(b < 0x09 or 0x0E <= b < 0x20 for b in head)


def _sqlite_tables(path: Path) -> list[str]:
    """The user's tables of a SQLite file (SQLite's own ``sqlite_…`` left out), opened read-only: the
    file is the user's, never written."""
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    try:
        with closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as db:
            return [r[0] for r in db.execute(query)]
    except sqlite3.Error:
        return []


#: words of a table's name that say it holds interactions, for the one the advice names
_LOG_WORDS = re.compile(r"rating|event|interaction|play|listen|click|view|review|purchase|order|history|log|action")


def _sqlite(path: Path) -> str:
    tables = _sqlite_tables(path)
    table = next((t for t in tables if _LOG_WORDS.search(t.lower())), tables[0] if tables else "TABLE")
    table = f"[{table}]"  # quoted: a table may be named "order" or "user events"

    listed = f" (its tables: {', '.join(tables[:8])}{', …' if len(tables) > 8 else ''})" if tables else ""
    return (
        f"{path.name} is a SQLite database{listed}, which the import does not query: write the table of "
        "interactions out first, e.g. "
        + _to_parquet(
            path, f"read_sql('SELECT * FROM {table}', sqlite3.connect('{{name}}'))", "import sqlite3, pandas as pd"
        )
    )


def _zip_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [n for n in archive.namelist() if not n.endswith("/")]
    except (OSError, zipfile.BadZipFile):
        return []


_UNPACK = {".gz": "gunzip -k", ".bz2": "bunzip2 -k", ".xz": "unxz -k", ".zip": "unzip"}


def not_text(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be read as delimited text and what to do instead, when its first bytes
    say it is some other format; None for a file that may be text (or a spreadsheet, said apart)."""
    path = Path(path)
    compression = compression_of(path)
    if compression is None:
        return _misnamed(path, what) or _binary_advice(path, _head(path, decompress=False), what)
    unpacked = path.with_suffix("")  # ratings.db.gz → ratings.db, the name the advice is about
    head = _head(path, decompress=True)
    if head.startswith(b"PAR1"):  # parquet is read from a file it can seek in, never through a compression
        return (
            f"{path.name} is a {compression[1:]}-compressed parquet file: unpack it ({_UNPACK[compression]} "
            f"{path.name}) and import it named {unpacked.name.split('.')[0]}.parquet"
        )
    advice = _binary_advice(unpacked, head, what)
    if advice is None:
        return None
    return (
        f"{path.name} is {compression[1:]}-compressed: unpack it first ({_UNPACK[compression]} {path.name}); {advice}"
    )


def _misnamed(path: Path, what: str) -> str | None:
    """A compressed file or an archive whose name says neither."""
    raw = _head(path, decompress=False)
    signatures = {**_COMPRESSED, **({raw[:3]: ".bz2"} if _BZIP2.match(raw) else {})}
    for magic, suffix in signatures.items():
        if raw.startswith(magic):
            return (
                f"{path.name} is compressed ({suffix[1:]}) though its name does not say so: name it "
                f"{path.name}{suffix} (e.g. mv {path.name} {path.name}{suffix}) and import that"
            )
    if raw.startswith(_ZSTD):
        return (
            f"{path.name} is zstd-compressed, which the import does not read: "
            f"zstd -d -c {path.name} > {path.name}.txt, then import that (or recompress it with gzip)"
        )
    if not raw.startswith(b"PK\x03\x04"):
        return None
    members = _zip_members(path)
    if members and all(m.endswith(".npy") for m in members):
        return _numpy(path, members)
    if len(members) == 1:
        return (
            f"{path.name} is a zip archive (of {members[0]}): name it {path.name}.zip to import the file it holds, "
            "or unzip it and import that"
        )
    if members:
        shown = ", ".join(members[:3]) + (", …" if len(members) > 3 else "")
        return f"{path.name} is a zip archive of {len(members)} files ({shown}): unzip it and import the file of {what}"
    return None


def _binary_advice(path: Path, head: bytes, what: str) -> str | None:
    """What ``path``'s first bytes say it is, with how to make an import of it."""
    if head.startswith(b"SQLite format 3\x00"):
        return _sqlite(path)
    if head.startswith((b"ARROW1", b"FEA1")) and _binary(head):
        return (
            f"{path.name} is an Arrow IPC (Feather) file, which the import does not read: write it as parquet, "
            + _to_parquet(path, "read_feather('{name}')")
        )
    if head.startswith(b"ORC") and _binary(head):
        return f"{path.name} is an ORC file, which the import does not read: write it as parquet, " + _to_parquet(
            path, "read_orc('{name}')"
        )
    if head.startswith(b"Obj\x01"):
        return (
            f"{path.name} is an Avro container, which the import does not read: write its records as JSON lines "
            f"(avro-tools tojson {path.name} > {path.name.split('.')[0]}.jsonl, or fastavro's reader) and import those"
        )
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return (
            f"{path.name} is an HDF5 file, a store of named arrays and tables, which the import does not read: "
            "write the table of interactions as CSV or parquet first (pandas.read_hdf(path, key) for a table "
            "pandas wrote, with PyTables installed; h5py for arrays), and import that"
        )
    if head.startswith(b"\x93NUMPY"):
        return _numpy(path, [])
    if head.startswith(_PICKLE) or path.suffix.lower() in (".pkl", ".pickle"):
        return (
            f"{path.name} is a Python pickle, which the import does not read: unpickling runs code the file "
            "carries, so open only a pickle you trust, in your own Python, and write its table as parquet "
            f"(pandas.read_pickle('{path.name}').to_parquet('{_converted(path)}') for a data frame), then import that"
        )
    if head.startswith((b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")):
        kind, tool = ("7-Zip", "7z x") if head.startswith(b"7z") else ("RAR", "unrar x")
        return (
            f"{path.name} is a {kind} archive, which the import does not open: extract it ({tool} {path.name}) "
            f"and import the file of {what}"
        )
    if head.startswith(b"%PDF"):
        return f"{path.name} is a PDF document, not a table of the {what}"
    return None


def _numpy(path: Path, members: list[str]) -> str:
    arrays = f" (arrays {', '.join(m.removesuffix('.npy') for m in members[:4])})" if members else ""
    loader = f"np.load('{path.name}')" + (f"['{members[0].removesuffix('.npy')}']" if members else "")
    return (
        f"{path.name} holds NumPy arrays{arrays}, with no column names for the import to read: write the array "
        f"of interactions as a table with its columns named, e.g. pandas.DataFrame({loader}, columns=['user', "
        f"'item', …]).to_csv('{_converted(path, '.csv')}', index=False), and import that"
    )
