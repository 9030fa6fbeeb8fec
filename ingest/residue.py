"""Residue scan: after an erasure, find every place a user's raw id or pseudonym still appears.

An erasure is only as good as its proof. :func:`scan` looks where the pipeline keeps data (the files
under ``data_dir`` and the other configured directories, the SQL stores, Redis in production, and
every master of the Redis Cluster in the cluster profile) for a set of *needles*, each given as
``kind -> value`` (``{"raw id": "alice", "pseudonym": "u_…"}``), and returns one :class:`Finding` per
place that still holds one. Findings and notes name the needle's kind, never its value: the report
of an erasure must not itself become a copy of the data erased.

Each part can run alone (:func:`scan_files`, :func:`scan_sql`, :func:`scan_redis`,
:func:`scan_redis_cluster`). What a part could not look at (a missing store, an unreadable file, the
local profile's absent Redis) goes to the optional ``notes`` list instead of being silently skipped;
a store that cannot be reached raises :class:`ResidueScanError`, since a scan that did not happen
must not read as a clean one.

A needle given as a :class:`Token` (the application's own user id) is matched as a whole token, not
inside a longer run of letters and digits: erasing ``17`` must not find ``1705``. A token that may
occur by coincidence (a plain number, or one shorter than :data:`SHORT_NEEDLE`) counts as residue
only as a whole value of a column or array named for users (``user_id``, ``raw_id``); where else it
stands alone (a count, a time, an item with the same id) is a *possible coincidence*: flagged on
its :class:`Finding`, and summed up in a note by :func:`scan`, never counted as residue.
"""

from __future__ import annotations

import os
import re
import sqlite3
import zipfile
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from setlist.compressed import STREAMS
from setlist.errors import SetlistError, UsageError
from setlist.redis_client import fail_fast_redis, fail_fast_redis_cluster
from setlist.settings import Settings
from setlist.sqltimeouts import engine_options

#: bytes read per step of a byte scan: big files stream through, never loaded whole
CHUNK = 8 << 20
#: encodings a needle is looked for in raw bytes: text and JSON (UTF-8), Windows and Java strings
#: (UTF-16), and NumPy's unicode arrays in ``.npy``/``.npz`` files (UTF-32)
ENCODINGS = ("utf-8", "utf-16-le", "utf-32-le")
#: a needle this short also occurs by coincidence; its hits are reported, with a warning
SHORT_NEEDLE = 6
#: the scan's SQL statements read whole tables, which may rightly take minutes, but a stuck one must
#: still end: this is their deadline (the connect deadline comes from the settings)
SCAN_STATEMENT_TIMEOUT_MS = 600_000
#: characters that continue a token: a token needle is only matched where none touches it
TOKEN_JOINED = "A-Za-z0-9_"
#: for a needle that is a number, also a decimal point, a sign and the separators of dates and times,
#: so that ``17`` is not found in ``0.17``, ``2026-11-17`` or ``08:17``
NUMBER_JOINED = TOKEN_JOINED + ".:+\\-"
#: a column or array by this name holds user ids: a coincidence-prone token counts as residue there
USER_COLUMN = re.compile(r"user|raw_?id", re.IGNORECASE)
#: at most this many places a possible coincidence was met are named in the note
COINCIDENCES_SHOWN = 5
#: rows read per step when a token's candidate rows are judged outside SQL
SQL_ROWS_PER_READ = 10_000
#: Redis keys examined per SCAN step and pipelined read
REDIS_BATCH = 500
#: at most this many characters of a Redis key are shown
KEY_SHOWN = 120


class _Readable(Protocol):
    """What a byte scan reads from: a file, a zip member, a decompressing stream."""

    def read(self, size: int, /) -> bytes: ...


