"""Country names as the two-letter codes a request's locale carries: a profile's ``United Kingdom``
or ``Russia``, a log's ``Spain``, is the cohort ``gb``, ``ru`` or ``es``, as a client in that country
would send it. The names come from ISO 3166 (pycountry); the short forms many exports write
instead of ISO's own (``Russia``, ``Turkey``, ``Burma``) are the table below."""

from __future__ import annotations

import re
from functools import lru_cache

#: names exports write (Last.fm's profiles, web forms) that ISO 3166 spells otherwise, lower case
_SHORT_NAMES = {
    "russia": "RU",
    "turkey": "TR",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "macedonia": "MK",
    "the former yugoslav republic of macedonia": "MK",
    "macedonia, the former yugoslav republic of": "MK",
    "cote d'ivoire": "CI",
    "ivory coast": "CI",
    "libyan arab jamahiriya": "LY",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "kosovo": "XK",
    "zaire": "CD",
    "palestinian territory": "PS",
    "palestinian territory, occupied": "PS",
    "palestine": "PS",
    "north korea": "KP",
    "vatican": "VA",
    "vatican city": "VA",
    "holy see (vatican city state)": "VA",
    "micronesia": "FM",
    "brunei": "BN",
    "east timor": "TL",
    "czech republic": "CZ",
    "the netherlands": "NL",
    "holland": "NL",
    "america": "US",
    "united states of america": "US",
    "u.s.a": "US",
    "u.s": "US",
    "u.k": "GB",
    # as written in the country's own language (Book-Crossing's locations: "köln, nrw, deutschland")
    "deutschland": "DE",
    "españa": "ES",
    "espana": "ES",
    "italia": "IT",
    "österreich": "AT",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "svizzera": "CH",
    "nederland": "NL",
    "belgique": "BE",
    "belgië": "BE",
    "belgie": "BE",
    "brasil": "BR",
    "méxico": "MX",
    "polska": "PL",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "éire": "IE",
    "magyarország": "HU",
    "česko": "CZ",
    "россия": "RU",
    "日本": "JP",
    "中国": "CN",
}

#: a cell that cannot be a country's name: digits, or longer than any
_NOT_A_NAME = re.compile(r".*\d.*|.{61,}")


@lru_cache(maxsize=4096)
def country_code(text: str) -> str | None:
    """The ISO 3166 two-letter code of a country's name or code (``United Kingdom``, ``GBR``,
    ``gb``), upper case; None when ``text`` names no country."""
    name = " ".join(text.split()).strip(" .").lower() if text else ""
    if not name or _NOT_A_NAME.fullmatch(name):
        return None
    if (code := _SHORT_NAMES.get(name)) is not None:
        return code
    import pycountry  # loaded on the first country column only: ~0.2 s of JSON

    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        return None
