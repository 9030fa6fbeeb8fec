"""A text encoding for files that mix UTF-8 with cp1252 (or Latin-1) line by line.

Logs appended over years by different tools (HetRec's Delicious bookmarks, scraped titles) hold UTF-8
lines beside Windows or Latin-1 ones. Read wholly as cp1252, every UTF-8 title turns to mojibake
(``Über`` → ``Ãœber``); read as UTF-8, the other bytes do not decode. Decoded as UTF-8, with each byte
that is no UTF-8 read as cp1252 (Latin-1 for the five bytes cp1252 leaves undefined), both kinds of
line come out right.

The codec is registered under ``MIXED`` so that everything that opens a file by its encoding's name
(Python's ``open``, pandas' readers) reads it alike.
"""

from __future__ import annotations

import codecs
import re

import numpy as np

#: the codec's name, as ``open(..., encoding=MIXED)`` and pandas take it
MIXED = "utf_8_then_cp1252"
_ERRORS = "setlist-cp1252"
#: a multi-byte UTF-8 sequence that cp1252 text forms only by accident: two-byte ones led by Latin-1's
#: letters and symbols (C2, C3), Latin Extended (C4, C5), Greek (CE, CF), Cyrillic (D0, D1), Hebrew
#: (D7) or Arabic (D8, D9); any three- or four-byte one. An accented capital before a no-break space
#: or a curly quote ("É\xa0", "Ô”") is a valid pair too, but of scripts a mixed log rarely holds
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xc5\xce\xcf\xd0\xd1\xd7\xd8\xd9][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
#: a file is taken for a mix when its UTF-8 sequences are this many at least …
MIXED_MIN_SEQUENCES = 3
#: … and hold this share of its bytes above ASCII: Latin-1 text forms such a sequence only by accident
MIXED_MIN_SHARE = 0.05


def _as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad), exc.end


def _decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
    return codecs.utf_8_decode(data, _ERRORS, True)


class _IncrementalDecoder(codecs.BufferedIncrementalDecoder):
    def _buffer_decode(self, data: bytes, errors: str, final: bool) -> tuple[str, int]:
        return codecs.utf_8_decode(data, _ERRORS, final)


def _search(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_").lower() != MIXED:
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(
        name=MIXED,
        encode=utf8.encode,
        decode=_decode,
        incrementalencoder=utf8.incrementalencoder,
        incrementaldecoder=_IncrementalDecoder,
        streamreader=utf8.streamreader,
        streamwriter=utf8.streamwriter,
    )


codecs.register_error(_ERRORS, _as_cp1252)
codecs.register(_search)


class MixCount:
    """Counts, block by block, what tells a file that mixes UTF-8 with a one-byte encoding."""

    def __init__(self) -> None:
        self.sequences = 0
        self.sequence_bytes = 0
        self.high_bytes = 0

    def add(self, block: bytes) -> None:
        found = _UTF8_SEQUENCE.findall(block)
        self.sequences += len(found)
        self.sequence_bytes += sum(map(len, found))
        self.high_bytes += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) > 0x7F))

    @property
    def mixed(self) -> bool:
        return self.sequences >= MIXED_MIN_SEQUENCES and self.sequence_bytes >= MIXED_MIN_SHARE * self.high_bytes

    @property
    def foreign_bytes(self) -> int:
        """Bytes above ASCII that are no part of a UTF-8 sequence: those read as cp1252."""
        return self.high_bytes - self.sequence_bytes
