"""A file replaced whole: the old contents or the new ones, and no temporary left behind."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from setlist.atomicfile import replace_atomic, temporary, write_atomic_bytes


def test_the_new_contents_replace_the_old_and_the_temporary_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    write_atomic_bytes(path, "old")
    write_atomic_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_writer_that_fails_leaves_the_old_file_and_no_half_written_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomic_bytes(path, "old")

    def half(fh: BinaryIO) -> None:
        fh.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        replace_atomic(path, half)
    assert path.read_text() == "old"
    assert not temporary(path).exists()
