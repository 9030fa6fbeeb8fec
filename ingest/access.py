"""A subject-access request: what is stored about one user, where, and a copy of it to hand over.

It reads the places erasure rewrites (``ingest.erasure``), by the same pseudonym: the event logs, the
quarantine, the impressions, the feature files and training sets (each parquet file with a ``user_id``
column), the online store's rows of the user's views, the user's row in each candidate model's files and
the identity map. The residue scan erasure verifies with then names every other place holding the id or
the pseudonym (journals, SQL tables, Redis), so the answer leaves nothing out that an erasure would reach.
Nothing is changed.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.erasure import MODEL_FILE_ERRORS, event_logs, parquet_under, relative, targets, user_views
from ingest.residue import Finding, render
from setlist.errors import UsageError
from setlist.pseudonym import app_id, identity_rows
from setlist.settings import Settings

Progress = Callable[[str], None]


@dataclass
class Held:
    """One dataset's rows of the user: the place (as a receipt names it), the dataset within it, the rows."""

    place: str
    dataset: str
    rows: pd.DataFrame

    @property
    def name(self) -> str:
        """A file name for the export: the place and dataset, in lower-case words."""
        words = f"{self.place} {self.dataset}".lower().replace("/", " ").replace(".parquet", "")
        return "-".join(w for w in words.replace("_", "-").split() if w)


@dataclass
class Access:
    user: str  # what was asked for: the app's id, or a pseudonym
    pseudonym: str
    raw_id: str | None  # from the identity map; None when it holds no pair (erased, or never stored)
    held: list[Held] = field(default_factory=list)
    online: dict[str, dict[str, Any]] = field(default_factory=dict)  # view -> the row's values
    #: each model file holding a row of the user (relative path -> that row's arrays, as lists)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the id's further pseudonyms (another key's, as an erasure reaches them), read too: their rows are
    #: under datasets, views and models named "… pseudonym-2", "… pseudonym-3"
    others: list[str] = field(default_factory=list)


def gather(settings: Settings, user: str, *, by_pseudonym: bool = False, progress: Progress | None = None) -> Access:
    """Every place's rows of ``user`` by each pseudonym an erasure of it would reach (``erasure.targets``):
    the key in use's, any other key's the identity map pairs with the id, or under a refused key the map's."""
    say = progress or (lambda _: None)
    found = targets(user, settings, by_pseudonym)
    first, others = found.ids[0], found.ids[1:]
    raw_id = next((r for r in map(lambda p: _raw_id(settings, p), found.ids) if r is not None), None)
    out = Access(app_id(user), first, raw_id, notes=[found.note] if found.note else [], others=others)
    data = settings.data_dir
    for n, pseudonym in enumerate(found.ids, start=1):
        tag = "" if n == 1 else f" pseudonym-{n}"
        held: list[Held] = []
        say("event logs")
        for log in event_logs(settings):
            held += _rows_under("event log", log.root, pseudonym, data, by_file=False)
        say("quarantine, impressions, feature files and training sets")
        held += _rows_under("quarantine", settings.quarantine_dir, pseudonym, data, by_file=False)
        for root in dict.fromkeys([settings.impressions_dir, settings.simulation_dir / "impressions"]):
            held += _rows_under("impressions", root, pseudonym, data, by_file=False)
        held += _rows_under("feature files", settings.features_dir, pseudonym, data, by_file=True)
        held += _rows_under("training sets", data / "training", pseudonym, data, by_file=True)
        out.held += [Held(h.place, h.dataset + tag, h.rows) for h in held]
        say("online store")
        out.online |= {view + tag: row for view, row in _online_rows(settings, pseudonym, out.notes).items()}
        say("registered candidate models")
        out.models |= {where + tag: row for where, row in _model_rows(settings, pseudonym, out.notes).items()}
    out.notes = list(dict.fromkeys(out.notes))  # a store or file unreadable for one pseudonym is for each
    return out


def time_span(rows: pd.DataFrame) -> tuple[str, str]:
    """The first and last time of a dataset's rows (events, or feature snapshots), to the second."""
    column = next((c for c in ("timestamp", "event_timestamp") if c in rows.columns), None)
    if column is None or not len(rows):
        return "", ""
    return str(rows[column].min())[:19], str(rows[column].max())[:19]


def summarize(findings: Sequence[Finding], notes: Sequence[str] = ()) -> str:
    """The residue scan's findings with a partitioned dataset's files (``…/date=…/``) counted as one line
    each: the answer to "where", not a listing of every day file."""
    days: dict[tuple[str, str], int] = defaultdict(int)
    rest = []
    for f in findings:
        if f.store == "file" and "/date=" in f.where:
            days[(f.where.split("/date=", 1)[0], f.needle_kind)] += 1
        else:
            rest.append(f)
    lines = [f"file: {root}/ [{kind}] {n} day file{'s' if n != 1 else ''}" for (root, kind), n in sorted(days.items())]
    body = render(rest, notes)
    if lines and body.startswith("no residue found"):
        body = body.removeprefix("no residue found").lstrip("\n")
    return "\n".join([*lines, body] if body else lines)


