"""Reading a YAML file a user edits: a missing, unreadable or malformed one is one ``SetlistError`` line
that names the file (and the line of a syntax error), never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from setlist.errors import BadInput, InputMissing


def read_yaml(path: Path, what: str) -> Any:
    """The document in ``path`` (None for an empty file); ``what`` names the file in errors ("cost file")."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputMissing(f"no {what} at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise BadInput(f"{path} is not valid YAML{where}: {problem}") from None
