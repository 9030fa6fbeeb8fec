"""XML files of records: one row per child element of the root, its attributes (and the text of its
leaf children) as columns.

Stack Exchange's data dumps are in this shape (``<posts><row Id="1" PostTypeId="1" …/></posts>``),
as are other exports of a database table. The file is parsed as a stream, element by element, and
only the columns an import reads are kept: a site's ``Posts.xml`` holds every post's body.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ingest.import_files import ImportFormatError


def read_xml_records(
    path: Path, opener: Callable[..., IO[Any]], what: str, keep: Collection[str] | None
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(the rows, what the import says of them, the columns the file has that were not kept)."""
    rows: list[dict[str, str]] = []
    seen: dict[str, None] = {}
    kinds: dict[str, int] = {}
    depth = 0
    root: ET.Element | None = None
    with opener(path, "rb") as f:
        try:
            for event, elem in ET.iterparse(f, events=("start", "end")):
                if event == "start":
                    depth += 1
                    if root is None:
                        root = elem
                    continue
                depth -= 1
                if depth != 1:
                    continue
                fields = dict(elem.attrib)
                for child in elem:  # <row><Id>1</Id>…</row>: leaf children as fields too
                    if len(child) == 0 and child.text is not None and child.tag not in fields:
                        fields[child.tag] = child.text.strip()
                seen.update(dict.fromkeys(fields))
                kinds[elem.tag] = kinds.get(elem.tag, 0) + 1
                rows.append(fields if keep is None else {k: v for k, v in fields.items() if k in keep})
                if root is not None:
                    root.clear()  # the rows read so far: each is a dict now
        except ET.ParseError as exc:
            raise ImportFormatError(f"{what} file {path.name} is no well-formed XML ({exc})") from exc
    columns = [c for c in seen if keep is None or c in keep]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame = frame.astype({c: object for c in frame.columns})
    dropped = [c for c in seen if c not in columns]
    shown = ", ".join(f"<{k}> {v:,}" for k, v in kinds.items())
    root_name = root.tag if root is not None else "?"
    notes = [f"XML: one row per element under <{root_name}> ({shown or 'none'}), its attributes as columns"]
    return frame, notes, dropped
