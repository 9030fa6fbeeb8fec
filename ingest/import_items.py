"""The user's items file as the catalogue: artist, genre(s), duration and release date from whichever
columns it has; interacted items it lacks get unknown metadata."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.import_files import (
    GENRE_NAMES,
    ITEM_WORDS,
    MISSING_TOKENS,
    USER_WORDS,
    ImportFormatError,
    Table,
    TextLayout,
    clean_ids,
    name_words,
    option_pairs,
    read_table,
    require_columns,
)
from ingest.import_values import EPOCH_FLOOR_S, EPOCH_UNITS, likely_unit
from ingest.item_key import key_column, key_parts, with_key
from setlist.contract import ITEM_SCHEMA, UNKNOWN
from setlist.numbers import to_numbers

# item metadata columns we recognize (lower-cased), in order of preference
_ITEM_ALIASES = {
    # a bare "name" last: beside a track's own name it is often its playlist's (the Million Playlist Dataset);
    # a full title first: Plex's (Tautulli's) "Show - Episode 1" beside its bare "Episode 1"
    "title": (
        "full_title",
        "title",
        "track_name",
        "track_title",
        "song_name",
        "song",
        "traname",
        "track",
        "product_name",
        "prod_name",
        "item_name",
        "movie_title",
        "book_title",
        "name",
    ),
    "artist": (
        "artist",
        "artist_name",
        "artname",
        "artists",
        "artist_names",
        "author",
        "authors",
        "book_author",
        "creator",
        "brand",
    ),
    "genre": GENRE_NAMES,
    "duration_s": ("duration_s", "duration", "length_s", "length", "duration_sec"),
    "duration_ms": ("duration_ms", "length_ms"),
    "release_date": (
        "release_date",
        "released",
        "release",
        "release_year",
        "year",
        "original_publication_year",
        "publication_year",
        "year_of_publication",
        "publication_date",
        "date_release",
        "year_published",
        "published_time",
        "published_at",
        "publish_time",
        "item_year",  # last: any column named for the item's own year (movieYear, book_year), see _pick_columns
    ),
}
#: ``--items-cols`` names: the roles above, and shorter words for two of them
_ROLE_WORDS = {**{r: r for r in _ITEM_ALIASES}, "duration": "duration_s", "release": "release_date"}
_NO_GENRE = "(no genres listed)"  # MovieLens' word for an empty list


def name_columns(columns: list[str], id_col: str) -> tuple[str, str] | None:
    """The log's artist and title columns, when it has both (beside ``id_col``): an item named by
    them together (``--item-col artist,track``) needs no id."""
    lower = {str(c).lower().replace(" ", "_"): str(c) for c in columns if c != id_col}
    found = [next((lower[a] for a in _ITEM_ALIASES[role] if a in lower), None) for role in ("artist", "title")]
    artist, title = found
    return (artist, title) if artist is not None and title is not None and artist != title else None


def parse_item_columns(spec: str | None) -> dict[str, str]:
    """``--items-cols``: which column of the items file holds what, for catalogues whose column
    names are their own (H&M's ``product_group_name``, KuaiRec's ``feat``), e.g.
    ``genre=product_group_name,title=prod_name``. A role named here wins over the recognized names."""
    picked: dict[str, str] = {}
    for word, column in option_pairs(spec, "--items-cols", "ROLE=COLUMN"):
        role = _ROLE_WORDS.get(word.lower())
        if role is None:
            raise ImportFormatError(f"--items-cols: {word!r} is not an item role (roles: {', '.join(_ROLE_WORDS)})")
        if role in picked:
            raise ImportFormatError(f"--items-cols names {word!r} twice")
        picked[role] = column
    return picked


#: the fields that name a record in a list cell, in order of preference (then any ``…id``)
_RECORD_NAMES = ("name", "title", "genre", "label")


def _filled(value: object) -> bool:
    """A record's field holds something (an array counts, even where ``== ""`` would be ambiguous)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


#: a cell of tags each in angle brackets (Stack Exchange's ``Tags``)
_ANGLE_TAGS = re.compile(r"(?:<[^<>]+>)+")


def _parts(v: object, commas: bool) -> list[str]:
    """The entries of one list cell: a JSON list (``[27, 9]``, Amazon's lists of categories), a
    pipe-separated string (MovieLens), or, for genres, a comma-separated one (Yelp's
    ``"Restaurants, Pizza"``) or tags in angle brackets (Stack Exchange's ``<python><pandas>``).
    Anything else is one entry."""
    if isinstance(v, dict):  # a record in a list (Goodreads' authors, its shelves): its name, not its repr
        key = next((k for k in _RECORD_NAMES if _filled(v.get(k))), None)
        # a name under a longer key (Meetup's topic_name beside its urlkey), else an id
        key = key or next((k for k in v if str(k).lower().endswith(_RECORD_NAMES) and _filled(v[k])), None)
        key = key or next((k for k in v if str(k).endswith("id") and _filled(v[k])), None)
        return _parts(v[key], commas=False) if key is not None else []
    if isinstance(v, (list, tuple, np.ndarray)):
        out: list[str] = []
        for e in v:
            out.extend(_parts(e, commas=False))
        return out
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return []
    text = str(v).strip()
    if text.startswith("[{") and text.endswith("}]"):
        # records written out as text (a CSV of pandas' lists: [{'name': 'Chan A', 'url': '…'}]): read as such,
        # or the first record would be cut at its first comma
        try:
            return _parts(ast.literal_eval(text), commas)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    # a genre in brackets is a list of one; an artist so is a name
    if text.startswith("[") and text.endswith("]") and (commas or _written_list(text[1:-1])):
        text = text[1:-1]
        return [p.strip().strip("'\"").strip() for p in text.split(",") if p.strip().strip("'\"").strip()]
    if commas and _ANGLE_TAGS.fullmatch(text):  # Stack Exchange's tags: <python><pandas>
        return [t.strip() for t in re.findall(r"<([^<>]+)>", text) if t.strip()]
    if "|" in text and (commas or " | " not in text):  # "Jay-Z | Linkin Park" (the MSD's) is one artist's name
        return [p.strip() for p in text.split("|") if p.strip()]
    if commas and "," in text:
        return [p.strip() for p in text.split(",") if p.strip()]
    return [text] if text else []


def _written_list(inner: str) -> bool:
    """Whether a bracketed cell's inside is a list written out (``'a', 'b'``, ``27``, empty) rather
    than a name in brackets (Last.fm's ``[unknown]``, the artist ``[dunkelbunt]``)."""
    inner = inner.strip()
    if not inner or "," in inner or inner[0] in "'\"":
        return True
    try:
        float(inner)
    except ValueError:
        return False
    return True


def _first_of_list(s: pd.Series, commas: bool = False) -> pd.Series:
    def first(v: object) -> str:
        kept = [p for p in _parts(v, commas) if p != _NO_GENRE]
        return kept[0] if kept else UNKNOWN

    return s.map(first).astype("string")


#: a leading entry shared by more than this share of the catalogue is a category path's root
ROOT_SHARE = 0.5
#: … or by at least this share of the items that have a genre at all
ROOT_SHARE_OF_LISTED = 0.9
#: levels of a category path looked through for one that tells items apart
ROOT_LEVELS = 3


