"""A users file: one row per user (a profile, as Last.fm's ``userid-profile.tsv`` or Book-Crossing's
``BX-Users.csv``), whose country or device every event of that user takes where the log gives none.
Cohort popularity, what a newcomer is shown first, is kept by device and locale; many public logs
carry neither on their rows and keep them in such a file instead.

The file is joined on the log's own user ids before they are pseudonymized, and nothing of it is
stored but the device and locale it gives the events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.countries import country_code
from ingest.import_context import (
    CONTEXT_NAMES,
    COUNTRY_WORDS,
    LOCALE_FIRST,
    ContextReading,
    context_values,
    countries_note,
)
from ingest.import_files import (
    ITEM_WORDS,
    USER_WORDS,
    ImportFormatError,
    TextLayout,
    clean_ids,
    name_words,
    read_table,
    require_columns,
)
from setlist.context import OTHER
from setlist.contract import UNKNOWN

#: the share of a column's ids that must be the log's users for it to be taken as the users file's id
_ID_OVERLAP = 0.5
KINDS = ("device", "locale")
#: the setting that widens what a request (and so an import) may name, per kind
_WIDENS = {"device": "SETLIST_CONTEXT_DEVICES", "locale": "SETLIST_CONTEXT_LOCALE_PATTERN"}


@dataclass(frozen=True)
class UsersFile:
    """What an import was told about its users file (``--users`` and the ``--users-…`` options)."""

    path: Path
    #: the id column; None: the log's user column's name, else the column holding the log's users
    id_col: str | None = None
    #: the columns of devices and locales; None: a column named for one (``country``, ``device``)
    device_col: str | None = None
    locale_col: str | None = None
    layout: TextLayout | None = None


@dataclass
class UserContext:
    """Each user's device and locale from a users file, by the log's (raw) user id."""

    by_kind: dict[str, pd.Series] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def fill(self, kind: str, users: pd.Series, values: np.ndarray | str) -> np.ndarray | str:
        """``values`` (the log's own, or ``unknown``), each unknown one its user's from the file."""
        if kind not in self.by_kind:
            return values
        theirs = users.map(self.by_kind[kind]).fillna(UNKNOWN).to_numpy(dtype=object)
        if isinstance(values, str):
            return theirs if values == UNKNOWN else values
        return np.where(values == UNKNOWN, theirs, values)


def _id_column(raw: pd.DataFrame, spec: UsersFile, log_user_col: str, log_users: pd.Index) -> str:
    """The users file's id column: as told, else named as the log's user column, else the column that
    holds most of the log's users (a profile may hold many more users than a sample of the log),
    or whose ids are most of them the log's users; a column named for users wins a tie, and one named
    for items never (a film's id is no user's, though MovieLens numbers both from 1)."""
    if spec.id_col is not None:
        return spec.id_col
    if log_user_col in raw.columns:
        return log_user_col
    best, share = None, 0.0
    named = sorted(map(str, raw.columns), key=lambda c: not USER_WORDS & set(name_words(c)))
    for col in named:
        if ITEM_WORDS & set(name_words(col)):
            continue
        ids = clean_ids(raw[col]).dropna()
        if ids.empty:
            continue
        # the share of the log's users it holds, or of its ids that are the log's users: a profile may
        # hold many more users than a sample of the log, or only some of a log's users
        if (found := max(float(log_users.isin(ids).mean()), float(ids.isin(log_users).mean()))) > share:
            best, share = col, found
    if best is None or share < _ID_OVERLAP:
        columns = ", ".join(map(repr, map(str, raw.columns[:12])))
        raise ImportFormatError(
            f"{spec.path.name}: no column is named {log_user_col!r} (the log's --user-col) and none holds the log's "
            f"user ids ({columns}): name its id column with --users-id-col"
        )
    return str(best)


def _reads_as_data(cell: str) -> bool:
    """A header cell that is a value: a number, a hash (Last.fm 360K's sha1 ids) or a country's name."""
    return bool(re.fullmatch(r"[-+]?\d+(?:\.\d+)?|[0-9a-fA-F]{16,}", cell)) or (
        len(cell) > 3 and country_code(cell) is not None
    )


def _context_column(raw: pd.DataFrame, kind: str, given: str | None, id_col: str) -> str | None:
    """The column of devices or of locales: as told, else the first named for one; for locales a
    ``locale`` first, then a country, then a language, and a region or market last (XING's
    ``region`` is a German state, beside its ``country``)."""
    if given is not None:
        return given

    def rank(col: str) -> int | None:
        if col == id_col:
            return None
        if kind == "device":
            return 0 if col.lower() in CONTEXT_NAMES[kind] else None
        words = set(name_words(col))
        if col.lower() in LOCALE_FIRST:
            return 0
        if words & COUNTRY_WORDS:
            return 1
        return 2 if col.lower() in CONTEXT_NAMES[kind] else None

    ranked = [(r, n, col) for n, col in enumerate(map(str, raw.columns)) if (r := rank(col)) is not None]
    return min(ranked)[2] if ranked else None


def load_user_context(
    spec: UsersFile, log_user_col: str, log_users: pd.Index, mappings: dict[str, dict[str, str] | None]
) -> UserContext:
    """The users file's devices and locales, keyed by the log's user ids (``log_users``: the ids
    the log holds, for the id column's guess and the note on how many the file describes).
    ``mappings`` names the columns' own codes, as ``--device-map`` and ``--locale-map`` do for a log's."""
    table = read_table(spec.path, "users", spec.layout)
    raw = table.frame
    if raw.empty:
        raise ImportFormatError(f"{spec.path.name} holds no users (only a header line, or nothing)")
    header = pd.Index([str(c).strip() for c in raw.columns])
    # a header cell that is a log user, a hash, a number or a country's name is a first row of data: read
    # as names, that user's row would be left out without a word
    data = [c for c in header[header.isin(log_users)]] + [c for c in header if _reads_as_data(c)]
    if data and not (spec.layout and spec.layout.names):
        raise ImportFormatError(
            f"{spec.path.name} has no header line: its first line holds {data[0]!r}, a value, not a column's name; "
            "name its columns in order with --users-names (e.g. --users-names user,gender,age,country,signup)"
        )
    id_col = _id_column(raw, spec, log_user_col, log_users)
    require_columns(
        raw,
        {"user id": id_col, "device": spec.device_col, "locale": spec.locale_col},
        spec.path,
        "--users-names",
    )
    columns = {kind: _context_column(raw, kind, getattr(spec, f"{kind}_col"), id_col) for kind in KINDS}
    if not any(columns.values()):
        shown = ", ".join(map(repr, map(str, raw.columns[:12])))
        raise ImportFormatError(
            f"{spec.path.name} has no column named for a country, locale or device ({shown}): name one with "
            "--users-locale-col or --users-device-col"
        )
    notes = list(table.notes)
    ids = clean_ids(raw[id_col])
    if len(log_users) and not ids.isin(log_users).any():
        example = ids.dropna().iloc[0] if ids.notna().any() else None
        raise ImportFormatError(
            f"{spec.path.name}: none of its ids in {id_col!r} (e.g. {example!r}) is a user of the log (e.g. "
            f"{log_users[0]!r}): is --users-id-col the right column?"
        )
    if no_id := int(ids.isna().sum()):
        notes.append(f"{no_id:,} row{'s' if no_id != 1 else ''} without an id in {id_col!r} left out")
    reading = ContextReading()
    out = UserContext()
    for kind, col in columns.items():
        if col is None:
            continue
        values = pd.Series(context_values(raw, col, kind, reading, mappings.get(kind)), index=ids.index)
        per_user = pd.DataFrame({"user": ids, "v": values})[ids.notna()]
        known = per_user[per_user["v"] != UNKNOWN]
        differ = known.groupby("user", sort=False)["v"].nunique()
        if n := int((differ > 1).sum()):
            # the values, never the user: notes are kept in the import's lineage, and raw ids never are
            shown = " and ".join(map(repr, known.loc[known["user"] == differ[differ > 1].index[0], "v"].unique()[:2]))
            notes.append(
                f"{n:,} user{'s' if n != 1 else ''} with different {kind}s on several rows of {col!r} (e.g. {shown}): "
                "the first row's is kept"
            )
        # a user's first row that names one wins; rows that leave it empty do not hide a later row's
        mapping = known.drop_duplicates("user").set_index("user")["v"]
        out.by_kind[kind] = mapping
        theirs = mapping[mapping.index.isin(log_users)]
        found, other = len(theirs), int((theirs == OTHER).sum())
        missing = len(log_users) - found
        said = [f"{other:,} of them read as 'other'"] if other else []
        said += [f"{missing:,} have none there: their events' {kind} is unknown"] if missing else []
        notes.append(
            f"{kind} from {col!r} for {found:,} of the log's {len(log_users):,} users"
            + (f" ({'; '.join(said)})" if said else "")
        )
        if others := sorted(reading.other[kind]):
            shown = ", ".join(map(repr, others[:5])) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            # a column of codes (KKBox's numbered cities) reads as 'other' for everyone: one cohort, said so
            every = (
                f"every user's {kind} reads as 'other', so the cohorts tell no one apart: "
                if found and other == found
                else ""
            )
            notes.append(
                f"{every}{kind} values outside what a request may name read as 'other': {shown} (--{kind}-map "
                f"NAME={kind.upper()},… names them as a request would, or {_WIDENS[kind]} widens what it may name, "
                "for serving and imports alike)"
            )
    if note := countries_note(reading):
        notes.append(note)
    out.notes = notes
    return out
