"""Import someone's own interaction log (CSV, TSV, JSON lines or parquet) as raw events.

The result has the same columns as generated events, with raw user ids (ingestion pseudonymizes
them). Rows are never dropped here: a row with an unparseable time or an empty id keeps that field
null so that ingestion quarantines it with a reason the user can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from setlist.contract import EVENT_COLUMNS, EVENT_TYPES, ITEM_SCHEMA, SCHEMA_VERSION, UNKNOWN
from setlist.errors import UsageError

SESSION_GAP_MS = 30 * 60 * 1000
LIKE_FROM, SKIP_UP_TO = 0.8, 0.4  # normalized-rating thresholds
_EPS = 1e-9  # 4/5 must count as 0.8 whatever the float rounding
#: common names for our event types, after lower-casing and spaces/hyphens → "_"
TYPE_SYNONYMS = {
    "listen": "play",
    "listened": "play",
    "played": "play",
    "stream": "play",
    "streamed": "play",
    "click": "play",
    "clicked": "play",
    "view": "impression",
    "viewed": "impression",
    "shown": "impression",
    "show": "impression",
    "exposure": "impression",
    "impressed": "impression",
    "skipped": "skip",
    "love": "like",
    "loved": "like",
    "liked": "like",
    "favorite": "like",
    "favourite": "like",
    "heart": "like",
    "thumbs_up": "like",
    "add": "add_to_playlist",
    "playlist_add": "add_to_playlist",
    "added_to_playlist": "add_to_playlist",
    "save": "add_to_playlist",
    "dislike": "not_interested",
    "thumbs_down": "not_interested",
    "ban": "not_interested",
    "hide": "not_interested",
    "hidden": "not_interested",
}
# item metadata columns we recognize (lower-cased), in order of preference
_ITEM_ALIASES = {
    "artist": ("artist", "artist_name", "artists", "artist_names"),
    "genre": ("genre", "genres", "genre_name", "category"),
    "duration_s": ("duration_s", "duration", "length_s", "length", "duration_sec"),
    "duration_ms": ("duration_ms", "length_ms"),
    "release_date": ("release_date", "released", "release", "release_year", "year"),
}


class ImportFormatError(UsageError, ValueError):  # still a ValueError for callers that catch that
    """The input cannot be read as interactions; the message says what to change (exit 2)."""


@dataclass
class ImportSummary:
    source: str
    rows: int
    users: int
    items: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    type_counts: dict[str, int] = field(default_factory=dict)
    #: rows that ingestion will quarantine, by cause
    problems: dict[str, int] = field(default_factory=dict)
    catalog_rows: int | None = None  # rows in the items file, if one was given
    items_without_metadata: int = 0

    def __str__(self) -> str:
        lines = [f"imported {self.source}: {self.rows:,} rows, {self.users:,} users, {self.items:,} items"]
        if self.start is not None and self.end is not None:
            lines.append(f"  time range: {self.start.isoformat()} … {self.end.isoformat()}")
        types = " · ".join(f"{k} {v:,}" for k, v in sorted(self.type_counts.items(), key=lambda kv: -kv[1]))
        lines.append(f"  types: {types or 'none'}")
        if self.catalog_rows is not None:
            lines.append(
                f"  items file: {self.catalog_rows:,} rows; "
                f"{self.items_without_metadata:,} interacted items without metadata"
            )
        for cause, n in self.problems.items():
            if n:
                lines.append(f"  will be quarantined: {n:,} row{'s' if n != 1 else ''} with {cause}")
        return "\n".join(lines)


def _read(path: Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{what} file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2", ".xz", ".zst", ".zip")]
    ext = suffixes[-1] if suffixes else ""
    try:
        if ext in (".csv", ".txt"):  # strings everywhere: ids like "007" must survive
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if ext == ".tsv":
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
        if ext in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True, dtype=False)
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # parser errors subclass ValueError
        raise ImportFormatError(f"cannot read {what} file {path.name}: {exc}") from exc
    raise ImportFormatError(
        f"unknown {what} file format {path.name!r}: expected .csv, .tsv, "
        ".jsonl or .parquet (optionally compressed, e.g. .csv.gz)"
    )


def _require(frame: pd.DataFrame, columns: dict[str, str | None], path: Path) -> None:
    for role, col in columns.items():
        if col is not None and col not in frame.columns:
            raise ImportFormatError(
                f"{role} column {col!r} not found in {Path(path).name}; available columns: "
                f"{', '.join(map(str, frame.columns))}"
            )


def _ids(s: pd.Series) -> pd.Series:
    """Ids as stripped strings, None when empty; integral floats (from parquet NaNs) lose '.0'."""
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")
    out = s.astype("string[pyarrow]").str.strip()  # arrow strings: vectorized strip
    out = out.mask(out == "")
    return out.astype(object).where(out.notna(), None)


def _present(raw: pd.Series) -> pd.Series:
    return raw.notna() & (raw.astype("string").str.strip() != "")


def _parse_time(raw: pd.Series, unit: str | None, col: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):  # parquet timestamps need no unit
        return pd.to_datetime(raw, utc=True)
    present = _present(raw)
    num = pd.to_numeric(raw, errors="coerce")
    if unit in ("s", "ms"):
        if present.any() and num.notna().sum() == 0:
            raise ImportFormatError(
                f"time column {col!r} holds no numbers (e.g. {raw[present].iloc[0]!r}); "
                f"omit time_unit to parse ISO datetimes"
            )
        median = num.median()
        # a wrong unit would put every event in 1970 or the far future: say so instead
        if unit == "s" and median > 1e11:
            raise ImportFormatError(
                f"time column {col!r} looks like milliseconds (median {median:.0f}); use time_unit='ms'"
            )
        if unit == "ms" and median < 1e11:
            raise ImportFormatError(f"time column {col!r} looks like seconds (median {median:.0f}); use time_unit='s'")
        num = num.where(num.abs() < 1e17)  # out of datetime range → unparseable, not an exception
        return pd.to_datetime(num, unit=unit, utc=True, errors="coerce")
    if unit is not None:
        raise ImportFormatError(f"time_unit must be 's', 'ms' or None (ISO datetimes), not {unit!r}")
    if present.any() and num[present].notna().all():
        raise ImportFormatError(
            f"time column {col!r} holds numbers (e.g. {raw[present].iloc[0]!r}); "
            f"pass time_unit='s' or 'ms' for epoch times"
        )
    ts = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")  # naive times are UTC
    retry = ts.isna() & present
    if retry.any():
        ts[retry] = pd.to_datetime(raw[retry], utc=True, errors="coerce", format="mixed")
    if present.any() and ts.notna().sum() == 0:
        raise ImportFormatError(f"no value of time column {col!r} parses as a datetime (e.g. {raw[present].iloc[0]!r})")
    return ts


def _types_and_values(raw: pd.DataFrame, rating_col: str | None, type_col: str | None):
    n = len(raw)
    norm = None
    if rating_col is not None:
        rating = pd.to_numeric(raw[rating_col], errors="coerce")
        top = rating.max()
        if not top > 0:
            raise ImportFormatError(f"rating column {rating_col!r} holds no positive numbers")
        norm = (rating / top).clip(0.0, 1.0).to_numpy()
    if type_col is not None:
        t = raw[type_col].astype("string").str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)
        types = t.replace(TYPE_SYNONYMS).astype(object).where(t.notna(), None).to_numpy()
    elif norm is not None:
        types = np.select([norm >= LIKE_FROM - _EPS, norm <= SKIP_UP_TO + _EPS], ["like", "skip"], "play")
        types = types.astype(object)
        types[np.isnan(norm)] = None  # an unreadable rating → quarantined
    else:
        types = np.full(n, "play", dtype=object)
    carries = np.isin(types, ["play", "like"])  # only these have a value in the contract
    value = np.where(carries, norm if norm is not None else 1.0, np.nan).astype(np.float32)
    return types, value


_HEX = np.array([f"{b:02x}" for b in range(256)])


def _hash_hex(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    """``prefix`` + 16 hex digits per row. pandas' hash is vectorized and uses a fixed key, so ids
    are stable across runs; the hex formatting is vectorized too (millions of rows)."""
    assert len(prefix) == 2
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy().astype(">u8")
    digits = _HEX[h.view(np.uint8).reshape(-1, 8)]
    cells = np.concatenate([np.full((len(h), 1), prefix), digits], axis=1)
    return np.ascontiguousarray(cells).view("<U18").ravel().astype(object)


def _epoch_ms(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def _sessions(users: pd.Series, ts: pd.Series) -> np.ndarray:
    """Per-user sessions split at 30-minute gaps; the id hashes (user, session start) so it
    reveals nothing about the raw user id."""
    out = np.full(len(users), None, dtype=object)
    ok = users.notna().to_numpy() & ts.notna().to_numpy()
    if not ok.any():
        return out
    codes, _ = pd.factorize(users[ok])  # sorting integer codes is much faster than strings
    pos, t = np.flatnonzero(ok), _epoch_ms(ts[ok])
    order = np.lexsort((pos, t, codes))
    sub = pd.DataFrame({"u": users.to_numpy()[pos][order], "c": codes[order], "t": t[order], "pos": pos[order]})
    new = (sub["c"] != sub["c"].shift()) | (sub["t"] - sub["t"].shift() > SESSION_GAP_MS)
    start = sub["t"].where(new).ffill().astype(np.int64)
    out[sub["pos"].to_numpy()] = _hash_hex(pd.DataFrame({"u": sub["u"], "s": start}), "s_")
    return out


def _first_of_list(s: pd.Series) -> pd.Series:
    first = s.astype("string").str.split("|").str[0].str.strip()
    return first.mask(first.isna() | (first == "") | (first == "(no genres listed)"), UNKNOWN)


def _all_of_list(s: pd.Series) -> pd.Series:
    """Every genre of a pipe-separated list, lower case, in the file's order."""

    def clean(v: object) -> str | None:
        if not isinstance(v, str):
            return None
        parts = [p.strip().lower() for p in v.split("|")]
        kept = [p for p in parts if p and p != "(no genres listed)"]
        return "|".join(kept) or None

    return s.map(clean).astype(object)