def _genre_below_roots(s: pd.Series) -> tuple[pd.Series, str | None]:
    """Each item's genre: its list's first entry, below any root most of the catalogue shares.
    Amazon's categories are paths (``Books > Literature & Fiction > Mystery``), so the first entry
    of every book is "Books"; genre lists (MovieLens' ``Comedy|Romance``) have no such root. A
    list that is only the root keeps it."""
    lists = [[p for p in _parts(v, commas=True) if p != _NO_GENRE] for v in s.tolist()]
    roots: list[str] = []
    for _ in range(ROOT_LEVELS):
        firsts = pd.Series([lst[0] for lst in lists if lst], dtype=object).value_counts()
        if firsts.empty:
            break
        top, n = firsts.index[0], int(firsts.iloc[0])
        # most of the catalogue, or nearly every item with a genre at all (Amazon 2023 leaves half its
        # catalogue without categories, and names the store's root first in all the rest)
        common = n > ROOT_SHARE * len(lists) or n >= ROOT_SHARE_OF_LISTED * sum(1 for lst in lists if lst)
        if not common or not any(len(lst) > 1 and lst[0] == top for lst in lists):
            break
        roots.append(str(top))
        lists = [lst[1:] if len(lst) > 1 and lst[0] == top else lst for lst in lists]
    genre = pd.Series([lst[0].lower() if lst else UNKNOWN for lst in lists], index=s.index, dtype="string")
    if not roots:
        return genre, None
    path = " > ".join(roots)
    return genre, f"genres read below the category root {path!r}, which most items share"


#: separators a genre list may use bare (Douban's ``剧情/爱情``), beside the pipes and commas read always
_BARE_SEPARATORS = ("/", ";")
#: a bare separator splits when at least this share of the cells hold it …
SPLIT_MIN_SHARE = 0.05
#: … and their parts are this much fewer than the combinations they form
SPLIT_MAX_PARTS_PER_COMBINATION = 0.5


def _split_bare_separator(s: pd.Series, listed: bool = False) -> tuple[pd.Series, str | None]:
    """A genre column whose lists are joined by a bare ``/`` or ``;``, rewritten with pipes. Split
    only when the parts recur: 16 genres in 180 combinations are a list, "R&B/Soul" and
    "Hip-Hop/Rap" are two genres' names; a spaced "Gym / Fitness Center" is one name either way.
    ``listed``: the column's name says it lists them, and a bare ``;`` splits however few recur."""
    text = s.where(s.map(lambda v: isinstance(v, str)), None).astype("string")
    filled = text.dropna()
    if filled.empty:
        return s, None
    for sep in _BARE_SEPARATORS:
        bare = rf"(?<=[^\s{re.escape(sep)}]){re.escape(sep)}(?=[^\s{re.escape(sep)}])"
        joined = filled[filled.str.contains(bare, regex=True)]
        if len(joined) < max(2, SPLIT_MIN_SHARE * len(filled)):
            continue
        combos = joined.str.strip().unique()
        parts = {p.strip() for c in combos for p in re.split(bare, c) if p.strip()}
        if len(parts) > SPLIT_MAX_PARTS_PER_COMBINATION * len(combos) and not (listed and sep == ";"):
            continue
        split = text.str.replace(bare, "|", regex=True)
        out = s.where(text.isna(), split.astype(object))
        return out, f"genre lists split at a bare {sep!r} ({len(parts):,} genres in {len(combos):,} combinations)"
    return _split_paths(s, text, filled)


#: genre columns named for tags, whose cells may list them between spaces (Flickr's, KGRec's)
_TAG_COLUMNS = ("tags", "tag", "tag_list", "taglist")


def _split_spaced_tags(s: pd.Series) -> tuple[pd.Series, str | None]:
    """A tags column of words between spaces (``beach sunset nikon``), rewritten with pipes, when no
    other separator is in its cells and its words recur as tags do: each cell read whole gave
    nearly one genre per item."""
    text = s.where(s.map(lambda v: isinstance(v, str)), None).astype("string")
    filled = text.dropna().str.strip()
    filled = filled[filled != ""]
    if filled.empty or filled.str.contains(r"[|,;]", regex=True).any():
        return s, None
    spaced = filled[filled.str.contains(r"\s", regex=True)]
    if len(spaced) < 0.5 * len(filled):
        return s, None
    combos = filled.unique()
    words = {w for c in combos for w in c.split()}
    if len(words) > SPLIT_MAX_PARTS_PER_COMBINATION * len(combos):
        return s, None
    split = text.str.strip().str.replace(r"\s+", "|", regex=True)
    out = s.where(text.isna(), split.astype(object))
    return out, f"tags read as words between spaces ({len(words):,} tags in {len(combos):,} combinations)"


#: a RecBole atomic file's column name: the field's name and its type (``class:token_seq``)
_RECBOLE_TYPED = re.compile(r"(.+):(token|token_seq|float|float_seq)")


def _split_token_seq(s: pd.Series, column: str) -> tuple[pd.Series, str | None]:
    """A RecBole ``token_seq`` column of genres: a list between spaces, as its type says."""
    text = s.where(s.map(lambda v: isinstance(v, str)), None).astype("string").str.strip()
    split = text.str.replace(r"\s+", "|", regex=True)
    if not bool(split.str.contains("|", regex=False).any()):
        return s, None
    return s.where(text.isna(), split.astype(object)), f"genres in {column!r} read as a list between spaces (its type)"


#: a category path: most cells hold ``/`` bare, and their first levels are this much fewer than the paths
PATH_MAX_TOPS_PER_PATH = 0.7


def _split_paths(s: pd.Series, text: pd.Series, filled: pd.Series) -> tuple[pd.Series, str | None]:
    """A genre column of category paths joined by a bare ``/`` (Sber MegaMarket's ``Электроника/
    Смартфоны``), rewritten with pipes so that the genre is a level of the path, as Amazon's lists
    are read, and a comma inside a level's name (``Одежда, обувь и аксессуары``) splits nothing."""
    bare = r"(?<=[^\s/])/(?=[^\s/])"
    if filled.str.contains("|", regex=False).any():
        # lists already (Yahoo! Movies' "thriller|musical/performing arts"): a slash is inside a genre's name
        return s, None
    joined = filled[filled.str.contains(bare, regex=True)]
    if len(joined) < 0.5 * len(filled):
        return s, None
    paths = joined.str.strip().unique()
    tops = {re.split(bare, p)[0] for p in paths}
    if len(paths) < 3 or len(tops) > PATH_MAX_TOPS_PER_PATH * len(paths):
        return s, None
    split = text.str.replace(bare, "|", regex=True)
    note = f"genres read as category paths split at '/' ({len(tops):,} first levels over {len(paths):,} paths)"
    return s.where(text.isna(), split.astype(object)), note


def _all_of_list(s: pd.Series) -> pd.Series:
    """Every genre of a list, lower case, in the file's order, pipe-separated."""

    def clean(v: object) -> str | None:
        kept = [p.lower() for p in _parts(v, commas=True) if p != _NO_GENRE]
        return "|".join(kept) or None

    return s.map(clean).astype(object)


#: a column named as a thing's name in the catalogue's own word (WineName, hotel_name), not a person's
_OWN_NAME = (
    r"(?!user|reviewer|author|member|customer|artist|account|display|screen|nick|first|last|full)[a-z]+_?(?:name|title)"
)