def require_empty(folder: Path) -> None:
    """``folder`` does not exist yet, or is an empty directory: an export overwrites nothing."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"--export {folder}: not a new or empty directory (nothing in it is overwritten)")


def export(access: Access, folder: Path) -> list[Path]:
    """Each dataset as JSON lines, the online rows and a summary, in ``folder``: a new directory (made
    readable by its owner only: it holds the user's data) or an empty one, whose mode is left as it is
    (``/tmp`` must stay ``/tmp``); one that holds files is refused, so nothing is overwritten."""
    require_empty(folder)
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # the umask may have taken bits off, never added: this is exact
    written = []
    for held in access.held:
        path = folder / f"{held.name}.jsonl"
        with _private(path) as fh:
            held.rows.to_json(fh, orient="records", lines=True, date_format="iso", date_unit="ms")
        written.append(path)
    summary = {
        "user": access.user,
        "pseudonym": access.pseudonym,
        "raw_id": access.raw_id,
        "datasets": {
            f"{h.name}.jsonl": {"place": h.place, "dataset": h.dataset, "rows": len(h.rows)} for h in access.held
        },
        "other_pseudonyms": access.others,
        "online_store": access.online,
        "models": {path: sorted(row) for path, row in access.models.items()},
        "notes": access.notes,
    }
    if access.models:
        path = folder / "models.json"
        with _private(path) as fh:
            fh.write(json.dumps(access.models, indent=1) + "\n")
        written.append(path)
    path = folder / "summary.json"
    with _private(path) as fh:
        fh.write(json.dumps(summary, indent=2, default=str) + "\n")
    written.append(path)
    return written


def _private(path: Path) -> TextIO:
    """A new file readable by its owner only from its first byte: never an existing file, nor a link someone
    placed in a shared directory after it was found empty."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


# --- the places --------------------------------------------------------------------------------------
def _raw_id(settings: Settings, pseudonym: str) -> str | None:
    found = identity_rows(settings, pseudonym=pseudonym)  # a request for access writes nothing
    return found[0][1] if found else None


def _rows_under(place: str, root: Path, pseudonym: str, data: Path, *, by_file: bool) -> list[Held]:
    """The user's rows in the parquet files under ``root`` that have a ``user_id``: one ``Held`` for the whole
    tree (a partitioned dataset), or one per file (the feature files, each a dataset of its own)."""
    found: dict[str, list[pa.Table]] = {}
    for f in parquet_under(root):
        if "user_id" not in pq.read_schema(f).names:
            continue
        table = pq.read_table(f, filters=[("user_id", "=", pseudonym)])
        if not table.num_rows:
            continue
        key = relative(f, data) if by_file else relative(root, data)
        found.setdefault(key, []).append(table)
    out = []
    for dataset, tables in found.items():
        rows = pa.concat_tables(tables, promote_options="permissive").to_pandas()
        if "timestamp" in rows.columns:
            rows = rows.sort_values("timestamp", kind="mergesort").reset_index(drop=True)
        out.append(Held(place, dataset, rows))
    return out


def _online_rows(settings: Settings, pseudonym: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    opened = user_views(settings)
    if opened is None:
        notes.append("no feature store yet: no online rows")
        return {}
    online, views = opened
    out = {}
    for view, (ts, values) in zip(views, online.read_views(views, pseudonym)):
        if values is not None:
            out[view] = {"written_at": ts.isoformat() if ts else None, **values}
    return out


def _model_rows(settings: Settings, pseudonym: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    """The user's row in every registered candidate model version's files, as erasure removes it
    (``erasure._drop_user_row``): the user's factors (``user_*`` arrays), the items the model holds as
    seen by them and its precomputed nearest items (``setlist.embedding_top``): inferences about the user
    a subject-access answer owes as much as their events. A file that cannot be read is a note, never
    a traceback, and never silently left out."""
    from setlist.registry import artifact_roots

    out: dict[str, dict[str, Any]] = {}
    roots = [r for r in artifact_roots(settings) if r.exists()]
    for arrays in sorted({f.resolve() for root in roots for f in root.rglob("arrays.npz")}):
        where = relative(arrays.parent, settings.data_dir)
        try:
            row = _model_row(arrays, pseudonym)
        except (*MODEL_FILE_ERRORS, IndexError, TypeError, KeyError) as exc:  # and a row that does not fit
            notes.append(f"could not read the model files in {where} ({type(exc).__name__}: {exc}): not answered")
            continue
        if row is not None:
            out[where] = row
    return out


def _model_row(arrays: Path, pseudonym: str) -> dict[str, Any] | None:
    """One model's row of the user, or None when it holds none: each array read once."""
    import scipy.sparse as sp

    from setlist.embedding_top import INDPTR_FILE, ITEMS_FILE

    with np.load(arrays, allow_pickle=False) as z:
        if "user_ids" not in z.files:
            return None
        users = z["user_ids"]
        at = np.flatnonzero(users == pseudonym)
        if not len(at):
            return None
        i, n = int(at[0]), len(users)
        row: dict[str, Any] = {}
        for k in z.files:
            if k.startswith("user_") and k != "user_ids":
                v = z[k]
                if v.ndim and len(v) == n:
                    row[k] = v[i].tolist()
        items = z["item_ids"] if "item_ids" in z.files else None
    if items is None:
        return row
    folder = arrays.parent
    if (folder / "seen.npz").exists():
        seen = sp.load_npz(folder / "seen.npz").tocsr()
        if seen.shape == (n, len(items)):  # one row per user, one column per item: else not this index's
            row["seen_items"] = items[seen[i].indices].tolist()
    if (folder / INDPTR_FILE).exists() and (folder / ITEMS_FILE).exists():
        indptr = np.load(folder / INDPTR_FILE)
        if len(indptr) == n + 1:
            nearest = np.asarray(np.load(folder / ITEMS_FILE, mmap_mode="r")[indptr[i] : indptr[i + 1]])
            if not len(nearest) or int(nearest.max()) < len(items):
                row["nearest_items"] = items[nearest].tolist()
    return row
