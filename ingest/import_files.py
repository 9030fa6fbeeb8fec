"""Reading the user's files: the formats an import takes (delimited text, JSON lines, parquet,
optionally compressed), the columns the user names, and ids as clean strings.

Public logs come in more layouts than comma-separated with a header: tab- or ``::``-separated,
pipe-separated catalogues, no header line, Latin-1 text, extensions such as ``.dat`` or ``.data``.
The separator and the encoding are read off the file unless the user names them, and what was
chosen is reported, so an import never guesses silently."""

from __future__ import annotations

import ast
import codecs
import csv
import functools
import io
import itertools
import json
import lzma
import re
import warnings
import zipfile
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import charset_normalizer
import numpy as np
import pandas as pd

from ingest.binary_formats import not_text, parquet_inside
from ingest.keyed_json import keyed_object
from ingest.mixed_encoding import MIXED, MixCount
from setlist.compressed import ArchiveError, compression_of, open_compressed
from setlist.errors import UsageError
from setlist.numbers import to_numbers


class ImportFormatError(UsageError, ValueError):  # still a ValueError for callers that catch that
    """The input cannot be read as interactions; the message says what to change (exit 2)."""


# a separator must split every sampled line into the same number (≥ 2) of fields; of those, the
# one giving the most fields wins ("Heat, The (1995)|…|0|1" has one comma on each line, but 24
# pipe-separated fields), and on a tie the earlier in this list. Ctrl-A (``\x01``) is Hive's default
# and the RecSys Challenge 2020's: a control character in text is only ever a separator. ``<SEP>`` is
# the Million Song Dataset's (``unique_tracks.txt``: titles with commas between four such fields)
CTRL_A = "\x01"
SEPARATORS = (CTRL_A, "<SEP>", "::", "\t", ",", ";", "|")
#: runs of spaces or tabs, leading ones ignored: columns aligned by padding (Epinions' and Ciao's
#: ``rating_with_timestamp.txt``, MATLAB's ``save -ascii``), where a single space would make every
#: pad an empty field
WHITESPACE = r"\s+"
_SEP_NAMES = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": " ",
    "whitespace": WHITESPACE,
    WHITESPACE: WHITESPACE,
    "ctrl-a": CTRL_A,
    "^a": CTRL_A,
}
#: tried only when none of SEPARATORS fits: a space also sits inside titles and dates of files
#: separated by something else, but some logs (Epinions-style ``user item rating`` lines) use it alone
SPACE = " "
#: cells that exports write for a missing value (R and pandas, SQL dumps, JSON): not ids
MISSING_TOKENS = ("na", "n/a", "nan", "null", "none", "\\n")
_SAMPLE_LINES = 200
#: single-character separators whose formats never quote (see ``_quoting``)
UNQUOTED = ("\t", CTRL_A)
#: the share of sampled lines a separator must split alike when none splits them all alike
SNIFF_AGREE = 0.9


@dataclass(frozen=True)
class TextLayout:
    """How a delimited text file is laid out. ``None`` means: read it off the file."""

    sep: str | None = None
    #: the file has no header line; these are its first columns, in order
    names: tuple[str, ...] | None = None
    encoding: str | None = None
    #: the command-line options' prefix, for messages: "" (--sep) or "items-" (--items-sep)
    prefix: str = ""

    def option(self, name: str) -> str:
        return f"--{self.prefix}{name}"

    @classmethod
    def from_options(cls, sep: str | None, names: str | None, encoding: str | None, prefix: str = "") -> TextLayout:
        if sep is not None:
            sep = _SEP_NAMES.get(sep.lower(), sep)
            if "\\" in sep and sep != WHITESPACE:  # written as an escape ('\x01', '\001'), as a shell passes it
                try:
                    sep = codecs.decode(sep, "unicode_escape")
                except UnicodeDecodeError:
                    raise ImportFormatError(
                        f"--{prefix}sep {sep!r} is no separator: a backslash starts an escape such as '\\x01' or '\\t'"
                    ) from None
            if sep == "":
                raise ImportFormatError(f"--{prefix}sep is empty: give the separator, e.g. '::' or tab")
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ImportFormatError(
                    f"--{prefix}encoding {encoding!r} is no text encoding Python knows (e.g. utf-8, cp1252, latin-1, "
                    "utf-16, gb18030)"
                ) from None
        parsed = None
        if names is not None:
            parsed = tuple(n.strip() for n in names.split(","))
            if any(not n for n in parsed) or len(set(parsed)) != len(parsed):
                raise ImportFormatError(
                    f"--{prefix}names must be distinct, comma-separated column names, got {names!r}"
                )
        return cls(sep=sep, names=parsed, encoding=encoding, prefix=prefix)


@dataclass
class Table:
    frame: pd.DataFrame
    #: what was read off the file rather than told (separator, encoding), for the import's report
    notes: list[str] = field(default_factory=list)
    #: line numbers (1 = the first line of the file) of lines with the wrong number of fields, not read
    malformed: list[int] = field(default_factory=list)
    #: columns the file has that were not kept (``read_table``'s ``keep``), for messages that list columns
    dropped: list[str] = field(default_factory=list)


_SKIPPED = re.compile(r"Skipping line (\d+)")


@contextmanager
def _bad_lines(into: list[int]) -> Iterator[None]:
    """Collect the numbers of the lines pandas reads past (``on_bad_lines="warn"``) into ``into``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        yield
    into.extend(
        int(n)
        for w in caught
        if issubclass(w.category, pd.errors.ParserWarning)
        for n in _SKIPPED.findall(str(w.message))
    )
    for w in caught:  # anything else is not ours to swallow
        if not issubclass(w.category, pd.errors.ParserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _read_csv(path: Path | io.TextIOBase, kwargs: dict) -> tuple[pd.DataFrame, list[int]]:
    """``pd.read_csv`` that reads past lines with the wrong number of fields and says which they
    were: one stray separator in a million lines should not stop an import, nor vanish silently."""
    lines: list[int] = []
    with _bad_lines(lines):
        frame = pd.read_csv(path, on_bad_lines="warn", **kwargs)
    return frame, sorted(lines)


def _suffixes(path: Path) -> tuple[str, str | None]:
    """(format extension, compression extension) of ``ratings.csv.gz`` → (".csv", ".gz")."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = compression_of(path)
    rest = suffixes[:-1] if compression else suffixes
    return (rest[-1] if rest else ""), compression


_JSON_KINDS = (".jsonl", ".ndjson", ".json")


def _format(path: Path) -> str:
    """The format extension ``_suffixes`` reads off the name, except that a file named as text whose
    content is JSON records (or Python dicts, one per line) is taken for ``.json``: LibraryThing's
    ``reviews.txt``, a ``.jsonl`` saved as ``.txt``. Read as delimited text, its first record would
    be split at its commas into names; and a file named as text that is XML is taken for ``.xml``."""
    ext, _ = _suffixes(path)
    if ext in (*_JSON_KINDS, ".parquet", ".pq", ".xml") or path.suffix.lower() == ".zst" or not path.is_file():
        return ext
    if parquet_inside(path):
        return ".parquet"
    try:
        with open_compressed(path, "rt", encoding="utf-8", errors="replace") as f:
            head = f.read(256).lstrip("\ufeff \t\r\n")
    except (OSError, EOFError, ValueError):
        return ext
    first = head.split("\n", 1)[0].strip()
    # an XML export named as text: its declaration, or a first line that is an element and nothing more
    # (a CSV whose first cell looks like a tag, "<python>,u1,i1", is no XML)
    if first.startswith("<?xml") or re.fullmatch(r"<[A-Za-z_][\w.-]*(?:\s+[\w:.-]+\s*=\s*\"[^\"]*\")*\s*/?>", first):
        return ".xml"
    return ".json" if re.match(r"\{|\[\s*\{", head) else ext


def _json_named_as(path: Path) -> list[str]:
    ext, _ = _suffixes(path)
    return [] if ext in _JSON_KINDS else [f"read as JSON records, as its content is (its name says {ext or 'nothing'})"]


def _parquet_named_as(path: Path) -> list[str]:
    ext, _ = _suffixes(path)
    return (
        [] if ext in (".parquet", ".pq") else [f"read as parquet, as its content is (its name says {ext or 'nothing'})"]
    )


def _sample(path: Path, encoding: str) -> list[str]:
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        lines = []
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                lines.append(line)
            if len(lines) >= _SAMPLE_LINES:
                break
    return lines


def _quoting(sep: str) -> int:
    """Tab-separated text (IANA's TSV) and ``::`` files have no quoting: a quote character is text.
    Read as CSV, a track named ``"Weird Song`` would open a quoted field that swallows every line
    up to the next quote character."""
    return csv.QUOTE_NONE if len(sep) > 1 or sep in UNQUOTED or sep < " " else csv.QUOTE_MINIMAL


def _split_line(line: str, sep: str, strip: bool = True) -> list[str]:
    """One line's fields as the file's separator and quoting split them, stripped unless told not."""
    if sep == WHITESPACE:
        return line.split()
    if len(sep) > 1 or _quoting(sep) == csv.QUOTE_NONE:
        fields = line.split(sep)
    else:
        fields = next(csv.reader([line], delimiter=sep))
    return [f.strip() for f in fields] if strip else fields


def _fields(lines: Sequence[str], sep: str) -> Counter[int]:
    """How many of ``lines`` split into each number of fields."""
    if sep == WHITESPACE:
        return Counter(len(line.split()) for line in lines)
    if len(sep) > 1:
        return Counter(len(line.split(sep)) for line in lines)
    rows = csv.reader(io.StringIO("\n".join(lines)), delimiter=sep, quoting=_quoting(sep))
    return Counter(len(row) for row in rows)


def _count_lines(path: Path, encoding: str) -> int:
    """Non-blank lines of the file (pandas skips blank ones)."""
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        return sum(1 for line in f if line.strip())


def _width(lines: Sequence[str], sep: str) -> int:
    """The number of fields most lines have (a stray malformed line does not set it)."""
    return _fields(lines, sep).most_common(1)[0][0]


def sniff_separator(lines: Sequence[str]) -> str | None:
    """The separator that splits the lines into one number of fields (the most, when several do);
    failing that, the one that does so for the largest share of lines, if at least ``SNIFF_AGREE``
    of them: a malformed line among the first ones (read past later, and reported) does not hide
    the layout."""
    best, key = None, (0.0, 1)
    for sep in SEPARATORS:
        counts = _fields(lines, sep)
        if not counts:
            continue
        width, n = counts.most_common(1)[0]
        share = n / sum(counts.values())
        if width > 1 and (share == 1.0 or share >= SNIFF_AGREE) and (share, width) > key:
            best, key = sep, (share, width)
    if best is None:  # a control character in text is only ever a separator (Hive's, a tool's own: '\x02')
        controls = sorted({c for line in lines[:_SAMPLE_LINES] for c in line if c < " " and c != "\t"})
        if found := next((c for c in controls if sniff_separator_alone(lines, c)), None):
            return found
    if best is None and _padded(lines) and sniff_separator_alone(lines, WHITESPACE):
        return WHITESPACE
    if best is None and sniff_separator_alone(lines, SPACE):
        return SPACE
    return best


def _padded(lines: Sequence[str]) -> bool:
    """Most lines pad their fields with several spaces or open with some: aligned columns."""
    padded = sum(bool(re.match(r"[ \t]|.*\S {2,}\S", line)) for line in lines)
    return bool(lines) and padded >= SNIFF_AGREE * len(lines)


def sniff_separator_alone(lines: Sequence[str], sep: str) -> bool:
    """``sep`` splits the lines into one number (≥ 2) of fields, or nearly all of them."""
    counts = _fields(lines, sep)
    if not counts:
        return False
    width, n = counts.most_common(1)[0]
    return width > 1 and n / sum(counts.values()) >= SNIFF_AGREE