def _pick_columns(
    raw: pd.DataFrame, told: dict[str, str], path: Path, id_col: str | None = None
) -> tuple[dict[str, object], list[str], object | None]:
    """The column for each role: the one ``--items-cols`` names, else the first recognized name
    other than the id column (30Music's ids are in ``track``, Yahoo's in ``song``: no titles).
    Says what was chosen, so a catalogue whose genres went unread is visible at the import. Last, a
    second recognized genre column for the items the chosen one leaves empty (``_genre_fallback``)."""
    lower = {str(c).lower(): c for c in raw.columns if c != id_col}
    for c in raw.columns:  # a nested field answers to its own name (track_metadata.track_name, SNAP's beer/name)
        if c != id_col and re.search(r"[./]", str(c)):
            *outer, last = re.split(r"[./]", str(c))
            lower.setdefault(last.lower(), c)
            if last.lower() == "name" and outer:  # and a record's name to the record's (Amazon's author.name)
                lower.setdefault(outer[-1].lower(), c)
    for c in raw.columns:  # and in snake case (Avito's CategoryID, Sketchfab's publishedAt)
        if c != id_col:
            lower.setdefault("_".join(name_words(str(c))), c)
    for c in raw.columns:  # a RecBole atomic file's typed names (movie_title:token_seq) answer to the name alone
        if c != id_col and (typed := _RECBOLE_TYPED.fullmatch(str(c))):
            lower.setdefault(typed.group(1).lower(), c)
            lower.setdefault("_".join(name_words(typed.group(1))), c)
    for c in raw.columns:  # last, the first of numbered genre columns (LDOS-CoMoDa's genre1, genre2, genre3)
        words = name_words(str(c))
        if c != id_col and len(words) == 2 and words[0] in GENRE_NAMES and words[1] == "1" and not _flags(raw[c]):
            lower.setdefault(words[0], c)
        if c != id_col and len(words) == 2 and words[0] in ITEM_WORDS and words[1] == "year":
            lower.setdefault("item_year", c)  # a film's year beside the viewing's own date (LDOS-CoMoDa's movieYear)
    for role, column in told.items():
        if column not in raw.columns:
            raise ImportFormatError(
                f"--items-cols names column {column!r} for {role}, but {path.name} has no such column "
                f"(columns: {', '.join(map(str, raw.columns[:20]))})"
            )
    pick: dict[str, object] = {
        role: told.get(role, next((lower[a] for a in names if a in lower), None))
        for role, names in _ITEM_ALIASES.items()
    }
    if pick["title"] is None and "title" not in told:
        # a name under the catalogue's own word (X-Wines' WineName, a Hotel_Name): the first such column
        taken = set(pick.values())
        pick["title"] = next(
            (c for c in raw.columns if c != id_col and c not in taken and re.fullmatch(_OWN_NAME, str(c).lower())),
            None,
        )
    brand_note = None
    if "artist" not in told and pick["artist"] is not None and str(pick["artist"]).lower() == "brand":
        brand_note = _no_maker(raw[pick["artist"]], str(pick["artist"]))
        pick["artist"] = None if brand_note else pick["artist"]
    genre_note, users_own, fallback = None, False, None
    if "genre" not in told:
        candidates = [lower[a] for a in _ITEM_ALIASES["genre"] if a in lower]
        pick["genre"], genre_note = _filled_genre_column(raw, candidates)
        fallback = _genre_fallback(raw, pick["genre"], candidates)
        if pick["genre"] is not None and id_col is not None and (user := _users_own(raw, id_col, pick["genre"])):
            genre_note = (
                f"{pick['genre']!r} not read as genres: its cells differ between the rows of one item, and the file "
                f"has a column of users ({user!r}): they are what each user wrote (a diary's own tags), not the "
                f"item's; --items-cols genre={pick['genre']} reads them all the same"
            )
            pick["genre"], users_own, fallback = None, True, None
    if "duration_ms" in told and "duration_s" not in told:  # one duration: the one the user named
        pick["duration_s"] = None
    elif "duration_s" in told and "duration_ms" not in told:
        pick["duration_ms"] = None
    duration_note = None
    for role in ("duration_s", "duration_ms"):
        col = pick[role]
        if col is not None and role not in told and id_col is not None and (user := _users_own(raw, id_col, col)):
            # Tautulli's history as its own items file: each session's time watched, not the episode's length
            duration_note = (
                f"{col!r} not read as the items' length: its cells differ between the rows of one item, and the file "
                f"has a column of users ({user!r}): each row's own time, not the item's; --items-cols "
                f"{role.split('_')[0] if role == 'duration_s' else role}={col} reads it all the same"
            )
            pick[role] = None
    if duration_note is None and pick["duration_s"] is None and pick["duration_ms"] is None:
        duration_note = _unread_length(raw, id_col, set(pick.values()))
    used = [f"{role.split('_')[0]} from {col!r}" for role, col in pick.items() if col is not None]
    notes = [", ".join(used) if used else "no metadata column recognized"]
    for note in (brand_note, genre_note, duration_note):
        if note:
            notes.append(note)
    if pick["genre"] is None and not users_own:
        notes.append(
            f"no genre column recognized ({', '.join(_ITEM_ALIASES['genre'])}, or one 0/1 column "
            "per genre); --items-cols genre=COLUMN names it"
        )
    if pick["title"] is None:  # rankings and the search index read titles
        notes.append(
            f"no title column recognized ({', '.join(_ITEM_ALIASES['title'])}); --items-cols title=COLUMN names it"
        )
    if note := _unread_measures(raw, id_col, set(pick.values()) | {fallback}):
        notes.append(note)
    return pick, notes, fallback


#: words of a column name that say it holds a key or a time, not a measure of the item
_ID_WORDS = frozenset({"id", "ids", "isbn", "isbn10", "isbn13", "asin", "uuid", "ean", "upc"})
#: … or a moment, as the last word of a name (published_time, created_at; not time_signature)
_MOMENT_WORDS = ("time", "date", "timestamp", "ts", "at", "created", "modified", "updated")
#: … unless the word before it says how long something lasted (watch_time, dwell_time): a measure
#: (present tense only: last_played_time is a moment)
_SPENT_WORDS = frozenset({"watch", "play", "listen", "view", "dwell", "run"})
#: columns of numbers an items file may leave unread before the import names them (a year or a count beside
#: a title is common, a table of audio or text features is not)
UNREAD_MEASURES = 3


def _unread_measures(raw: pd.DataFrame, id_col: str | None, taken: set[object]) -> str | None:
    """A word on an items file's columns of numbers that no role reads (Spotify's track features:
    acousticness, energy, tempo, …): the catalogue keeps none of them, and they reach the ranker only as
    features a declaration names."""
    sample = raw.head(1_000)
    measures = []
    for c in raw.columns:
        if c == id_col or c in taken or pd.api.types.is_datetime64_any_dtype(raw[c]):
            continue
        words = name_words(str(c))
        # another catalogue's id (Goodbooks' goodreads_book_id, isbn13; a bare ``key`` is a song's musical key)
        # or a moment (created_at, a timestamp): no measure
        last = words[-1] if words else ""
        spent = last == "time" and len(words) > 1 and words[-2] in _SPENT_WORDS and words[0] not in ("first", "last")
        moment = last in _MOMENT_WORDS and not spent
        if _ID_WORDS & set(words) or moment or (last == "key" and len(words) > 1):
            continue
        values = to_numbers(sample[c].dropna())
        # 0/1 columns are flags (a genre each, as MovieLens 100k's), read as genres where they are
        if len(values) and values.notna().mean() > 0.9 and not values.dropna().isin([0, 1]).all():
            measures.append(str(c))
    if len(measures) < UNREAD_MEASURES:
        return None
    shown = ", ".join(map(repr, measures[:4])) + (f" and {len(measures) - 4} more" if len(measures) > 4 else "")
    return (
        f"{len(measures)} columns of numbers not read ({shown}): the catalogue keeps a title, artist, genres, "
        "length and release; to rank with them, declare features on this file as a table of its own "
        "(README, 'Add a feature': Table(…, \"item\", key=…, path=…))"
    )