def _load_items(path: Path, item_id_col: str) -> pd.DataFrame:
    raw = _read(path, "items")
    _require(raw, {"item id": item_id_col}, path)
    lower = {str(c).lower(): c for c in raw.columns}
    pick = {k: next((lower[a] for a in names if a in lower), None) for k, names in _ITEM_ALIASES.items()}
    out = pd.DataFrame({"item_id": _ids(raw[item_id_col])})
    out["artist"] = _first_of_list(raw[pick["artist"]]) if pick["artist"] else UNKNOWN
    out["genre"] = _first_of_list(raw[pick["genre"]]).str.lower() if pick["genre"] else UNKNOWN
    out["genres"] = _all_of_list(raw[pick["genre"]]) if pick["genre"] else None
    if pick["duration_s"]:
        out["duration_s"] = pd.to_numeric(raw[pick["duration_s"]], errors="coerce")
    elif pick["duration_ms"]:
        out["duration_s"] = pd.to_numeric(raw[pick["duration_ms"]], errors="coerce") / 1000.0
    else:
        out["duration_s"] = np.nan
    title = next((lower[a] for a in ("title", "name") if a in lower), None)
    if pick["release_date"]:
        out["release_date"] = _release(raw[pick["release_date"]])
    elif title is not None:
        out["release_date"] = _year_in_title(raw[title])
    else:
        out["release_date"] = pd.NaT
    out["duration_s"] = out["duration_s"].astype(np.float32)
    out["artist"] = out["artist"].astype(object)
    out["genre"] = out["genre"].astype(object)
    # a catalogue row without an id cannot be joined to anything; duplicates keep the first row
    return out[out["item_id"].notna()].drop_duplicates("item_id").reset_index(drop=True)


