"""Reading a YAML file a user edits: a missing, unreadable or malformed one is one ``SetlistError`` line
that names the file (and the line of a syntax error), never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from setlist.errors import BadInput, InputMissing


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error: plain YAML keeps the last,
    so a setting written twice (an edit appended below the old one) would silently lose one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                again = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the constructor below says so
                continue
            if again:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found {key!r} twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """YAML text as ``yaml.safe_load`` reads it, but a key written twice in a mapping is an error
    (``yaml.YAMLError``, with its line)."""
    return yaml.load(text, Loader=_UniqueKeys)  # a safe loader


def read_yaml(path: Path, what: str) -> Any:
    """The document in ``path`` (None for an empty file); ``what`` names the file in errors ("cost file")."""
    try:
        return load_yaml(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputMissing(f"no {what} at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise BadInput(f"{path} is not valid YAML{where}: {problem}") from None
