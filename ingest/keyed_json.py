"""A JSON file that is one object keyed by ids (``{"u1": ["i1", "i2"], …}``, as research code dumps a
dict of each user's items or ratings): read as records, it is one row with a column per user. The
import says what it is and gives the line that writes it as rows of user and item."""

from __future__ import annotations

import json
from pathlib import Path

from setlist.compressed import compression_of, open_compressed

#: keys an object must have to be taken for one keyed by ids: an API's wrapper (``{"meta": …, "data":
#: […]}``) has a few, and is said apart (its records are nested under one key)
MIN_KEYS = 10
#: how the written line opens a compressed file: the module to import and its opener
_OPENERS = {".gz": ("gzip", "gzip.open"), ".bz2": ("bz2", "bz2.open"), ".xz": ("lzma", "lzma.open")}
#: the share of values that must be lists or objects: the items, ratings or records of each key
_NESTED_SHARE = 0.9


def _one_object(path: Path) -> bool:
    """Whether the file holds one JSON object, on one line or spread over many, rather than an
    object per line: no line after the first opens another object."""
    with open_compressed(path, "rt", encoding="utf-8", errors="replace") as f:
        first = None
        for line in f:
            text = line.strip()
            if not text:
                continue
            if first is None:
                if not text.startswith("{"):
                    return False
                first = text
                continue
            return not text.startswith("{")
    return first is not None


#: one object larger than this is not parsed for a hint: the reader's own error stands (an extra parse of a
#: file of gigabytes would cost more than the hint is worth)
MAX_BYTES = 256 * 1024 * 1024


def keyed_object(path: Path, what: str) -> str | None:
    """What to do with a JSON object keyed by ids, or None for any other JSON file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES or not _one_object(path):
            return None
        with open_compressed(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, EOFError):  # not one object after all: the JSON reader says what is wrong
        return None
    if not isinstance(data, dict) or len(data) < MIN_KEYS:
        return None
    values = list(data.values())
    if sum(isinstance(v, list | dict) for v in values) < _NESTED_SHARE * len(values):
        return None
    key = next(iter(data))
    compression = compression_of(path)
    if compression == ".zip":
        return f"{path.name} holds one JSON object keyed by ids ({len(data):,} keys such as {key!r}): unzip it first"
    module, opener = _OPENERS.get(compression or "", ("json", "open"))
    modules = "json, pandas as pd" if module == "json" else f"{module}, json, pandas as pd"
    mode = ", 'rt'" if compression else ""
    load = f"json.load({opener}('{path.name}'{mode}))"
    stem = path.name.split(".")[0]
    inner = [set(v) for v in values if isinstance(v, dict)]
    labels = inner[0] if inner else set()
    if (
        len(inner) == len(values)
        and len(labels) > 1
        and all(k.isdigit() for k in labels)
        and all(keys == labels for keys in inner)
    ):
        # every key holds the same row numbers: a table written column by column (pandas' to_json() default);
        # a catalogue keyed by its ids has the same fields under each id, which are no numbers
        return (
            f"{path.name} is a table written column by column ({len(data):,} columns such as {key!r}, each keyed by "
            f"the same {len(inner[0]):,} row labels, as pandas' to_json() writes one), not a record per row: "
            f'write it as records first, e.g. .venv/bin/python -c "import {modules}; pd.DataFrame({load})'
            f".to_json('{stem}-rows.jsonl', orient='records', lines=True)\", and import that"
        )
    if what != "interactions":  # a catalogue or a profile keyed by its ids: a row per key, its fields beside
        id_col = f"{what.removesuffix('s')}_id"
        return (
            f"{path.name} is one JSON object keyed by ids ({len(data):,} keys such as {key!r}), not a record per "
            f'row: write it as rows first, e.g. .venv/bin/python -c "import {modules}; '
            f"pd.DataFrame.from_dict({load}, orient='index').rename_axis('{id_col}')"
            f".reset_index().to_json('{stem}-rows.jsonl', orient='records', lines=True)\", and "
            f"give that, its ids in {id_col!r}"
        )
    lists = [v for v in values if isinstance(v, list)]
    if len(lists) >= _NESTED_SHARE * len(values) and all(isinstance(x, dict) for v in lists[:50] for x in v[:5]):
        rows, columns = "[{'user': k, **r} for k, rs in d.items() for r in rs]", ""
        options, shape = (
            "--user-col user and the records' own fields as --item-col, --time-col, …",
            "a list of records per key",
        )
    elif len(lists) >= _NESTED_SHARE * len(values):
        rows, columns = "[(k, i) for k, items in d.items() for i in items]", ", columns=['user', 'item']"
        options, shape = "--user-col user --item-col item --no-time", "a list of ids per key"
    else:
        rows, columns = (
            "[(k, i, r) for k, rated in d.items() for i, r in rated.items()]",
            ", columns=['user', 'item', 'rating']",
        )
        options, shape = "--user-col user --item-col item --rating-col rating --no-time", "an object of values per key"
    return (
        f"{path.name} is one JSON object keyed by ids ({len(data):,} keys such as {key!r}, {shape}), not a record per "
        "interaction: write it as rows first, e.g. .venv/bin/python -c "
        f'"import {modules}; d = {load}; pd.DataFrame({rows}{columns})'
        f".to_csv('{stem}-rows.csv', index=False)\", and import that with {options} (the keys as users: name them "
        "otherwise if they are items)"
    )