#: a column named for a media item's length or duration in no unit its name says (KKBox's ``song_length``,
#: ``track_duration``); not ``title_length`` or a book's ``length`` in pages
_LENGTH_NAME = re.compile(r"(?:song|track|audio|video|clip|episode|media|item|play)_(?:length|duration)")
#: a median length above this many is read as milliseconds in the advice: as seconds, over 10 hours an item
_MS_MEDIAN = 36_000


def _unread_length(raw: pd.DataFrame, id_col: str | None, taken: set[object]) -> str | None:
    """A word on a numeric column named for the items' length that no duration name matched, so it went
    unread: its unit cannot be told from its name, so the option for each reading is said, the likelier
    first by its median."""
    for c in raw.columns:
        if c == id_col or c in taken or not _LENGTH_NAME.fullmatch("_".join(name_words(str(c)))):
            continue
        values = to_numbers(raw[c])
        values = values[values > 0]
        if len(values) < max(1, len(raw) // 2):  # mostly numbers, as a length column is
            continue
        median = float(values.median())
        if median > _MS_MEDIAN:
            advice = (
                f"--items-cols duration_ms={c} reads it as milliseconds (as seconds, half the items would last over "
                f"10 hours), duration={c} as seconds"
            )
        else:
            advice = f"--items-cols duration={c} reads it as seconds, duration_ms={c} as milliseconds"
        return (
            f"{c!r} looks like the items' length, but its name says no unit (median {median:,.0f}): not read; {advice}"
        )
    return None


#: a brand column names makers when it holds at least this many names: Dunnhumby's ``BRAND`` holds
#: "National" or "Private", a kind of brand, over thousands of products
MIN_BRANDS = 10


def _no_maker(col: pd.Series, name: str) -> str | None:
    """Why a ``brand`` column is not read as the items' artist (their maker), or None when it is: its
    cells are number codes (JData's: shown in place of a missing title, a bare number), or it holds
    only a few values."""
    cells = col[~_empty_cells(col)].astype("string").str.strip()  # Taobao's NULL brands are none
    why = None
    if len(cells) and bool(to_numbers(cells).notna().all()):
        why = "its cells are number codes"
    elif cells.nunique() < MIN_BRANDS:
        shown = ", ".join(repr(v) for v in cells.value_counts().index[:3])
        why = f"it holds only {cells.nunique()} value{'s' if cells.nunique() != 1 else ''} ({shown})"
    if why is None:
        return None
    return f"{name!r} not read as the artist: {why}; --items-cols artist={name} reads it all the same"


def _fill_genres(out: pd.DataFrame, other: pd.Series, what: str, notes: list[str]) -> None:
    """Items still without a genre take ``other``'s, read alone (its own root, its own lists), so the
    chosen column's reading does not change for the items that have it."""
    if other.dtype == object or pd.api.types.is_string_dtype(other):
        other = _unescaped(other)
    genre, _ = _genre_below_roots(other)
    gaps = (out["genre"] == UNKNOWN).to_numpy() & (genre != UNKNOWN).to_numpy()
    if not gaps.any():
        return
    out.loc[gaps, "genre"] = genre.to_numpy()[gaps]
    out.loc[gaps, "genres"] = _all_of_list(other).to_numpy()[gaps]
    n = int(out.loc[gaps, "item_id"].nunique())
    notes.append(f"{n:,} item{'s' if n != 1 else ''} with {what}")


def _empty_cells(col: pd.Series) -> pd.Series:
    """Cells that hold no genre: missing, blank, an empty list or record, or a missing-value word."""
    text = col.astype("string").str.strip().str.lower()
    return text.isna() | text.isin(["", "[]", "{}", "none", "null", "nan", "n/a"])


def _genre_fallback(raw: pd.DataFrame, chosen: object | None, candidates: list[object]) -> object | None:
    """Another recognized genre column that fills some of the rows ``chosen`` leaves empty: Amazon's
    ``main_category`` beside an empty ``categories`` list, REES46's ``category_id`` beside an empty
    ``category_code``. Those items take their genre from it rather than staying unknown."""
    if chosen is None or raw.empty:
        return None
    empty = _empty_cells(raw[chosen])
    if not empty.any():
        return None
    return next((c for c in candidates if c != chosen and bool((empty & ~_empty_cells(raw[c])).any())), None)


#: a genre column with fewer filled cells than this share gives way to a fuller one of the recognized names
FILLED_GENRES = 0.5


#: the share of items on several rows whose cells of a column differ, from which it is the rows' own
_PER_ROW_SHARE = 0.5


def _users_own(raw: pd.DataFrame, id_col: object, col: object) -> object | None:
    """The user column of an items file that is a log of users' rows (a Letterboxd diary given as its
    own items file), when both it and ``col`` differ between the rows of most items on several rows:
    then ``col``'s cells are each user's, not the item's. A catalogue with one row per category of an
    item (Outbrain's ``documents_categories.csv``) has no such column, and one with an author keeps it
    on every row of a book: their rows' genres are gathered."""
    user = next((c for c in raw.columns if c not in (id_col, col) and USER_WORDS & set(name_words(str(c)))), None)
    if user is None:
        return None
    cells = pd.DataFrame(
        {"item": raw[id_col], "v": raw[col].astype("string").str.strip(), "user": raw[user].astype("string")}
    ).dropna()
    cells = cells[cells["v"] != ""]
    repeated = cells[cells["item"].duplicated(keep=False)].groupby("item", sort=False)
    if not repeated.ngroups:
        return None
    differ = (repeated["v"].nunique() > 1) & (repeated["user"].nunique() > 1)
    return user if float(differ.mean()) > _PER_ROW_SHARE else None


def _filled_genre_column(raw: pd.DataFrame, candidates: list[object]) -> tuple[object | None, str | None]:
    """The first recognized genre column that most items fill, and a word when it is not the first:
    Amazon's ``categories`` is an empty list for most items of some stores, beside a filled
    ``main_category``."""
    if len(candidates) < 2 or raw.empty:
        return (candidates[0] if candidates else None), None

    def filled(col: object) -> float:
        return float((~_empty_cells(raw[col])).mean())

    def coded(col: object) -> bool:  # number codes (EB-NeRD's category 142 beside its category_str)
        cells = raw[col].dropna()
        return bool(len(cells)) and bool(to_numbers(cells.astype("string")).notna().all())

    shares = {col: filled(col) for col in candidates}
    first = candidates[0]
    if shares[first] >= FILLED_GENRES and coded(first):
        named = next((c for c in candidates[1:] if shares[c] >= FILLED_GENRES and not coded(c)), None)
        if named is not None:
            return named, (
                f"genres from {named!r} rather than {first!r}, whose cells are number codes "
                f"(--items-cols genre={first} reads them all the same)"
            )
    if shares[first] >= FILLED_GENRES:
        return first, None
    fuller = next((c for c in candidates[1:] if shares[c] >= FILLED_GENRES), None)
    if fuller is None:
        return first, None
    return fuller, (
        f"genres from {fuller!r} rather than {first!r}, which "
        f"{'none' if shares[first] == 0 else f'only {shares[first]:.0%}'} of the items fill "
        f"(--items-cols genre={first} reads it all the same)"
    )


def _require_one_id_per_row(ids: pd.Series, col: str) -> None:
    """An items file's id column holds one id a row: a column of lists (MOOCCube's ``video_order``,
    a course's videos) would make each whole list, written out, an item id, matching no event."""
    cells = ids.dropna().head(200).tolist()
    lists = [
        v
        for v in cells
        if isinstance(v, (list, tuple, np.ndarray)) or (isinstance(v, str) and _LISTED_IDS.fullmatch(v.strip()))
    ]
    if cells and len(lists) * 2 > len(cells):
        raise ImportFormatError(
            f"--item-id-col {col!r} holds lists of ids ({str(lists[0])[:60]!r}, …), not one item per row: an items "
            "file describes one item a row. Explode the list into rows first (pandas' DataFrame.explode), each "
            "with the columns that describe it, or name the column of the item's own id"
        )


#: a list of several ids written out as text: ``['V_1', 'V_2']``, ``[10, 12]``
_LISTED_IDS = re.compile(r"\[\s*['\"]?[^,\[\]]+['\"]?\s*(,\s*['\"]?[^,\[\]]+['\"]?\s*)+\]")


def load_items(
    path: Path,
    item_id_col: str,
    layout: TextLayout | None,
    columns: dict[str, str] | None = None,
    log_item_col: str | None = None,
    table: Table | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The items file as the catalogue's rows, and what was read off it. ``log_item_col``: the log's
    item column, the key when the file has no ``item_id_col`` but has a column named as it (MovieLens'
    ``movieId`` in both files); the key used is the frame's ``attrs["item_id_col"]``. ``table``: the
    file as ``read_table`` read it already."""
    table = table if table is not None else read_table(path, "items", layout)
    raw = table.frame
    keyed = []
    if item_id_col not in raw.columns and "," not in item_id_col and log_item_col in raw.columns:
        keyed = [f"items keyed by {log_item_col!r}, named as the log's (--item-id-col names another column)"]
        item_id_col = str(log_item_col)
    parts = key_parts(item_id_col, "--item-id-col")
    require_columns(
        raw,
        {f"item id ({n} of {len(parts)})" if len(parts) > 1 else "item id": p for n, p in enumerate(parts, 1)},
        path,
        "--items-names",
    )
    if len(parts) > 1:  # named as the log's items are (``--item-col artist,track``), and read as any id column
        raw = with_key(raw, parts)
        item_id_col = key_column(parts)
    _require_one_id_per_row(raw[item_id_col], item_id_col)
    pick, picked_notes, fallback = _pick_columns(raw, columns or {}, path, item_id_col)
    raw = _missing_tokens_blank(raw, [c for c in [*pick.values(), fallback] if c is not None])
    out = pd.DataFrame({"item_id": clean_ids(raw[item_id_col])})
    out["artist"] = _unescaped(_first_of_list(raw[pick["artist"]])) if pick["artist"] else UNKNOWN
    flags = [] if pick["genre"] else _flag_columns(raw, item_id_col)
    genre_list = raw[pick["genre"]] if pick["genre"] else _flagged_genres(raw, flags)
    numbered = _numbered_after(raw, pick["genre"]) if pick["genre"] and "genre" not in (columns or {}) else []
    if pick["genre"] and (trailing := _unnamed_after(raw, pick["genre"]) or numbered):
        # Yahoo! Music's trackData1.txt: a line lists as many genres as the track has, past the names
        first = raw[pick["genre"]].astype("string").str.strip()
        joined = _no_code(first, bool(numbered)).fillna("")
        for col in trailing:  # column by column: a row-wise join costs seconds over a large catalogue
            more = _no_code(raw[col].astype("string").str.strip(), bool(numbered))
            joined = joined.where(more.isna(), joined + "|" + more.fillna(""))
        joined = joined.str.strip("|")
        genre_list = joined.astype(object).where(joined != "", None)
        picked_notes.append(
            f"genres from {', '.join(map(repr, [pick['genre'], *numbered]))} (one genre in each)"
            if numbered
            else f"genres from {pick['genre']!r} and the {len(trailing)} unnamed fields after it (a line lists several)"
        )
    if pick["genre"] is None and genre_list is not None:
        picked_notes = picked_notes[:1] + [f"genres from its 0/1 genre columns ({_flag_names(flags)})"]
    if genre_list is not None:
        if genre_list.dtype == object or pd.api.types.is_string_dtype(genre_list):
            genre_list = _unescaped(genre_list)  # "Rock &amp; Roll" from a scraped page is rock & roll
        # a column named for a list or for tags (WeChat's manual_tag_list "200;6") is split whatever its parts
        listed = pick["genre"] is not None and bool({"list", "tags", "tag"} & set(name_words(str(pick["genre"]))))
        genre_list, split_note = _split_bare_separator(genre_list, listed)
        if split_note is None and pick["genre"] is not None and str(pick["genre"]).endswith(":token_seq"):
            genre_list, split_note = _split_token_seq(genre_list, str(pick["genre"]))
        if split_note is None and pick["genre"] is not None and str(pick["genre"]).lower() in _TAG_COLUMNS:
            genre_list, split_note = _split_spaced_tags(genre_list)
        if split_note:
            picked_notes.append(split_note)
        out["genre"], below_root = _genre_below_roots(genre_list)
        if below_root:
            picked_notes.append(below_root)
    else:
        out["genre"] = UNKNOWN
    out["genres"] = _all_of_list(genre_list) if genre_list is not None else None
    if genre_list is not None and fallback is not None:
        _fill_genres(out, raw[fallback], f"no genre in {pick['genre']!r}: their genre from {fallback!r}", picked_notes)
    seconds = _durations(raw[pick["duration_s"]], str(pick["duration_s"]), picked_notes) if pick["duration_s"] else None
    from_ms = to_numbers(raw[pick["duration_ms"]]) / 1000.0 if pick["duration_ms"] else None
    if seconds is not None and from_ms is not None:
        # two columns (ListenBrainz's duration beside duration_ms): each fills where the other is empty
        filled = int((seconds.isna() & from_ms.notna()).sum())
        out["duration_s"] = seconds.fillna(from_ms)
        if filled:
            picked_notes.append(
                f"durations from {pick['duration_s']!r}, and {filled:,} more from {pick['duration_ms']!r}"
            )
    else:
        out["duration_s"] = next((d for d in (seconds, from_ms) if d is not None), np.nan)
    if pick["duration_s"] or pick["duration_ms"]:
        # 30Music's -1 (and a 0) is "length unknown": no item lasts no time, and the gates refuse one
        unknown = out["duration_s"] <= 0
        if unknown.any():
            out.loc[unknown, "duration_s"] = np.nan
            column = pick["duration_s"] or pick["duration_ms"]
            n = int(out.loc[unknown, "item_id"].nunique())
            picked_notes.append(f"{_items_own(n)} durations of 0 or less in {column!r} read as unknown")
    title = pick["title"]
    out["title"] = _unescaped(raw[title].astype("string").str.strip()).astype(object) if title is not None else None
    if pick["release_date"]:
        out["release_date"] = _release(
            raw[pick["release_date"]], str(pick["release_date"]), picked_notes, out["item_id"]
        )
    elif title is not None:
        out["release_date"] = _year_in_title(raw[title])
    else:
        out["release_date"] = pd.NaT
    out["duration_s"] = out["duration_s"].astype(np.float32)
    out["artist"] = out["artist"].astype(object)
    out["genre"] = out["genre"].astype(object)
    # a catalogue row without an id cannot be joined to anything (said); duplicates keep the first row
    no_id = int(out["item_id"].isna().sum())
    if no_id:
        picked_notes.append(
            f"{no_id:,} row{'s' if no_id != 1 else ''} of {len(out):,} without an id in {item_id_col!r} left out "
            "(nothing joins them to the events)"
        )
    out = out[out["item_id"].notna()]
    if (stray := _unkeyed_lines(out)).any():
        example = str(out.loc[stray, "item_id"].iloc[0])[:40]
        picked_notes.append(
            f"{int(stray.sum()):,} row{'s' if stray.sum() != 1 else ''} whose id is words ({example!r}) where the "
            "file's ids are numbers left out: a line without its separator names no item"
        )
        out = out[~stray]
    gathered = _gathered_genres(out)
    # genres that differ are gathered, not dropped: only titles and artists then keep the first row's
    differing = _differing_duplicates(
        out, ["title", "artist"] if gathered is not None else ["title", "artist", "genre"]
    )
    out = out.drop_duplicates("item_id").reset_index(drop=True)
    if differing:
        picked_notes.append(differing)
    if gathered is not None:
        more = out["item_id"].map(gathered)
        out["genres"] = more.where(more.notna(), out["genres"])
        have = "1 item has" if len(gathered) == 1 else f"{len(gathered):,} items have"
        picked_notes.append(
            f"{have} different genres on their rows (e.g. {gathered.index[0]!r}: {gathered.iloc[0]!r}): all of "
            "them are kept as the item's genres, the first row's first as its genre"
        )
    busiest = _busiest_genre_note(out["genre"])
    out.attrs["item_id_col"] = item_id_col
    return out, table.notes + keyed + picked_notes + ([busiest] if busiest else [])


def _unnamed_after(raw: pd.DataFrame, col: object) -> list[object]:
    """The positional columns (``column_5``, …: fields past the names given) right after ``col``,
    when ``col`` is the last column named."""
    columns = list(raw.columns)
    rest = columns[columns.index(col) + 1 :]
    if rest and all(re.fullmatch(r"column_\d+", str(c)) for c in rest):
        return rest
    return []


#: the share of an items file's ids that must be numbers for words in the id column to be stray lines
NUMBERED_IDS = 0.95


def _unkeyed_lines(out: pd.DataFrame) -> pd.Series:
    """Rows of a file keyed by numbers whose id is words and that hold nothing else: Audioscrobbler's
    ``artist_data.txt`` lines without their tab (``Band with no id 134``), whose whole line became the id."""
    ids = out["item_id"].astype("string")
    numbered = ids.str.fullmatch(r"\d+").fillna(False).astype(bool)
    if float(numbered.mean()) < NUMBERED_IDS:
        return pd.Series(False, index=out.index)
    empty = out["title"].isna() & out["artist"].eq(UNKNOWN) & out["genre"].eq(UNKNOWN)
    return ~numbered & ids.str.contains(r"\s", regex=True).fillna(False).astype(bool) & empty


def _numbered_after(raw: pd.DataFrame, col: object) -> list[object]:
    """The genre columns numbered after ``col`` when it is the first of them (``genre1`` then ``genre2``,
    ``genre3``; ``category_1``, ``category_2``), in number order."""
    words = name_words(str(col))
    if len(words) != 2 or words[1] != "1":
        return []
    numbered = {}
    for c in raw.columns:
        other = name_words(str(c))
        if len(other) == 2 and other[0] == words[0] and other[1].isdigit() and int(other[1]) > 1:
            numbered[int(other[1])] = c
    return [numbered[n] for n in sorted(numbered)]


def _no_code(cells: pd.Series, numbered: bool) -> pd.Series:
    """Genre cells with the missing ones as NA: blank, a missing-value word, and in numbered genre
    columns a negative code (LDOS-CoMoDa's -1 for a film with fewer genres)."""
    missing = cells.str.lower().isin(MISSING_TOKENS) | (cells == "")
    if numbered:
        missing |= to_numbers(cells).lt(0).fillna(False).astype(bool)
    return cells.mask(missing)


#: the missing-value tokens as tools write them: lower case, upper case, and the capitalized ``None``,
#: ``Null`` and ``NaN``, but not ``Na``
_MISSING_SPELLINGS = frozenset(
    {t for token in MISSING_TOKENS for t in (token, token.upper())} | {"None", "Null", "NaN", "\\N"}
)


def _missing_tokens_blank(raw: pd.DataFrame, columns: list[object]) -> pd.DataFrame:
    """The metadata columns with ``None``, ``NULL``, ``NA`` and the like as empty cells (Yahoo's
    ``trackData1.txt`` writes ``None`` for an unknown artist, which would be an artist of that name)."""
    out = raw
    for col in dict.fromkeys(columns):
        cells = raw[col]
        if cells.dtype != object and not pd.api.types.is_string_dtype(cells):
            continue
        # a list or record cell's text is its repr, which is never a token: no per-cell type test needed;
        # spelled as tools write a missing value, so that a title such as "Na" (an anime's) stays one
        text = cells.astype(str).str.strip()
        token = text.isin(_MISSING_SPELLINGS).to_numpy(dtype=bool) & cells.notna().to_numpy()
        if token.any():
            out = out.copy() if out is raw else out
            out[col] = cells.where(~token, None)
    return out


def _gathered_genres(rows: pd.DataFrame) -> pd.Series | None:
    """For each id whose rows list different genres (Outbrain's documents_categories: one row per
    category of a document), every genre of its rows, pipe-joined in the order met; None if none."""
    if "genres" not in rows or rows["genres"].isna().all():
        return None
    pairs = rows.loc[rows["item_id"].duplicated(keep=False), ["item_id", "genres"]].dropna().drop_duplicates()
    several = pairs[pairs["item_id"].duplicated(keep=False)]
    if several.empty:
        return None
    genre = several.assign(genre=several["genres"].astype(str).str.split("|")).explode("genre")
    genre = genre[genre["genre"].str.len() > 0].drop_duplicates(["item_id", "genre"])
    return genre.groupby("item_id", sort=False)["genre"].agg("|".join)


def _differing_duplicates(rows: pd.DataFrame, fields: list[str]) -> str | None:
    """A word when an id is on several rows that say different things (two catalogue exports, one
    row per locale): the first is kept. Rows that agree (a log that is its own items file) are not
    worth one."""
    repeated = rows[rows["item_id"].duplicated(keep=False)]
    if repeated.empty:
        return None
    described = repeated[["item_id", *fields]].astype("string").fillna("")
    kinds = described.drop_duplicates().groupby("item_id", sort=False).size()
    differ = kinds[kinds > 1]
    if differ.empty:
        return None
    first = str(differ.index[0])
    titles = described.loc[described["item_id"] == first, "title"].drop_duplicates().head(2).tolist()
    example = f" (e.g. {first!r}: " + " / ".join(map(repr, titles)) + ")" if len(titles) > 1 else ""
    ids = "1 item id is" if len(differ) == 1 else f"{len(differ):,} item ids are"
    return f"{ids} on several rows that differ{example}: the first row of each is kept"


#: one genre holding more than this share of the items, among at least 3 genres, is said
BUSIEST_GENRE_SHARE = 0.5


def _busiest_genre_note(genre: pd.Series) -> str | None:
    """A word when one genre holds most of the catalogue: often a code for "none" (Yoochoose's
    category 0), which would make the genre features and per-genre lists say little."""
    counts = genre[genre != UNKNOWN].value_counts()
    if len(counts) < 3 or counts.iloc[0] <= BUSIEST_GENRE_SHARE * len(genre):
        return None
    return (
        f"genre {counts.index[0]!r} holds {counts.iloc[0]:,} of the {len(genre):,} items: if it stands for "
        "'none' or 'other', blank those cells, or name a better column with --items-cols genre=COLUMN"
    )


_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")


def _unescaped(s: pd.Series) -> pd.Series:
    """Names scraped from web pages keep HTML's escapes (``Gintama&#039;``, ``&quot;Bungaku&quot;``):
    read as the characters they stand for. Cells without one are left as they are."""
    escaped = s.str.contains(_ENTITY, na=False)
    if not escaped.any():
        return s
    out = s.copy()
    out[escaped] = s[escaped].map(html.unescape)
    return out


def _flagged_genres(raw: pd.DataFrame, flags: list[str]) -> pd.Series | None:
    """Catalogues such as MovieLens 100k mark genres with one 0/1 column per genre (``flags``,
    ``_flag_columns``): the genres of a row are the names of its columns set to 1, as a pipe-separated
    list."""
    if len(flags) < 2:
        return None
    on = raw[flags].eq("1").to_numpy()
    names = [str(c) for c in flags]
    return pd.Series(["|".join(n for n, f in zip(names, row, strict=True) if f) or None for row in on], index=raw.index)


def _flags(col: pd.Series) -> bool:
    """A column of 0 and 1 alone (a genre's flag, not a genre's name)."""
    return bool(col.dropna().astype(str).isin(["0", "1"]).all())


def _flag_columns(raw: pd.DataFrame, item_id_col: str) -> list[str]:
    """The named columns of 0 and 1 alone, each the same on every row of an item. Positional names
    (columns the user left unnamed) say nothing, so they are not genres."""
    flags = [
        c
        for c in raw.columns
        if c != item_id_col
        and not str(c).startswith("column_")
        and raw[c].dtype == object
        and raw[c].dropna().isin(["0", "1"]).all()
        and raw[c].eq("1").any()  # a column of zeros alone (HetRec's unrated rtTopCritics…) names no genre
    ]
    if flags and raw[item_id_col].duplicated().any():
        # a log that is its own items file: a genre is the item's, the same on each of its rows; a 0/1
        # that differs between them is the row's (Goodreads' Read Count, this reader's)
        varies = raw.groupby(item_id_col, sort=False)[flags].nunique().gt(1).any()
        flags = [c for c in flags if not varies[c]]
    return flags


#: the 0/1 genre columns a note names
_SHOWN_FLAGS = 6


def _flag_names(flags: list[str]) -> str:
    """The first few of the 0/1 genre columns read, by name."""
    named = [str(c) for c in flags]
    shown = ", ".join(map(repr, named[:_SHOWN_FLAGS]))
    return shown + (f" and {len(named) - _SHOWN_FLAGS} more" if len(named) > _SHOWN_FLAGS else "")


#: a release column of whole numbers none above this is a column of years
YEAR_MAX = 3000


def _release(raw: pd.Series, col: str, notes: list[str], ids: pd.Series) -> pd.Series:
    """Release dates: a bare year, a date, or YYYYMMDD whose unknown month or day is 00 (Melon's
    ``20050000``: the year is still known). Items whose cells give no date are counted in ``notes``
    (items, not rows: a log that is its own items file repeats each item)."""
    num = to_numbers(raw)
    whole = num.dropna()
    years = num.where((num >= 1000) & (num <= YEAR_MAX) & (num == num.round()))
    # a bare year column, written as whole numbers or floats (Goodbooks' 1997.0), none beyond a year's
    # size (YYYYMMDD and epoch numbers are): ancient or negative ones (-1750.0, 300.0) are unknown, said
    if years.notna().any() and (whole == whole.round()).all() and whole.abs().max() <= YEAR_MAX:
        outside = (num.notna() & years.isna()).to_numpy(dtype=bool)
        if outside.any():
            n, shown = int(ids[outside].nunique()), f"{num[outside].iloc[0]:g}"
            notes.append(f"{_items_own(n)} release years in {col!r} outside 1000…3000 (e.g. {shown}): unknown")
        return pd.to_datetime(years.astype("Int64").astype("string") + "-01-01", utc=True, errors="coerce")
    present = raw.notna() & raw.astype("string").str.strip().ne("")
    epoch = num.where(num >= EPOCH_FLOOR_S)  # YYYYMMDD numbers stay under it, epoch seconds do not
    if epoch.notna().any() and epoch.notna().sum() == int(present.sum()):
        # Globo's created_at_ts: epoch milliseconds; the magnitude names the unit, as for event times
        unit = likely_unit(float(epoch.median()))
        notes.append(f"release dates in {col!r} read as epoch {EPOCH_UNITS[unit][0]}")
        return pd.to_datetime(epoch, unit=unit, utc=True, errors="coerce")
    given = raw.astype("string").str.strip()
    if pd.api.types.is_float_dtype(raw) and (num.dropna() == num.dropna().round()).all():
        given = num.astype("Int64").astype("string")  # 20050000.0 from a JSON column with nulls
    text = given
    digits = given.str.fullmatch(r"\d{8}", na=False)
    if digits.any():
        y, m, d = given.str[:4], given.str[4:6].replace("00", "01"), given.str[6:8].replace("00", "01")
        text = given.where(~digits, y + "-" + m + "-" + d)
    out = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    lost = (out.isna() & given.notna() & given.ne("")).to_numpy(dtype=bool)
    if lost.any():
        n, shown = int(ids[lost].nunique()), given[lost].iloc[0]
        notes.append(f"{_items_own(n)} release dates in {col!r} give no date (e.g. {shown!r}): unknown")
    return out


def _items_own(n: int) -> str:
    return "1 item's" if n == 1 else f"{n:,} items'"


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
            "title": None,
        }
    )


#: an items file describing fewer of the log's items than this share is said (a key that does not match)
MIN_DESCRIBED_SHARE = 0.1


#: a duration written out: "1 hr 55 min", "24 min per ep", "3h 2m", "45 sec"
_SPELLED_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b", re.IGNORECASE)
_SPELLED_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
#: a clock-style duration: 3:45, 1:02:03; and ISO 8601's PT1H2M3S (YouTube's)
_CLOCK_DURATION = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2}(?:\.\d+)?)")
_ISO_DURATION = re.compile(r"P(?:\d+D)?T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", re.IGNORECASE)