def _encoding(path: Path, asked: str | None, notes: list[str], option: str) -> str:
    if asked is not None:
        return asked
    if (wide := _wide_encoding(path)) is not None:
        notes.append(f"encoding {wide.upper()} ({option} sets it)")
        return wide
    try:
        with open_compressed(path, "rt", encoding="utf-8") as f:
            while f.read(1 << 20):
                pass
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if (cjk := _cjk_encoding(path)) is not None:
        notes.append(
            f"encoding {cjk} (the file is not UTF-8, and its bytes read as Chinese, Japanese or Korean text; "
            f"if its text reads wrong, {option} names it: gb18030, big5, shift_jis, euc-kr)"
        )
        return cjk
    # a Windows export is cp1252: Latin-1 would read its curly quotes and dashes (bytes 0x80-0x9F) as
    # invisible control characters. Without such bytes the two read alike, and Latin-1 is said.
    mix = MixCount()
    windows = False
    with open_compressed(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            mix.add(block)
            windows = windows or bool(_C1_BYTES.search(block))
    if mix.mixed:  # UTF-8 lines beside others: read as cp1252, each of them would turn to mojibake
        notes.append(
            f"encoding UTF-8, and cp1252 for its {mix.foreign_bytes:,} byte{'s' if mix.foreign_bytes != 1 else ''} "
            f"that are no UTF-8 (the file mixes the two, line by line; {option} sets one)"
        )
        return MIXED
    if windows:
        try:
            with open_compressed(path, "rt", encoding="cp1252") as f:
                while f.read(1 << 20):
                    pass
            notes.append(
                f"encoding cp1252, Windows' (the file is not UTF-8 and has its curly quotes; {option} sets it)"
            )
            return "cp1252"
        except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
            pass
    # older public logs (MovieLens 1M and 100k among them) are Latin-1; it decodes any byte
    notes.append(f"encoding latin-1 (the file is not UTF-8; {option} sets it)")
    return "latin-1"


#: byte-order marks of the encodings whose every character takes two or four bytes, UTF-32's first
#: (its little-endian mark begins with UTF-16's)
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _wide_encoding(path: Path) -> str | None:
    """UTF-16 or UTF-32, as Windows tools write "Unicode" text (Excel's Unicode Text, PowerShell's
    redirections): by the byte-order mark, or without one by a NUL byte beside every ASCII one. Read
    as UTF-8 or Latin-1, every other character would be a NUL and the header a column of noise."""
    try:
        with open_compressed(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return None
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    pairs = len(head) // 2
    if pairs < 8 or head.count(0) < pairs * 0.9:
        return None
    even, odd = head[0 : 2 * pairs : 2].count(0), head[1 : 2 * pairs : 2].count(0)
    if odd >= pairs * 0.9 and even == 0:
        return "utf-16-le"
    if even >= pairs * 0.9 and odd == 0:
        return "utf-16-be"
    return None


#: bytes looked at to tell a two-byte encoding, and the high bytes they must hold to tell anything
_CJK_SAMPLE = 4 << 20
_CJK_MIN_HIGH = 40
#: the share of high bytes that come in pairs in Chinese, Japanese or Korean text (accented letters of a
#: European text stand alone between ASCII ones)
_CJK_PAIRED = 0.9
#: a run of two high bytes, and one alone
_HIGH_PAIR = re.compile(rb"[\x80-\xff]{2}")
_HIGH = re.compile(rb"[\x80-\xff]")
#: two-byte encodings tried in turn, each with the script its text must show (kana, Hangul), if any
_TWO_BYTE = (("shift_jis", r"[\u3040-\u30ff]"), ("euc-kr", r"[\uac00-\ud7a3]"), ("gb18030", None), ("big5", None))
#: Chinese text that decodes as both: which one reads as language is told by charset_normalizer
_CHINESE = ["gb18030", "big5"]


def _cjk_encoding(path: Path) -> str | None:
    """A two-byte encoding for a file that is not UTF-8 when its high bytes come in pairs (JData's
    GBK user file): Shift-JIS when its text then holds kana, EUC-KR when Hangul, else GB18030 (GBK's
    superset) or Big5, whichever reads as Chinese. Big5 writes some characters' second byte as an
    ASCII letter, so its high bytes need not pair up: a file whose do not is Big5 when it reads so
    rather than as a European text. None for a European text, or when the whole file does not
    decode so."""
    with open_compressed(path, "rb") as f:
        sample = f.read(_CJK_SAMPLE)
    high = len(_HIGH.findall(sample))
    if high < _CJK_MIN_HIGH:
        return None
    cut = sample[: sample.rfind(b"\n") + 1] or sample  # never half a character at the sample's end
    if 2 * len(_HIGH_PAIR.findall(sample)) < _CJK_PAIRED * high:
        best = _best_of(cut, ["big5", "cp1252", "latin_1"])
        return "big5" if best == "big5" and _decodes(path, "big5") else None
    for encoding, script in _chinese_first(_TWO_BYTE, cut):
        try:
            text = cut.decode(encoding)
        except UnicodeDecodeError:
            continue
        wide = sum(ord(c) > 0x2E7F for c in text)
        if (script is None or len(re.findall(script, text)) * 4 >= wide) and _decodes(path, encoding):
            return encoding
    return None


def _decodes(path: Path, encoding: str) -> bool:
    try:
        with open_compressed(path, "rt", encoding=encoding) as f:
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return False
    return True


def _best_of(sample: bytes, encodings: list[str]) -> str | None:
    """Which of ``encodings`` reads ``sample`` as language (charset_normalizer's judgement), if any."""
    best = charset_normalizer.from_bytes(sample, cp_isolation=encodings).best()
    return None if best is None else best.encoding


def _chinese_first(encodings: Sequence[tuple[str, str | None]], cut: bytes) -> Sequence[tuple[str, str | None]]:
    """``encodings`` with Big5 before GB18030 when the sample reads as Big5 text: GB18030 decodes
    most Big5 bytes too, into characters no one writes."""
    for encoding in _CHINESE:
        try:
            cut.decode(encoding)
        except UnicodeDecodeError:
            return encodings
    if _best_of(cut, _CHINESE) != "big5":
        return encodings
    return sorted(encodings, key=lambda e: e[0] == "gb18030")  # stable: Big5 moves ahead of it only


#: bytes that are control characters in Latin-1 and printable in cp1252 (’ “ ” – € …)
_C1_BYTES = re.compile(rb"[\x80-\x9f]")


#: a line holding only an id and a colon: the item whose rows follow (the Netflix Prize's layout)
_ITEM_HEADER = re.compile(r"^\s*([^\s:,;|]+):\s*$")
#: the column the item ids of such a file are read into
ITEM_HEADER_COLUMN = "item_id"


def _item_headed(lines: Sequence[str]) -> bool:
    """The file starts with an item header, and most other lines are rows: ``1:`` then
    ``1488844,3,2005-09-06`` lines. One header per item keeps them rare after the first line."""
    if not lines or not _ITEM_HEADER.match(lines[0]):
        return False
    return sum(bool(_ITEM_HEADER.match(line)) for line in lines) <= len(lines) // 2


class _ItemHeaders:
    """Each header line's id as the item of the rows after it; header lines themselves are not rows.
    A header is a line whose first field is ``id:`` and whose other fields are empty. Applied chunk
    by chunk, the last item of one chunk carries into the next chunk's first rows."""

    def __init__(self) -> None:
        self.headers = 0
        self.first: str | None = None
        self.last: str | None = None

    def apply(self, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
        if ITEM_HEADER_COLUMN in frame.columns:
            raise ImportFormatError(
                f"{path.name} names its items on lines of their own ('1:'), read into a column "
                f"{ITEM_HEADER_COLUMN!r}; --names must not name another column {ITEM_HEADER_COLUMN!r}"
            )
        first = frame.iloc[:, 0].astype("string")
        rest_empty = frame.iloc[:, 1:].isna().all(axis=1) if frame.shape[1] > 1 else True
        header = (first.str.fullmatch(r"\s*[^\s:,;|]+:\s*").fillna(False) & rest_empty).to_numpy(dtype=bool)
        item = first.where(header).str.strip().str.rstrip(":")
        if self.last is not None and len(item) and not header[0]:
            item.iloc[0] = self.last
        item = item.ffill()
        if self.first is None and header.any():
            self.first = str(item[header].iloc[0])
        if item.notna().any():
            self.last = str(item.dropna().iloc[-1])
        self.headers += int(header.sum())
        out = frame.loc[~header].copy()
        out.insert(0, ITEM_HEADER_COLUMN, item[~header].astype(object))
        return out.reset_index(drop=True)

    def note(self) -> str:
        return (
            f"items on lines of their own ('{self.first or '?'}:' then its rows, the Netflix Prize's layout): "
            f"{self.headers:,} items read into column {ITEM_HEADER_COLUMN!r}"
        )


class _RepeatedHeaders:
    """Lines that repeat the header line (files joined with their headers, exports paged with one per
    page): the column names again, not a row. Only for a file whose header names the columns, and only
    where every cell is its column's name, so that a row whose values happen to name a column or two
    stays a row. Without this each would be quarantined as an event with an unreadable time and type."""

    def __init__(self) -> None:
        self.count = 0

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty or frame.shape[1] < 2:
            return frame
        names = [str(c).strip() for c in frame.columns]
        # the first column alone first: a cheap test that all but a few rows fail
        hit = (frame.iloc[:, 0].astype("string").str.strip() == names[0]).fillna(False).to_numpy(dtype=bool)
        if not hit.any():
            return frame
        at = np.flatnonzero(hit)
        rows = frame.iloc[at]
        for k, name in enumerate(names[1:], start=1):
            cells = rows.iloc[:, k].astype("string").str.strip()
            # a nameless column (pandas' "Unnamed: 3") repeats as an empty cell
            same = cells.isna() if name.startswith("Unnamed: ") else cells == name
            hit[at] &= same.fillna(False).to_numpy(dtype=bool)
        if not hit.any():
            return frame
        self.count += int(hit.sum())
        return frame.loc[~hit].reset_index(drop=True)

    def note(self) -> str | None:
        if not self.count:
            return None
        s = "s" if self.count != 1 else ""
        return (
            f"skipped {self.count:,} repeated header line{s} (the column names again, as in files joined with "
            "their headers)"
        )


def _long_first_rows(
    path: Path,
    encoding: str,
    lines: Sequence[str],
    sep: str,
    names: list[str] | None,
    names_option: str = "--names",
) -> list[int]:
    """The line numbers of the first data rows while they have more fields than the file has
    columns. pandas would not read such a row past as it does later long rows: it would take the
    extra leading fields as the frame's index and shift every column of every row, silently; and
    once the first is read past, the next long one is the first. They are read past and reported
    like any other malformed line."""
    at = 0 if names is not None else 1  # in the sample of non-blank lines: the header comes first
    if len(lines) <= at:
        return []
    width = len(names) if names is not None else max(_fields(lines[:1], sep))
    long = 0
    while at + long < len(lines) and max(_fields(lines[at + long : at + long + 1], sep)) > width:
        long += 1
    if not long:
        return []
    if at + long >= len(lines) and long >= 2:
        # every row long is no stray line: the header and the rows disagree (a separator ending each row)
        fields = max(_fields(lines[at:], sep))
        header = f"{names_option if names is not None else 'its header'} names {width}"
        raise ImportFormatError(
            f"every row of {path.name} that was looked at has more fields (up to {fields}) than {header}: if each "
            f"row ends with a separator, remove it; else name every column with {names_option}"
        )
    seen, out = -1, []
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        for number, line in enumerate(f, start=1):
            seen += bool(line.strip())
            if at <= seen < at + long and line.strip():
                out.append(number)
            if seen >= at + long - 1 and len(out) == long:
                break
    return out


#: an items file's column names that hold genres (``import_items`` reads them so)
GENRE_NAMES = (
    "genre",
    "genres",
    "genre_name",
    "genre_ids",  # KKBox's songs.csv: codes, several pipe-separated
    "genre_id",
    "category",
    "categories",
    "category_name",
    "category_str",
    "main_category",
    "main_cat",  # Amazon's 2018 metadata (main_category in 2023's)
    "primary_category",  # Sephora's products
    "item_category",  # Tianchi's
    "category_code",  # REES46's dotted path (empty for some products: their category_id fills in)
    "category_id",
    "cate",  # JData's
    "cate_id",  # Taobao's display ads
    "style",
    "tags",  # last: a catalogue's tags (Stack Exchange's) are its genres when it has nothing else
    "tag",  # KuaiRand's video features: a list of tag ids
    "topics",  # a repository's (GitHub's), a list
    "tag_list",
    "manual_tag_list",  # WeChat Channels' feed_info (its machine_tag_list weighs each tag)
    "class",  # RecBole's ml-100k.item (class:token_seq)
)


def _rejoin_free_text(
    frame: pd.DataFrame,
    malformed: list[int],
    path: Path,
    encoding: str,
    sep: str,
    notes: list[str],
) -> tuple[pd.DataFrame, list[int]]:
    """An items file's lines with more fields than columns, when its last column is free text: the
    separator was part of that text (Netflix's ``72,1974,At Home Among Strangers, A Stranger Among
    His Own``), so the extra fields are rejoined into it rather than the item losing its metadata.
    A last column of 0/1 flags or numbers is no free text: those lines stay read past."""
    last = frame.columns[-1]
    values = frame[last].dropna()
    # a last column of genres takes the extra fields as more genres (Yahoo! Music's genre_1|…|genre_k)
    genres = str(last).lower() in GENRE_NAMES
    if not genres and (values.empty or to_numbers(values).notna().mean() > 0.5):
        return frame, malformed
    wanted = set(malformed)
    width = frame.shape[1]
    rows: list[list[str]] = []
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        for number, line in enumerate(f, start=1):
            if number in wanted:
                fields = _split_line(line.rstrip("\r\n"), sep, strip=False)
                rest = [f for f in fields[width - 1 :] if f.strip()] if genres else fields[width - 1 :]
                rows.append([*fields[: width - 1], ("|" if genres else sep).join(rest)])
    if not rows:
        return frame, malformed
    fixed = pd.DataFrame(rows, columns=frame.columns).replace("", None)
    what = "more genres" if genres else "free text holding the separator"
    notes.append(
        f"{len(rows):,} line{'s' if len(rows) != 1 else ''} with more fields than columns: the extra fields "
        f"kept in the last column {str(last)!r}, {what}"
    )
    return pd.concat([frame, fixed], ignore_index=True), []


@dataclass
class _TextPlan:
    """How a delimited text file will be read: what was read off its first lines, and pandas' options."""

    path: Path
    encoding: str
    sep: str
    names: list[str] | None
    kwargs: dict
    long_first: list[int]
    item_headed: bool
    what: str
    notes: list[str]
    #: header lines of an item-headed file read so far (they are lines, not rows)
    item_headers: int = 0
    #: lines that repeat the header line, read so far (lines, not rows)
    repeated_headers: int = 0
    #: a header line before ``--names``' rows, skipped (``_header_beside_names``)
    skipped_header: int = 0
    #: records of an unquoted items file that a line break inside a field split, rejoined (fields)
    rejoined: list[list[str]] = field(default_factory=list)
    #: whether pandas reads the file through ``_CleanedLines`` (short lines or lone carriage returns)
    cleaned: bool = False
    #: the file's lines that are not blank, when the short-line scan counted them
    nonblank: int | None = None
    #: the short lines rejoined into ``rejoined``, emptied by ``_CleanedLines``
    blanked: list[int] = field(default_factory=list)

    @contextmanager
    def source(self) -> Iterator[tuple[Path | io.TextIOBase, dict]]:
        """What pandas reads and its options: the file, or its cleaned lines (short ones emptied)."""
        if not self.cleaned:
            yield self.path, self.kwargs
            return
        kwargs = {k: v for k, v in self.kwargs.items() if k != "encoding"}
        with _CleanedLines(self.path, self.encoding, self.blanked) as lines:
            yield lines, kwargs


#: a line of a record written as ``key: value`` lines (SNAP's ``review/userId: A3SG…``)
_KEY_VALUE = re.compile(r"^\s*[A-Za-z_]+/[A-Za-z_]+:\s")
#: a share of the sampled lines that sets a shape no row of which is a user and an item
_SHAPE_SHARE = 0.9


#: a user's line in a user-headed file: its id and how many rows follow (``0|3``)
_USER_HEADER = re.compile(r"^\s*([^|\t,;\s]+)\|(\d+)\s*$")


#: rows after a first user's line, when the sample ends inside its block, that tell the layout
_USER_BLOCK_ROWS = 20


def _user_headed(lines: Sequence[str]) -> bool:
    """Blocks of a ``user|count`` line and that many rows, over the sampled lines: at least two
    whole blocks, each with its count of rows, and nothing before the first; or a first block the
    sample ends inside of, with enough of its rows (a heavy first user)."""
    at, blocks = 0, 0
    while at < len(lines):
        header = _USER_HEADER.match(lines[at])
        if header is None or int(header.group(2)) == 0:  # ``x|0`` lines are a table's rows
            return False
        end = at + 1 + int(header.group(2))
        if any(_USER_HEADER.match(line) for line in lines[at + 1 : end]):
            return False
        if end > len(lines):  # the sample ends inside this block: enough of its rows tell too
            return blocks >= 1 or len(lines) - at - 1 >= _USER_BLOCK_ROWS
        at, blocks = end, blocks + 1
    return blocks >= 2


#: a namespace of Vowpal Wabbit's lines (``|user 1 2:0.186839``, ``|id-552343``): two or more on a line
_NAMESPACE = re.compile(r"(?:^|\s)\|[\w-]+(?=\s|$)")
#: LIBSVM's ``index:value`` and LIBFFM's ``field:index:value``
_SPARSE_FEATURE = re.compile(r"\d+(?::\d+)?:[-+.\deE]+")


def _sparse_features(line: str) -> bool:
    """A label and then two or more numbered features, each ``index:value``."""
    tokens = line.split()
    return len(tokens) >= 3 and all(_SPARSE_FEATURE.fullmatch(t) for t in tokens[1:])


def _matrix_market(text: Sequence[str], name: str) -> str:
    """Matrix Market's coordinate file: a header, comment lines, a line of the matrix's size and its
    count of entries, then one entry per line. Read as rows, the size line would be an interaction
    of its own (the last row with the last column, rated with the count of entries)."""
    header = text[0].lower().split()
    if "array" in header:  # a dense matrix: every cell, rated or not
        return (
            f"{name} is a dense Matrix Market array (every cell of the matrix, column by column), not a list of "
            "interactions: write the cells that hold a rating as rows of user, item and rating first"
        )
    pattern = "pattern" in header  # entries without a value: who interacted with what
    names = "user,item" if pattern else "user,item,rating"
    rating = "" if pattern else " --rating-col rating"
    strip = _piped(name, "grep -v '^%'")
    return (
        f"{name} is a Matrix Market coordinate file ({text[0].strip()[:60]!r}): its comment lines and its size line "
        f"are no rows. Take them off first, e.g. {strip} | tail -n +2 > entries.txt, and import that "
        f"with --sep whitespace --names {names} --user-col user --item-col item{rating} --no-time (rows as users, "
        "columns as items, as recommender matrices are usually written; swap the two names if yours is the "
        "other way round)"
    )


def _unrowed_shape(lines: Sequence[str], name: str, told: bool = False) -> str | None:
    """What to do with a file whose lines are no rows of a user and an item, said before pandas
    reads it as some other thing: records of ``key: value`` lines, or lines that are a count and
    then that many ids (CiteULike's ``users.dat``, read otherwise as a matrix or as long rows)."""
    text = [line for line in lines if line.strip()]
    if len(text) < 3:
        return None
    if sum(bool(_KEY_VALUE.match(line)) for line in text) >= _SHAPE_SHARE * len(text):
        return (
            f"{name} holds records written as 'key: value' lines ({text[0].strip()[:40]!r}, …), a blank line between "
            "them (SNAP's review files): write them as a table of one row per record first (README, 'Shapes refused "
            "with what to do')"
        )
    if _user_headed(text):
        return (
            f"{name} names a user on a line of its own with a count ({text[0].strip()[:30]!r}), that many rows "
            "following (Yahoo! Music's layout): write each row with its user first, e.g. awk -F'|' 'NF == 2 "
            f'{{user = $1; next}} {{print user "\\t" $0}}\' {name} > rows.tsv, and import those with '
            "--names user,item,rating,… --user-col user --item-col item (README, 'Shapes refused with what to do')"
        )
    if text[0].startswith("%") and text[0].lstrip("%").lower().startswith("matrixmarket"):
        return _matrix_market(text, name)
    if sum(_sparse_features(line) for line in text) >= _SHAPE_SHARE * len(text):
        return (
            f"the lines of {name} are in LIBSVM's format, a label and then numbered features ({text[0].strip()[:50]!r}"
            ", …; 'field:feature:value' in LIBFFM's): the numbers are the dataset's own feature encoding, not a user "
            "and an item. Write rows of user, item and outcome from the log the features were made from first, or "
            "from the features that hold the user's and the item's ids, where the dataset's documentation names them"
        )
    if sum(len(_NAMESPACE.findall(line)) >= 2 for line in text) >= _SHAPE_SHARE * len(text):
        return (
            f"the lines of {name} are in Vowpal Wabbit's format, features after namespaces ({text[0].strip()[:50]!r}"
            ", …; Yahoo!'s Front Page log): write rows of user, item, time and outcome from them first. Where the "
            "lines name no user (Yahoo!'s do not), no user's history can be learned from them"
        )
    fields = [line.split() for line in text]
    counted = sum(f[0].isdigit() and int(f[0]) == len(f) - 1 > 0 for f in fields)
    if counted >= _SHAPE_SHARE * len(text) and len({len(f) for f in fields}) > 1:
        return (
            f"each line of {name} is a count and then that many ids ({text[0].strip()[:40]!r}, …; CiteULike's "
            "users.dat, a user per line numbered from 0): write it as rows of user and item first, e.g. "
            f"awk '{{for (i = 2; i <= NF; i++) print NR - 1 \",\" $i}}' {name} > rows.csv, and import those with "
            "--names user,item --user-col user --item-col item --no-time (README, 'Shapes refused with what to do')"
        )
    return None if told else _id_lists(text, fields, name)  # told how to split it, the user knows its shape


#: distinct line lengths, at least, of a file of id lists (a table's rows have one, or two with a gap)
_LIST_LENGTHS = 4


def _id_lists(text: Sequence[str], fields: list[list[str]], name: str) -> str | None:
    """Lines of ids between spaces, of many lengths: a user's id and then their items (LightGCN's and
    NGCF's ``train.txt``: the first ids all differ), or a basket of items with no user (kosarak, FIMI's
    ``retail.dat``). Either needs a row per user and item, which no separator gives."""
    if any(re.search(r"[,;|\t]", line) for line in text) or len({len(f) for f in fields}) < _LIST_LENGTHS:
        return None
    if not all(token.isdigit() for f in fields for token in f):  # numbered ids alone: no header, no words
        return None
    # a user's id first: the first ids all differ, and nearly every line lists an item after it (a user
    # of no items may have a line of their id alone)
    firsts = [f[0] for f in fields]
    paired = sum(len(f) >= 2 for f in fields) >= _SHAPE_SHARE * len(fields)
    if len(set(firsts)) == len(firsts) and paired:
        return (
            f"each line of {name} is a user's id and then their items ({text[0].strip()[:40]!r}, …; LightGCN's "
            "train.txt): write it as rows of user and item first, e.g. "
            f"awk '{{for (i = 2; i <= NF; i++) print $1 \",\" $i}}' {name} > rows.csv (a test.txt of the same users: "
            "cat both into the awk, as one import), and import those with --names user,item --user-col user "
            "--item-col item --no-time (README, 'Shapes refused with what to do')"
        )
    return (
        f"each line of {name} lists items and names no user ({text[0].strip()[:40]!r}, …; kosarak's click streams, "
        "FIMI's retail.dat baskets): number the lines as users first, e.g. "
        f"awk '{{for (i = 1; i <= NF; i++) print NR \",\" $i}}' {name} > rows.csv, and import those with "
        "--names user,item --user-col user --item-col item --no-time (README, 'Shapes refused with what to do')"
    )


def _backslash_quotes(lines: Sequence[str]) -> bool:
    """Whether the sampled lines escape quotes with a backslash (``\\"Iron\\" Giant``, Sketchfab's names)
    and never double them (a CSV's own way). An escaped quote that ends its field (Book-Crossing's
    ``"… \\"Soup for the Soul\\""``) and an empty field (``;"";``) are no doubled quotes."""
    return any('\\"' in line for line in lines) and not any(_doubled_quote(line) for line in lines)


_FIELD_EDGE = ";,\t|\r\n"


def _doubled_quote(line: str) -> bool:
    for match in re.finditer('""', line):
        at, after = match.start(), match.end()
        before = line[at - 1] if at else ""
        if before == "\\":
            continue  # an escaped quote, then the field's closing one
        if (not before or before in _FIELD_EDGE) and (after == len(line) or line[after] in _FIELD_EDGE):
            continue  # an empty quoted field
        return True
    return False


def _plan_text(path: Path, ext: str, layout: TextLayout, what: str) -> _TextPlan:
    if ext in _SPREADSHEETS or _spreadsheet_inside(path):  # read at once or in chunks, a file comes this way
        raise ImportFormatError(_spreadsheet_advice(path, what))
    if (other := not_text(path, what)) is not None:
        raise ImportFormatError(other)
    notes: list[str] = []
    encoding = _encoding(path, layout.encoding, notes, layout.option("encoding"))
    sep = layout.sep
    lines = _sample(path, encoding)
    item_headed = what == "interactions" and _item_headed(lines)
    if item_headed:
        if layout.names is None:
            raise ImportFormatError(
                f"{path.name} names each item on a line of its own ('{lines[0].strip()}') with its rows after it "
                f"(the Netflix Prize's layout): name the columns of the rows with {layout.option('names')}, e.g. "
                f"{layout.option('names')} user_id,rating,date; the item ids are read into column "
                f"{ITEM_HEADER_COLUMN!r}"
            )
        lines = [line for line in lines if not _ITEM_HEADER.match(line)]
    told = layout.sep is not None or layout.names is not None
    if what == "interactions" and (shape := _unrowed_shape(lines, path.name, told)):
        raise ImportFormatError(shape)
    if lines and (lead := _leading_lines(path, encoding, lines, layout)):
        raise ImportFormatError(lead)
    if sep == SPACE and _padded(lines) and sniff_separator_alone(lines, WHITESPACE):
        # told "space" of aligned columns, each pad would be an empty field and every column shifted
        sep = WHITESPACE
        notes.append(f"its columns are padded with runs of spaces: read as {layout.option('sep')} whitespace")
    if sep is None:
        sniffed = sniff_separator(lines) if lines else None
        default = "\t" if ext == ".tsv" else "," if ext in (".csv", ".txt") else None
        sep = sniffed or default
        if sep is None:
            raise ImportFormatError(
                f"cannot tell how the {what} file {path.name} is separated: no separator among "
                f"{', '.join(repr(s) for s in SEPARATORS)} or a space splits its lines into the same number of fields; "
                f"pass {layout.option('sep')} (an import takes delimited text, JSON lines or arrays, XML and .parquet)"
            )
        if sniffed and sniffed != default:
            notes.insert(0, f"separator {_sep_label(sniffed)} (read off the file; {layout.option('sep')} sets it)")
    uneven = _uneven_widths_note(lines, sep) if what == "items" and lines else None
    names = None
    header: str | None = None  # a header line above rows that --names names, skipped
    if layout.names is not None and lines and _split_line(lines[0], sep) == list(layout.names):
        # the file has a header after all, and it says what the option does: read it as one
        notes.append(f"its first line names the columns as {layout.option('names')} does: read as its header")
    elif layout.names is not None:
        width = _width(lines, sep) if lines else len(layout.names)
        if len(layout.names) > width:
            raise ImportFormatError(
                f"{layout.option('names')} gives {len(layout.names)} columns but the {what} file {path.name} "
                f"has {width} field{'s' if width != 1 else ''} per line (separator {_sep_label(sep)}); if another "
                f"string separates its fields, {layout.option('sep')} names it (any characters: '::', '<SEP>', '\\x02')"
            )
        # unnamed trailing columns get positional names, so none of them becomes an index
        names = list(layout.names) + [f"column_{k + 1}" for k in range(len(layout.names), width)]
        if lines and (header := _header_beside_names(lines, sep, layout.names)):
            notes.append(
                f"its first line is a header ({header}): skipped, the columns named by {layout.option('names')}"
            )
    kwargs: dict = {"dtype": str, "keep_default_na": False, "na_values": [""], "encoding": encoding}
    if sep == WHITESPACE:  # the C parser's own reading of runs of blanks (leading ones ignored)
        kwargs.update(sep=WHITESPACE, quoting=csv.QUOTE_MINIMAL)
    elif len(sep) > 1:  # pandas' C parser takes one character
        kwargs.update(engine="python", sep=re.escape(sep), quoting=csv.QUOTE_NONE)
    else:
        kwargs.update(sep=sep, quoting=_quoting(sep))
        if _backslash_quotes(lines):
            # a writer's escape (pandas' escapechar, MySQL's exports): read so, or titles keep the backslashes
            kwargs.update(escapechar="\\")
            notes.append('its quotes are escaped with a backslash (\\"): read as quotes')
    if names is not None:
        kwargs.update(header=None, names=names)
    # an item-headed file's first row is its one-field header line: pandas sees no long first row
    long_first = [] if item_headed else _long_first_rows(path, encoding, lines, sep, names, layout.option("names"))
    # the header's own line (blank lines may come first): a longer header is no malformed row
    at = _first_line(path, encoding) if header is not None else None
    long_first = [n for n in long_first if at is None or n != at]
    short: list[int] = []
    lone_cr = False
    quoted_short: list[int] = []
    nonblank: int | None = None
    if not item_headed and lines and sep != WHITESPACE:
        columns = len(names) if names is not None else max(_fields(lines[:1], sep))
        header_line = _first_line(path, encoding) if names is None else at
        short, lone_cr, usual_end, nonblank = _short_lines(path, encoding, sep, columns, header_line)
        if (
            kwargs["quoting"] == csv.QUOTE_NONE
            and sep in UNQUOTED
            and _quoted_tabs(path, encoding, lines, sep, columns, short)
        ):
            kwargs["quoting"] = csv.QUOTE_MINIMAL
            uneven = None  # the sampled lines' widths were counted unquoted
            notes.append(
                "its fields are quoted as a spreadsheet's tab-separated export quotes them (a field opening with \" "
                'holds line breaks, tabs or doubled ""): read as quoted'
            )
        if kwargs["quoting"] != csv.QUOTE_NONE:
            # a quoted field may span lines: only the records a CSV reading finds short are short
            quoted_short = _short_records(path, encoding, sep, columns, header_line) if short else []
            short, lone_cr = [], False
    if long_first or at is not None:
        kwargs["skiprows"] = ([at - 1] if at is not None else []) + [n - 1 for n in long_first]
    plan = _TextPlan(path, encoding, sep, names, kwargs, long_first, item_headed, what, notes)
    plan.skipped_header = int(header is not None)
    plan.nonblank = nonblank
    if short:
        left, plan.rejoined = _rejoin_split_records(path, encoding, sep, columns, short, usual_end)
        plan.blanked = sorted(set(short) - set(left))
    plan.cleaned = bool(plan.blanked) or lone_cr
    if uneven and not (plan.rejoined and len(plan.blanked) == len(short)):  # all rejoined: nothing else to say
        notes.append(uneven)
    if plan.rejoined:
        n = len(plan.rejoined)
        notes.append(
            f"{n:,} record{'s' if n != 1 else ''} split over several lines by a line break inside a field (the file "
            "quotes nothing): rejoined, each break read as a space"
        )
    if left := sorted((set(short) - set(plan.blanked)) | set(quoted_short)):
        shown = ", ".join(map(str, left[:10])) + (", …" if len(left) > 10 else "")
        notes.append(
            f"{len(left):,} line{'s' if len(left) != 1 else ''} with fewer than its {columns} fields (line {shown}): "
            "the missing fields read as empty"
        )
    return plan


#: how a comment line opens: a shell's or R's ``#``, MATLAB's and Matrix Market's ``%``, C's ``//``
_COMMENT = re.compile(r"\s*(?:#|%|//)")
#: Excel's first line naming the separator of a CSV it is to open (``sep=;``)
_EXCEL_SEP = re.compile(r"sep=(\S{1,3})")


def _leading_lines(path: Path, encoding: str, lines: Sequence[str], layout: TextLayout) -> str | None:
    """What to do with lines above a file's rows that are none: comment lines (SNAP's ``# Nodes: …``,
    a tool's ``# generated …``), or Excel's ``sep=;``. Read as the header, the first would name one
    column and every row would be malformed."""
    lines = [lines[0].lstrip("\ufeff"), *lines[1:]]  # a byte-order mark is no part of the first line's text
    if _EXCEL_SEP.fullmatch(lines[0].strip()):
        sep = _EXCEL_SEP.fullmatch(lines[0].strip()).group(1)  # type: ignore[union-attr]
        return (
            f"the first line of {path.name} ({lines[0].strip()!r}) is Excel's note of its separator, no header: take "
            f"it off first, e.g. {_from_line(path, 2, encoding)} > {_rows_name(path)}, and import that (the separator "
            f"{sep!r} is read off the file)"
        )
    if printed := _printed_table(lines, path.name):
        return printed
    if whole := _quoted_lines(lines, path.name):
        return whole
    comments = 0
    while comments < len(lines) and _COMMENT.match(lines[comments]):
        comments += 1
    rows = lines[comments:]
    if not comments or not rows:
        return None
    sep = layout.sep or sniff_separator(rows)
    last = _COMMENT.sub("", lines[comments - 1], count=1).strip()
    width = _width(rows, sep) if sep else 1
    fields = _split_line(last, sep) if sep is not None else []
    # names, not numbers: KONECT's "% 6 3 4" counts the edges and the two sides' nodes
    named = width > 1 and len(fields) == width and not any(f.replace(".", "", 1).isdigit() for f in fields)
    if comments == 1 and named:  # a header line that opens with a '#' ("#user,item,rating"): read as one
        return None
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:  # blank lines among those taken off
        first_row = next((n for n, line in enumerate(f, start=1) if line.strip() and not _COMMENT.match(line)), 1)
    names = (
        f"; its last comment line names the columns: --names {','.join(fields)}" if named and not layout.names else ""
    )
    cut = _from_line(path, first_row, encoding)
    return (
        f"{path.name} opens with {comments:,} comment line{'s' if comments != 1 else ''} ({lines[0].strip()[:50]!r}"
        f"{', …' if comments > 1 else ''}) above its rows: take them off first, e.g. {cut} > "
        f"{_rows_name(path)}, and import that{names}"
    )


#: the shell's way to read each compression to its standard output
_DECOMPRESS = {".gz": "gzip -dc", ".bz2": "bzip2 -dc", ".xz": "xz -dc", ".zip": "unzip -p"}


def _piped(name: str, command: str) -> str:
    """``command`` run on the file ``name``, through its decompression when its name says it has one."""
    _, compression = _suffixes(Path(name))
    return f"{command} {name}" if compression is None else f"{_DECOMPRESS[compression]} {name} | {command}"


def _from_line(path: Path, line: int, encoding: str = "utf-8") -> str:
    """The shell line that writes ``path`` from its ``line``-th line on, uncompressed, and as UTF-8 where
    its characters are two or four bytes wide (``tail`` counts bytes as lines)."""
    tail = f"tail -n +{line}"
    if encoding.lower().startswith(("utf-16", "utf-32")):
        return f"{_piped(path.name, f'iconv -f {encoding.upper()} -t UTF-8')} | {tail}"
    return _piped(path.name, tail)


#: a printed table's rule line: dashes (or = and :) between + or | (psql's ``---+---``, MySQL's ``+---+``,
#: Markdown's ``|---|``)
_RULE = re.compile(r"(?=.*[-=]{3})(?=.*[+|])[-=:+| ]+")


def _printed_table(lines: Sequence[str], name: str) -> str | None:
    """A query's result as a tool prints it, or a Markdown table: its rule lines (and psql's ``(200
    rows)`` footer) would be read as rows, MySQL's box as one column."""
    rule = next((line.strip() for line in lines[:3] if _RULE.fullmatch(line.strip())), None)
    if rule is None:
        return None
    export = (
        "export the query's rows as CSV instead (psql: \\copy (SELECT …) TO 'rows.csv' WITH CSV HEADER; mysql "
        "--batch writes tab-separated rows; sqlite3 -csv -header), or "
    )
    if rule.startswith("+"):
        boxed = _piped(name, "grep '^|'")
        kind, strip = "MySQL's boxed output", f"{boxed} | sed -e 's/^| *//' -e 's/ *|$//'"
    elif "|" in rule:
        kind, strip, export = "a Markdown table", _piped(name, "sed -e '2d' -e 's/^ *| *//' -e 's/ *| *$//'"), ""
    else:
        kind, strip = "psql's aligned output", _piped(name, r"sed -e '2d' -e '/^([0-9]* rows\?)$/d'")
    return (
        f"{name} is a printed table, {kind} (its rule line {rule[:40]!r}), whose rules would be read as rows: "
        f"{export}take its rules off, e.g. {strip} > rows.psv, and import that with --sep '|' (a '|' inside a "
        "value would split it)"
    )


#: a line quoted whole, a separator inside: "1,31,2.5,1260759144"
_QUOTED_LINE = re.compile(r'"([^"]*[,;\t|][^"]*)"')


def _quoted_lines(lines: Sequence[str], name: str) -> str | None:
    """Lines each quoted whole, as some exports write them: read as CSV, each is one field, and the file
    one column named after its whole header line."""
    if len(lines) < 3 or sum(bool(_QUOTED_LINE.fullmatch(line.strip())) for line in lines) < _SHAPE_SHARE * len(lines):
        return None
    unquote = _piped(name, "sed -e 's/^\"//' -e 's/\"[[:space:]]*$//'")
    return (
        f"each line of {name} is quoted whole ({lines[0].strip()[:50]!r}), so it would read as one field: take "
        f"the outer quotes off first, e.g. {unquote} > {_rows_name(Path(name))}, and import that"
    )


def _rows_name(path: Path) -> str:
    """The name of a file of ``path``'s rows alone, beside it: ``ratings.csv`` → ``ratings-rows.csv``."""
    stem, _, rest = path.name.partition(".")
    _, compression = _suffixes(path)
    rest = rest.removesuffix(compression[1:]).rstrip(".") if compression else rest
    return f"{stem}-rows.{rest}" if rest else f"{stem}-rows"


def _short_lines(
    path: Path, encoding: str, sep: str, columns: int, header_line: int | None
) -> tuple[list[int], bool, str, int | None]:
    """Lines of a delimited file with fewer fields than it has columns, whether any line ends in a
    lone carriage return, the line end most lines have, and how many lines are not blank (what
    ``_count_lines`` counts, so a quoted file is not read once more for it). pandas fills a short line's missing
    fields with nothing, silently; a line break inside a field (CareerBuilder's job descriptions)
    splits one record into two such lines, and pandas' C reader counts lone carriage returns its
    own way, or fails on them."""
    out: list[int] = []
    lone_cr, crlf, lines, need, blank = False, 0, 0, columns - 1, 0
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        # one count per line, the rest only for the few short ones: this pass reads every import's file
        for lines, line in enumerate(f, start=1):
            if line.count(sep) < need:
                if not line.strip():
                    blank += 1  # as _count_lines counts them
                # a line of a tab alone is short, not blank: a piece of a record split by line breaks
                # (CareerBuilder's "\t\r" between two bare carriage returns)
                if line.rstrip("\r\n") and lines != header_line:
                    out.append(lines)
            if line[-1:] == "\r":
                lone_cr = True
            elif line[-2:] == "\r\n":
                crlf += 1
    # blank lines are seen among the short ones only: a file of one column has none
    return out, lone_cr, "\r\n" if crlf * 2 > lines else "\n", (lines - blank) if need > 0 else None


def _quoted_tabs(path: Path, encoding: str, lines: Sequence[str], sep: str, columns: int, short: Sequence[int]) -> bool:
    """Whether a tab-separated file quotes its fields as CSV does, though TSV has no quoting (IANA's):
    a spreadsheet's export does, and a job description with line breaks and tabs inside its quotes
    then splits into short lines read unquoted (CareerBuilder-style ``jobs.tsv``: 950 jobs became
    2,854 items). Said so only when a field in the first lines opens with a quote, and either lines
    are short or a quoted field doubles a quote inside, and a quoted reading gives every record of
    the whole file its columns: a lone quote in a title (``"Weird Song``) swallows lines then, and
    the file stays unquoted. Where the first lines open no quote, the file is searched on for a field
    that doubles one (pandas' ``to_csv(sep="\\t")`` quotes only the few names with a quote inside:
    This Is My Jam's ``"Heroes"``, written with its quotes doubled, kept them in the ids)."""
    opening = [f for line in lines for f in line.split(sep) if f.startswith('"')]
    if not opening and not (sep == "\t" and _doubled_quote_later(path, encoding)):
        return False
    doubled = not opening or any(len(f) > 2 and f.endswith('"') and '""' in f[1:-1] for f in opening)
    if not short and not doubled:
        return False
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        try:
            return all(len(row) == columns for row in csv.reader(f, delimiter=sep) if any(c.strip() for c in row))
        except csv.Error:
            return False


#: characters of a tab-separated file searched for a quoted field past its first lines
QUOTE_SCAN_CHARS = 256 << 20
#: a tab-separated field quoted as CSV quotes it, with a quote doubled inside (a title ``"Heroes"`` so)
_DOUBLED_FIELD = re.compile(r'(?:^|\t)"[^\t\n]*""[^\t\n]*"(?=\t|\r?\n|$)', re.M)


def _doubled_quote_later(path: Path, encoding: str) -> bool:
    """Whether the file's first ``QUOTE_SCAN_CHARS`` hold such a field. A match across a chunk's edge
    may be false; the whole-file quoted reading that follows is the test."""
    seen, carry = 0, ""
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        while seen < QUOTE_SCAN_CHARS and (chunk := f.read(1 << 20)):
            seen += len(chunk)
            if _DOUBLED_FIELD.search(carry + chunk):
                return True
            carry = chunk[-4096:]
    return False


def _short_records(path: Path, encoding: str, sep: str, columns: int, header_line: int | None) -> list[int]:
    """The first line of each record of a quoted file with fewer fields than it has columns (a line
    cut by a stray carriage return, a row missing its last fields), as a CSV reading finds them."""
    out: list[int] = []
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        start = 1
        try:
            for row in reader:
                if row and start != header_line and len(row) < columns and any(cell.strip() for cell in row):
                    out.append(start)
                start = reader.line_num + 1
        except csv.Error:  # a field larger than the reader allows, a NUL: pandas says what it makes of them
            return out
    return out


class _CleanedLines(io.TextIOBase):
    """A text file's lines as ``enumerate(open(newline=""))`` numbers them, each ended by one
    ``\\n``, those in ``blank`` emptied: pandas then counts lines as the import does (a lone
    carriage return is a line end to both), reads no carriage return, and skips the emptied
    lines as blank ones."""

    def __init__(self, path: Path, encoding: str, blank: Collection[int]) -> None:
        self._file = open_compressed(path, "rt", encoding=encoding, newline="")
        self._lines = enumerate(self._file, start=1)
        self._blank = set(blank)
        self._pending = ""

    def readable(self) -> bool:
        return True

    def _next_line(self) -> str | None:
        got = next(self._lines, None)
        if got is None:
            return None
        number, line = got
        return "\n" if number in self._blank else line.rstrip("\r\n") + "\n"

    def read(self, size: int | None = -1) -> str:
        parts, have = [self._pending], len(self._pending)
        while size is None or size < 0 or have < size:
            line = self._next_line()
            if line is None:
                break
            parts.append(line)
            have += len(line)
        text = "".join(parts)
        if size is None or size < 0:
            self._pending = ""
            return text
        self._pending = text[size:]
        return text[:size]

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        if self._pending:
            line, sep, rest = self._pending.partition("\n")
            if sep:
                self._pending = rest
                return line + sep
            self._pending = ""
            return line + (self._next_line() or "")
        return self._next_line() or ""

    def close(self) -> None:
        self._file.close()
        super().close()


def _rejoin_split_records(
    path: Path, encoding: str, sep: str, columns: int, short: list[int], usual_end: str
) -> tuple[list[int], list[list[str]]]:
    """Consecutive short lines whose fields add up to a whole record, once each break is taken for
    text inside a field, rejoined into that record. A break is taken for text only where the line
    ends otherwise than the file's lines do (a carriage return in a file of line feeds, or the
    reverse): a file whose rows merely lack trailing fields is not stitched together. The rest stay
    as they are, and are said."""
    wanted = set(short)
    texts: dict[int, str] = {}
    odd_end: set[int] = set()  # lines ending otherwise than the file's lines do
    blank: set[int] = set()  # a break of two carriage returns leaves an empty line inside the record
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        for number, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if number in wanted:
                texts[number] = text
            elif not text:
                blank.add(number)
            if line[len(text) :] not in (usual_end, ""):
                odd_end.add(number)
    left: list[int] = []
    records: list[list[str]] = []
    group: list[int] = []

    def close() -> None:
        left.extend(group)
        group.clear()

    for number in short:
        if group and not (group[-1] in odd_end and all(k in blank for k in range(group[-1] + 1, number))):
            close()
        group.append(number)
        joined = " ".join(texts[n] for n in group)
        fields = joined.count(sep) + 1
        if fields == columns and len(group) > 1:
            records.append(joined.split(sep))
            group.clear()
        elif fields >= columns:
            close()
    close()
    return sorted(left), records


def _uneven_widths_note(lines: Sequence[str], sep: str) -> str | None:
    """A warning when an items file's lines have several widths, none of them nearly all: an unquoted
    list in a middle column (Zhihu's topics) shifts every column after it, so the title is read from
    another field on most lines, and only the lines longer than the header are named as such."""
    counts = _fields(lines, sep)
    total = sum(counts.values())
    modal = counts.most_common(1)[0][0]
    # longer lines alone are a free-text or genre list last, which is rejoined (``_rejoin_free_text``)
    shorter = sum(n for w, n in counts.items() if w < modal)
    if len(counts) < 2 or counts[modal] >= SNIFF_AGREE * total or shorter < (1 - SNIFF_AGREE) * total:
        return None
    shown = ", ".join(f"{w} ({n / total:.0%})" for w, n in sorted(counts.items())[:5])
    return (
        f"warning: its lines have different numbers of fields ({shown} of the first {total}): a column holding an "
        "unquoted list shifts the columns after it, so titles and genres may be read from the wrong fields; quote "
        "that column, or move it last, before importing"
    )


#: a named column whose other first lines are numbers this often makes a word above them a header
HEADER_NUMBERS = 0.9


def _header_beside_names(lines: list[str], sep: str, names: Sequence[str]) -> str | None:
    """The first line, quoted, when it is a header though ``--names`` names the columns: a file
    whose header is shorter or longer than its rows (JODIE's, with 172 unnamed features after four
    names) must be named, and its header is then no row. It is one when its fields are the names
    given (as far as both go, two at least), or words above columns of numbers."""
    first = _split_line(lines[0], sep)
    shown = repr(sep.join(first[: len(names)])[:60])
    k = min(len(first), len(names))
    if k >= min(2, len(names)) and [f.lower() for f in first[:k]] == [n.lower() for n in names[:k]]:
        return shown
    first = first[: len(names)]
    words = all(re.fullmatch(r"[A-Za-z_][\w .\-]*", f) and f.lower() not in NOT_WORDS for f in first)
    if len(first) < len(names) or not words:
        return None
    rows = [_split_line(line, sep) for line in lines[1:200]]
    for k in range(len(names)):
        cells = [r[k] for r in rows if len(r) > k and r[k]]
        if cells and sum(_is_number(c) for c in cells) >= HEADER_NUMBERS * len(cells):
            return shown
    return None


#: cells that read as words but stand for a value: a missing one, or a float's nan and inf
NOT_WORDS = frozenset((*MISSING_TOKENS, "inf", "infinity"))


def _is_number(text: str) -> bool:
    """A number written out in digits (``nan`` and ``inf`` are no numbers of a column here)."""
    return re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", text.strip()) is not None


def _first_line(path: Path, encoding: str) -> int:
    """The number (from 1) of the file's first line that is not blank."""
    with open_compressed(path, "rt", encoding=encoding, newline="") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                return number
    return 1


#: line breaks in one cell from which joined lines read as a stray quote rather than text
STRAY_QUOTE_BREAKS = 50


def _most_breaks(frame: pd.DataFrame) -> int:
    """The most line breaks any one text cell of ``frame`` holds."""
    most = 0
    for col in frame.columns:
        cells = frame[col]
        if cells.dtype == object or pd.api.types.is_string_dtype(cells):
            counts = cells.astype("string").str.count("\n").dropna()  # an all-empty column counts no break
            most = max(most, int(counts.max()) if len(counts) else 0)
    return most


def _text_notes(
    plan: _TextPlan, rows: int, malformed: list[int], width: int, frame: pd.DataFrame | None = None
) -> list[str]:
    """What the whole read says about the file: lines joined by quoted fields, lines read past.
    With the ``frame`` read, the most line breaks in one cell are said too, and many (a stray quote
    swallowing the rows after it) make the note a warning; a review's few paragraphs do not."""
    notes: list[str] = []
    # a quoted field may hold line breaks; more lines than rows says some did: reviews' text, or in
    # a log a stray quote character, said either way rather than silently folded into another row
    header_rows = (0 if plan.names is not None else 1) + plan.item_headers + plan.repeated_headers + plan.skipped_header
    lines_read = rows + len(malformed) + header_rows
    quoted = plan.kwargs["quoting"] != csv.QUOTE_NONE
    total = (
        (plan.nonblank if plan.nonblank is not None else _count_lines(plan.path, plan.encoding))
        if quoted
        else lines_read
    )
    if total > lines_read:
        joined = total - lines_read
        most = _most_breaks(frame) if frame is not None else None
        within = f", at most {most} line break{'s' if most != 1 else ''} in one cell" if most is not None else ""
        lead = "warning: " if most is not None and most >= STRAY_QUOTE_BREAKS else ""
        notes.append(
            f"{lead}{joined:,} line{'s' if joined != 1 else ''} read as part of quoted fields that span lines "
            f"({rows:,} rows from {total:,} lines{within}): as text with line breaks (a review's paragraphs) is "
            "meant to be; if the file does not quote its fields, a stray quote character joined them: check the "
            "rows around it"
        )
    if malformed:
        shown = ", ".join(str(n) for n in malformed[:10]) + (", …" if len(malformed) > 10 else "")
        notes.append(
            f"skipped {len(malformed):,} malformed line{'s' if len(malformed) != 1 else ''} "
            f"(not {width} fields): line {shown}"
        )
    return notes


def _read_text(path: Path, ext: str, layout: TextLayout, what: str) -> Table:
    plan = _plan_text(path, ext, layout, what)
    notes = plan.notes
    with plan.source() as (source, kwargs):
        frame, malformed = _read_csv(source, kwargs)
    if plan.long_first:
        malformed = sorted([*malformed, *plan.long_first])
    if what == "items" and malformed:  # lines too long; too short ones were rejoined, or are read past
        frame, malformed = _rejoin_free_text(frame, malformed, path, plan.encoding, plan.sep, notes)
    if plan.rejoined:
        whole = pd.DataFrame(plan.rejoined, columns=frame.columns).replace("", None)
        frame = pd.concat([frame, whole], ignore_index=True)
    split = None
    if plan.item_headed:
        split = _ItemHeaders()
        frame = split.apply(frame, path)
        plan.item_headers = split.headers
    again = _RepeatedHeaders()
    if plan.names is None:
        frame = again.apply(frame)
        plan.repeated_headers = again.count
        frame = _stripped_names(frame, notes)
    notes.extend(_text_notes(plan, len(frame), malformed, len(frame.columns) - (split is not None), frame))
    if split is not None:
        notes.append(split.note())
    if note := again.note():
        notes.append(note)
    return Table(frame, notes, malformed)


def _stripped_names(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """A header's names without the spaces around them (``userId , movieId``, as a query tool pads
    them), said once: no option should have to name ``' movieId '``. Names that would then clash are
    left as written."""
    names = [str(c).strip() if isinstance(c, str) else c for c in frame.columns]
    if names == list(frame.columns) or len(set(names)) < len(names):
        return frame
    note = "its header's names have spaces around them: read without"
    if note not in notes:
        notes.append(note)
    return frame.set_axis(names, axis=1)


def _sep_label(sep: str) -> str:
    labels = {
        "\t": "tab",
        SPACE: "space",
        WHITESPACE: "whitespace (runs of spaces or tabs)",
        CTRL_A: "Ctrl-A ('\\x01')",
    }
    return labels.get(sep, repr(sep))


#: JSON lines parsed at a time when only some columns are kept
JSON_CHUNK_ROWS = 50_000


#: a column is taken for nested objects when this many of its first values are dicts
_OBJECT_SAMPLE = 50


def flatten_objects(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Columns of nested objects (ListenBrainz's ``track_metadata``) as one column per field, named
    with dots (``track_metadata.track_name``, ``track_metadata.additional_info.duration_ms``), as
    pandas' ``json_normalize`` names them; and which columns were flattened. Lists stay as they are."""
    nested = [
        c
        for c in frame.columns
        if frame[c].dtype == object
        and (sample := frame[c].dropna().head(_OBJECT_SAMPLE)).size
        and sample.map(lambda v: isinstance(v, dict)).all()
    ]
    if not nested:
        return frame, []
    parts = [frame.drop(columns=nested)]
    for c in nested:
        cells = [v if isinstance(v, dict) else {} for v in frame[c].tolist()]
        flat = pd.json_normalize(cells, sep=".").set_axis(frame.index)
        parts.append(flat.rename(columns=lambda k, c=c: f"{c}.{k}"))
    return pd.concat(parts, axis=1), [str(c) for c in nested]


def _read_from(parents: Collection[str], keep: Collection[str] | None) -> list[str]:
    """The flattened objects a field of which is kept: the others are not worth a word."""
    return [p for p in parents if keep is None or any(str(k).startswith(f"{p}.") for k in keep)]


def flattened_note(parents: Collection[str]) -> list[str]:
    if not parents:
        return []
    return [
        f"nested objects in {', '.join(map(repr, parents))} read as columns named with dots "
        f"({next(iter(parents))}.FIELD): name them so in --user-col, --item-col, --items-cols, …"
    ]


def _kept(
    frame: pd.DataFrame, keep: Collection[str] | None, seen: dict[str, None], flat: dict[str, None] | None = None
) -> pd.DataFrame:
    frame, parents = flatten_objects(frame)
    if flat is not None:
        flat.update(dict.fromkeys(parents))
    for c in frame.columns:
        seen.setdefault(str(c), None)
    return frame if keep is None else frame[[c for c in frame.columns if c in keep]]


#: a JSON integer of 16 digits or more: past 2**53, where the floats pandas makes of a column of
#: integers with a null (Pinterest's 18-digit ids beside one missing) round distinct ids together
_BIG_JSON_INT = re.compile(rb"[:\[,]\s*-?\d{16,}\s*[,}\]]")


def _big_json_ints(path: Path) -> bool:
    """Whether the file holds such integers (the whole file read once, remembered per version of it:
    an import in chunks reads the file once per stretch of time)."""
    stat = path.stat()
    return _big_json_ints_in(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _big_json_ints_in(name: str, _size: int, _mtime_ns: int) -> bool:
    path = Path(name)
    tail = b""
    with open_compressed(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            if _BIG_JSON_INT.search(tail + block):
                return True
            tail = block[-64:]
    return False


def _int_or_text(digits: str) -> int | str:
    """A JSON integer as an int, or as its digits when a float could not hold it (an id, then)."""
    return digits if len(digits.lstrip("-")) >= 16 else int(digits)


def _exact_json_lines(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """JSON lines parsed by Python's json, long integers kept as their digits: slower than pandas'
    parser, and taken only for a file that holds such integers (``_big_json_ints``)."""
    batch: list[object] = []
    with open_compressed(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                batch.append(json.loads(line, parse_int=_int_or_text))
            if len(batch) >= chunk_rows:
                yield pd.DataFrame.from_records(batch)
                batch = []
    if batch:
        yield pd.DataFrame.from_records(batch)


@contextmanager
def json_line_chunks(path: Path, chunk_rows: int) -> Iterator[Iterator[pd.DataFrame]]:
    """JSON lines ``chunk_rows`` at a time: pandas' parser, unless the file holds integers too long
    for a float, which are then read exactly."""
    if _big_json_ints(path):
        yield (_named_by_position(c) for c in _exact_json_lines(path, chunk_rows))
        return
    with pd.read_json(path, lines=True, dtype=False, convert_dates=False, chunksize=chunk_rows) as reader:
        yield (_named_by_position(c) for c in reader)


def _named_by_position(chunk: pd.DataFrame) -> pd.DataFrame:
    """Lines of JSON arrays (``[1, 31, 2.5, 1260759144]``) have fields by position: pandas numbers them,
    and an option names them as text (``--user-col 0``)."""
    if all(isinstance(c, str) for c in chunk.columns):
        return chunk
    return chunk.rename(columns=str)


def _json_lines(path: Path, keep: Collection[str] | None) -> Table:
    """JSON lines, parsed a chunk at a time when only some columns are wanted: review files carry
    each review's text and nested objects (Yelp's 7M reviews are 5 GB), which parsed whole would
    need several times the file's size in memory for columns the import never reads."""
    if keep is None:  # whole, nested objects flattened across all rows at once
        with json_line_chunks(path, JSON_CHUNK_ROWS) as reader:
            raw = [chunk for chunk in reader]
        frame, parents = flatten_objects(pd.concat(raw, ignore_index=True) if raw else pd.DataFrame())
        return Table(frame, flattened_note(parents))
    seen: dict[str, None] = {}
    flat: dict[str, None] = {}
    with json_line_chunks(path, JSON_CHUNK_ROWS) as reader:
        parts = [_kept(chunk, keep, seen, flat) for chunk in reader]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return Table(frame, flattened_note(_read_from(flat, keep)), dropped=[c for c in seen if c not in frame.columns])


def _index_as_column(frame: pd.DataFrame) -> pd.DataFrame:
    """A named index as the column it was written from: a file written by dask or by pandas with an
    index (ContentWise keeps its times there) comes back with that column as the index."""
    if any(name is not None for name in frame.index.names):
        return frame.reset_index()
    return frame


def _parquet(path: Path, keep: Collection[str] | None) -> Table:
    if keep is None:
        return Table(_index_as_column(pd.read_parquet(path)))
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    return Table(
        _index_as_column(pd.read_parquet(path, columns=[c for c in names if c in keep])),
        dropped=[c for c in names if c not in keep],
    )


def _directory_advice(path: Path) -> str:
    """How to make one file of a directory's parts, found at any depth: Spark, Hive and pandas'
    ``partition_cols`` write a table as ``dt=2024-01/part-0.parquet`` folders, their partition column
    kept in the folders' names alone."""
    parts = sorted(
        p.relative_to(path)
        for p in path.rglob("*")
        if p.is_file() and not any(n.startswith(("_", ".")) for n in p.relative_to(path).parts)
    )
    nested = any(len(p.parts) > 1 for p in parts)
    parquet = [p for p in parts if p.suffix in (".parquet", ".pq")]
    if parquet:
        folders = sorted({p.parts[0].split("=", 1)[0] for p in parquet if len(p.parts) > 1 and "=" in p.parts[0]})
        partitioned = (
            f" in folders by {', '.join(folders)}, read as column{'s' if len(folders) > 1 else ''}" if folders else ""
        )
        return (
            f"a directory of {len(parquet)} parquet parts (as Spark and dask write a table{partitioned}): join them "
            f"into one file first, e.g. pandas' read_parquet('{path.name}').reset_index().to_parquet("
            f"'{path.name}.parquet')"
        )
    joined = (
        f"find {path.name} -type f ! -name '_*' ! -name '.*' -exec cat {{}} + > {path.name}.csv"
        if nested
        else f"cat {path.name}/* > {path.name}.csv"
    )
    return (
        f"a directory of {len(parts)} file{'s' if len(parts) != 1 else ''}{' in folders' if nested else ''}: import "
        f"them one by one with the same options, or join them into one first (`{joined}`: a header line repeated "
        "where files meet is skipped and counted; where each file's name is its user, add it as a column while "
        "joining: README, 'A directory of files')"
    )


def read_table(path: Path, what: str, layout: TextLayout | None = None, keep: Collection[str] | None = None) -> Table:
    """The file as a frame. ``keep``: the only columns wanted (JSON and parquet files are then read
    without the others; delimited text is read whole)."""
    path = Path(path)
    layout = layout or TextLayout()
    if path.is_dir():
        raise ImportFormatError(f"{what} {path} is {_directory_advice(path)}")
    if not path.is_file():
        raise ImportFormatError(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        raise ImportFormatError(f"{what} file {path.name} is empty (0 bytes)")
    ext = _format(path)
    if path.suffix.lower() == ".zst":
        raise ImportFormatError(
            f"{path.name}: zstd is not among the compressions an import reads (.gz, .bz2, .xz, .zip)"
        )
    try:
        if ext in (".jsonl", ".ndjson", ".json", ".parquet", ".pq"):
            if layout.sep is not None or layout.names is not None:
                raise ImportFormatError(
                    f"{layout.option('sep')} and {layout.option('names')} are for delimited text, not {ext} files"
                )
            if ext in (".parquet", ".pq"):
                table = _parquet(path, keep)
                table.notes[:0] = _parquet_named_as(path)
                return table
            if (keyed := keyed_object(path, what)) is not None:
                raise ImportFormatError(keyed)
            if ext == ".json":
                table = _read_json(path, what, keep)
                table.notes[:0] = _json_named_as(path)
                return table
            return _json_lines(path, keep)
        if ext == ".xml":
            if layout.sep is not None or layout.names is not None:
                raise ImportFormatError(
                    f"{layout.option('sep')} and {layout.option('names')} are for delimited text, not XML files"
                )
            from ingest.import_xml import read_xml_records  # a rare format: its parser loaded when met

            frame, notes, dropped = read_xml_records(path, open_compressed, what, keep)
            return Table(frame, notes, dropped=dropped)
        return _read_text(path, ext, layout, what)  # a spreadsheet is refused there, as in a stream
    except (ImportFormatError, ArchiveError):  # each says what to change
        raise
    except (ValueError, OSError, csv.Error) as exc:  # parser and decoding errors subclass ValueError
        if not ext or ext not in (".csv", ".tsv", ".txt", ".dat"):
            raise ImportFormatError(
                f"unknown {what} file format {path.name!r} ({exc}): expected delimited text (.csv, .tsv, .dat, …), "
                ".jsonl, .json, .xml or .parquet (optionally compressed, e.g. .csv.gz)"
            ) from exc
        raise ImportFormatError(f"cannot read {what} file {path.name}: {exc}{_encoding_hint(exc, layout)}") from exc


#: spreadsheets' own formats: no delimited text, and no reader of them is installed
_SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def _spreadsheet_inside(path: Path) -> bool:
    """A spreadsheet under another name (an .xlsx saved as ``ratings.csv``): a zip holding a workbook,
    or the old binary Excel format's signature, where pandas would stop at "Buffer overflow caught"."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\xd0\xcf\x11\xe0"):  # the compound file of .xls
            return True
        if not head.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.startswith(("xl/", "content.xml")) for n in names)


def _spreadsheet_advice(path: Path, what: str) -> str:
    out = f"{Path(path.name).stem}.csv"
    out = f"{Path(path.name).stem}-sheet.csv" if out == path.name else out  # never the file itself
    return (
        f"{path.name} is a spreadsheet, which the import does not read: export the {what} sheet as CSV first "
        "(Save As → CSV in the spreadsheet, or with pandas and openpyxl installed: "
        f"pandas.read_excel('{path.name}', sheet_name=0).to_csv('{out}', index=False)), "
        "and import that"
    )


def _encoding_hint(exc: BaseException, layout: TextLayout) -> str:
    """What to do about a file that does not decode: name its encoding (the one told did not fit)."""
    if not isinstance(exc, UnicodeError):
        return ""
    told = f" (not {layout.encoding})" if layout.encoding else ""
    return f"; {layout.option('encoding')} names the file's encoding{told}"


def streams(path: Path) -> bool:
    """Whether ``TableStream`` reads this file in chunks: delimited text, parquet, and JSON unless it
    is an array or Python dicts (read whole), which its first line tells."""
    path = Path(path)
    ext = _format(path)
    if ext == ".xml":
        return False
    if ext != ".json":
        return True
    try:
        with open_compressed(path, "rt", encoding="utf-8") as f:
            first = f.readline().strip()
        return first.startswith("{") and isinstance(json.loads(first), dict)
    except (OSError, ValueError, EOFError):
        return False


class TableStream:
    """A file read a chunk of rows at a time, for a file too big to hold whole: iterating reads it
    once more from the start. The chunks' rows are the rows ``read_table`` gives, in the same order;
    ``notes`` and ``malformed`` describe the file once a pass is complete. Delimited text (also
    compressed and item-headed), JSON lines and parquet stream; a JSON array or a file of Python
    dicts does not (``ImportFormatError`` on the first pass)."""

    def __init__(
        self, path: Path, what: str, layout: TextLayout | None, keep: Collection[str] | None, chunk_rows: int
    ) -> None:
        self.path, self.what, self.layout, self.keep = Path(path), what, layout or TextLayout(), keep
        self.chunk_rows = max(int(chunk_rows), 1)
        self.notes: list[str] = []
        self.malformed: list[int] = []
        self.dropped: list[str] = []
        if self.path.is_dir():
            raise ImportFormatError(f"{what} {self.path} is {_directory_advice(self.path)}")
        if not self.path.is_file():
            raise ImportFormatError(f"{what} file not found: {self.path}")

    def __iter__(self) -> Iterator[pd.DataFrame]:
        ext = _format(self.path)
        try:
            if ext in (".parquet", ".pq"):
                yield from self._parquet()
            elif ext in (".jsonl", ".ndjson", ".json"):
                yield from self._json_lines(ext)
            elif ext == ".xml":
                raise ImportFormatError(
                    f"{self.path.name} cannot be read in chunks: an XML file is read whole. Convert it to JSON "
                    "lines or CSV, or import it in parts"
                )
            else:
                yield from self._text(ext)
        except (ImportFormatError, ArchiveError):
            raise
        except (ValueError, OSError, csv.Error) as exc:
            raise ImportFormatError(
                f"cannot read {self.what} file {self.path.name}: {exc}{_encoding_hint(exc, self.layout)}"
            ) from exc

    def _text(self, ext: str) -> Iterator[pd.DataFrame]:
        plan = _plan_text(self.path, ext, self.layout, self.what)
        malformed: list[int] = []
        split = _ItemHeaders() if plan.item_headed else None
        again = _RepeatedHeaders()
        rows, width = 0, 0
        columns: list[str] = []
        with (
            plan.source() as (source, kwargs),
            pd.read_csv(source, on_bad_lines="warn", chunksize=self.chunk_rows, **kwargs) as reader,
        ):
            while True:
                with _bad_lines(malformed):
                    chunk = next(reader, None)
                if chunk is None:
                    break
                width = len(chunk.columns)
                if split is not None:
                    chunk = split.apply(chunk, self.path)
                    plan.item_headers = split.headers
                if plan.names is None:
                    chunk = again.apply(chunk)
                    plan.repeated_headers = again.count
                    chunk = _stripped_names(chunk, plan.notes)
                rows += len(chunk)
                columns = list(chunk.columns)
                yield chunk.reset_index(drop=True)
        if plan.rejoined:
            if not columns:  # every row was split: the header alone names the columns
                columns = plan.names or _split_line(_sample(self.path, plan.encoding)[0], plan.sep)
            rows += len(plan.rejoined)
            yield pd.DataFrame(plan.rejoined, columns=columns).replace("", None)
        malformed.extend(plan.long_first)
        self.malformed = sorted(malformed)
        self.notes = [*plan.notes, *_text_notes(plan, rows, self.malformed, width)]
        if split is not None:
            self.notes.append(split.note())
        if note := again.note():
            self.notes.append(note)

    def _json_lines(self, ext: str) -> Iterator[pd.DataFrame]:
        if (keyed := keyed_object(self.path, self.what)) is not None:
            raise ImportFormatError(keyed)
        if not streams(self.path):
            raise ImportFormatError(
                f"{self.path.name} cannot be read in chunks: only JSON lines (one object per line) are; a JSON "
                "array or a file of Python dicts is read whole. Convert it to JSON lines, or import it in parts"
            )
        seen: dict[str, None] = {}
        flat: dict[str, None] = {}
        with json_line_chunks(self.path, self.chunk_rows) as reader:
            for chunk in reader:
                yield _kept(chunk, self.keep, seen, flat).reset_index(drop=True)
        self.notes = (
            _json_named_as(self.path)
            + (["one JSON object per line"] if ext == ".json" else [])
            + flattened_note(_read_from(flat, self.keep))
        )
        self.dropped = [c for c in seen if self.keep is not None and c not in self.keep]

    def _parquet(self) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.path)
        names = source.schema_arrow.names
        columns = names if self.keep is None else [c for c in names if c in self.keep]
        for batch in source.iter_batches(batch_size=self.chunk_rows, columns=columns):
            yield _index_as_column(batch.to_pandas())
        self.dropped = [c for c in names if c not in columns]
        self.notes = _parquet_named_as(self.path)


def _read_json(path: Path, what: str, keep: Collection[str] | None = None) -> Table:
    """A ``.json`` file: an array of objects, or one object per line (how review datasets such as
    Amazon's ship, under ``.json`` or ``.json.gz``); which one is read off its first character."""
    with open_compressed(path, "rt", encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        if _big_json_ints(path):  # ids too long for a float: Python's parser keeps their digits
            with open_compressed(path, "rt", encoding="utf-8") as f:
                records = json.load(f, parse_int=_int_or_text)
            array = pd.DataFrame.from_records(records)
        else:
            array = pd.read_json(path, dtype=False, convert_dates=False)
        frame, parents = flatten_objects(array)
        return Table(frame, ["an array of JSON objects", *flattened_note(parents)])
    if head.startswith("{"):
        try:
            table = _json_lines(path, keep)
            table.notes.insert(0, "one JSON object per line")
            return table
        except ValueError as exc:
            if _is_literal_dict(head.splitlines()[0]):
                return _read_literal_lines(path, what, keep)
            hint = _document_hint(path, list(keep or ()))
            why = "" if hint else f" ({exc})"  # the parser's words only when there is nothing better to say
            raise ImportFormatError(
                f"cannot read {what} file {path.name} as one JSON object per line{why}; a .json file must hold "
                f"an array of objects or one object per line{hint}"
            ) from exc
    raise ImportFormatError(f"{what} file {path.name} holds neither an array of JSON objects nor one object per line")


#: a JSON document larger than this is not parsed whole just to word an error
DOCUMENT_HINT_MAX_BYTES = 64 * 1024 * 1024  # a Million Playlist Dataset slice is ~30 MB


def _document_hint(path: Path, wanted: list[str]) -> str:
    """What a .json file that is one document spread over many lines (the Million Playlist
    Dataset's slices) holds, so that the error can say which list to flatten."""
    try:
        if path.stat().st_size > DOCUMENT_HINT_MAX_BYTES:
            return ""
        with open_compressed(path, "rt", encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict):
        return ""
    lists = {k: len(v) for k, v in doc.items() if _records_in(v)}
    if not lists:
        return f". It is one JSON document, an object with keys {', '.join(map(str, list(doc)[:8]))}"
    key = max(lists, key=lists.__getitem__)
    records = f"{lists[key]:,} {'record' if lists[key] == 1 else 'records'}"
    nested = _nested_hint(pd.DataFrame({key: [doc[key]]}), wanted) if wanted else None
    if nested:
        return f". It is one JSON document, an object whose {key!r} holds {records}{nested}"
    return (
        f". It is one JSON document, an object whose {key!r} holds {records}: flatten them to one row "
        f'per record first, e.g. pandas\' json_normalize(json.load(f)["{key}"], …) written to a .csv (README, '
        "'A list of records')"
    )


def _is_literal_dict(line: str) -> bool:
    try:
        return isinstance(ast.literal_eval(line.strip()), dict)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False


def _read_literal_lines(path: Path, what: str, keep: Collection[str] | None = None) -> Table:
    """Review datasets such as Steam's and older Amazon files ship one *Python* dict per line under
    ``.json`` (single quotes, ``True``, ``None``), which no JSON parser reads. ``literal_eval`` reads
    literals only, never code. A line that is not a dict is read past and named, as a malformed
    line of delimited text is."""
    rows: list[dict] = []
    malformed: list[int] = []
    seen: dict[str, None] = {}
    tops = {k.split(".", 1)[0] for k in keep or ()}
    with open_compressed(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = ast.literal_eval(line.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                row = None
            if isinstance(row, dict):
                for k in row:
                    seen.setdefault(str(k), None)
                # a nested dict is kept whole when a field of it is wanted (flattened below)
                rows.append(row if keep is None else {k: v for k, v in row.items() if k in keep or k in tops})
            else:
                malformed.append(number)
    notes = ["one Python dict per line (single quotes, True/None): not JSON, read as Python literals"]
    if malformed:
        shown = ", ".join(str(n) for n in malformed[:10]) + (", …" if len(malformed) > 10 else "")
        notes.append(
            f"skipped {len(malformed):,} line{'s' if len(malformed) != 1 else ''} that hold no dict: line {shown}"
        )
    if not rows:
        raise ImportFormatError(f"{what} file {path.name} holds no readable objects")
    # every value as read: ids stay strings, as dtype=False keeps them for JSON lines
    frame, parents = flatten_objects(pd.DataFrame.from_records(rows))
    if keep is not None:
        frame = frame[[c for c in frame.columns if c in keep]]
    return Table(
        frame,
        notes + flattened_note(_read_from(parents, keep)),
        malformed,
        dropped=[c for c in seen if c not in frame.columns],
    )


#: what compressed text is taken to expand to, per byte, when its size is not recorded (gzip, bz2,
#: xz): delimited logs compress 3-6x, and an estimate too high only sends a file down the chunked
#: import, which gives the same events
COMPRESSION_RATIO = 6.0


def estimate_rows(path: Path, sample_lines: int = 2000) -> int | None:
    """About how many rows a file holds: parquet's own count; for text, its (uncompressed) size over
    its first lines' mean length. A zip records its member's size; other compressed text is taken to
    expand ``COMPRESSION_RATIO`` times. None when the file cannot be looked at."""
    path = Path(path)
    ext, compression = _suffixes(path)
    if not path.is_file():
        return None
    try:
        if ext in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if compression == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [i for i in archive.infolist() if not i.is_dir()]
                if not members:
                    return 0
                size = sum(i.file_size for i in members)
                with archive.open(members[0]) as f:
                    head = list(itertools.islice(f, sample_lines))
        else:
            size = int(path.stat().st_size * (COMPRESSION_RATIO if compression else 1.0))
            with open_compressed(path, "rb") as f:
                head = list(itertools.islice(f, sample_lines))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, lzma.LZMAError):
        return None
    if not head:
        return 0
    mean = sum(len(line) for line in head) / len(head)
    return int(size / max(mean, 1.0))


#: a header cell that is a value, not a name: a date or time (Last.fm 1K's 2009-05-04T23:08:57Z), a UUID
#: (MusicBrainz ids)
_DATA_CELL = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}.*)?$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I
)


def _looks_like_data(name: object) -> bool:
    try:
        float(str(name))
    except ValueError:
        return bool(_DATA_CELL.match(str(name).strip()))
    return True


def _records_in(value: object) -> list[dict] | None:
    """``value`` when it is a non-empty list of records (dicts), else None."""
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) and all(isinstance(v, dict) for v in value[:20]):
        return list(value)
    return None


#: JSON lines read again for the columns an import left out, so that its notes can look at them
UNREAD_SAMPLE_ROWS = 2_000


def with_unread_sample(frame: pd.DataFrame, path: Path, dropped: Sequence[str] | None) -> pd.DataFrame:
    """``frame``'s first rows beside the same rows' cells of the columns a JSON-lines import left
    out (it reads only those it was told of; None: every key ``frame`` lacks, for a stream that knows
    them only at its end): a type or outcome column left unread is then said as it is for a CSV file
    (REES46's ``event_type`` as JSON lines went unsaid), and likewise for a parquet file (Sber
    MegaMarket's ``event``). Other files come back as they are."""
    ext = _format(Path(path))
    if dropped is not None and not dropped or ext not in (".json", ".jsonl", ".parquet"):
        return frame
    if ext == ".parquet":
        return _with_parquet_sample(frame, path, dropped)
    rows: list[dict] = []
    try:
        with open_compressed(path, "rt", encoding="utf-8") as f:
            for line in itertools.islice((x for x in f if x.strip()), min(len(frame), UNREAD_SAMPLE_ROWS)):
                row = json.loads(line)
                if not isinstance(row, dict):
                    return frame
                flat = _dotted(row)  # nested fields by the dotted names the import gives them (a topic's value.event)
                rows.append(
                    {k: v for k, v in flat.items() if (k in dropped if dropped is not None else k not in frame)}
                )
    except (OSError, ValueError, UnicodeDecodeError):  # a JSON array, Python dicts: no lines to read
        return frame
    head = frame.head(len(rows)).reset_index(drop=True)
    if len(head) != len(rows):
        return frame
    sample = pd.DataFrame(rows, index=head.index).astype("string")
    return pd.concat([head, sample[[c for c in sample.columns if c not in head.columns]]], axis=1)


def _dotted(row: dict, prefix: str = "") -> dict:
    """A JSON object's fields, nested objects' named with dots, as the import names its columns."""
    out: dict = {}
    for key, value in row.items():
        if isinstance(value, dict) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _with_parquet_sample(frame: pd.DataFrame, path: Path, dropped: Sequence[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
        names = [n for n in source.schema_arrow.names if (n in dropped if dropped is not None else n not in frame)]
        if not names:
            return frame
        batch = next(source.iter_batches(batch_size=min(len(frame), UNREAD_SAMPLE_ROWS), columns=names), None)
    except (OSError, ValueError):
        return frame
    if batch is None:
        return frame
    sample = batch.to_pandas().astype("string")
    head = frame.head(len(sample)).reset_index(drop=True)
    if len(head) != len(sample):
        return frame
    return pd.concat([head, sample.set_axis(head.index)[[c for c in sample.columns if c not in head.columns]]], axis=1)


def _first_json_row(path: Path, dropped: Sequence[str]) -> pd.DataFrame:
    """The first object of a JSON-lines file, every column of it: the import reads only the
    columns it was told of, so a column of records it left out is looked at here, for an error."""
    ext = _format(Path(path))
    if not dropped or ext not in (".json", ".jsonl"):
        return pd.DataFrame()
    try:
        with open_compressed(path, "rt", encoding="utf-8") as f:
            row = json.loads(f.readline())
    except (OSError, ValueError, UnicodeDecodeError):
        return pd.DataFrame()
    return pd.DataFrame([row]) if isinstance(row, dict) else pd.DataFrame()


def _nested_path(frame: pd.DataFrame, col: str) -> tuple[list[str], dict] | None:
    """The path of record lists down to records holding ``col`` (at most three deep), and one such
    record."""
    for name in frame.columns:
        first = frame[name].dropna().head(1)
        records = _records_in(first.iloc[0]) if len(first) else None
        if records is None:
            continue
        path, inner = [str(name)], records[0]
        while col not in inner and len(path) < 3:
            deeper = next((k for k, v in inner.items() if _records_in(v)), None)
            if deeper is None:
                break
            path.append(deeper)
            inner = _records_in(inner[deeper])[0]  # type: ignore[index]
        if col in inner:
            return path, inner
    return None


def _nested_hint(frame: pd.DataFrame, cols: Sequence[str]) -> str | None:
    """Where wanted columns are when they sit inside a column of records (OTTO's ``events``, the
    Million Playlist Dataset's ``playlists`` and their ``tracks``), with the way to flatten them:
    the deepest list, since one row per record is one row per event."""
    found = [(c, hit) for c in cols if (hit := _nested_path(frame, c)) is not None]
    if not found:
        return None
    col, (path, inner) = max(found, key=lambda f: len(f[1][0]))
    keys = ", ".join(map(str, list(inner)[:6]))
    where = f". {col!r} is a key of the records nested in {' → '.join(map(repr, path))} ({keys}): flatten the file"
    meta: list[str | list[str]] = [str(c) for c in frame.columns if c != path[0] and not _nested_cell(frame[c])]
    record = _records_in(frame[path[0]].dropna().iloc[0])[0]  # type: ignore[index]
    for depth, name in enumerate(path[1:], start=1):
        # the scalar keys of each list between the top and the innermost (a playlist's pid beside its tracks)
        meta += [[*path[:depth], str(k)] for k, v in record.items() if k != name and not isinstance(v, (list, dict))]
        record = _records_in(record[name])[0]  # type: ignore[index]
    shown = meta[:_SHOWN_META]
    said_meta = f", meta={shown!r}" if shown else ""
    more = f" (and {len(meta) - len(shown)} more columns as meta)" if len(meta) > len(shown) else ""
    record_path = repr(path[0]) if len(path) == 1 else repr(path)
    return (
        f"{where} to one row per record first, e.g. pandas' json_normalize(rows, record_path={record_path}"
        f"{said_meta}){more} written to a .csv (README, 'A list of records')"
    )


def _nested_cell(column: pd.Series) -> bool:
    """Whether a column's first value is a list or an object: no meta column for a flat row."""
    first = column.dropna().head(1)
    return bool(len(first)) and isinstance(first.iloc[0], (list, tuple, dict, np.ndarray))


#: meta columns written into a flattening hint (a top level of twenty scalars would bury the advice)
_SHOWN_META = 6


def require_columns(
    frame: pd.DataFrame, columns: dict[str, str | None], path: Path, names_option: str, dropped: Sequence[str] = ()
) -> None:
    """Every named column is in the file; else an error listing the file's columns (``dropped``:
    those it has that were not read)."""
    for role, col in columns.items():
        if col is not None and col not in frame.columns:
            hint = ""
            data_first = any(_looks_like_data(c) for c in frame.columns)
            numbers_first = sum(_is_number(str(c)) for c in frame.columns) >= 0.9 * len(frame.columns)
            if data_first and numbers_first and len(frame.columns) >= WIDE_COLUMNS:
                # a matrix first: naming its 300 columns would import 300 nonsense fields per row (Coat's)
                hint = (
                    f". Its first line looks like data, not a header. A file of {len(frame.columns)} columns of "
                    "numbers is most likely a matrix, one row per user and one column per item (Jester's, Coat's): "
                    "an import reads rows of user, item and rating, so turn it into those first (see the README, "
                    f"'A matrix of ratings'); a table of that many columns without a header is named with "
                    f"{names_option}"
                )
            elif data_first:
                hint = (
                    f". Its first line looks like data, not a header: if the file has none, name its "
                    f"{len(frame.columns)} columns in order with {names_option} "
                    f"(e.g. {_names_example(frame, names_option, columns.get('item id'))})"
                )
                stem = path.name.split(".")[0]
                if names_option == "--names" and len(stem) >= _ID_NAMED_MIN and re.fullmatch(_ID_NAMED, stem):
                    # MLHD's <uuid>.txt.gz: one listener's rows, whose id is the file's name alone
                    hint += (
                        f". Named like an id, {path.name} may be one user's history with no user column: join such "
                        "files, each file's name as its user (README, 'A directory of files')"
                    )
            if len(frame.columns) + len(dropped) == 1 and not hint:
                sep_option = names_option.replace("names", "sep")
                hint = (
                    f". The file was read as one column: if its fields are separated by something else, name "
                    f"the separator with {sep_option} (e.g. {sep_option} space, {sep_option} ';', {sep_option} '::')"
                )
            wanted = [c for c in columns.values() if c is not None]
            names_of = [*map(str, frame.columns), *dropped]
            nested = _nested_hint(frame, wanted) or _nested_hint(_first_json_row(path, dropped), wanted)
            if not hint and nested:
                hint = nested
            if role == "user" and not hint and user_column(names_of) is None:
                session = session_column(names_of)
                hint = (
                    f"; no column names a user, but {session!r} names sessions, visits or devices, which can stand for "
                    f"users (--user-col {option_value(session)}: each one a user of its own, as session-based logs "
                    "are read)"
                    if session is not None
                    else "; no column names a user: a file of one person's history (an account's export, "
                    "Letterboxd's or Spotify's) needs a column naming its user added first, several accounts' files "
                    "joined (README, 'A log of times played'), since training needs two users at least; a file of "
                    "items alone (Yelp's check-ins) has no user to learn from"
                )
            if role == "item" and not hint and (coarse := _item_describers(names_of)):
                hint = _coarse_items_hint(coarse)
            if role == "time" and not hint and (timed := time_columns(frame, dropped, exclude=wanted)):
                shown = ", ".join(map(repr, timed[:3]))
                hint = (
                    f"; {shown} look{'s' if len(timed) == 1 else ''} like times: --time-col {option_value(timed[0])} "
                    "reads them (--no-time would leave them unread and stamp each user's rows in a shuffled order)"
                )
            elif role == "time" and not hint:
                hint = (
                    "; a file without times imports with --no-time (each user's rows stamped in a stable shuffled "
                    "order)"
                )
            if role in ("user", "item", "time") and names_option == "--names" and not data_first:
                if analytics := analytics_export([*map(str, frame.columns), *dropped]):
                    hint += f"; {analytics}"  # by names alone, GA4's columns gave device.vendor_id as the user
                elif social := _social_graph([*map(str, frame.columns), *dropped]):
                    hint += f"; {social}"
                else:
                    # a JSON or parquet file's columns left unread are looked at too (Amazon's unixReviewTime:
                    # its epoch numbers want --time-unit s)
                    seen = with_unread_sample(frame, path, list(dropped))
                    # judged on every column: one left unread may list the user's items (Tradesy's lists)
                    unseen = [c for c in dropped if c not in seen.columns]
                    if not unseen and (profile := _profile_hint(seen)):
                        hint += profile
                    elif suggested := _suggested_options(
                        seen, [c for c in dropped if c not in seen.columns], given_user=columns.get("user")
                    ):
                        hint += f"; by their names, its columns would import with {suggested}"
            # a first line of data is no list of names to choose from: a few show what was read
            cap = SHOWN_DATA_COLUMNS if data_first else SHOWN_COLUMNS
            names = [*map(str, frame.columns), *dropped]
            more = f" … and {len(names) - cap:,} more" if len(names) > cap else ""
            option = _ROLE_OPTIONS.get(role.split(" (")[0])
            named_by = f" (--{option} names it)" if option else ""
            raise ImportFormatError(
                f"{role} column {col!r} not found in {Path(path).name}{named_by}; available columns: "
                f"{', '.join(names[:cap])}{more}{hint}"
            )


#: product analytics exports, told by the columns only they have, and where each keeps the user, the time
#: and the kind of event; the item is a field the product's own events carry, named by its team
_ANALYTICS = (
    (
        ("event_params", "user_pseudo_id"),
        "a GA4 or Firebase BigQuery export: pivot event_params into a column per key and take one row per entry "
        "of items first (README, 'Product analytics exports'), then --user-col user_pseudo_id --item-col item_id "
        "--time-col event_timestamp --time-unit us --type-col event_name --type-map … --session-col ga_session_id "
        "(and, where consent mode ran, --analytics-consent-col privacy_info.analytics_storage: Yes or No, empty "
        "otherwise)",
    ),
    (
        ("anonymousId", "messageId"),
        "a Segment or RudderStack export: identified users are in userId and anonymous visitors in anonymousId, so "
        "link each visitor to the user they became first (README, 'Product analytics exports'), then --user-col "
        "person --item-col properties.ITEM --time-col timestamp --type-col event --type-map … (type says track, page "
        "or identify; event says what was done)",
    ),
    (
        ("anonymous_id", "message_id"),
        "a Segment or RudderStack warehouse table: identified users are in user_id and anonymous visitors in "
        "anonymous_id, so link each visitor to the user they became first (README, 'Product analytics exports'), "
        "then --user-col person --item-col ITEM --time-col timestamp --type-col event --type-map …",
    ),
    (
        ("value.anonymousId", "value.messageId"),
        "a Segment-like event stream in a topic's envelope: its fields are under value. (the envelope's own "
        "timestamp is the broker's); read it as a Segment export with each name prefixed by value., e.g. "
        "--time-col value.timestamp --type-col value.event (README, 'Product analytics exports')",
    ),
    (
        ("properties.distinct_id", "event"),
        "a Mixpanel export: --user-col properties.distinct_id (after linking $device: ids to the users their "
        "$identify rows name: README, 'Product analytics exports') --item-col properties.ITEM --time-col "
        "properties.time --time-unit s --type-col event --type-map …",
    ),
    (
        ("amplitude_id", "event_type"),
        "an Amplitude export: --user-col amplitude_id (user_id is empty for anonymous visitors) --item-col "
        "event_properties.ITEM --time-col event_time --type-col event_type --type-map … --session-col session_id "
        "(-1: no session) (README, 'Product analytics exports')",
    ),
    (
        ("distinct_id", "elements_chain"),
        "a PostHog export: its properties column is JSON text, read as one cell; flatten it into properties.… "
        "columns first (README, 'Product analytics exports'), then --user-col person_id --item-col properties.ITEM "
        "--time-col timestamp --type-col event --type-map … (uuid is each event's own id, no item)",
    ),
    (
        ("domain_userid", "collector_tstamp"),
        "a Snowplow enriched-events file: --user-col domain_userid (user_id once a visitor signs in) --time-col "
        "derived_tstamp --type-col event, the item in se_label or a field of unstruct_event, which is JSON text to "
        "flatten first (README, 'Product analytics exports')",
    ),
)


def analytics_export(names: Sequence[str]) -> str | None:
    """Where a product analytics export keeps its user, time and kinds of event, when its columns say
    which tool wrote it: their names alone point elsewhere (GA4's device.vendor_id as the user)."""
    have = set(names)
    return next((advice for marks, advice in _ANALYTICS if set(marks) <= have), None)


#: words of a column name that say it holds the items a user chose
_ITEM_WORDS = frozenset(
    {
        "item", "items", "book", "movie", "film", "song", "track", "artist", "product", "business", "game", "anime",
        "video", "news", "article", "asin", "sku", "recipe", "beer", "wine", "course", "job", "venue", "poi",
        "place", "hotel", "app", "podcast", "episode", "show", "document", "post", "question", "repo", "subreddit",
        "restaurant", "isbn", "series", "playlist", "channel", "stream", "program", "prop", "property", "listing",
        "campaign", "adgroup", "ad", "creative", "offer", "recording",
    }
)  # fmt: skip
#: the words that name items, for other modules (a users file's id column is never one named so)
ITEM_WORDS = _ITEM_WORDS
#: an outcome column of clicks (Taobao's clk, Expedia's click_bool), and one of rows not clicked (nonclk)
CLICK_NAME = r"(?:is_?)?(?:click|clicked|clk)(?:_?(?:flag|bool))?"
NON_CLICK_NAME = r"non_?(?:clk|click)(?:_?(?:flag|bool))?"
#: short id names of items (a video's, a product's, a model's, an item's, a track's, an article's, a
#: book's): ``sid`` and ``cid`` are left out, a session or a category as often
_SHORT_ITEM_IDS = frozenset({"vid", "pid", "mid", "iid", "tid", "aid", "bid"})
#: words of a column name that say it holds a user's rating of the item
#: (overall: Amazon 2014/2018 reviews)
_RATING_WORDS = frozenset({"rating", "stars", "star", "rate", "rated", "overall"})
#: ... and a column named only this, of numbers (KKBox's 0/1 replay, which --rating-col reads as a like or a
#: skip): as a word of a longer name it says what the row is aimed at (a target_audience, a target_url)
_RATING_NAMES = frozenset({"target"})
#: ... unless one of these says it is a count or an average of ratings (Goodbooks' ratings_count)
_AGGREGATE_WORDS = frozenset({"count", "number", "avg", "average", "mean", "total", "num"})

#: words of a column name that say it describes users or items rather than naming them, or is someone
#: else's: no user, item or rating to suggest (Expedia's visitor_location_country_id, visitor_hist_starrating,
#: prop_country_id and comp1_rate, Open Bandit's user_feature_0)
_NOT_THE_USERS = frozenset(
    {"location", "country", "region", "city", "state", "zip", "geo", "feature", "affinity", "segment", "age", "gender",
     "comp", "competitor", "price", "usd", "hist", "history", "starrating", "score", "brand", "category",
     "agent"}
)  # fmt: skip
#: words that, with a last word ``id``, name a visit: a search session (Expedia's srch_id)
_VISIT_WORDS = frozenset({"srch", "search", "visit"})


def user_column(names: Sequence[str]) -> str | None:
    """The first column whose name says it identifies users (not one that describes them); one named
    for a user as such before one named for someone who may be (Goodreads' ``Author`` beside the
    ``user`` a join added, a Netflix export's ``Profile Name``)."""
    named = [n for n in names if USER_WORDS & set(w := name_words(n)) and not _NOT_THE_USERS & set(w)]
    return next((n for n in named if _USER_AS_SUCH & set(name_words(n))), None) or next(iter(named), None)


def session_column(names: Sequence[str]) -> str | None:
    """The first column whose name says it identifies sessions, visits or devices (Avazu's device_ip),
    which can stand for users."""
    return next(
        (
            n
            for n in names
            if "session" in (w := name_words(n))
            or (w[-1:] == ["id"] and _VISIT_WORDS & set(w))
            or (w[-1:] in (["id"], ["ip"]) and "device" in w)
            or "cookie" in w
        ),
        None,
    )


#: last words of a column name that say it holds a kind, a state or a count of items, not items
#: (Netflix's ``Supplemental Video Type``: TRAILER, HOOK or empty)
_NOT_AN_ITEM_LAST = frozenset({"type", "types", "kind", "status", "format", "count", "class"})


#: words of a column name that say it measures something about the item or counts rows, whatever
#: item it names (Riiid's ``prior_question_elapsed_time``, ``row_id``)
_NOT_AN_ITEM_WORDS = frozenset({"elapsed", "duration", "seconds", "row", "index", "had", "time", "timestamp", "date"})


def _item_column(names: Sequence[str], words: dict[str, set[str]], user: str | None) -> str | None:
    """The column the names say holds items: one named for items (an id of them first, and a short
    id such as Untappd's ``bid`` before a name, ``beer_name``, since names collide), else an id, a
    short id, a key (Plex's ``rating_key``), else a title (Netflix's ``Title``)."""

    def last(n: str) -> list[str]:
        # a field of a flattened record of ids (Trakt's ``movie.ids.trakt``) is an id as ``movie_id`` is
        words = name_words(n)
        return ["id"] if "ids" in words[:-1] or words[-1:] in (["mbid"], ["uuid"], ["guid"]) else words[-1:]

    # a column named for users is none of the items (a follower's id beside the followed one's)
    plain = [
        n
        for n in names
        if n != user and name_words(n) and not _USER_AS_SUCH & words[n] and not _NOT_AN_ITEM_WORDS & words[n]
    ]
    others = [n for n in plain if not _NOT_THE_USERS & words[n]]
    named = [n for n in others if _ITEM_WORDS & words[n] and last(n)[0] not in _NOT_AN_ITEM_LAST]
    short = [n for n in others if n.lower() in _SHORT_ITEM_IDS]
    # of the columns named for items, an id first (Ta Feng's PRODUCT_ID after its PRODUCT_SUBCLASS)
    named = [n for n in named if last(n) == ["id"]] + [n for n in named if last(n) != ["id"]]
    if named and last(named[0])[0] in ("name", "title") and short:
        return short[0]
    return next(
        iter(
            named
            or [n for n in plain if last(n) == ["id"]]
            or short
            or [n for n in plain if last(n) == ["key"]]
            or [n for n in plain if last(n) == ["title"] and len(name_words(n)) <= 2]
        ),
        None,
    )


def _item_describers(names: Sequence[str]) -> list[str]:
    """The columns that describe items (their category, their brand) in a file none of whose columns
    names an item (Taobao's ``behavior_log``: user, time, behaviour, ``cate``, ``brand``), at most two."""
    if any(_ITEM_WORDS & set(name_words(n)) for n in names):
        return []
    return [n for n in names if n.lower() in GENRE_NAMES or "brand" in name_words(n)][:2]


def _coarse_items_hint(describers: Sequence[str]) -> str:
    shown = " and ".join(map(repr, describers))
    if len(describers) > 1:
        what, coarse = "each of their pairs", "all the products one pair describes become one item"
    else:
        what, coarse = "each of its values", "all the products of one value become one item"
    return (
        f"; no column names an item, but {shown} describe{'s' if len(describers) == 1 else ''} items: "
        f"--item-col {','.join(map(option_value, describers))} makes {what} an item (coarser than the products "
        f"themselves: {coarse})"
    )


def _click_column(frame: pd.DataFrame) -> str | None:
    """A column named for clicks whose filled cells are all 0 or 1."""
    for col in frame.columns:
        if re.fullmatch(CLICK_NAME, str(col).lower()):
            cells = frame[col].dropna().astype(str).str.strip()
            cells = cells[cells != ""]
            if len(cells) and bool(to_numbers(cells).isin([0, 1]).all()):
                return str(col)
    return None


def _epoch_unit(frame: pd.DataFrame, col: str) -> str:
    """`` --time-unit s`` (or ``ms``) for a time column of epoch numbers, which the import asks for."""
    if col not in frame:
        return ""
    numbers = to_numbers(frame[col].dropna().astype(str))
    if not len(numbers) or numbers.isna().any():
        return ""
    low, high = float(numbers.min()), float(numbers.max())
    if not (_EPOCH_RANGE[0] <= low and high < _EPOCH_RANGE[1]):
        return ""
    return " --time-unit s" if high < 1e11 else " --time-unit ms"


def _social_graph(names: Sequence[str]) -> str | None:
    """Said of a file whose ids all name users (This Is My Jam's ``followers.tsv``: followed_user_id,
    follower_user_id; Epinions' trust pairs): no item to suggest, and the second user would become one."""
    users = [n for n in names if _USER_AS_SUCH & set(w := name_words(n)) and not _NOT_THE_USERS & set(w)]
    ids = [n for n in names if name_words(n)[-1:] == ["id"] or n.lower() in _SHORT_ITEM_IDS]
    if len(users) < 2 or not set(ids) <= set(users) or any(_ITEM_WORDS & set(name_words(n)) for n in names):
        return None
    return (
        f"its ids ({', '.join(map(repr, users))}) all name users: a social or trust graph, which has no place in the "
        "event contract (README, 'Social or trust edges'); leave the file out of the import"
    )


def _words_in(frame: pd.DataFrame, col: str) -> bool:
    """Whether most of a column's first filled cells (where it was read) are no numbers."""
    if col not in frame:
        return False
    cells = frame[col].dropna().astype(str).str.strip().head(200)
    cells = cells[cells != ""]
    return bool(len(cells)) and bool(to_numbers(cells).isna().mean() > 0.5)


def _suggested_options(frame: pd.DataFrame, unread: Sequence[str], given_user: str | None = None) -> str | None:
    """The options a file's column names suggest, all at once (Goodbooks' ratings.csv took four runs,
    one missing option each): a column named for users, one for items (else another id, else the
    columns that describe items together, else a placeholder), a rating, and a time (else
    ``--no-time``). None without a user; the ``--user-col`` given, when the file has it, is the user
    whatever its name (KKBox's ``msno``)."""
    # a column empty on every row read is no one's id nor a rating (Amplitude's adid and sample_rate)
    empty = {str(c) for c in frame.columns if len(frame) and bool(frame[c].isna().all())}
    names = [n for n in [*map(str, frame.columns), *unread] if n not in empty]
    words = {name: set(name_words(name)) for name in names}
    given = given_user if given_user in names else None
    user = given or user_column(names) or session_column(names)
    if (
        given is None
        and user is not None
        and _mostly_missing(frame, user)
        and (session := session_column(names)) not in (None, user)
    ):
        user = session  # Diginetica's userId is NA for most visits: its sessionId stands for the users
    item = _item_column(names, words, user)
    if user is None:
        return None
    coarse = _item_describers(names) if item is None else []
    rating = next(
        (
            n
            for n in names
            if n not in (user, item)
            and (_RATING_WORDS & words[n] or (n.lower() in _RATING_NAMES and not _words_in(frame, n)))
            and not (_AGGREGATE_WORDS | _NOT_THE_USERS - {"score"}) & words[n]  # Untappd's rating_score
            and not any(w.isdigit() for w in words[n])  # Expedia's comp1_rate: a competitor's, one of eight
            and name_words(n)[-1:] not in (["id"], ["key"])  # Plex's rating_key is its item's id
        ),
        None,
    )
    # a column named as times that holds no dates or epoch numbers (Criteo's seconds from the period's
    # start) is still the time: its import then says how to read it, where --no-time would drop it
    timed = time_columns(frame, unread, exclude=(user, item)) or time_columns(None, names, exclude=(user, item))
    from ingest.time_parts import (  # they read names as this module does
        date_clock_columns,
        date_hour_columns,
        split_time_columns,
    )

    # a date written over columns (HetRec's date_day, date_month, …): all of them, not the day alone; a
    # date beside a time of day (an export's Date and Time): both, not the time of day alone
    rest = [n for n in names if n not in (user, item, rating)]
    split = split_time_columns(rest, frame) or date_clock_columns(rest, frame) or date_hour_columns(rest, frame)
    # no name says which column the items are: the rest is offered all the same (Sketchfab's modelname)
    key = option_value(item) if item else ",".join(map(option_value, coarse)) or "COLUMN"
    parts = [f"--user-col {option_value(user)}", f"--item-col {key}"]
    if rating is not None:
        parts.append(f"--rating-col {option_value(rating)}")
    if split and not [t for t in timed if t not in split]:  # a column of whole times elsewhere is read first
        parts.append(f"--time-col {option_value(','.join(split))}")
    else:
        parts.append(f"--time-col {option_value(timed[0])}{_epoch_unit(frame, timed[0])}" if timed else "--no-time")
    if rating is None and (click := _click_column(frame)) is not None:
        # followed without it, every row shown would import as a play (Yahoo!'s, Avito's, KDD Cup's)
        parts.append(f"--type-col {option_value(click)} --type-map 1=play,0=impression")
    if item is None:
        parts.append(
            f"({' and '.join(coarse)} {'together name' if len(coarse) > 1 else 'names'} the items: coarser than "
            "the products)"
            if coarse
            else "(COLUMN: the one that names the items; no column's name says which)"
        )
    return " ".join(parts)


#: rows a file needs before one row per user and no item make it a users file
_PROFILE_ROWS = 20
#: words of a profile's columns: what a person is, not what they did
_PROFILE_WORDS = frozenset(
    {"age", "gender", "sex", "birth", "birthday", "dob", "country", "location", "city", "zip", "occupation", "job",
     "registered", "signup", "joined", "member", "premium", "pupil", "marital", "income", "education", "language"}
)  # fmt: skip


def _profile_hint(frame: pd.DataFrame) -> str | None:
    """A word when the file is a users file, not a log: a column named for users holds a different
    id on every row, and no column's name says it names items (Eedi's ``student_metadata``, UCI's
    ``userprofile.csv``). Followed, the usual suggestion imports a birthday as each user's one event."""
    names = list(map(str, frame.columns))
    user = user_column(names)
    if user is None or len(names) < 2 or len(frame) < _PROFILE_ROWS:
        return None
    if _item_column(names, {n: set(name_words(n)) for n in names}, user):
        return None
    if not any(_PROFILE_WORDS & set(name_words(n)) for n in names if n != user):
        return None  # a log whose item column's name says nothing (user_id, url, ts) is no profile
    ids = frame[user].dropna().astype(str).str.strip()
    if len(ids) < _PROFILE_ROWS or not ids.is_unique or any(_listed(frame[c]) for c in frame.columns if c != user):
        return None  # a row per user that lists their items (Tradesy's bought, want, sold) is a log of them
    return (
        f"; its rows are one per user ({user!r} differs on every row) and no column names an item: a users file "
        "(a profile), not a log of events. Import the log of what the users did, and name this file beside it "
        "with --users, which gives each user's events the country or device it holds (README, 'A users file')"
    )


def _listed(column: pd.Series) -> bool:
    """Whether a column's first filled cells hold lists or records, as values or written out."""
    cells = column.dropna().head(20)
    return bool(len(cells)) and bool(
        cells.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)) or str(v).lstrip()[:1] in ("[", "{")).all()
    )


def _mostly_missing(frame: pd.DataFrame, col: str) -> bool:
    """Whether most of the read cells of ``col`` are empty or a missing-value token."""
    if col not in frame.columns or frame.empty:
        return False
    cells = frame[col].astype("string").str.strip().str.lower()
    return bool((cells.isna() | (cells == "") | cells.isin(MISSING_TOKENS)).mean() > 0.5)


#: the import option naming each role's column, said when the column is not found (a default such as
#: user_id is not in every file)
_ROLE_OPTIONS = {
    "user": "user-col",
    "item": "item-col",
    "item id": "item-id-col",
    "time": "time-col",
    "time offset": "time-offset-col",
    "rating": "rating-col",
    "type": "type-col",
    "consent": "consent-col",
    "analytics consent": "analytics-consent-col",
    "query": "query-col",
    "count": "count-col",
    "history": "history-col",
    "clicked": "clicked-col",
    "time played": "played-col",
    "item length": "length-col",
    "device": "device-col",
    "locale": "locale-col",
    "session": "session-col",
}


#: a headerless file at least this wide has its user, item and rating left to the user in the --names example
WIDE_GUESS = 10
#: a headerless file at least this wide is said to look like a matrix of ratings
WIDE_COLUMNS = 20
#: columns a "not found" error lists: a wide header's every name (a user looks for theirs among them),
#: but only a few of a first line of data (Jester's 101 ratings)
SHOWN_COLUMNS = 80
SHOWN_DATA_COLUMNS = 12


#: words of a column name that say it holds users
USER_WORDS = frozenset(
    {
        "user", "username", "userid", "member", "customer", "reviewer", "account", "uid", "visitor", "client",
        "person", "author", "actor", "owner", "listener", "viewer", "reader", "player", "buyer", "rater",
        "profile", "uuid", "msno",  # msno: KKBox's member ids
    }
)  # fmt: skip
#: ... of which these name someone who may be the user, or the item's maker (a book's author, a repo's
#: owner), or a part of an account (a profile): second to a column named for users as such
_MAYBE_USER_WORDS = frozenset({"author", "actor", "owner", "profile", "uuid"})  # Outbrain's and Junyi's uuid
_USER_AS_SUCH = USER_WORDS - _MAYBE_USER_WORDS
#: words of a column name that say it holds times (``date_added``, ``Watched Date``, ``createdAt``), as
#: does a last word ``at`` (``read_at``)
_TIME_WORDS = frozenset({"date", "time", "timestamp", "datetime", "ts", "dt", "dat", "created", "updated", "when"})
#: a word of a name written together that ends so names a time (Diginetica's ``eventdate``, LibraryThing's
#: ``unixtime``), where its cells read as times; a length of time so written (``runtime``) is none
_TIME_ENDING = re.compile(
    r"(?!(?:run|play|life|up|down|watch|stay|screen|half|over)time$)[a-z]+(?:date|time|timestamp)"
)
#: filled cells looked at to tell a column of times
_TIME_PEEK = 50
#: the share of those cells that must read as times
_TIME_SHARE = 0.9


def name_words(name: str) -> list[str]:
    """A column name's words, split at punctuation and at camelCase: ``createdAt`` is created, at; and
    an id written together with what it names, ``visitorid`` (RetailRocket's), is visitor, id."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]
    return [part for w in words for part in _id_written_together(w)]


def _id_written_together(word: str) -> list[str]:
    # only after a word that names users or items: "valid" and "paid" are no ids
    stem, plural = (word[:-3], "ids") if word.endswith("ids") else (word[:-2], "id")
    if word.endswith(("id", "ids")) and (stem in USER_WORDS or stem in _ITEM_WORDS or stem in _STEMS_OF_IDS):
        return [stem, plural]
    return [word]


#: other words an id written together may follow (``sessionid``, WeChat's ``feedid``)
_STEMS_OF_IDS = frozenset({"session", "feed", "visit", "device", "event", "order", "transaction", "display"})


def reads_as_dates(cells: pd.Series) -> pd.Series:
    """Which cells pandas reads as a date or a time, each in its own format (a guess per cell, which
    pandas warns of: these are looks for a note or an example, not the import's reading)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(cells, errors="coerce", format="mixed", utc=True).notna()


def time_columns(frame: pd.DataFrame | None, unread: Sequence[str] = (), exclude: Collection[str] = ()) -> list[str]:
    """Columns whose name says they hold times and whose cells, where they were read, do: dates and
    times written out (at least eight characters with a separator, so a year alone is none), or
    epoch numbers. ``unread``: columns not read, judged by their names alone."""
    found: list[tuple[bool, float, float, str]] = []
    read = [*(map(str, frame.columns) if frame is not None else [])]
    columns = [*read, *unread]
    for col in columns:
        words = name_words(col)
        written_together = col in read and any(_TIME_ENDING.fullmatch(w) for w in words)
        if col in exclude or not (_TIME_WORDS & set(words) or words[-1:] == ["at"] or written_together):
            continue
        # a date alone last (2): by the cells where they were read, else by the name, which may say epoch (0)
        named = set(words) & _TIME_WORDS
        rank = 0 if {"unix", "epoch"} & set(words) else 2 if named and named <= {"date"} else 1
        empty, constant = 0.0, False
        if frame is not None and col in frame.columns:
            cells = frame[col].dropna().astype(str).str.strip()
            cells = cells[cells != ""]
            # one value on every row read (DMSC's Crawl_Date beside its Date) dates the file, not its events
            constant = len(cells) > 1 and cells.nunique() == 1
            # tenths of the rows left empty: Goodreads' Date Read (read shelf only) after its Date Added
            empty = round(1 - len(cells) / max(len(frame), 1), 1)
            cells = cells.head(_TIME_PEEK)
            if cells.empty:
                continue
            numbers = to_numbers(cells)
            if numbers.notna().all():
                timed, rank = bool(numbers.between(*_EPOCH_RANGE).all()), 1
            else:
                timed = _written_times(cells, _TIME_SHARE)
                # a time of day without a zone after epoch numbers, which are UTC (KuaiRec's Beijing-time
                # `time` beside its `timestamp`)
                zoned = cells.str.contains(r"(?:Z|UTC|GMT|[+-]\d\d:?\d\d)$", regex=True).all()
                rank = (1 if zoned else 1.5) if cells.str.contains(":").any() else 2
            if not timed:
                continue
        found.append((constant, rank, empty, col))
    if not found and frame is not None:
        # no name says so: a column of dates written out is a time all the same (a column named in
        # another language, or ``t``); epoch numbers are not, since ids and counts can look like them
        found = [
            (False, 3, 0.0, col)
            for col in read
            if col not in exclude
            and not to_numbers(cells := frame[col].dropna().astype(str).str.strip().head(_TIME_PEEK)).notna().all()
            and _written_times(cells, _TIME_SHARE)
        ]
    # a column with the time of day first: Amazon's unixReviewTime before its reviewTime ("09 13, 2009");
    # of two alike, the one more rows fill; a column of one value last
    return [col for *_, col in sorted(found, key=lambda found: found[:3])]


def option_value(name: str) -> str:
    """A column name as a command line takes it: quoted when it holds a space or a quote."""
    return repr(name) if re.search(r"[\s'\"]", name) else name


#: epoch times in seconds or milliseconds since 1973 lie in this range; ratings, counts and ids rarely do
_EPOCH_RANGE = (1e8, 1e13)
#: a column of numbers no larger than this, after the user and item, is shown as the rating
_RATING_TOPS = 10


def _hundred_scale(numbers: pd.Series) -> bool:
    """Whole numbers from 10 to 100: a rating out of 100 that starts at 10 (VNDB's votes, 10 for 1.0);
    counts of plays start lower."""
    return bool(numbers.between(10, 100).all() and (numbers % 1 == 0).all() and numbers.nunique() > 2)


def _names_example(frame: pd.DataFrame, names_option: str, item_id: str | None = None) -> str:
    """A ``--names`` example for a headerless file that imports as it reads, judged from the rows read
    (whose first line became the column names): a running count of the rows is no user
    (``impression_id``); a column of ids marked ``-1``/``-0`` is an impression list, and one of plain id
    lists beside it a history (MIND's); the first other two columns are the user and the item (none
    beside an impression list, which names the items); a column of small numbers is named and read as
    the rating, one of epoch numbers or dates as the time, and without one ``--no-time`` is said (a
    column named ``rating`` is only read with ``--rating-col``: Yahoo! R3's was imported as plays by an
    example that named it alone)."""
    if "items" in names_option:
        # an items file's other columns are not guessed by position: EachMovie's second is a URL, ZhihuRec's
        # a time, which named title and genres would import as such
        others = [f"c{k + 1}" for k in range(1, len(frame.columns))]
        if len(others) == 1:  # an id and one more: its title
            return f"{names_option} {item_id or 'item_id'},title"
        return (
            f"{names_option} {','.join([item_id or 'item_id', *others])}, then --items-cols title=cN,genre=cN,… "
            "naming which holds what"
        )
    columns = [_example_cells(frame, position) for position in range(len(frame.columns))]
    kinds = [_list_kind(cells) for cells in columns]
    impressions = "marked" in kinds
    names: list[str] = []
    type_map = ""
    unit = ""  # epoch numbers need their unit named: seconds below 1e11 (the year 5138), else milliseconds
    for position, cells in enumerate(columns):
        name, kind = f"c{position + 1}", kinds[position]
        numbers = to_numbers(cells)
        if bool(cells.str.strip().eq("").all()):
            pass  # an empty column (Jester 2's fields are parted by two tabs: every other one is empty)
        elif kind == "marked" and "impressions" not in names:
            name = "impressions"
        elif kind == "plain" and "history" not in names and "items" not in names:
            name = "history" if impressions else "items"
        elif kind is None and not names and _running_count(numbers):
            name = "impression_id" if impressions else "row_id"  # a running count of the rows: no user
        elif (
            kind is None
            and "user_id" not in names
            and _small_counts(numbers)
            and position + 1 < len(columns)
            and _at_least(to_numbers(columns[position + 1]), numbers)
        ):
            # counts where the ids would be (KDD Cup 2012's Click and Impression first): no guess is sound
            return (
                f"{names_option} {','.join(f'c{k + 1}' for k in range(len(columns)))}, then --user-col and "
                "--item-col naming the users' and the items' columns: the first ones hold small counts, not ids, "
                "so the dataset's documentation has to say which are which"
            )
        elif kind is None and "timestamp" not in names and numbers.isna().any() and _written_times(cells):
            name = "timestamp"  # dates first (Jellyfin's playback backup): no user, wherever they stand
        elif kind is None and not names and (unit_of := _epoch_first(numbers)):
            # MLHD's per-listener files open with epoch seconds, each row its own: no user's id
            name, unit = "timestamp", unit_of
        elif kind is None and "behavior" not in names and (mapped := _action_words(cells)) is not None:
            name, type_map = "behavior", mapped  # Taobao's pv, buy, cart, fav: what each row was
        elif kind is None and _letter_codes(cells):
            pass  # a code of one letter (Ta Feng's age group A-K, its area A-H) is no user and no item
        elif kind is None and ("user_id" not in names or "item_id" not in names) and _measures(numbers):
            pass  # a latitude or a price (Gowalla's check-ins: user, time, latitude, longitude, place) is no id
        elif kind is None and "user_id" not in names:
            name = "user_id"
        elif kind is None and "item_id" not in names and not impressions and "items" not in names:
            name = "item_id"
        elif len(numbers) and numbers.notna().all():
            low, high = float(numbers.min()), float(numbers.max())
            signs = bool(numbers.isin([-1, 0, 1]).all()) and low == -1  # Tencent Weibo's result: 1 or -1
            signs = signs or -_RATING_TOPS <= low < 0 < high <= _RATING_TOPS  # Jester's -10 … 10
            if "rating" not in names and (0 <= low or signs) and (high <= _RATING_TOPS or _hundred_scale(numbers)):
                name = "rating"
            elif "timestamp" not in names and _epoch_numbers(numbers):
                name, unit = "timestamp", (" --time-unit s" if numbers.median() < 1e11 else " --time-unit ms")
        elif "timestamp" not in names:
            if reads_as_dates(cells).all():
                name = "timestamp"
        names.append(name)
    if "user_id" in names and "item_id" in names:
        user, item = names.index("user_id"), names.index("item_id")
        if _product_codes(columns[user], columns[item]) and not _product_codes(columns[item], columns[user]):
            names[user], names[item] = "item_id", "user_id"  # Amazon 2018's ratings-only files: item, user, …
    last = to_numbers(columns[-1]) if columns else pd.Series(dtype=float)
    if "timestamp" not in names and "rating" not in names and "item_id" in names[:-1] and _play_counts(last):
        names[-1] = "plays"  # Last.fm 360K's user, artist id, name, plays: no time, a count last
    if len(names) >= WIDE_GUESS and "impressions" not in names and "items" not in names:
        # ICME's twelve columns of codes: a city by position where the item would be, a channel where the
        # rating would be. The time and the kind of row tell themselves; which id is whose, the documentation
        named = [n if n in ("timestamp", "behavior") else f"c{k + 1}" for k, n in enumerate(names)]
        behavior = (
            " --type-col behavior" + (f" --type-map {type_map}" if type_map else "") if "behavior" in names else ""
        )
        return (
            f"{names_option} {','.join(named)}{behavior}{unit if 'timestamp' in names else ' --no-time'}, then "
            "--user-col and --item-col naming the users' and the items' columns: a file this wide is not guessed by "
            "position, so the dataset's documentation has to say which are which"
        )
    extra = ""
    if "plays" in names:
        extra += " --count-col plays"
    if "impressions" in names:
        extra += " --impressions-col impressions" + (" --history-col history" if "history" in names else "")
    elif "items" in names:
        extra += " --item-col items --item-lists"
    if "rating" in names:
        extra += " --rating-col rating"
    if "behavior" in names:
        extra += " --type-col behavior" + (f" --type-map {type_map}" if type_map else "")
    if "timestamp" not in names:
        extra += " --no-time"
    return f"{names_option} {','.join(names)}{extra}{unit}"


#: the share of a column's numbers that must be epoch times for it to be offered as the time: a few stray
#: stamps (Taobao's 0 and 1970 among its 2017 seconds) leave it a column of times
_EPOCH_SHARE = 0.95


def _epoch_numbers(numbers: pd.Series) -> bool:
    within = numbers.ge(_EPOCH_RANGE[0]) & numbers.lt(_EPOCH_RANGE[1])
    return bool(numbers.lt(_EPOCH_RANGE[1]).all()) and float(within.mean()) >= _EPOCH_SHARE


#: what a shop's or a player's log calls each kind of row, and the event type each is imported as where
#: its word is no event type (Taobao's pv, cart, fav and buy; RetailRocket's addtocart and transaction).
#: A view is a play here: a log of views and purchases has no other positive to learn from
_ACTIONS = {
    "pv": "play", "view": "play", "click": "play", "play": "play", "listen": "play", "watch": "play",
    "cart": "add_to_playlist", "addtocart": "add_to_playlist", "add_to_cart": "add_to_playlist",
    "fav": "like", "favorite": "like", "like": "like", "buy": "like", "purchase": "like", "transaction": "like",
    "order": "like", "skip": "skip", "dislike": "not_interested", "impression": "impression",
}  # fmt: skip
#: distinct words a column of actions holds, at most
_MAX_ACTIONS = 30


def _action_words(cells: pd.Series) -> str | None:
    """A ``--type-map`` for a column whose cells are a few words naming what each row was, nearly all of
    them known actions ("" when every word is an event type already), or None for any other column."""
    text = cells.dropna().astype(str).str.strip().str.lower().iloc[1:]  # the first, a header pandas read
    words = text.unique()
    if len(text) <= _CODE_ROWS or not 2 <= len(words) <= _MAX_ACTIONS or float(text.isin(_ACTIONS).mean()) < 0.9:
        return None
    return ",".join(f"{w}={_ACTIONS[w]}" for w in sorted(words) if w in _ACTIONS and w != _ACTIONS[w])


#: Amazon's product ids (ASINs: B0 and eight more, or a book's ISBN-10) and its reviewers' ids
_ASIN = r"B[0-9A-Z]{9}|\d{9}[\dX]"
_AMAZON_USER = r"A[0-9A-Z]{11,20}"


def _product_codes(cells: pd.Series, other: pd.Series) -> bool:
    """Whether ``cells`` are Amazon product ids: nearly all shaped as ASINs, and some of them plainly
    so (a ``B0…`` or an ISBN's ``X``), or beside a column of Amazon's reviewer ids; ten digits alone
    could be padded user numbers."""
    text = cells.dropna().astype(str).str.strip()
    if len(text) < _CODE_ROWS or float(text.str.fullmatch(_ASIN).mean()) < 0.9:
        return False
    marked = bool(text.str.match(r"B0|\d{9}X").any())
    beside = other.dropna().astype(str).str.strip()
    return marked or (len(beside) > 0 and float(beside.str.fullmatch(_AMAZON_USER).mean()) >= 0.9)


def _play_counts(numbers: pd.Series) -> bool:
    """Whole numbers from 1 with a long tail (the busiest pair played more than ten times as often as
    the typical one): a last column of play counts, not ids, which spread evenly."""
    if len(numbers) <= _CODE_ROWS or numbers.isna().any() or (numbers % 1 != 0).any() or numbers.min() < 1:
        return False
    median = float(numbers.median())
    return float(numbers.max()) > max(_RATING_TOPS, 10 * median)


#: the share of a column's numbers that must have a fraction for it to be taken for a measure, not ids
_FRACTIONS = 0.9


def _measures(numbers: pd.Series) -> bool:
    """Numbers nearly all with a fraction: coordinates or prices, not ids (whose copies pandas may
    write as ``266079.0``) and not a rating of halves."""
    if not len(numbers) or numbers.isna().any():
        return False
    return float((numbers % 1 != 0).mean()) >= _FRACTIONS


#: rows a column of one-letter cells must have to be taken for a code
_CODE_ROWS = 10


def _letter_codes(cells: pd.Series) -> bool:
    """Cells that are each one letter; the first, the header pandas read, may carry the ``.1`` it adds to
    a name it saw before."""
    text = cells.dropna().astype(str).str.strip()
    # a few rows of letters are a toy file's users (a, b, c); a code is seen again and again
    return (
        len(text) > _CODE_ROWS
        and bool(text.str.fullmatch(r"[A-Za-z]").iloc[1:].all())
        and bool(re.fullmatch(r"[A-Za-z](?:\.\d+)?", text.iloc[0]))
    )


#: a file name (before its first dot) that is an id: a UUID, or 16 hex digits or more (digits alone are
#: as often a date or a part's number)
_ID_NAMED = r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]*[a-f][0-9a-f]*"
_ID_NAMED_MIN = 16
#: epoch seconds of 2000-01-01 and of 2100-01-01: a first column of numbers between them (or those in
#: milliseconds), nearly each its own, is read as times rather than as users
_EPOCH_YEARS_S = (946_684_800, 4_102_444_800)
#: ... the share of its cells that must be distinct: a user's id comes back row after row
_DISTINCT_TIMES = 0.9


def _epoch_first(numbers: pd.Series) -> str:
    """`` --time-unit s`` (or ``ms``) when a first column's numbers are all epoch times of this century
    and nearly each its own, else ``""``."""
    if len(numbers) <= _CODE_ROWS or numbers.isna().any() or numbers.nunique() < _DISTINCT_TIMES * len(numbers):
        return ""
    low, high = _EPOCH_YEARS_S
    if numbers.between(low, high).all():
        return " --time-unit s"
    if numbers.between(low * 1000, high * 1000).all():
        return " --time-unit ms"
    return ""


def _written_times(cells: pd.Series, share: float = 1.0) -> bool:
    """Whether at least ``share`` of the cells are dates or times written out (eight characters or
    more with a separator, so that no id or year passes)."""
    text = cells.dropna().astype(str).str.strip()
    written = text.str.len().ge(8) & text.str.contains(r"[-/:\s]")
    return bool(len(text)) and bool((written & reads_as_dates(text)).mean() >= share)


#: rows a column must count one by one to be taken for a running count of the rows
_COUNTED_ROWS = 10


def _small_counts(numbers: pd.Series) -> bool:
    """Whole numbers from 0 up to a few, of more than one value, not in order: counts of clicks, not
    ids (a file sorted by user starts with many rows of user 0, then of user 1: KGRec's 0, 0, …, 1, …)."""
    if not len(numbers) or numbers.isna().any() or numbers.nunique() < 2 or numbers.is_monotonic_increasing:
        return False
    return bool((numbers % 1 == 0).all() and numbers.min() == 0 and numbers.max() <= _RATING_TOPS)


def _at_least(numbers: pd.Series, counts: pd.Series) -> bool:
    """Whole numbers of more than one value, on every row at least ``counts``' (impressions beside
    their clicks: KDD Cup 2012's Track 2)."""
    if len(numbers) != len(counts) or numbers.isna().any() or numbers.nunique() < 2:
        return False
    return bool((numbers % 1 == 0).all() and (numbers.to_numpy() >= counts.to_numpy()).all())


def _running_count(numbers: pd.Series) -> bool:
    """1, 2, 3, … down the rows: an impression's or a line's number, no user's."""
    return len(numbers) >= _COUNTED_ROWS and bool(numbers.notna().all()) and bool(numbers.diff().iloc[1:].eq(1).all())


def _example_cells(frame: pd.DataFrame, position: int) -> pd.Series:
    """A column's first cells, its misread header first (pandas names an empty one ``Unnamed: 3``)."""
    head = str(frame.columns[position])
    first = pd.Series([None if head.startswith("Unnamed: ") else head], dtype="string")
    return pd.concat([first, frame.iloc[:200, position].astype("string")]).dropna().reset_index(drop=True)


def _list_kind(cells: pd.Series) -> str | None:
    """``marked`` for space-separated ids marked ``-1``/``-0`` (an impression list), ``plain`` for
    lists of ids that each hold a digit, None for anything else, judged on most filled cells."""
    tokens = cells[cells.str.strip() != ""].str.split()
    if tokens.empty:
        return None
    listed = tokens.map(lambda ts: len(ts) >= 2 and all(any(ch.isdigit() for ch in t) for t in ts))
    if float(listed.mean()) < 0.5:
        return None
    if reads_as_dates(cells[listed.index[listed]]).mean() >= 0.5:
        return None  # a date and a time of day ("2020-01-01 10:00") are no list
    marked = tokens[listed].map(lambda ts: all(t[-2:] in ("-0", "-1") for t in ts))
    return "marked" if float(marked.mean()) >= 0.5 else "plain"


#: a cell written as a spreadsheet formula that keeps its text as text (``="0439023483"``: Goodreads'
#: ISBNs, so that a spreadsheet keeps their leading zeros); ``=""`` is an empty cell
_FORMULA_TEXT = r'^="(.*)"$'


def _stripped(s: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")
    out = s.astype("string[pyarrow]").str.strip()  # arrow strings: vectorized strip
    formula = out.str.startswith('="').fillna(False).to_numpy(dtype=bool)
    if formula.any():
        out = out.copy()
        out.iloc[np.flatnonzero(formula)] = out[formula].str.replace(_FORMULA_TEXT, r"\1", regex=True).str.strip()
    return out


#: a number as NumPy's ``savetxt`` and MATLAB's ``save -ascii`` write it (``5.0200000e+02``): a
#: point and a signed exponent, which no hex or base-36 id has
_EXPONENT_ID = r"[+-]?\d\.\d+[eE][+-]\d+"
#: ... read as the whole number it is below this (a float's exact integers)
_EXACT_BELOW = 2**53
#: a whole number written as a float (``266079.0``); a leading zero keeps a code as written (``007.0``)
_POINT_ZERO_ID = r"-?(?:0|[1-9]\d*)\.0+"


def _whole_numbers(out: pd.Series) -> pd.Series:
    """Ids written as exponent numbers that are whole (``5.0200000e+02``), or as whole floats
    (JData's and Online Retail's ``266079.0``: an integer column with gaps, written by pandas), as
    plain ones (``502``, ``266079``), so they read as the same ids in any file that writes them
    plainly (JData's user file, an erasure request); other cells unchanged. Cell by cell, so that
    every chunk of a file and its items file read one id alike."""
    point_zero = out.str.fullmatch(_POINT_ZERO_ID).fillna(False).to_numpy(dtype=bool)
    if point_zero.any():
        out = out.copy()
        out.iloc[np.flatnonzero(point_zero)] = out[point_zero].str.replace(r"\.0+$", "", regex=True)
    written = out.str.fullmatch(_EXPONENT_ID).fillna(False).to_numpy(dtype=bool)
    if not written.any():
        return out
    numbers = to_numbers(out[written]).to_numpy(dtype="float64")
    whole = (numbers % 1 == 0) & (np.abs(numbers) < _EXACT_BELOW)
    rows = np.flatnonzero(written)[whole]
    out = out.copy()
    out.iloc[rows] = pd.array(numbers[whole].astype(np.int64).astype(str), dtype=out.dtype)
    return out


def clean_ids(s: pd.Series, *, names: bool = False) -> pd.Series:
    """Ids as stripped strings, None when empty or a missing-value token (``NA``, ``null``, …: an
    import then quarantines the row as ``missing_id``, where a literal "NA" would have become one
    user holding every anonymous row); integral floats (from parquet NaNs) lose '.0', and so do
    whole numbers written with an exponent. ``names`` (an artist, a title): only an empty cell is
    missing, and the text stays as written."""
    out = _stripped(s)
    if names:
        out = out.mask(out == "")
    else:
        out = _whole_numbers(out)
        out = out.mask((out == "") | out.str.lower().isin(MISSING_TOKENS))
    return out.astype(object).where(out.notna(), None)


def missing_token_counts(s: pd.Series) -> dict[str, int]:
    """The cells of ``s`` that ``clean_ids`` reads as missing beyond empty ones, counted as written."""
    out = _stripped(s)
    return {str(t): int(n) for t, n in out[out.str.lower().isin(MISSING_TOKENS)].value_counts().items()}


def missing_tokens_note(s: pd.Series, col: str, most: str = "") -> str | None:
    """What ``clean_ids`` read as missing in ``s`` beyond empty cells, said, or None; ``most`` is
    added when most rows are missing (what to do instead)."""
    return tokens_note(missing_token_counts(s), col, len(s), most)


def tokens_note(counts: dict[str, int], col: str, rows: int, most: str = "") -> str | None:
    """``missing_tokens_note`` from counts (added up over the chunks of an import)."""
    if not counts:
        return None
    shown = ", ".join(f"{t!r} ({n:,})" for t, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    note = f"column {col!r}: {shown} read as missing ids (quarantined as missing_id), not as an id"
    return note + (f"; most rows have none: {most}" if most and sum(counts.values()) > rows / 2 else "")


def option_pairs(spec: str | None, option: str, shape: str, empty_name: bool = False) -> list[tuple[str, str]]:
    """An option of comma-separated ``A=B`` pairs (``--type-map``, ``--items-cols``), each side
    stripped; empty parts are skipped. ``shape`` names the sides in the error, e.g. ``NAME=TYPE``.
    With ``empty_name`` a pair may have nothing left of ``=``: it names the empty cell (``=play``)."""
    pairs: list[tuple[str, str]] = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        left, eq, right = part.partition("=")
        if not eq or not (left.strip() or empty_name) or not right.strip():
            raise ImportFormatError(f"{option} takes {shape} pairs separated by commas, not {part.strip()!r}")
        pairs.append((left.strip(), right.strip()))
    return pairs


def is_present(raw: pd.Series) -> pd.Series:
    return raw.notna() & (raw.astype("string").str.strip() != "")