_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_NAMES = (".db", ".sqlite", ".sqlite3", ".db-wal", ".db-shm", ".db-journal", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Token:
    """A needle matched as a whole token (see the module's doc): the application's own user id."""

    value: str


@dataclass(frozen=True, order=True)
class Finding:
    """One place that still holds a needle: ``where`` is a path relative to its scan root, a
    ``table.column`` or a Redis key with the needles masked; never the needle itself.
    ``coincidence``: a coincidence-prone token met outside a user column (not residue)."""

    store: str  # "file", "sqlite", "postgres", "redis", "redis cluster"
    where: str
    needle_kind: str  # the key the caller gave the needle under ("raw id", "pseudonym")
    detail: str
    coincidence: bool = False


def places(findings: Iterable[Finding], kinds: Container[str] | None = None) -> int:
    """How many places hold a needle (of ``kinds``, else any): a file or column holding both the pseudonym
    and the raw id is one place, as status and the receipts count them."""
    return len({(f.store, f.where) for f in findings if kinds is None or f.needle_kind in kinds})


class ResidueScanError(SetlistError):
    """A store could not be scanned (unreachable, refused): the erasure is unverified (exit 1)."""


class _Needles:
    """The needles, their byte patterns, and the masking every string shown goes through."""

    def __init__(self, needles: Mapping[str, str | Token]) -> None:
        if not needles:
            raise UsageError("a residue scan needs at least one needle")
        self.values: dict[str, str] = {}
        self.tokens: dict[str, tuple[re.Pattern[str], dict[str, re.Pattern[bytes]]]] = {}
        #: token kinds that may occur by coincidence: counted as residue only in user columns
        self.loose: set[str] = set()
        for kind, given in needles.items():
            value = given.value if isinstance(given, Token) else given
            if not isinstance(value, str) or not value:
                raise UsageError(f"the {kind} to scan for is empty")
            self.values[kind] = value
            if isinstance(given, Token):
                self.tokens[kind] = _token_patterns(value)
                if _is_number(value) or len(value) < SHORT_NEEDLE:
                    self.loose.add(kind)
        self.utf8: dict[str, bytes] = {k: v.encode("utf-8") for k, v in self.values.items()}
        # (kind, encoding) -> pattern; the UTF-8 pattern is what SQL and Redis compare as bytes too
        self.patterns: dict[tuple[str, str], bytes] = {
            (k, enc): v.encode(enc) for k, v in self.values.items() for enc in ENCODINGS
        }
        # longest first: a needle that contains another is masked whole
        self._masks = sorted(self.values.items(), key=lambda kv: -len(kv[1]))

    def in_text(self, kind: str, text: str) -> bool:
        """Whether ``text`` holds the needle (as a whole token, for a token)."""
        if self.values[kind] not in text:
            return False
        return kind not in self.tokens or self.tokens[kind][0].search(text) is not None

    def in_bytes(self, kind: str, data: bytes, encoding: str = "utf-8") -> bool:
        if self.patterns[kind, encoding] not in data:
            return False
        return kind not in self.tokens or self.tokens[kind][1][encoding].search(data) is not None

    def token_re2(self, kind: str) -> str | None:
        """The token's pattern for Arrow's RE2, which has no lookarounds; None for a plain needle."""
        if kind not in self.tokens:
            return None
        value, joined = self.values[kind], _joined(self.values[kind])
        body = "".join(ch if ch.isalnum() or not ch.isascii() else f"\\x{{{ord(ch):02x}}}" for ch in value)
        return f"(^|[^{joined}]){body}([^{joined}]|$)"

    def coincidence(self, kind: str, column: str | None = None, exact: int = 0) -> bool:
        """Whether a hit of ``kind`` may be a coincidence: a loose token anywhere but as a whole
        value of a user column."""
        return kind in self.loose and not (exact and column is not None and USER_COLUMN.search(column))

    def mask(self, text: str) -> str:
        """``text`` with each needle replaced by its kind; a token only where it stands alone, so that
        masking user 5 leaves a count of 51 alone."""
        for kind, value in self._masks:
            if kind in self.tokens:
                text = self.tokens[kind][0].sub(f"<{kind}>", text)
            else:
                text = text.replace(value, f"<{kind}>")
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        for kind, value in self._masks:
            if kind in self.tokens:
                data = self.tokens[kind][1]["utf-8"].sub(f"<{kind}>".encode(), data)
            else:
                data = data.replace(value.encode("utf-8"), f"<{kind}>".encode())
        return data

    def finding(self, store: str, where: str, kind: str, detail: str, coincidence: bool = False) -> Finding:
        return Finding(store, self.mask(where), kind, self.mask(detail), coincidence)

    def warnings(self) -> list[str]:
        notes = [
            f"the {kind} is only {len(value)} characters long: some of its hits may be coincidences"
            for kind, value in self.values.items()
            if len(value) < SHORT_NEEDLE and kind not in self.tokens
        ]
        for kind in sorted(self.loose):
            what = "a number" if _is_number(self.values[kind]) else f"only {len(self.values[kind])} characters long"
            notes.append(
                f"the {kind} is {what}, so it also stands for other things by coincidence: it counts as residue "
                "only as a whole value of a column named for users (user…, raw_id)"
            )
        return notes


def _is_number(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _joined(value: str) -> str:
    """The characters that, touching ``value``, make it part of a longer token."""
    return NUMBER_JOINED if _is_number(value) else TOKEN_JOINED


def _token_patterns(value: str) -> tuple[re.Pattern[str], dict[str, re.Pattern[bytes]]]:
    """The whole-token pattern of ``value`` as text, and as bytes in each of :data:`ENCODINGS`
    (a UTF-16 or UTF-32 neighbour is one character wide: the lookarounds are too)."""
    joined = _joined(value)
    text = re.compile(f"(?<![{joined}]){re.escape(value)}(?![{joined}])")
    by_encoding = {}
    for enc in ENCODINGS:
        pad = "\\x00" * (len("a".encode(enc)) - 1)
        charclass = f"[{joined}]{pad}".encode("ascii")
        body = re.escape(value.encode(enc))
        by_encoding[enc] = re.compile(b"(?<!" + charclass + b")" + body + b"(?!" + charclass + b")")
    return text, by_encoding


def _note(notes: list[str] | None, needles: _Needles, text: str) -> None:
    if notes is not None:
        notes.append(needles.mask(text))


# --- the whole scan ----------------------------------------------------------------------------------


def scan(settings: Settings, needles: Mapping[str, str | Token], notes: list[str] | None = None) -> list[Finding]:
    """Every place under ``settings`` that still holds one of ``needles`` (``kind -> value``).

    ``notes``, when given, receives what was not or could not be scanned, in plain sentences, and
    where a token stood alone by possible coincidence (those places are not returned)."""
    n = _Needles(needles)
    for warning in n.warnings():
        _note(notes, n, warning)
    findings = scan_files(settings, needles, notes)
    for url in sql_urls(settings, notes):
        findings += scan_sql(
            url,
            needles,
            connect_timeout_s=settings.database_connect_timeout_s,
            notes=notes,
        )
    if settings.on_servers:
        findings += scan_redis(settings.redis_url, needles, timeout_s=settings.database_connect_timeout_s, notes=notes)
    if settings.profile == "cluster":  # the online store is a Redis Cluster: every master
        findings += scan_redis_cluster(
            settings.redis_cluster_nodes,
            needles,
            timeout_s=settings.database_connect_timeout_s,
            password=urlsplit(settings.redis_url).password,
            tls=urlsplit(settings.redis_url).scheme == "rediss",
            notes=notes,
        )
    if not settings.on_servers:
        _note(notes, n, "redis: not scanned (the local profile keeps its online store in SQLite, under data_dir)")
    for note in _coincidence_notes([f for f in findings if f.coincidence]):
        _note(notes, n, note)
    return sorted(f for f in findings if not f.coincidence)


def _coincidence_notes(coincidences: Sequence[Finding]) -> list[str]:
    """One sentence per needle kind: how many places held it by possible coincidence, the first named."""
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for f in sorted(coincidences):
        by_kind[f.needle_kind].append(f)
    notes = []
    for kind, found in sorted(by_kind.items()):
        shown = "; ".join(f"{f.store} {f.where}" for f in found[:COINCIDENCES_SHOWN])
        more = f"; and {len(found) - COINCIDENCES_SHOWN:,} more" if len(found) > COINCIDENCES_SHOWN else ""
        notes.append(
            f"the {kind} stands alone in {len(found):,} other place(s), not counted as residue (there it may be "
            f"a count, a time, or an item with the same id): {shown}{more}"
        )
    return notes


def render(findings: Sequence[Finding], notes: Sequence[str] = ()) -> str:
    """One line per finding (``no residue found`` when there is none), then one per note."""
    lines = [
        f"{f.store}: {f.where} [{f.needle_kind}] {f.detail}" + (" (possible coincidence)" if f.coincidence else "")
        for f in sorted(findings)
    ]
    if not lines:
        lines.append("no residue found")
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


# --- files ---------------------------------------------------------------------------------------------


def file_roots(settings: Settings) -> list[tuple[str, Path]]:
    """The directories the pipeline writes, labelled, without one that lies inside another: the
    artifact root, the event log, the journal and the impressions may each be configured outside
    ``data_dir``, and a directory inside it is scanned once, as part of it."""
    candidates = [
        ("data_dir", settings.data_dir),
        ("artifact_root", settings.artifact_root),
        ("events_dir", settings.events_dir),
        ("wal_dir", settings.wal_dir),
        ("impressions_dir", settings.impressions_dir),
    ]
    if settings.journal_sweep_dir is not None:
        candidates.append(("journal_sweep_dir", settings.journal_sweep_dir))
    candidates += [("model_artifacts", p) for p in _registered_artifacts(settings)]
    roots: list[tuple[str, Path]] = []
    for label, path in candidates:
        path = path.resolve()
        if any(path.is_relative_to(kept) for _, kept in roots):
            continue  # inside (or the same as) a root already kept
        roots = [(other, kept) for other, kept in roots if not kept.is_relative_to(path)] + [(label, path)]
    return roots


def _registered_artifacts(settings: Settings) -> list[Path]:
    """Where the registry says its model versions' artifacts are (an experiment may keep them
    outside the artifact root); none when there is no registry to ask."""
    from sqlalchemy.engine import make_url

    from setlist.registry import artifact_roots

    tracking = settings.tracking_uri
    if tracking.startswith("sqlite:") and not Path(make_url(tracking).database or "").is_file():
        return []  # no tracking store yet: asking MLflow would create one, and a scan must change nothing
    try:
        return artifact_roots(settings)
    except Exception:  # no MLflow store yet: the artifact root itself is scanned anyway
        return []


def scan_files(settings: Settings, needles: Mapping[str, str | Token], notes: list[str] | None = None) -> list[Finding]:
    """Every file (and file name) under :func:`file_roots`; paths are shown relative to ``data_dir``,
    or as ``<label>/…`` for a root outside it."""
    n = _Needles(needles)
    findings: list[Finding] = []
    for label, root in file_roots(settings):
        if not root.exists():
            _note(notes, n, f"{label}: does not exist, nothing to scan")
            continue
        prefix = "" if label == "data_dir" else f"<{label}>/"
        findings += scan_tree(root, n, prefix, notes)
    return sorted(findings)


def scan_tree(
    root: Path, needles: Mapping[str, str | Token] | _Needles, prefix: str = "", notes: list[str] | None = None
) -> list[Finding]:
    """The files under ``root``, following no symlinks (a link may point anywhere, even out of the
    store); each path is shown as ``prefix`` + its path relative to ``root``."""
    n = needles if isinstance(needles, _Needles) else _Needles(needles)
    findings: list[Finding] = []
    for path, is_dir in _walk(root, n, notes):
        shown = prefix + path.relative_to(root).as_posix()
        for kind in n.values:
            if n.in_text(kind, path.name):
                what = "directory" if is_dir else "file"
                findings.append(n.finding("file", shown, kind, f"in the {what} name", n.coincidence(kind)))
        if is_dir:
            continue
        try:
            hits = _scan_file(path, n, notes, shown)
        except OSError as exc:
            _note(notes, n, f"file {shown}: not scanned ({type(exc).__name__}: {exc.strerror or exc})")
            continue
        for (kind, coincidence), details in hits.items():
            findings.append(n.finding("file", shown, kind, "; ".join(details), coincidence))
    return findings


def _walk(root: Path, n: _Needles, notes: list[str] | None) -> Iterator[tuple[Path, bool]]:
    """(path, is_directory) for everything under ``root``. Symlinks are left out (and counted in the
    notes), and so are special files: a FIFO would block a read."""
    stack = [root]
    links = 0
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            _note(notes, n, f"directory {directory.name}: not scanned ({type(exc).__name__})")
            continue
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                links += 1
            elif entry.is_dir(follow_symlinks=False):
                subdirs.append(path)
                yield path, True
            elif entry.is_file(follow_symlinks=False):
                yield path, False
        stack.extend(reversed(subdirs))
    if links:
        _note(notes, n, f"{links} symbolic link(s) under {root.name} not followed")


#: (needle kind, possible coincidence) -> what holds it
_Hits = dict[tuple[str, bool], list[str]]


def _scan_file(path: Path, n: _Needles, notes: list[str] | None, shown: str) -> _Hits:
    """What in the file holds each needle."""
    name = path.name.lower()
    hits: _Hits = defaultdict(list)
    # by name, or by its magic: a writer's temporary (``.x.parquet.tmp``) that a killed process left is parquet
    if name.endswith(".parquet") or _starts_with(path, b"PAR1"):
        try:
            _merge(hits, _scan_parquet(path, n))
            return hits
        except Exception as exc:  # noqa: BLE001 - any read or decoding failure: fall back to the bytes
            # parquet pages are compressed, so the bytes prove little; still better than nothing
            _note(notes, n, f"file {shown}: not readable as parquet ({type(exc).__name__}); scanned as bytes")
    is_sqlite = name.endswith(_SQLITE_NAMES) or _starts_with(path, _SQLITE_HEADER)
    with open(path, "rb") as fh:
        found = _scan_stream(fh, n)
    for kind, encodings in found.items():
        detail = "bytes " + ", ".join(encodings)
        if is_sqlite:
            # on purpose: SQLite keeps a deleted row's bytes in free pages (and the WAL keeps old
            # page images) until a VACUUM or checkpoint, unless secure_delete was on
            detail += " (SQLite file: deleted rows linger in free pages and the WAL until VACUUM)"
        hits[kind, n.coincidence(kind)].append(detail)
    if name.endswith((".npz", ".zip")):
        _merge(hits, _scan_zip(path, n, notes, shown, arrays=name.endswith(".npz")))
    elif name.endswith(tuple(STREAMS)) or name.endswith(".zst"):
        _merge(hits, _scan_compressed(path, n, notes, shown))
    return hits


def _merge(into: _Hits, more: _Hits) -> None:
    for kind, details in more.items():
        into[kind].extend(details)


def _starts_with(path: Path, header: bytes) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(header)) == header


def _scan_stream(stream: _Readable, n: _Needles) -> dict[str, list[str]]:
    """kind -> encodings found in ``stream``, read in chunks; each chunk is searched together with
    the end of the one before, so a needle split across two reads is still found. A token's match
    is only trusted where both its neighbours were read: one at a window's edge is judged again in
    the next window (or at the stream's end)."""
    edge = max(len("a".encode(enc)) for enc in ENCODINGS)
    overlap = max(len(p) for p in n.patterns.values()) - 1 + (2 * edge if n.tokens else 0)
    found: set[tuple[str, str]] = set()
    tail = b""
    block, at = stream.read(CHUNK), 0  # at: where the window starts in the stream
    while block and len(found) < len(n.patterns):
        following = stream.read(CHUNK)
        window = tail + block
        for key, pattern in n.patterns.items():
            if key in found or pattern not in window:
                continue
            kind, enc = key
            if kind not in n.tokens:
                found.add(key)
                continue
            lo, hi = (0 if at == 0 else edge), (len(window) if not following else len(window) - edge)
            if any(lo <= m.start() and m.end() <= hi for m in n.tokens[kind][1][enc].finditer(window)):
                found.add(key)
        tail = window[-overlap:] if overlap else b""
        at += len(window) - len(tail)
        block = following
    out: dict[str, list[str]] = {}
    for kind, enc in sorted(found, key=lambda k: (k[0], ENCODINGS.index(k[1]))):
        out.setdefault(kind, []).append(enc)
    return out


def _scan_zip(path: Path, n: _Needles, notes: list[str] | None, shown: str, arrays: bool) -> _Hits:
    """The members of a zip archive (``.npz`` files are ones, often compressed): their names, their
    decompressed bytes, and for ``.npz`` each string array's values, read without pickle."""
    hits: _Hits = defaultdict(list)
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                for kind in n.values:
                    if n.in_text(kind, info.filename):
                        hits[kind, n.coincidence(kind)].append(f"member name {info.filename}")
                with zf.open(info) as member:
                    for kind, encodings in _scan_stream(member, n).items():
                        hits[kind, n.coincidence(kind)].append(f"member {info.filename} bytes {', '.join(encodings)}")
                if arrays and info.filename.endswith(".npy"):
                    try:
                        with zf.open(info) as member:
                            _merge(hits, _scan_npy_values(member, info.filename, n, notes, shown))
                    except ValueError as exc:  # not a readable .npy header or array
                        _note(notes, n, f"file {shown}: array {info.filename} not readable ({exc}); bytes only")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        _note(notes, n, f"file {shown}: not readable as a zip archive ({type(exc).__name__}); scanned as bytes only")
    return hits


def _scan_npy_values(member: IO[bytes], name: str, n: _Needles, notes: list[str] | None, shown: str) -> _Hits:
    """A string array's values, exact and as substrings. Only the header is read for other dtypes,
    so a large numeric array is never loaded."""
    import numpy as np
    from numpy.lib import format as npy

    version = npy.read_magic(member)
    if version == (1, 0):
        _, _, dtype = npy.read_array_header_1_0(member)
    elif version == (2, 0):
        _, _, dtype = npy.read_array_header_2_0(member)
    else:  # a newer format: no public header reader, so the array is read (still without pickle)
        member.seek(0)
        dtype = npy.read_array(member, allow_pickle=False).dtype
    if dtype.hasobject:
        # an object array needs pickle to load, which a scan must never run; its bytes were scanned
        _note(notes, n, f"file {shown}: array {name} holds Python objects, checked as bytes only")
        return {}
    if dtype.kind not in "US":
        return {}
    member.seek(0)
    values = npy.read_array(member, allow_pickle=False).ravel()
    hits: _Hits = defaultdict(list)
    array = name.removesuffix(".npy")
    for kind, value in n.values.items():
        needle: str | bytes = value if dtype.kind == "U" else value.encode("utf-8")
        exact = int(np.count_nonzero(values == needle))
        holding = values[np.char.find(values, needle) >= 0]
        if kind in n.tokens and len(holding):
            # each distinct value is matched once: an array may repeat a few ids many times
            distinct, counts = np.unique(holding, return_inverse=False, return_counts=True)
            contains = sum(
                int(c)
                for v, c in zip(distinct, counts)
                if (n.in_text(kind, v) if dtype.kind == "U" else n.in_bytes(kind, bytes(v)))
            )
        else:
            contains = len(holding)
        if contains:
            hits[kind, n.coincidence(kind, array, exact)].append(f"array {array}: {_counts(exact, contains, 'value')}")
    return hits


def _scan_compressed(path: Path, n: _Needles, notes: list[str] | None, shown: str) -> _Hits:
    """The decompressed bytes of a ``.gz``, ``.bz2``, ``.xz`` or ``.zst`` file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".zst":
            import pyarrow as pa

            with pa.CompressedInputStream(pa.OSFile(str(path)), "zstd") as zst:
                found = _scan_stream(zst, n)
        else:
            with STREAMS[suffix](path, "rb") as stream:
                found = _scan_stream(stream, n)
    except Exception as exc:  # noqa: BLE001 - a corrupt or truncated archive: its raw bytes were scanned
        _note(notes, n, f"file {shown}: could not be decompressed ({type(exc).__name__}); scanned as bytes only")
        return {}
    return {(kind, n.coincidence(kind)): [f"decompressed bytes {', '.join(encs)}"] for kind, encs in found.items()}


def _counts(exact: int, contains: int, what: str) -> str:
    """``3 values (2 exact)``: how often a needle was met, never the needle."""
    return f"{contains} {what}{'' if contains == 1 else 's'} ({exact} exact)"


# --- parquet -----------------------------------------------------------------------------------------


def _scan_parquet(path: Path, n: _Needles) -> _Hits:
    """A parquet file read as data: its pages are compressed, so only decoded values say anything.
    Every column holding strings or bytes (also inside lists, structs, maps and dictionaries) is
    compared, row group by row group, and so is the file's key-value metadata."""
    import pyarrow.parquet as pq

    hits: _Hits = defaultdict(list)
    pf = pq.ParquetFile(path)
    try:
        for key, value in (pf.metadata.metadata or {}).items():
            for kind in n.values:
                if n.in_bytes(kind, key) or n.in_bytes(kind, value):
                    hits[kind, n.coincidence(kind)].append(f"file metadata {key.decode('utf-8', 'replace')}")
        columns = [f.name for f in pf.schema_arrow if _holds_strings(f.type)]
        if not columns:
            return hits
        exact: dict[tuple[str, str], int] = defaultdict(int)
        contains: dict[tuple[str, str], int] = defaultdict(int)
        in_dictionary: set[tuple[str, str]] = set()
        for batch in pf.iter_batches(batch_size=65_536, columns=columns):
            for name, column in zip(batch.schema.names, batch.columns):
                for label, leaf in _string_leaves(column, name):
                    for kind in n.values:
                        e, c, d = _leaf_counts(leaf, n, kind)
                        exact[label, kind] += e
                        contains[label, kind] += c
                        if d:
                            in_dictionary.add((label, kind))
        for label, kind in sorted(set(contains) | in_dictionary):
            c, e = contains[label, kind], exact[label, kind]
            if c:
                hits[kind, n.coincidence(kind, label, e)].append(f"column {label}: {_counts(e, c, 'value')}")
            elif (label, kind) in in_dictionary:
                # rows filtered out of a dictionary-encoded column leave their value in the dictionary
                # page, and a reader that decodes the column never shows it
                hits[kind, n.coincidence(kind)].append(f"column {label}: no row, but its dictionary still holds it")
    finally:
        pf.close()
    return hits


def _holds_strings(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _holds_strings(t.value_type)
    if _is_string_like(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
        return _holds_strings(t.value_type)
    if pa.types.is_large_list_view(t):
        return _holds_strings(t.value_type)
    if pa.types.is_map(t):
        return _holds_strings(t.key_type) or _holds_strings(t.item_type)
    if pa.types.is_struct(t):
        return any(_holds_strings(t.field(i).type) for i in range(t.num_fields))
    return False


def _is_string_like(t: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _string_leaves(arr: Any, label: str) -> Iterator[tuple[str, Any]]:
    """(label, flat string or binary array) for every string-bearing part of ``arr``."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        for chunk in arr.chunks:
            yield from _string_leaves(chunk, label)
        return
    t = arr.type
    if pa.types.is_dictionary(t):
        if _is_plain_string(t.value_type):
            yield label, arr  # counted through its dictionary, unreferenced values included
        else:
            yield from _string_leaves(arr.dictionary_decode(), label)
    elif _is_string_like(t):
        if pa.types.is_string_view(t):
            arr = arr.cast(pa.string())
        elif pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
            arr = arr.cast(pa.binary())
        yield label, arr
    elif pa.types.is_map(t):
        yield from _string_leaves(arr.keys, f"{label}.key")
        yield from _string_leaves(arr.items, f"{label}.value")
    elif pa.types.is_struct(t):
        for field, child in zip(t, arr.flatten()):
            yield from _string_leaves(child, f"{label}.{field.name}")
    elif hasattr(arr, "flatten") and _holds_strings(t):
        yield from _string_leaves(arr.flatten(), label)  # lists of every kind: their values


def _is_plain_string(t: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
    )


def _leaf_counts(leaf: Any, n: _Needles, kind: str) -> tuple[int, int, bool]:
    """(values equal to the needle, values containing it, whether a dictionary holds it) in one flat
    string or binary array, or a dictionary-encoded one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = leaf.dictionary if pa.types.is_dictionary(leaf.type) else leaf
    if len(values) == 0:
        return 0, 0, False
    textual = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    needle = pa.scalar(n.values[kind] if textual else n.utf8[kind], type=values.type)
    token = n.token_re2(kind)
    has = pc.match_substring(values, n.values[kind]) if token is None else pc.match_substring_regex(values, token)
    equal = pc.equal(values, needle)
    if values is leaf:
        return int(pc.sum(equal).as_py() or 0), int(pc.sum(has).as_py() or 0), False
    if not pc.any(has).as_py():
        return 0, 0, False
    # rows: each row's dictionary index picks its entry's result (a null index picks null, not counted)
    rows_equal, rows_with = pc.take(equal, leaf.indices), pc.take(has, leaf.indices)
    return int(pc.sum(rows_equal).as_py() or 0), int(pc.sum(rows_with).as_py() or 0), True


# --- SQL -----------------------------------------------------------------------------------------------


def sql_urls(settings: Settings, notes: list[str] | None = None) -> list[str]:
    """The SQL stores to scan: the metadata store (identity map, consent, the Feast registry in
    production) and MLflow's tracking store when it is another SQL database."""
    urls = [settings.metadata_url]
    tracking = settings.tracking_uri
    if _is_sql_url(tracking):
        if _sql_identity(tracking) != _sql_identity(settings.metadata_url):
            urls.append(tracking)
    elif notes is not None:
        notes.append(
            f"MLflow tracking store {_safe_url(tracking)}: not scanned (not a SQL database); scan its backend store"
        )
    return urls


def _is_sql_url(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "postgres", "mysql", "mssql")


def _sqlalchemy_url(url: str) -> str:
    """``postgresql://`` with the psycopg 3 driver, the one installed (as the settings do)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _sql_identity(url: str) -> tuple[Any, ...]:
    """Two URLs of one database compare equal (driver names and ``sqlite`` path spellings aside)."""
    from sqlalchemy.engine import make_url

    u = make_url(_sqlalchemy_url(url))
    backend = u.get_backend_name()
    if backend == "sqlite":
        return (backend, str(Path(u.database).resolve()) if u.database else None)
    return (backend, u.host, u.port, u.database, u.username)


def _safe_url(url: str) -> str:
    """``url`` without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _store_name(backend: str) -> str:
    return "postgres" if backend == "postgresql" else backend


def scan_sql(
    url: str,
    needles: Mapping[str, str | Token],
    *,
    connect_timeout_s: float = 5.0,
    statement_timeout_ms: int = SCAN_STATEMENT_TIMEOUT_MS,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Every text-like and binary column of every table in the database's default schema, one
    statement per table. A SQLite file is opened read-only (and one that does not exist is not
    created); an unreachable database raises :class:`ResidueScanError` within the connect deadline."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    n = _Needles(needles)
    url = _sqlalchemy_url(url)
    u = make_url(url)
    backend = u.get_backend_name()
    store, shown = _store_name(backend), _safe_url(url)
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise UsageError(f"sqlite URL {shown} names no database file")
        path = Path(u.database)
        if not path.exists():
            _note(notes, n, f"{store} {path.name}: does not exist, nothing to scan")
            return []
        uri, timeout = path.resolve().as_uri() + "?mode=ro", statement_timeout_ms / 1000
        # read-only through a URI: verifying an erasure must not change (or create) the database
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=timeout), hide_parameters=True
        )
        database = path.name
    else:
        # hide_parameters: a failed statement's message would otherwise carry the needle
        engine = create_engine(
            url, hide_parameters=True, **engine_options(url, connect_timeout_s, statement_timeout_ms)
        )
        database = u.database or ""
    try:
        return _scan_database(engine, n, store, database, notes)
    except SQLAlchemyError as exc:
        raise ResidueScanError(
            n.mask(f"{store} at {shown} could not be scanned: {_reason(exc)}")
        ) from None  # the chained error would print the statement; the reason above is enough
    finally:
        engine.dispose()


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _scan_database(engine: Any, n: _Needles, store: str, database: str, notes: list[str] | None) -> list[Finding]:
    from sqlalchemy import inspect

    findings: list[Finding] = []
    inspector = inspect(engine)  # connects: an unreachable database fails here
    if engine.dialect.name == "postgresql":
        _note(
            notes,
            n,
            f"{store} {database}: live rows only; deleted row versions stay in the table files until VACUUM",
        )
    for table in sorted(inspector.get_table_names()):
        checks = [(c["name"], kind) for c in inspector.get_columns(table) if (kind := _column_kind(engine, c["type"]))]
        if checks:
            findings += _scan_table(engine, n, store, database, table, checks)
    return findings


def _column_kind(engine: Any, coltype: Any) -> str | None:
    """How a column is compared: ``any`` (SQLite, where a column holds whatever type a row stored),
    ``text``, ``binary``, ``cast`` (JSON, arrays, enums and unknown types, by their text form), or
    None for types that cannot hold a string (numbers, times, booleans, UUIDs)."""
    import sqlalchemy as sa

    if engine.dialect.name == "sqlite":
        return "any"
    if isinstance(coltype, sa.types._Binary):  # LargeBinary, BYTEA, BLOB, VARBINARY
        return "binary"
    if isinstance(coltype, sa.Enum):
        return "cast"  # a native enum has no LIKE
    if isinstance(coltype, sa.String):
        return "text"
    if isinstance(
        coltype,
        sa.Integer | sa.Numeric | sa.Float | sa.Boolean | sa.Date | sa.DateTime | sa.Time | sa.Interval | sa.Uuid,
    ):
        return None
    return "cast" if engine.dialect.name == "postgresql" else None


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(dialect: str, column: str, kind: str, i: int) -> tuple[str, str]:
    """(equals, contains) SQL for needle ``i`` in ``column``, with bound parameters ``n{i}`` (text),
    ``p{i}`` (its LIKE pattern) and ``b{i}`` (its UTF-8 bytes)."""
    if kind == "any":  # SQLite: case-sensitive, and the same for text and blobs (LIKE is neither)
        value = f"CAST({column} AS BLOB)"
        return f"{value} = :b{i}", f"instr({value}, :b{i}) > 0"
    if kind == "binary":
        return f"{column} = :b{i}", f"position(:b{i} IN {column}) > 0"
    value = column if kind == "text" else f"CAST({column} AS text)"
    return f"{value} = :n{i}", f"{value} LIKE :p{i} ESCAPE '\\'"


def _scan_table(
    engine: Any, n: _Needles, store: str, database: str, table: str, checks: list[tuple[str, str]]
) -> list[Finding]:
    """One pass over ``table``: per column and needle, how many rows equal it and how many contain it."""
    from sqlalchemy import text

    quote = engine.dialect.identifier_preparer.quote
    kinds = list(n.values)
    params: dict[str, Any] = {}
    for i, kind in enumerate(kinds):
        params |= {f"n{i}": n.values[kind], f"p{i}": _like_pattern(n.values[kind]), f"b{i}": n.utf8[kind]}
    sums = []
    for column, ckind in checks:
        for i in range(len(kinds)):
            equal_sql, contain_sql = _conditions(engine.dialect.name, quote(column), ckind, i)
            sums += [f"sum(CASE WHEN {equal_sql} THEN 1 ELSE 0 END)", f"sum(CASE WHEN {contain_sql} THEN 1 ELSE 0 END)"]
    sql = f"SELECT {', '.join(sums)} FROM {quote(table)}"
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    with engine.connect() as conn:
        row = conn.execute(text(sql), used).one()
    findings = []
    values = iter(row)
    for column, ckind in checks:
        for i, kind in enumerate(kinds):
            exact, contains = int(next(values) or 0), int(next(values) or 0)
            if contains and kind in n.tokens and contains > exact:
                # SQL has no portable whole-token match: the rows holding the text are read and judged here
                _, contain_sql = _conditions(engine.dialect.name, quote(column), ckind, i)
                contains = _token_rows(engine, n, kind, table, column, ckind, contain_sql, used)
            if contains:
                detail = f"{_counts(exact, contains, 'row')} (database {database})"
                coincidence = n.coincidence(kind, column, exact)
                findings.append(n.finding(store, f"{table}.{column}", kind, detail, coincidence))
    return findings


def _token_rows(
    engine: Any, n: _Needles, kind: str, table: str, column: str, ckind: str, contain_sql: str, params: dict[str, Any]
) -> int:
    """How many of the rows whose ``column`` contains the token's text hold it as a whole token;
    read in batches, so a large table never sits in memory."""
    from sqlalchemy import text

    quote = engine.dialect.identifier_preparer.quote
    value = {"any": f"CAST({quote(column)} AS BLOB)", "binary": quote(column), "text": quote(column)}.get(
        ckind, f"CAST({quote(column)} AS text)"
    )
    sql = f"SELECT {value} FROM {quote(table)} WHERE {contain_sql}"
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    count = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=SQL_ROWS_PER_READ).execute(text(sql), used)
        for (cell,) in result:
            if isinstance(cell, str):
                count += n.in_text(kind, cell)
            elif cell is not None:
                count += n.in_bytes(kind, bytes(cell))
    return count


# --- Redis ----------------------------------------------------------------------------------------------


def scan_redis(
    url: str, needles: Mapping[str, str | Token], *, timeout_s: float = 5.0, notes: list[str] | None = None
) -> list[Finding]:
    """Every key of the URL's database (SCAN, never KEYS, so Redis keeps serving): the key's bytes,
    and its value's bytes: a string, a hash's fields and values, the members of sets, sorted sets
    and lists, the fields and values of streams. Feast's online store keys each row by the
    serialized entity key, which holds the pseudonym's UTF-8 bytes, so containment finds its rows."""
    from redis.exceptions import RedisError

    n = _Needles(needles)
    # one retry without backoff: a dead Redis fails the scan within a timeout, not redis-py's seconds
    client = fail_fast_redis(url, timeout_s, retries=1)
    try:
        findings = _scan_keys(client, n, notes)
    except RedisError as exc:
        raise ResidueScanError(
            n.mask(f"redis at {_safe_url(url)} could not be scanned: {type(exc).__name__}: {exc}")
        ) from None
    finally:
        client.close()
    _note(
        notes,
        n,
        "redis: live keys only; its RDB and AOF files on the server keep deleted keys until they are rewritten",
    )
    return findings


def scan_redis_cluster(
    nodes: Sequence[str],
    needles: Mapping[str, str | Token],
    *,
    timeout_s: float = 5.0,
    password: str | None = None,
    tls: bool = False,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Every key on every master of a Redis Cluster (the cluster profile's online store), as
    :func:`scan_redis` reads one Redis. A cluster's SCAN walks one node, so each master is scanned
    through a client of its own, and its keys are read there (they are all in its slots). The masters
    are those of the cluster's slot map, which must cover every slot; a master that cannot be
    scanned (dead, refusing) raises :class:`ResidueScanError`, as a scan that did not happen must
    not read as a clean one. Replicas hold copies of their master's keys and are not scanned."""
    from redis.exceptions import RedisClusterException, RedisError

    n = _Needles(needles)
    seeds = ",".join(nodes)
    try:
        cluster = fail_fast_redis_cluster(list(nodes), timeout_s, retries=1, password=password, tls=tls)
    except (RedisError, RedisClusterException, ValueError) as exc:
        raise ResidueScanError(
            n.mask(f"redis cluster at {seeds} could not be scanned: {type(exc).__name__}: {exc}")
        ) from None
    findings: list[Finding] = []
    try:
        masters = sorted(cluster.get_primaries(), key=lambda node: node.name)
        for master in masters:
            try:
                findings += _scan_keys(
                    cluster.get_redis_connection(master), n, notes, store="redis cluster", where=f"{master.name} "
                )
            except RedisError as exc:
                raise ResidueScanError(
                    n.mask(
                        f"redis cluster master {master.name} could not be scanned "
                        f"(its keys are unverified): {type(exc).__name__}: {exc}"
                    )
                ) from None
    finally:
        cluster.close()
    _note(
        notes,
        n,
        f"redis cluster: {len(masters)} masters scanned ({', '.join(m.name for m in masters)}); live keys only, "
        "their RDB and AOF files keep deleted keys until they are rewritten",
    )
    return findings


def _scan_keys(
    client: Any, n: _Needles, notes: list[str] | None, store: str = "redis", where: str = ""
) -> list[Finding]:
    findings: list[Finding] = []
    unread: dict[str, int] = defaultdict(int)
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, count=REDIS_BATCH)
        if keys:
            findings += _scan_key_batch(client, keys, n, unread, store, where)
        if cursor == 0:
            break
    for rtype, count in sorted(unread.items()):
        _note(notes, n, f"{store}: {count} key(s) of type {rtype}: values not read (their names were checked)")
    return findings


def _scan_key_batch(
    client: Any, keys: list[bytes], n: _Needles, unread: dict[str, int], store: str = "redis", where: str = ""
) -> list[Finding]:
    """Two pipelined round trips per batch: the keys' types, then their values."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = [t.decode() if isinstance(t, bytes) else str(t) for t in pipe.execute()]
    readers = {
        "string": lambda p, k: p.get(k),
        "hash": lambda p, k: p.hgetall(k),
        "set": lambda p, k: p.smembers(k),
        "zset": lambda p, k: p.zrange(k, 0, -1),
        "list": lambda p, k: p.lrange(k, 0, -1),
        "stream": lambda p, k: p.xrange(k),
    }
    readable = [(k, t) for k, t in zip(keys, types) if t in readers]
    for t in types:
        if t not in readers and t != "none":  # "none": expired between SCAN and TYPE
            unread[t] += 1
    pipe = client.pipeline(transaction=False)
    for key, rtype in readable:
        readers[rtype](pipe, key)
    values = dict(zip((k for k, _ in readable), pipe.execute())) if readable else {}
    findings = []
    for key, rtype in zip(keys, types):
        parts = [("key name", key), *_value_parts(rtype, values.get(key))]
        for kind in n.values:
            places = sorted({place for place, data in parts if n.in_bytes(kind, data)}, key=_PLACE_ORDER.index)
            if places:
                shown = where + _show_key(key, n)
                findings.append(n.finding(store, shown, kind, f"{rtype}: {', '.join(places)}", n.coincidence(kind)))
    return findings


_PLACE_ORDER = ["key name", "value", "hash field", "hash value", "member", "element", "stream field", "stream value"]


def _value_parts(rtype: str, value: Any) -> Iterable[tuple[str, bytes]]:
    """(place, bytes) for each part of a value read by its type's command."""
    if value is None:
        return
    if rtype == "string":
        yield "value", value
    elif rtype == "hash":
        for field, v in value.items():
            yield "hash field", field
            yield "hash value", v
    elif rtype in ("set", "zset"):
        for member in value:
            yield "member", member
    elif rtype == "list":
        for element in value:
            yield "element", element
    elif rtype == "stream":
        for _, fields in value:
            for field, v in fields.items():
                yield "stream field", field
                yield "stream value", v


def _show_key(key: bytes, n: _Needles) -> str:
    """A key fit to print: the needles masked, bytes that are not printable ASCII escaped (Feast's
    keys are binary), cut to :data:`KEY_SHOWN` characters."""
    text = n.mask_bytes(key).decode("ascii", "backslashreplace")
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= KEY_SHOWN else text[: KEY_SHOWN - 1] + "…"