def _durations(cells: pd.Series, col: str, notes: list[str]) -> pd.Series:
    """Seconds from a duration column: numbers as they are; text written out as durations (Anime
    2023's ``24 min per ep``, ``1 hr 55 min``; ``3:45``; ISO 8601's ``PT3M45S``) read as such and
    said; other text (``Unknown``) left unknown, and counted."""
    seconds = to_numbers(cells)
    text = cells.astype("string").str.strip()
    unread = seconds.isna() & text.notna() & (text != "")
    if not unread.any():
        return seconds
    spelled = text[unread].map(_spelled_seconds).astype("float64")
    seconds = seconds.copy()
    seconds[unread] = spelled
    read, left = int(spelled.notna().sum()), int(spelled.isna().sum())
    if read:
        example = str(text[unread][spelled.notna()].iloc[0])
        notes.append(f"{read:,} duration{'s' if read != 1 else ''} in {col!r} written out ({example!r}): read")
    if left:
        example = str(text[unread][spelled.isna()].iloc[0])
        notes.append(
            f"{left:,} duration{'s' if left != 1 else ''} in {col!r} {'are' if left != 1 else 'is'} no length "
            f"(e.g. {example!r}): left unknown"
        )
    return seconds


def _spelled_seconds(text: str) -> float:
    """The seconds a written-out duration stands for, or NaN."""
    if match := _CLOCK_DURATION.fullmatch(text):
        hours, minutes, secs = match.groups()
        return float(hours or 0) * 3600 + float(minutes) * 60 + float(secs)
    if (match := _ISO_DURATION.fullmatch(text)) and any(match.groups()):
        hours, minutes, secs = (float(g or 0) for g in match.groups())
        return hours * 3600 + minutes * 60 + secs
    parts = _SPELLED_PART.findall(text)
    if not parts:
        return float("nan")
    return sum(float(n) * _SPELLED_SECONDS[unit[0].lower()] for n, unit in parts)


