"""``python -m ops settings``: every setting in force, its value and where it came from.

A value comes from the environment (``SETLIST_*``, which wins), the settings file
(``SETLIST_SETTINGS_FILE``) or the default. Secrets are never printed: a secret setting shows whether
it is set, and a URL's password is masked. ``SETLIST_*`` variables that are no setting are warned
of, as by every command, and listed in the JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from setlist.cli import console as cli_console
from setlist.settings import (
    SETTINGS_FILE_VARIABLE,
    Settings,
    get_settings,
    setting_variables,
    settings_file_values,
    unknown_variables,
)

Source = Literal["environment", "file", "default"]
MASK = "****"


@dataclass(frozen=True)
class Row:
    variable: str
    value: str
    source: Source


#: a key or query parameter whose value is a secret (Spark's s3a keys, a URL's ?password=)
SECRET_NAME = re.compile(
    r"secret|password|passwd|pass\b|token|credential|(access|account|private|api)[._-]?key|\bsig\b", re.I
)


def shown(value: Any, name: str = "") -> str:
    """A value as an operator would write it, with no secret in it (``name``: the key it is held under)."""
    if isinstance(value, SecretStr):
        return "(set)" if value.get_secret_value() else "(not set)"
    if value is None:
        return "(not set)"
    if name and SECRET_NAME.search(name):
        return MASK
    if isinstance(value, (list, tuple)):
        return ",".join(shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps({k: shown(v, str(k)) for k, v in value.items()}, sort_keys=True)
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    return _without_secrets(text) if "://" in text else text


def _without_secrets(url: str) -> str:
    """The URL with the password of its user part and secret query parameters masked, by string work
    alone: a multi-host or otherwise unusual URL (``h1:5432,h2:5432``) is no error."""
    scheme, sep, rest = url.partition("://")
    # the user part ends at the last "@": a password may hold an unencoded "/" or "?" (over-masking a
    # query that holds an "@" is the safe way to be wrong)
    user, at, rest = rest.rpartition("@")
    if ":" in user:
        user = user.split(":", 1)[0] + ":" + MASK
    before_query, question, query = rest.partition("?")
    netloc, slash, path = before_query.partition("/")
    netloc = f"{user}{at}{netloc}"
    if question:
        params = []
        for param in query.split("&"):
            key, eq, _ = param.partition("=")
            params.append(f"{key}={MASK}" if eq and SECRET_NAME.search(key) else param)
        query = "&".join(params)
    return f"{scheme}{sep}{netloc}{slash}{path}{question}{query}"


#: settings whose unset value the profile decides, and the property that resolves it
PROFILE_DEFAULTS = {"cache_backend": "cache_store"}


def rows(settings: Settings, environ: Mapping[str, str] = os.environ) -> list[Row]:
    """One row per setting, in the order the settings object declares them."""
    in_env = {name.upper() for name in environ}
    in_file = settings_file_values(environ)
    result = []
    for variable, field in setting_variables().items():
        source: Source = "environment" if variable in in_env else "file" if variable in in_file else "default"
        value = getattr(settings, field)
        text = shown(value)
        if value is None and field in PROFILE_DEFAULTS:
            text = f"(not set: {shown(getattr(settings, PROFILE_DEFAULTS[field]))}, the {settings.profile} profile's)"
        result.append(Row(variable, text, source))
    return result


def command(
    changed: bool = typer.Option(False, "--changed", help="only the settings not at their default"),
    as_json: bool = typer.Option(False, "--json", help="print the same as one JSON object"),
) -> None:
    """Every setting in force, its value and its source (environment, settings file or default)."""
    settings = get_settings()
    table_rows = [r for r in rows(settings) if not changed or r.source != "default"]
    unknown = unknown_variables(os.environ)
    settings_file = os.environ.get(SETTINGS_FILE_VARIABLE)
    if as_json:
        report = {
            "settings_file": settings_file,
            "settings": [asdict(r) for r in table_rows],
            "not_settings": unknown,
        }
        typer.echo(json.dumps(report, indent=2))
        return
    console = cli_console()
    where = f"the settings file {settings_file}" if settings_file else f"no settings file ({SETTINGS_FILE_VARIABLE})"
    table = Table(title=f"Settings in force: the environment, then {where}, then the defaults")
    for column in ("variable", "value", "source"):
        table.add_column(column)
    for r in table_rows:
        table.add_row(r.variable, escape(r.value), r.source if r.source != "default" else "[dim]default[/]")
    console.print(table)
