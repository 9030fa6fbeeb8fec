"""Reading the user's files: the formats an import takes (CSV, TSV, JSON lines, parquet, optionally
compressed), the columns the user names, and ids as clean strings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from setlist.errors import UsageError


class ImportFormatError(UsageError, ValueError):  # still a ValueError for callers that catch that
    """The input cannot be read as interactions; the message says what to change (exit 2)."""


def read_table(path: Path, what: str) -> pd.DataFrame:
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


def require_columns(frame: pd.DataFrame, columns: dict[str, str | None], path: Path) -> None:
    for role, col in columns.items():
        if col is not None and col not in frame.columns:
            raise ImportFormatError(
                f"{role} column {col!r} not found in {Path(path).name}; available columns: "
                f"{', '.join(map(str, frame.columns))}"
            )


def clean_ids(s: pd.Series) -> pd.Series:
    """Ids as stripped strings, None when empty; integral floats (from parquet NaNs) lose '.0'."""
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")
    out = s.astype("string[pyarrow]").str.strip()  # arrow strings: vectorized strip
    out = out.mask(out == "")
    return out.astype(object).where(out.notna(), None)


def is_present(raw: pd.Series) -> pd.Series:
    return raw.notna() & (raw.astype("string").str.strip() != "")