def _counted_from_one_note(seen: pd.Series, described: pd.Series, item_id_col: str) -> str | None:
    """A warning when the log numbers its items from 0 and the items file from 1 (CiteULike's
    ``users.dat`` beside ``raw-data.csv``'s ``doc.id``): most ids then match, each one the next
    item's, and only item 0 is said to be missing."""
    log_ids, file_ids = to_numbers(seen), to_numbers(described)
    if log_ids.isna().any() or file_ids.isna().any() or log_ids.empty or file_ids.empty:
        return None
    if log_ids.min() != 0 or file_ids.min() != 1 or (log_ids % 1).any() or (file_ids % 1).any():
        return None
    return (
        f"warning: the log's item ids count from 0 and the items file's {item_id_col!r} from 1: if the file numbers "
        "the same items one higher (CiteULike's raw-data.csv beside users.dat), each item would get the next "
        "one's metadata; add 1 to the log's ids first (README, 'Shapes refused with what to do')"
    )


def _unmatched_note(seen: pd.Series, described: pd.Series, item_id_col: str, missing: int) -> str:
    """Why so few of the log's items are in the items file: ids that differ by a leading text (VNDB's
    ``v17`` beside the votes' ``17``) are said as such; otherwise the column may be the wrong one."""
    none = missing == len(seen)
    share = "none" if none else f"only {len(seen) - missing:,}"
    found = f"{share} of the log's {len(seen):,} items are in the items file's"
    shown = f"(the log's ids look like {str(seen.iloc[0])!r}, the file's like {str(described.iloc[0])!r})"
    kept = ", so its rows were not added to the catalogue" if none else ""
    for lead, whose, others in (
        (_leading_text(described, seen, of_log=False), "file's", "log's"),
        (_leading_text(seen, described, of_log=True), "log's", "file's"),
    ):
        if lead is not None:
            # a corrected items file may follow into this directory; a corrected log would add its events
            # beside the ones just imported, under other item ids
            again = (
                "import again into this directory: an items file's metadata replaces what the catalogue held"
                if whose == "file's"
                else "import both into a new data directory (the events imported now keep their ids as written)"
            )
            return (
                f"{found} {item_id_col!r} {shown}: the {whose} ids are the {others} with {lead!r} before them{kept}; "
                f"take it off the {whose} ids first (in pandas, .str.removeprefix({lead!r})) and {again}"
            )
    if _unpadded(seen).isin(set(_unpadded(described))).mean() >= 0.5:
        return (
            f"{found} {item_id_col!r} {shown}{kept}: the ids differ by their leading zeros only; write both files' "
            "ids alike first (in pandas, .str.lstrip('0') on each, or .str.zfill(n) to pad them to one width) and "
            "import both into a new data directory (the events imported now keep their ids as written)"
        )
    return f"{found} {item_id_col!r} {shown}{kept}: is --item-id-col the column the log's ids are in?"


