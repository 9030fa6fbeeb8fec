"""One opener for every reader of a user's files: bytes or text through the compression a name says."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import pytest

from setlist.compressed import COMPRESSIONS, ArchiveError, compression_of, open_compressed
from setlist.errors import BadInput

TEXT = "user,item\nZoë,Amélie\r\n"


def _write(path: Path, data: bytes) -> None:
    suffix = path.suffix
    if suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(path.stem, data)
    else:
        packer = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}.get(suffix, lambda b: b)
        path.write_bytes(packer(data))


@pytest.mark.parametrize("suffix", ["", *COMPRESSIONS])
def test_bytes_and_text_come_out_as_written_through_each_compression(tmp_path, suffix):
    path = tmp_path / f"events.csv{suffix}"
    _write(path, TEXT.encode("utf-8"))
    assert compression_of(path) == (suffix or None)
    with open_compressed(path, "rb") as f:
        assert f.read() == TEXT.encode("utf-8")
    with open_compressed(path, "rt", encoding="utf-8", newline="") as f:
        assert f.read() == TEXT  # newline="" keeps the CRLF a CSV reader needs to see
    with open_compressed(path, "rt", encoding="utf-8") as f:
        assert f.read() == TEXT.replace("\r\n", "\n")


def test_text_decoding_takes_the_encoding_and_error_policy(tmp_path):
    path = tmp_path / "events.csv.gz"
    _write(path, TEXT.encode("cp1252"))
    with open_compressed(path, "rt", encoding="cp1252") as f:
        assert f.read() == TEXT.replace("\r\n", "\n")
    with open_compressed(path, "rt", encoding="utf-8", errors="replace") as f:
        assert "\ufffd" in f.read()


def test_a_zip_of_several_files_or_none_is_refused_naming_the_count(tmp_path):
    many = tmp_path / "ml.zip"
    with zipfile.ZipFile(many, "w") as z:
        z.writestr("ratings.csv", "u,i\n")
        z.writestr("movies.csv", "i,t\n")
        z.writestr("docs/", "")
    with pytest.raises(ArchiveError, match="ml.zip holds 2 files; a zip is read when it holds one file"):
        open_compressed(many, "rb")
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(BadInput, match="empty.zip holds 0 files"):
        open_compressed(empty, "rt", encoding="utf-8")


def test_only_reading_modes_are_taken(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="mode 'rb' or 'rt'"):
        open_compressed(path, "w")
    assert not path.exists()