def _release(raw: pd.Series) -> pd.Series:
    num = pd.to_numeric(raw, errors="coerce")
    years = num.where((num >= 1000) & (num <= 3000))
    if years.notna().any() and years.notna().sum() >= num.notna().sum():  # a bare year column
        return pd.to_datetime(years.astype("Int64").astype("string") + "-01-01", utc=True, errors="coerce")
    return pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")


def _year_in_title(titles: pd.Series) -> pd.Series:
    """Catalogues such as MovieLens keep the release year only at the end of the title:
    "Heat (1995)". Without it every item's age would be unknown."""
    year = titles.astype("string").str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_datetime(year + "-01-01", utc=True, errors="coerce")


def _unknown_items(ids: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ids.astype(object),
            "artist": UNKNOWN,
            "genre": UNKNOWN,
            "duration_s": np.float32(np.nan),
            "release_date": pd.NaT,
            "genres": None,
        }
    )


def load_interactions(
    source: Path,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    time_unit: str | None = None,
    rating_col: str | None = None,
    type_col: str | None = None,
    items: Path | None = None,
    item_id_col: str = "item_id",
) -> tuple[pd.DataFrame, pd.DataFrame | None, ImportSummary]:
    """Read interactions and (optionally) item metadata into raw events and an item frame.

    ``time_unit`` is ``"s"`` or ``"ms"`` for epoch numbers, ``None`` for datetime strings.
    Without ``type_col`` a rating becomes like (≥ 0.8 of the top rating), skip (≤ 0.4) or play;
    without either every row is a full play.
    """
    source = Path(source)
    raw = _read(source, "interactions")
    _require(
        raw, {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col, "type": type_col}, source
    )
    raw = raw.reset_index(drop=True)
    n = len(raw)
    users, item_ids = _ids(raw[user_col]), _ids(raw[item_col])
    ts = _parse_time(raw[time_col], time_unit, time_col)
    types, value = _types_and_values(raw, rating_col, type_col)

    key = pd.DataFrame(
        {
            "u": users.astype("string"),
            "i": item_ids.astype("string"),
            "t": raw[time_col].astype("string"),
            "row": np.arange(n),
        }
    )
    events = pd.DataFrame(
        {
            "event_id": _hash_hex(key, "i_") if n else np.array([], dtype=object),
            "schema_version": np.full(n, SCHEMA_VERSION, np.int32),
            "user_id": users,
            "session_id": _sessions(users, ts),
            "item_id": item_ids,
            "type": types,
            "timestamp": ts,
            "value": value,
            "device": UNKNOWN,
            "locale": UNKNOWN,
            "consent_personalization": True,
            "consent_analytics": True,
            "arm": np.full(n, None, dtype=object),
        }
    )[list(EVENT_COLUMNS)]
    events = events.sort_values("timestamp", kind="mergesort", na_position="last").reset_index(drop=True)

    seen = pd.Series(sorted(item_ids.dropna().unique()), dtype=object)
    catalog_rows, missing = None, 0
    if items is not None:
        catalog = _load_items(Path(items), item_id_col)
        catalog_rows = len(catalog)
        extra = seen[~seen.isin(catalog["item_id"])]
        missing = len(extra)
        item_frame = pd.concat([catalog, _unknown_items(extra)], ignore_index=True) if missing else catalog
    else:
        item_frame = _unknown_items(seen)
    item_frame["release_date"] = pd.to_datetime(item_frame["release_date"], utc=True)
    item_frame = item_frame[list(ITEM_SCHEMA.names)]

    valid_ts = ts.dropna()
    problems = {
        "unparseable timestamp": int((ts.isna()).sum()),
        "empty user id": int(users.isna().sum()),
        "empty item id": int(item_ids.isna().sum()),
    }
    if rating_col is not None and type_col is None:
        problems["unparseable rating"] = int(pd.isna(types).sum())
    elif type_col is not None:
        problems["empty or unknown type"] = int((~events["type"].isin(EVENT_TYPES)).sum())
    summary = ImportSummary(
        source=source.name,
        rows=n,
        users=int(users.nunique()),
        items=int(item_ids.nunique()),
        start=valid_ts.min() if len(valid_ts) else None,
        end=valid_ts.max() if len(valid_ts) else None,
        type_counts={str(k): int(v) for k, v in events["type"].value_counts().items()},
        problems=problems,
        catalog_rows=catalog_rows,
        items_without_metadata=missing,
    )
    return events, item_frame, summary