def _unpadded(ids: pd.Series) -> pd.Series:
    """Ids of digits without their leading zeros (Ta Feng's ``00002635`` is ``2635``); others as they are."""
    text = ids.astype(str)
    digits = text.str.fullmatch(r"\d+")
    return text.where(~digits, text.str.lstrip("0").replace("", "0"))


def _leading_text(ids: pd.Series, others: pd.Series, of_log: bool) -> str | None:
    """The text before the digits of most ``ids`` whose removal finds at least half of the log's items
    in the items file (IMDb's ``tt0114709`` beside ``0114709``); ``of_log``: ``ids`` are the log's."""
    text = ids.astype(str)
    lead = text.str.extract(r"^(\D+)\d", expand=False).dropna()
    if len(lead) < len(text) / 2:
        return None
    common = str(lead.mode().iloc[0])
    stripped, other = text.str.removeprefix(common), others.astype(str)
    found = stripped.isin(set(other)) if of_log else other.isin(set(stripped))
    return common if float(found.mean()) >= 0.5 else None


def item_frame_for(
    seen: pd.Series,
    loaded: tuple[pd.DataFrame, list[str]] | None,
    item_id_col: str,
    label: str | None = None,
) -> tuple[pd.DataFrame, int | None, int, list[str]]:
    """The catalogue for the ``seen`` item ids: the items files' rows (``loaded``, as
    ``load_item_files`` read them, if any were given) and unknown metadata for the rest. Also returns
    the catalogue's row count, how many seen items it lacked, and what was read off the files rather
    than told; the notes added here are prefixed with ``label`` when one is given (several files'
    notes each name their file)."""
    catalog_rows, missing, notes = None, 0, list[str]()
    if loaded is not None:
        catalog, notes = loaded
        item_id_col = catalog.attrs.get("item_id_col", item_id_col)
        notes = list(notes)
        catalog_rows = len(catalog)
        extra = seen[~seen.isin(catalog["item_id"])]
        missing = len(extra)
        said = []
        if len(seen) and len(catalog) and missing > (1 - MIN_DESCRIBED_SHARE) * len(seen):
            said.append(_unmatched_note(seen, catalog["item_id"], item_id_col, missing))
        if (shifted := _counted_from_one_note(seen, catalog["item_id"], item_id_col)) is not None:
            said.append(shifted)
        notes += [f"{label}: {n}" if label else n for n in said]
        if len(seen) and missing == len(seen):
            # a file that describes none of the log's items would only add items no one met, which a
            # corrected file imported later could not take out of the catalogue again
            catalog, catalog_rows = catalog.iloc[:0], 0
        item_frame = pd.concat([catalog, _unknown_items(extra)], ignore_index=True) if missing else catalog
    else:
        item_frame = _unknown_items(seen)
    item_frame["release_date"] = pd.to_datetime(item_frame["release_date"], utc=True)
    item_frame = item_frame[list(ITEM_SCHEMA.names)]
    return item_frame, catalog_rows, missing, notes
