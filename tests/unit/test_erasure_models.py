"""An erasure rewrites a candidate model's files (factors, ``seen``, the table of nearest items) as one:
a failure part-way (a full disk) changes none of them, a crash after the commit point is finished by the
next erasure, and a model whose files disagree on the users is not served from its misaligned parts."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from ingest import erasure
from ingest.erasure import _drop_user_row
from setlist.embedding_top import INDPTR_FILE, ITEMS_FILE, EmbeddingTop

USERS = ["u_a", "u_gone", "u_b", "u_c"]


def _index(folder: Path) -> Path:
    folder.mkdir(parents=True)
    arrays = folder / "arrays.npz"
    factors = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.savez(arrays, item_ids=np.array(["i1", "i2"]), user_ids=np.array(USERS), user_factors=factors)
    sp.save_npz(folder / "seen.npz", sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [0, 0]])))
    EmbeddingTop(2, np.array([0, 2, 3, 5, 6]), np.array([7, 8, 9, 1, 2, 3], np.uint16)).save(folder)
    return arrays


def _state(folder: Path) -> tuple[list[str], int, int, list[list[int]]]:
    with np.load(folder / "arrays.npz") as z:
        users = z["user_ids"].tolist()
    seen = sp.load_npz(folder / "seen.npz").shape[0]
    table = EmbeddingTop.load(folder, 2)
    assert table is not None
    rows = [table.row(n).tolist() for n in range(len(table.indptr) - 1)]
    return users, seen, len(rows), rows


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_full_disk_part_way_changes_no_file_and_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = _index(tmp_path / "index")
    before = _files(arrays.parent)
    real_save = np.save

    def full(fh: object, values: np.ndarray, *args: object, **kwargs: object) -> None:
        if getattr(fh, "name", "").endswith(
            f"{ITEMS_FILE}{erasure._STAGED}"
        ):  # part-way: some files staged, the rest not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(fh, values, *args, **kwargs)

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError):
        _drop_user_row(arrays, "u_gone")
    monkeypatch.undo()
    assert _files(arrays.parent) == before
    assert _drop_user_row(arrays, "u_gone")  # run again with room: done, aligned
    assert _state(arrays.parent) == (["u_a", "u_b", "u_c"], 3, 3, [[7, 8], [1, 2], [3]])


def test_a_crash_after_the_commit_point_is_finished_by_the_next_erasure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = _index(tmp_path / "index")
    real_replace = os.replace
    renames: list[str] = []

    def crash_after_one_rename(src: object, dst: object) -> None:
        if str(src).endswith(erasure._STAGED):
            if renames:
                raise KeyboardInterrupt  # as a kill would stop it, between two renames
            renames.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_after_one_rename)
    with pytest.raises(KeyboardInterrupt):
        _drop_user_row(arrays, "u_gone")
    monkeypatch.undo()
    assert len(renames) == 1 and (arrays.parent / erasure._REWRITE).exists()  # the files disagree now
    # the same erasure run again (or any other): the rewrite is finished first, then there is nothing to do
    assert not _drop_user_row(arrays, "u_gone")
    assert _state(arrays.parent) == (["u_a", "u_b", "u_c"], 3, 3, [[7, 8], [1, 2], [3]])
    assert not [p for p in arrays.parent.iterdir() if p.name.startswith(".")]


def _saved_index(folder: Path) -> dict[str, list[int]]:
    """A candidate index with a seen matrix and a table of nearest items; returns each user's table row."""
    from setlist.candidates import CandidateIndex

    index = CandidateIndex(
        np.array(["i1", "i2"]),
        np.array([0, 1]),
        ["rock", "jazz"],
        np.array(USERS),
        np.ones((4, 2), np.float32),
        np.ones((2, 2), np.float32),
        sp.csr_matrix((2, 2)),
        {},
        sp.csr_matrix(np.eye(4, 2)),
    )
    index.embedding_top = EmbeddingTop(2, np.array([0, 2, 3, 5, 6]), np.array([7, 8, 9, 1, 2, 3], np.uint16))
    index.save(folder)
    return {u: index.embedding_top.row(n).tolist() for n, u in enumerate(USERS)}


@pytest.mark.parametrize("renamed", [1, 2, 3])
def test_a_crash_between_any_two_renames_never_serves_a_user_another_users_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renamed: int
) -> None:
    from setlist.candidates import CandidateIndex

    folder = tmp_path / "index"
    rows = _saved_index(folder)
    real_replace = os.replace
    done: list[str] = []

    def crash(src: object, dst: object) -> None:
        if str(src).endswith(erasure._STAGED):
            if len(done) == renamed:
                raise KeyboardInterrupt
            done.append(Path(str(dst)).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        _drop_user_row(folder / "arrays.npz", "u_gone")
    monkeypatch.undo()
    assert done[-1] != "arrays.npz"  # the key goes last: until it moves, the user is still listed
    loaded = CandidateIndex.load(folder)
    table = loaded.embedding_top
    if table is not None:  # kept only when it is whole and lines up with the users
        assert {u: table.row(n).tolist() for n, u in enumerate(loaded.user_ids)} == {
            u: rows[u] for u in loaded.user_ids
        }
    seen = loaded.seen
    assert seen is None or seen.shape[0] == len(loaded.user_ids)


def test_a_model_whose_parts_disagree_on_the_users_is_not_served_from_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from setlist.candidates import CandidateIndex

    folder = tmp_path / "index"
    _saved_index(folder)
    # as a rewrite cut short before the files were replaced together left them: three users, four rows
    with np.load(folder / "arrays.npz") as z:
        parts = {k: z[k] for k in z.files}
    parts["user_ids"], parts["user_factors"] = parts["user_ids"][[0, 2, 3]], parts["user_factors"][[0, 2, 3]]
    np.savez(folder / "arrays.npz", **parts)
    with caplog.at_level(logging.WARNING, logger="setlist.candidates"):
        loaded = CandidateIndex.load(folder)
    assert loaded.embedding_top is None and loaded.seen is None
    assert f"{INDPTR_FILE} (4 rows) does not match the model's 3 users" in caplog.text


def test_a_model_file_that_cannot_be_read_stops_the_erasure_with_one_line_naming_it(tmp_path: Path) -> None:
    from setlist.errors import Refused

    arrays = tmp_path / "arrays.npz"
    arrays.write_bytes(b"")  # cut short to nothing: numpy says only EOFError, which the CLI shows as "Aborted."
    with pytest.raises(Refused, match=rf"cannot read the model file {arrays} \(EOFError"):
        _drop_user_row(arrays, "u_x")
