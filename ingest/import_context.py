"""A device or locale column read as serving reads a request's context (``setlist.context.Vocabulary``),
whether the log carries it on every row or a users file carries it once per user (``import_users``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ingest.countries import country_code
from ingest.import_files import MISSING_TOKENS, name_words
from setlist.contract import UNKNOWN

#: column names that hold a device or a locale, lower case
CONTEXT_NAMES = {
    "device": ("device", "device_type", "device_class", "device_category", "os"),
    "locale": ("locale", "country", "conn_country", "language", "lang", "market", "region"),
}
#: a users file's locale column before any other named for one (``import_users``)
LOCALE_FIRST = ("locale",)
#: words of a column name that say its cells are countries, so a country's name is read as its code
COUNTRY_WORDS = frozenset({"country", "countries", "nation", "nationality", "location", "geo"})


@dataclass
class ContextReading:
    """What reading context cells found, for the import's notes."""

    #: values read as "other" (outside the serving vocabulary), by kind
    other: dict[str, set[str]] = field(default_factory=lambda: {"device": set(), "locale": set()})
    #: country names read as their codes (``United Kingdom`` → ``gb``)
    countries: dict[str, str] = field(default_factory=dict)


def context_values(
    raw: pd.DataFrame, col: str, kind: str, reading: ContextReading, mapping: dict[str, str] | None = None
) -> np.ndarray:
    """A device or locale column as serving reads a request's: as written where a request could
    carry it so, else in lower case; a value outside the configured devices, or not shaped as a
    locale either way, is ``other`` (kept in ``reading``), so that the cohorts trained on are the
    cohorts requests name. ``mapping`` names the column's own codes first (Outbrain's platform 1, 2,
    3); a missing-value token is unknown; a geo path (``US>CA>807``) gives its country, and so does a
    code with its name (Netflix's ``US (United States)``). A country's name is its two-letter code:
    first in a column named for countries (where ``USA`` is the United States, not a language),
    elsewhere when nothing else reads; a place written city first (Book-Crossing's ``nyc, new york,
    usa``) gives its last part's."""
    from setlist.context import OTHER, Vocabulary
    from setlist.settings import get_settings

    settings = get_settings()
    vocabulary = Vocabulary.of(settings.context_devices, settings.context_locale_pattern)
    bound = vocabulary.device if kind == "device" else vocabulary.locale_of
    countries = kind == "locale" and bool(COUNTRY_WORDS & set(name_words(col)))
    cells = raw[col].astype("string").str.strip()
    # Airbnb's "-unknown-" says what an empty cell says
    cells = cells.mask((cells == "") | cells.str.lower().str.strip("-_ ").isin((*MISSING_TOKENS, "unknown")))
    names = cells.dropna().unique().tolist()

    def country(given: str, head: str) -> str:
        tail = given.rsplit(",", 1)[-1] if "," in given else ""
        code = next((c for form in (given, head, tail) if form and (c := country_code(form))), None)
        if code is None or (value := bound(code.lower())) == OTHER:
            return OTHER
        if given.lower() != value:
            reading.countries.setdefault(given, value)
        return value

    def read_one(name: str) -> str:
        if "," in name and name.rsplit(",", 1)[-1].strip().lower() in ("", *MISSING_TOKENS):
            # a place written city first whose country is blank (Book-Crossing's "n/a, n/a, n/a", "toronto, ontario, ")
            return UNKNOWN
        given = (mapping or {}).get(name, (mapping or {}).get(name.lower(), name))
        head = re.split(r">|\s+\(", given, maxsplit=1)[0].strip()
        if countries and (value := country(given, head)) != OTHER:
            return value
        for form in (given, given.lower(), head, head.lower()):
            # as written when a client could send it so, else lower case (a request's "DE" would be other too)
            if (value := bound(form)) != OTHER:
                return value
        return country(given, head) if kind == "locale" else OTHER

    read = {name: read_one(name) for name in names}
    values = cells.map(read).fillna(UNKNOWN).to_numpy(dtype=object)
    others = sorted(name for name, v in read.items() if v == OTHER and name.lower() != OTHER)
    reading.other[kind].update(others)
    return values


def countries_note(reading: ContextReading) -> str | None:
    """How country names were read, with an example, once per import."""
    if not reading.countries:
        return None
    name, code = next(iter(reading.countries.items()))
    n = len(reading.countries)
    return (
        f"{n:,} value{'s' if n != 1 else ''} naming a country (or a place in it, city first) read as the country's "
        f"two-letter code ({name!r} is {code!r}), as a client there would send its locale"
    )
