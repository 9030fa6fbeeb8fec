"""``python -m ingest generate|import|erase|summary`` — the door into the event log.

Errors are ``setlist.errors`` exceptions; ``setlist.cli.App`` prints them and picks the exit code."""

from __future__ import annotations

import gzip
import lzma
import os
import socket
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from ingest.intake import INGEST_SLICE_ROWS, IngestReport, ingest
from ingest.item_overlap import disjoint_note, log_items, log_types
from ingest.items_files import items_label
from setlist import jobmetrics
from setlist.catalog import load_items, merge_items, save_items
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.compressed import ArchiveError
from setlist.contract import NO_ITEM_TYPES, POSITIVE_TYPES, SKIP_PLAY_FRACTION
from setlist.errors import Refused, UsageError
from setlist.eventlog import EventLog, Quarantine
from setlist.settings import Settings, get_settings

if TYPE_CHECKING:
    from ingest.importer import ImportOptions, ImportSummary

app = App(add_completion=False, help="Generate or import events into the Setlist event log.")
console = cli_console()


def _print_report(report: IngestReport, title: str) -> None:
    table = Table(title=title)
    table.add_column("")
    table.add_column("events", justify="right")
    table.add_row("received", f"{report.received:,}")
    table.add_row("accepted into the event log", f"{report.accepted:,}")
    if report.already_logged:
        table.add_row("in the event log already (read before)", f"{report.already_logged:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    for reason, n in sorted(report.reasons.items()):
        table.add_row(f"  reason: {reason}", f"{n:,}")
    if report.quarantined_before:
        table.add_row("  in the quarantine already (read before): not written again", f"{report.quarantined_before:,}")
    if report.sampled_out:
        table.add_row("left out by the batch tier's sample (tiers file)", f"{report.sampled_out:,}")
    if report.erased:
        table.add_row(f"left out: users erased earlier ({report.erased_users:,})", f"{report.erased:,}")
    console.print(table)
    if report.erased:
        console.print(
            f"[yellow]note:[/] {report.erased:,} rows of {report.erased_users:,} user"
            f"{'s' if report.erased_users != 1 else ''} erased earlier (make erase) were not imported, nor "
            "quarantined: an erasure holds for every later import, as for live events"
        )


@app.command()
@jobmetrics.reports("generate")
def generate(
    scale: str | None = typer.Option(
        None, help="tiny | demo | bench (default: SETLIST_SCALE); sparse is `python -m ingest fixture`"
    ),
    seed: int | None = typer.Option(None, help="random seed (default: SETLIST_SEED)"),
    fresh: bool = typer.Option(True, help="start from an empty event log"),
) -> None:
    """Generate a synthetic music-streaming dataset and ingest it."""
    from ingest.generate import generate as run

    settings = get_settings()
    scale = scale or settings.scale
    if scale == "sparse":  # a ratings file a user would bring, not events: it goes through `import`
        raise UsageError(
            "the sparse scale writes CSV files to import: run python -m ingest fixture --out DIR "
            "(then the `make import` line it prints)"
        )
    if scale not in ("tiny", "demo", "bench"):
        raise UsageError(f"unknown scale {scale!r}: choose tiny, demo or bench")
    if fresh and EventLog(settings.events_dir).files():
        if not _generated_world(settings):
            # the demo's later steps (the served users, the simulated listeners) need the world
            raise UsageError(
                f"the event log at {settings.events_dir} holds events that were imported, not generated: the "
                "demo needs its synthetic world. Run it in a directory of its own, e.g. SETLIST_DATA_DIR=var/demo "
                "make demo (--no-fresh appends generated events to these)"
            )
        console.print(
            f"[yellow]the event log at {settings.events_dir} is not empty; "
            "keeping it (pass --no-fresh to append, or `make clean`)[/]"
        )
        raise typer.Exit(0)
    data = run(scale=scale, seed=seed if seed is not None else settings.seed)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    data.latent.save(settings.data_dir / "generated" / "latent.npz")
    data.users.to_parquet(settings.data_dir / "generated" / "users.parquet", index=False)
    n_items = save_items(data.items, settings.catalog_path)
    with console.status(f"ingesting {len(data.events):,} events…"):
        report = ingest(data.events, settings, source="generator", check_log_duplicates=False)
    jobmetrics.current().quarantined(report.reasons)
    console.print(
        f"generated [bold]{len(data.users):,}[/] users ({(~data.users['consent_personalization']).sum():,} "
        f"opted out of personalization), [bold]{n_items:,}[/] tracks"
    )
    _print_report(report, f"generated events (scale={scale})")


@app.command()
def fixture(
    out: Path = typer.Option(..., help="directory for ratings.csv, movies.csv and users.csv"),
    users: int = typer.Option(300, min=1),
    items: int = typer.Option(1_500, min=50),
    ratings: int = typer.Option(25_000, min=20, help="at least 20 per user"),
    seed: int | None = typer.Option(None, help="random seed (default: SETLIST_SEED)"),
    years: float = typer.Option(22.0, help="time span of the log, from 1996"),
) -> None:
    """Write a MovieLens-shaped ratings log (ratings.csv, movies.csv) and users file (users.csv) to import."""
    from ingest.sparse import write_fixture

    try:
        fx = write_fixture(
            out,
            users=users,
            items=items,
            ratings=ratings,
            seed=seed if seed is not None else get_settings().seed,
            years=years,
        )
    except ValueError as exc:  # the sizes asked for cannot make a usable log
        raise UsageError(str(exc)) from exc
    ts = fx.ratings["timestamp"]
    first, last = (f"{v:%Y-%m-%d}" for v in (pd.Timestamp(ts.min(), unit="s"), pd.Timestamp(ts.max(), unit="s")))
    console.print(
        f"wrote [bold]{out / 'ratings.csv'}[/]: {len(fx.ratings):,} ratings by "
        f"{fx.ratings['userId'].nunique():,} users of {fx.ratings['movieId'].nunique():,} items, "
        f"{first} … {last} ({(ts.max() - ts.min()) / 31_556_952:.1f} years)",
        soft_wrap=True,
    )
    console.print(f"wrote [bold]{out / 'movies.csv'}[/]: {len(fx.movies):,} items", soft_wrap=True)
    console.print(f"wrote [bold]{out / 'users.csv'}[/]: {len(fx.users):,} users' countries", soft_wrap=True)
    _say_import_line(
        out / "ratings.csv",
        "--user-col userId --item-col movieId --time-col timestamp --time-unit s --rating-col rating "
        f"--items {out / 'movies.csv'} --item-id-col movieId --users {out / 'users.csv'}",
    )


def _say_import_line(source: Path, args: str) -> None:
    """After a fixture is written: the line that imports it, preceded by a word on the data directory."""
    import shlex

    _say_own_directory()
    console.print("import it with:")
    # the line must stay copyable: unbroken, with no markup read into it
    console.print(
        f"make import SOURCE={shlex.quote(str(source))} IMPORT_ARGS='{args}'",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _say_own_directory() -> None:
    """Before a fixture's import line: an import into the demo's directory is refused, so say first
    how to give it one of its own."""
    if _generated_world(get_settings()):
        console.print(
            f"the data directory {get_settings().data_dir} holds the demo's synthetic world: first "
            "`export SETLIST_DATA_DIR=var/mydata`, so that the import has a directory of its own",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


#: the import line for ``impressions-fixture``'s files (their columns, as the public files have no header)
IMPRESSIONS_IMPORT_ARGS = (
    "--names impression_id,user_id,timestamp,history,impressions --impressions-col impressions --history-col history "
    "--items {dir}/news.tsv --items-names news_id,category,subcategory,title,abstract,url,title_entities,"
    "abstract_entities --item-id-col news_id"
)


@app.command("impressions-fixture")
def impressions_fixture(
    out: Path = typer.Option(..., help="directory for behaviors.tsv and news.tsv"),
    users: int = typer.Option(500, min=1),
    items: int = typer.Option(2_000, min=100),
    impressions: int = typer.Option(4_000, min=1, help="lines of behaviors.tsv (at least one per user)"),
    days: int = typer.Option(6, min=2, help="time span of the log"),
    seed: int | None = typer.Option(None, help="random seed (default: SETLIST_SEED)"),
) -> None:
    """Write a MIND-shaped impression log (behaviors.tsv, news.tsv) to try `import --impressions-col` on."""
    from ingest.impressions_fixture import write_impressions

    try:
        fx = write_impressions(
            out,
            users=users,
            items=items,
            impressions=impressions,
            days=days,
            seed=seed if seed is not None else get_settings().seed,
        )
    except ValueError as exc:  # the sizes asked for cannot make a usable log
        raise UsageError(str(exc)) from exc
    shown = fx.behaviors["impressions"].str.split()
    clicks = int(shown.map(lambda ids: sum(i.endswith("-1") for i in ids)).sum())
    console.print(
        f"wrote [bold]{out / 'behaviors.tsv'}[/]: {len(fx.behaviors):,} impression lists of "
        f"{fx.behaviors['user_id'].nunique():,} users, {int(shown.map(len).sum()):,} items shown, {clicks:,} "
        f"clicked; {fx.behaviors['timestamp'].iloc[0]} … {fx.behaviors['timestamp'].iloc[-1]}",
        soft_wrap=True,
    )
    console.print(f"wrote [bold]{out / 'news.tsv'}[/]: {len(fx.news):,} items", soft_wrap=True)
    _say_import_line(out / "behaviors.tsv", IMPRESSIONS_IMPORT_ARGS.format(dir=out))


#: the import line for ``plays-fixture``'s files: each play measured against its video's length
PLAYS_IMPORT_ARGS = (
    "--item-col video_id --time-col timestamp --time-unit s --played-col play_duration --played-unit ms "
    "--length-col video_duration --items {dir}/item_categories.csv --item-id-col video_id --items-cols genre=feat"
)


@app.command("plays-fixture")
def plays_fixture(
    out: Path = typer.Option(..., help="directory for big_matrix.csv and item_categories.csv"),
    users: int = typer.Option(300, min=1),
    items: int = typer.Option(1_500, min=100),
    plays: int = typer.Option(25_000, min=20, help="rows of big_matrix.csv (at least 20 per user)"),
    days: int = typer.Option(14, min=2, help="time span of the log"),
    seed: int | None = typer.Option(None, help="random seed (default: SETLIST_SEED)"),
) -> None:
    """Write a KuaiRec-shaped viewing log (big_matrix.csv, item_categories.csv) to try `import --played-col` on."""
    from ingest.plays_fixture import write_plays

    try:
        fx = write_plays(
            out,
            users=users,
            items=items,
            plays=plays,
            days=days,
            seed=seed if seed is not None else get_settings().seed,
        )
    except ValueError as exc:  # the sizes asked for cannot make a usable log
        raise UsageError(str(exc)) from exc
    ratio = fx.plays["watch_ratio"]
    console.print(
        f"wrote [bold]{out / 'big_matrix.csv'}[/]: {len(fx.plays):,} plays of {fx.plays['user_id'].nunique():,} "
        f"users, {int((ratio < SKIP_PLAY_FRACTION).sum()):,} stopped before a quarter of the video, "
        f"{int((ratio > 1).sum()):,} watched past its end; {fx.plays['time'].min()} … {fx.plays['time'].max()}",
        soft_wrap=True,
    )
    console.print(f"wrote [bold]{out / 'item_categories.csv'}[/]: {len(fx.categories):,} videos", soft_wrap=True)
    _say_import_line(out / "big_matrix.csv", PLAYS_IMPORT_ARGS.format(dir=out))


@app.command("import")
@jobmetrics.reports("import")
def import_(
    source: Path = typer.Argument(
        ..., help="interactions: delimited text (.csv, .tsv, .dat, …), .jsonl, .json or .parquet, optionally compressed"
    ),
    user_col: str = typer.Option(
        "user_id",
        help="the user id column; several separated by commas name a user together (account,'Profile Name')",
    ),
    item_col: str = typer.Option(
        "item_id", help="the item id column; several separated by commas name an item together (artist,track)"
    ),
    time_col: str = "timestamp",
    time_unit: str | None = typer.Option(
        None,
        help="s, ms, us or ns for epoch numbers; omit for dates. With --time-origin also min, h, d or a multiple "
        "(10min)",
    ),
    time_origin: str | None = typer.Option(
        None,
        help="the date the time column's numbers count --time-unit from (Twitch's 10-minute ticks: --time-unit "
        "10min --time-origin 2019-10-01)",
    ),
    time_format: str | None = typer.Option(
        None, help="a strptime format for the time column (%m%d for Tmall's 829 = August 29th; with --year)"
    ),
    year: int | None = typer.Option(None, help="the year of times whose --time-format has none"),
    time_zone: str | None = typer.Option(
        None,
        help="the zone of times written without one (Asia/Shanghai, +08:00); default UTC, and the import says so",
    ),
    time_offset_col: str | None = typer.Option(
        None,
        help="column of times within the day or session, added to --time-col's (Diginetica's timeframe beside "
        "its eventdate); needs --time-offset-unit",
    ),
    time_offset_unit: str | None = typer.Option(
        None,
        help="s, ms, us, ns, min, h or d, or a multiple (10min): the unit of --time-offset-col; hhmm reads clock "
        "times written as one number (1435 = 14:35)",
    ),
    dayfirst: bool | None = typer.Option(
        None,
        "--dayfirst/--no-dayfirst",
        help="dates such as 11/1/2000 put the day first (default: read off the column, where a number above 12 "
        "tells; month first when none does, and the import says so)",
    ),
    rating_col: str | None = None,
    rating_max: float | None = typer.Option(
        None, help="the rating scale's top (default: the file's highest rating); the same for every part of a log"
    ),
    unrated: float | None = typer.Option(
        None, help="the rating that means 'not rated' (e.g. 0 or -1): such rows are plays of unknown value"
    ),
    type_col: str | None = None,
    event_type: str | None = typer.Option(
        None,
        "--type",
        help="one event type for every row, for a file of one kind of event (purchases or stars: like; "
        "add-to-carts or saves: add_to_playlist); without it, --rating-col, --type-col or --count-col, every "
        "row is a play",
    ),
    type_map: str | None = typer.Option(
        None,
        help="the type column's own names as event types, e.g. 'addtocart=add_to_playlist,transaction=like'; "
        "'=view' types the rows whose type cell is empty",
    ),
    count_col: str | None = typer.Option(
        None, help="column of play counts (one row per user and item): each row is a play standing for its count"
    ),
    played_col: str | None = typer.Option(
        None,
        help="column of how much of the item each play took (KuaiRec's watch_ratio or play_duration, Yambda's "
        "played_ratio_pct): the play's listen fraction, a skip when short; --played-unit says what it holds",
    ),
    played_unit: str | None = typer.Option(
        None,
        help="what --played-col holds: fraction (the default: 0 to 1), percent, or a time (s, ms, min, h) measured "
        "against --length-col or the items file's durations",
    ),
    length_col: str | None = typer.Option(
        None, help="with a time played: column of each item's length, in the same unit (KuaiRec's video_duration)"
    ),
    skip_below: str | None = typer.Option(
        None,
        help=f"with --played-col: a play under this share of the item (default {SKIP_PLAY_FRACTION:g}) or this time "
        "(30s, 2min) is a skip; 0 makes none",
    ),
    impressions_col: str | None = typer.Option(
        None,
        help="column listing the items shown, each marked clicked or not ('N55689-1 N35729-0', MIND's "
        "behaviors.tsv): one event per item, a click a play, the rest impressions; instead of --item-col",
    ),
    history_col: str | None = typer.Option(
        None,
        help="with --impressions-col: column of each user's earlier clicks, without times (MIND's history): "
        "plays just before the user's first listed item, from the user's first line",
    ),
    clicked_col: str | None = typer.Option(
        None,
        help="with --impressions-col of ids without click marks: column listing the clicked items of each row "
        "(EB-NeRD's article_ids_clicked beside article_ids_inview); a shown id it lists is a play, the rest "
        "impressions",
    ),
    item_lists: bool = typer.Option(
        False,
        "--item-lists",
        help="each item cell lists several items (separated by spaces, commas, semicolons or pipes): one event per "
        "item, with the row's user, time, rating or type",
    ),
    items_files: list[Path] | None = typer.Option(
        None,
        "--items",
        help="optional item metadata file; given again, several files are joined on the item id (README, 'Several "
        "items files')",
    ),
    item_id_col: str = typer.Option(
        "item_id",
        help="the items file's id column (without item_id, a column named as --item-col is); several as --item-col "
        "names them (artist,track)",
    ),
    items_cols: str | None = typer.Option(
        None,
        help="which items-file column holds what, when its names are its own, e.g. "
        "'genre=product_group_name,title=prod_name' (roles: title, artist, genre, duration, duration_ms, release)",
    ),
    users_file: Path | None = typer.Option(
        None,
        "--users",
        help="optional file of one row per user (a profile: country, device): each event takes its user's locale "
        "and device from it where the log gives none (README, 'A users file')",
    ),
    users_id_col: str | None = typer.Option(
        None, help="the users file's id column (default: named as --user-col, else the column of the log's users)"
    ),
    users_locale_col: str | None = typer.Option(
        None, help="the users file's column of countries or locales (default: one named country, locale, location…)"
    ),
    users_device_col: str | None = typer.Option(
        None, help="the users file's column of devices (default: one named device, device_type or os)"
    ),
    users_sep: str | None = typer.Option(None, help="field separator of the users file (default: read off the file)"),
    users_names: str | None = typer.Option(
        None, help="the users file has no header line: its columns in order, comma-separated"
    ),
    users_encoding: str | None = typer.Option(
        None, help="text encoding of the users file, when it differs from --encoding"
    ),
    session_col: str | None = typer.Option(
        None,
        help="column naming each row's session (an order id, a visit): sessions from it instead of 30-minute gaps, "
        "and with --no-time one visit per session",
    ),
    device_col: str | None = typer.Option(
        None,
        help="column of each event's device (mobile, desktop, …: values outside SETLIST_CONTEXT_DEVICES are other)",
    ),
    device_map: str | None = typer.Option(
        None,
        help="the device column's own codes as devices, e.g. '1=desktop,2=mobile,3=tablet' (Outbrain's platform)",
    ),
    locale_map: str | None = typer.Option(
        None, help="the locale column's own codes as locales, e.g. '1=br,2=us' (Globo's numbered countries)"
    ),
    locale_col: str | None = typer.Option(
        None, help="column of each event's locale or country (de, en_US, …: lower-cased; cohorts are kept by it)"
    ),
    missing_user: str | None = typer.Option(
        None,
        help="user ids that stand for 'unknown' (an anonymous visitor's 0), comma-separated: read as missing, so "
        "their rows are quarantined rather than trained as one user",
    ),
    consent_col: str | None = typer.Option(
        None, help="column of personalization consent flags (true/false, 1/0, yes/no, granted/denied)"
    ),
    analytics_consent_col: str | None = typer.Option(None, help="column of analytics consent flags"),
    assume_consent: bool = typer.Option(
        False,
        "--assume-consent",
        help="the data was collected under another legal basis: grant both consents where no column says otherwise",
    ),
    query_col: str | None = typer.Option(
        None, help="column with the text of search rows (the feature's name for feature_use rows); needs --type-col"
    ),
    sep: str | None = typer.Option(
        None, help="field separator of the interactions file, e.g. '::', tab, ';' (default: read off the file)"
    ),
    names: str | None = typer.Option(
        None, help="the interactions file has no header line: its columns in order, comma-separated"
    ),
    items_sep: str | None = typer.Option(None, help="field separator of the items file (default: read off the file)"),
    items_names: str | None = typer.Option(
        None, help="the items file has no header line: its columns in order, comma-separated"
    ),
    encoding: str | None = typer.Option(
        None,
        help="text encoding of the files (default: UTF-8, else cp1252 or Latin-1, read off each file; "
        "--items-encoding sets the items file's apart)",
    ),
    items_encoding: str | None = typer.Option(
        None, help="text encoding of the items file, when it differs from --encoding"
    ),
    no_time: bool = typer.Option(
        False,
        "--no-time",
        help="the file has no time column: each user's rows are stamped as visits of up to 10 rows, "
        "interleaved with the other users' over a span of a second per row (at least 30 days), ending now",
    ),
    file_order: bool = typer.Option(
        False,
        "--file-order",
        help="with --no-time: each user's rows are in time order in the file; keep it (default: a stable "
        "shuffle, since untimed files are usually sorted by item or count)",
    ),
    rows_in_time_order: bool = typer.Option(
        False,
        "--rows-in-time-order",
        help="with --no-time: the file's rows are in time order across all users (KKBox's train.csv): each row is "
        "stamped a second after the one before (a span of at least 30 days), ending now, and sessions are cut at "
        "30-minute gaps (default: each user's rows as visits spread over the span, users interleaved)",
    ),
    memory_check: bool = typer.Option(
        True,
        help="estimate the file's memory from its size first: a file too big to import at once goes in chunks, "
        "one too big even for that is refused (--no-memory-check: at once, unchecked)",
    ),
    mix_with_generated: bool = typer.Option(
        False,
        "--mix-with-generated",
        help="import into a data directory that holds the synthetic events `make demo` generated (by default "
        "refused: your events would be trained and evaluated together with them)",
    ),
) -> None:
    """Import your own interactions into the event contract."""
    given = dict(locals())  # the options as given, before any is read: recorded in the lineage
    from ingest.import_files import option_pairs
    from ingest.import_items import parse_item_columns
    from ingest.import_played import PlayedReading, SkipBelow
    from ingest.import_users import UsersFile
    from ingest.import_values import parse_type_map
    from ingest.importer import ImportFormatError, ImportOptions, TextLayout, load_interactions, rows_per_line
    from setlist.lineage import file_digest, record_import

    settings = get_settings()
    _check_time_options(time_unit, time_origin, time_format, year, time_zone, no_time)
    if query_col and not (type_col or event_type):
        raise UsageError("--query-col needs --type-col or --type: only search and feature_use rows carry text")
    if unrated is not None and not rating_col:
        raise UsageError("--unrated names a value of the rating column: it needs --rating-col")
    if file_order and not no_time:
        raise UsageError("--file-order orders rows without times: it needs --no-time")
    if rows_in_time_order and not no_time:
        raise UsageError("--rows-in-time-order stamps rows without times: it needs --no-time")
    if rows_in_time_order and file_order:
        raise UsageError(
            "--rows-in-time-order keeps the file's order across users, so each user's too: leave out --file-order"
        )
    if type_map and not type_col:
        raise UsageError("--type-map needs --type-col: it maps that column's names onto event types")
    if count_col and (rating_col or type_col):
        raise UsageError("--count-col makes every row a play: it does not combine with --rating-col or --type-col")
    if impressions_col and (rating_col or type_col or count_col or item_lists):
        mixed = (
            "; a log of several kinds of row with a shown list on some of them (Trivago's clickouts among its "
            "other actions) is two imports into one data directory: the rows with a list with --impressions-col, "
            "the others with --type-col, an event in both kept once (README, 'Impressions on some rows')"
            if type_col
            else ""
        )
        raise UsageError(
            "--impressions-col makes each listed item a play (clicked) or an impression (shown only): it does not "
            f"combine with --rating-col, --type-col, --count-col or --item-lists{mixed}"
        )
    if (played_unit or length_col or skip_below) and not played_col:
        raise UsageError("--played-unit, --length-col and --skip-below read --played-col: they need it")
    if played_col and (count_col or impressions_col):
        raise UsageError(
            "--played-col gives each play its value: it does not combine with --count-col or --impressions-col, "
            "which give it theirs"
        )
    if played_col and item_lists:
        raise UsageError("--played-col is one item's time played: a row of --item-lists has no time of each item")
    if device_map and not (device_col or users_file):
        raise UsageError(
            "--device-map reads --device-col's codes (or the users file's): it needs --device-col or --users"
        )
    if locale_map and not (locale_col or users_file):
        raise UsageError(
            "--locale-map reads --locale-col's codes (or the users file's): it needs --locale-col or --users"
        )
    if not users_file and (
        given_users := [
            f"--users-{n}"
            for n, v in (
                ("id-col", users_id_col),
                ("locale-col", users_locale_col),
                ("device-col", users_device_col),
                ("sep", users_sep),
                ("names", users_names),
                ("encoding", users_encoding),
            )
            if v is not None
        ]
    ):
        raise UsageError(
            f"{', '.join(given_users)} describe{'s' if len(given_users) == 1 else ''} the users file: "
            "it needs --users FILE"
        )
    if history_col and not impressions_col:
        raise UsageError("--history-col lists earlier clicks beside --impressions-col: it needs it")
    if clicked_col and not impressions_col:
        raise UsageError("--clicked-col lists the clicked ones of --impressions-col's items: it needs it")
    if impressions_col and item_col != "item_id":
        raise UsageError("--impressions-col names the item column itself: leave out --item-col")
    items = tuple(items_files or ())
    if items_cols and not items:
        raise UsageError("--items-cols names columns of the items file: it needs --items")
    try:
        mapping = parse_type_map(type_map)
        item_columns = parse_item_columns(items_cols)
        devices = dict(option_pairs(device_map, "--device-map", "CODE=DEVICE")) or None
        locales = dict(option_pairs(locale_map, "--locale-map", "CODE=LOCALE")) or None
        played = (
            PlayedReading(played_col, played_unit or "fraction", length_col, SkipBelow.parse(skip_below))
            if played_col
            else None
        )
        users = (
            UsersFile(
                users_file,
                users_id_col,
                users_device_col,
                users_locale_col,
                TextLayout.from_options(users_sep, users_names, users_encoding or encoding, prefix="users-"),
            )
            if users_file
            else None
        )
        if played is not None:
            played.check()
    except ImportFormatError as exc:
        raise UsageError(str(exc)) from exc
    if time_offset_col and not time_offset_unit:
        raise UsageError(
            "--time-offset-col needs --time-offset-unit: s, ms, us, ns, min, h or d (or a multiple: 10min), or hhmm "
            "for clock times written as one number"
        )
    if time_offset_unit:
        from ingest.import_values import CLOCK_UNIT, time_unit_ns

        try:
            if time_offset_unit.strip().lower() != CLOCK_UNIT:
                time_unit_ns(time_offset_unit, "--time-offset-unit")
        except ImportFormatError as exc:
            raise UsageError(str(exc)) from exc
    if time_offset_unit and not time_offset_col:
        raise UsageError("--time-offset-unit is the unit of --time-offset-col: it needs it")
    if time_offset_col and no_time:
        raise UsageError("--time-offset-col adds to --time-col's times: it does not combine with --no-time")
    if not mix_with_generated:
        _refuse_generated_world(settings)
    options = ImportOptions(
        user_col=user_col,
        item_col=item_col,
        time_col=None if no_time else time_col,
        time_unit=time_unit,
        time_origin=time_origin,
        time_format=time_format,
        time_year=year,
        time_zone=time_zone,
        session_col=session_col,
        device_col=device_col,
        device_map=devices,
        locale_map=locales,
        locale_col=locale_col,
        time_offset_col=time_offset_col,
        time_offset_unit=time_offset_unit,
        dayfirst=dayfirst,
        rating_col=rating_col,
        rating_max=rating_max,
        type_col=type_col,
        event_type=event_type and event_type.strip().lower(),
        type_map=mapping,
        count_col=count_col,
        played=played,
        unrated=unrated,
        keep_file_order=file_order,
        rows_in_time_order=rows_in_time_order,
        items=items or None,
        users=users,
        item_id_col=item_id_col,
        item_columns=item_columns,
        impressions_col=impressions_col,
        history_col=history_col,
        clicked_col=clicked_col,
        missing_users=tuple(v.strip() for v in (missing_user or "").split(",") if v.strip()),
        item_lists=item_lists,
        consent_col=consent_col,
        analytics_consent_col=analytics_consent_col,
        assume_consent=assume_consent,
        query_col=query_col,
        layout=TextLayout.from_options(sep, names, encoding),
        items_layout=TextLayout.from_options(items_sep, items_names, items_encoding or encoding, prefix="items-"),
    )
    reading = _event_options(given)  # after every option is checked: a wrong one is said as such first
    digest = file_digest(source) if source.is_file() else None
    if digest is not None:
        _refuse_rereading(source, digest, reading, settings)
        unrecorded = _imported_unrecorded(source, digest, settings)
        if unrecorded is not None:
            console.print(unrecorded)
            return
    per_line = rows_per_line(source, options)
    chunk_rows = _chunk_rows(source, settings, memory_check, per_line)
    consent_given = bool(consent_col or assume_consent)
    newest_before = EventLog(settings.events_dir).newest() if no_time else None
    files_before = set(EventLog(settings.events_dir).files())
    earlier = newest_before is not None or bool(files_before)
    items_before = log_items(files_before)
    with _recorded(settings, files_before, source.stem, source=source.name, sha256=digest, options=reading) as run:
        try:
            if chunk_rows is None:
                events, item_frame, summary = load_interactions(source, **vars(options))
                _say_summary(summary, item_frame, settings, consent_given)
                with console.status(f"ingesting {len(events):,} events…"):
                    report = ingest(events, settings, source=f"import-{source.stem}", before_write=run.writing)
                del events
            else:
                report, summary = _import_in_chunks(
                    source, options, chunk_rows, settings, consent_given, per_line, before_write=run.writing
                )
        except FileNotFoundError as exc:
            if exc.filename is not None and Path(os.fsdecode(exc.filename)).resolve() != source.resolve():
                raise  # not the file being imported (a file of the data directory): no usage error, a bug
            raise UsageError(f"cannot import {source}: {exc}{_kept_note(settings, files_before, source.stem)}") from exc
        except (ImportFormatError, ArchiveError, LookupError) as exc:  # said with the file it is about
            raise UsageError(f"cannot import {source}: {exc}{_kept_note(settings, files_before, source.stem)}") from exc
        except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
            # a download cut short: left alone, Click reads an EOFError as Ctrl-D and prints only "Aborted."
            kept = _kept_note(settings, files_before, source.stem)
            raise UsageError(
                f"cannot import {source}: a file ends early or is corrupt ({type(exc).__name__}: {exc}). "
                + ("Nothing was written; " if not kept else "")
                + f"download it again, or decompress what is readable and import that{kept}"
            ) from exc
    # on record before anything is printed: an import that finished is finished, whatever happens to its output
    record_import(
        settings.lineage_dir,
        run=run.id,
        source=source.name,
        sha256=digest,
        items_file=items_label(items) if items else None,
        rows=summary.rows,
        accepted=report.accepted,
        quarantined=report.quarantined,
        # so that the rows add up: accepted + quarantined + sampled_out + erased + already_logged is rows,
        # and the rows of the kinds --type-map left out come on top, by name
        sampled_out=report.sampled_out,
        erased=report.erased,
        already_logged=report.already_logged,
        quarantined_before=report.quarantined_before,
        ignored=dict(summary.ignored),
        malformed_lines=summary.malformed_lines,
        consent=summary.consent,
        consent_default="grant" if settings.consent_granted_by_default else "deny",
        options=reading,
    )
    jobmetrics.current().quarantined(report.reasons)
    # an import that kept nothing fails below: its table says so rather than "imported"
    kept = (
        report.accepted or not report.quarantined or report.already_logged + report.reasons.get("duplicate_event_id", 0)
    )
    _print_report(report, f"imported {source.name}" if kept else f"nothing imported from {source.name}")
    if no_time and earlier and report.accepted:
        console.print(f"[yellow]warning:[/] {_untimed_after_note(summary.start, newest_before)}", soft_wrap=True)
    added = log_items(set(EventLog(settings.events_dir).files()) - files_before) if items_before else set()
    if note := disjoint_note(items_before, added, source.name):
        console.print(f"[yellow]warning:[/] {note}", soft_wrap=True)
    if report.accepted and (note := _zone_note(time_zone, settings)):
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    kinds = {t for t, n in summary.type_counts.items() if n}
    positive = {"play", *POSITIVE_TYPES}
    if (
        report.accepted
        and not kinds & positive
        and not kinds <= set(NO_ITEM_TYPES)
        and not log_types(files_before) & positive
    ):
        # impressions or views alone train nothing (ZhihuRec's with its reads typed away): said, not refused,
        # since a second file may bring the clicks (iPinYou's clk log after its impressions); an earlier
        # import that brought them (Yambda's listens before its dislikes) leaves nothing to say
        console.print(
            f"[yellow]warning:[/] no row of {source.name} is a play, a like or an add: none can be a positive to "
            "learn from. If another file holds them, import it next; else the notes above say how its columns read",
            soft_wrap=True,
        )
    duplicates = report.reasons.get("duplicate_event_id", 0)
    again = report.already_logged + duplicates
    if report.accepted and (report.quarantined - duplicates) * 2 > report.received:
        console.print(
            f"[yellow]warning:[/] most rows were quarantined ({report.quarantined - duplicates:,} of "
            f"{report.received:,}), "
            f"for the reasons above: the notes say how to read the columns, and {settings.quarantine_dir} holds the "
            "rows with their reasons",
            soft_wrap=True,
        )
    ahead = report.reasons.get("future_timestamp", 0)
    if ahead and time_origin and summary.end is not None:
        # a counter from a start with no date given (Yambda's seconds): an origin too recent dates its newest
        # rows after today, and they are quarantined, the newest part of the log, the one the hold-out is
        from ingest.import_values import parse_origin

        start = parse_origin(time_origin, time_zone, time_unit)
        fits = (start - (summary.end - pd.Timestamp.now(tz="UTC")) - pd.Timedelta(days=1)).floor("D")
        first = summary.start - start if summary.start is not None else pd.Timedelta(0)
        if fits + first <= pd.Timestamp(0, tz="UTC"):
            # counters that span more than the years since 1970 (milliseconds read as seconds): no origin places
            # them, since one early enough for the newest dates the first before the epoch, which is refused
            how = (
                f"its counters span {(summary.end - summary.start).days // 365:,} years, more than any origin "
                f"places: they count in another unit than --time-unit {time_unit}"
            )
        else:
            how = f"an origin of {fits:%Y-%m-%d} or earlier places the whole log"
        console.print(
            f"[yellow]warning:[/] --time-origin {time_origin} dates {ahead:,} rows after now: {how}; this directory "
            f"refuses the file with another origin, so to import it so, {_start_over(settings)}",
            soft_wrap=True,
        )
    if again and again >= report.received / 2:
        catalogue = (
            f" {items_label(items)}'s metadata was taken all the same: it replaces what the catalogue held for its "
            "items, so a corrected items file needs no fresh start."
            if items
            else ""
        )
        console.print(
            f"[yellow]note:[/] {again:,} of these rows were imported before, from this file or another (an event is "
            "known by its user, item and time cells, or for a file without times its file name, and for a file of one "
            "kind of event, --type, by that type too), so the events already in the log stand."
            f"{catalogue} To import the events again with other options, {_start_over(settings)}."
        )
    # a re-run of an import (its events logged before, say by a run that was killed) accepts nothing new, and
    # its bad rows are in the quarantine already: no failure, the note above says so
    if report.accepted == 0 and report.quarantined and not again:
        # an import that kept nothing is a failed import, whatever its rows' reasons
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(report.reasons.items(), key=lambda kv: -kv[1]))
        how = "the notes above say how to read its columns"
        if report.reasons.get("future_timestamp", 0) * 2 > report.quarantined and summary.start is not None:
            # Ta Feng's 13-digit product ids named as the time by a guess: read as ms, the year 2119
            how = (
                f"its times read from {summary.start:%Y-%m-%d} on, after today: the time is another column "
                "(--time-col), or this one reads in another unit or format (--time-unit, --time-format)"
            )
        raise UsageError(
            f"no row of {source.name} was accepted: {report.quarantined:,} quarantined ({reasons}); {how}, and "
            f"{settings.quarantine_dir} holds the rows with their reasons"
        )


#: import options that say nothing about how a file's rows become events: the items file's own, and
#: the import's safety switches
_NOT_READING = ("source", "memory_check", "mix_with_generated", "item_id_col", "items_")


def _event_options(given: dict[str, object]) -> dict[str, str]:
    """The options of an import that decide how its rows become events, as given (defaults left out),
    recorded in the lineage so that a later import of the same file can be compared with it."""
    import inspect

    signature = inspect.signature(import_).parameters
    out = {}
    for name, value in sorted(given.items()):
        default = signature[name].default
        default = getattr(default, "default", default)  # a typer.Option's own default
        if not name.startswith(_NOT_READING) and value != default:
            out[name] = str(value)
    return out


def _flag(name: str) -> str:
    """The command-line flag of ``import_``'s parameter ``name`` (``users_file`` is ``--users``)."""
    import inspect

    param = inspect.signature(import_).parameters.get(name)  # an earlier version's option may be gone
    declared = getattr(param.default, "param_decls", None) or () if param is not None else ()
    return next((d for d in declared if d.startswith("--")), f"--{name.replace('_', '-')}")


def _start_over(settings: Settings) -> str:
    """How to start from no events, for this profile: outside the local one, what the data directory does
    not hold (the identity map, the registries, the online store) has to be new too."""
    how = f"start from an empty data directory: move {settings.data_dir} aside, or set SETLIST_DATA_DIR to a new one"
    if settings.profile == "local":
        return how
    online = "SETLIST_REDIS_CLUSTER_NODES" if settings.profile == "cluster" else "SETLIST_REDIS_URL"
    return (
        f"{how}; in the {settings.profile} profile the identity map, the feature and model registries "
        f"(SETLIST_DATABASE_URL) and the online store ({online}) live outside it: point those at an empty "
        "database and Redis too"
    )


def _written_by(settings: Settings, files_before: set[Path], stem: str) -> list[Path]:
    """The event-log files this import wrote: new since it started and named for its source (Track's journal
    rolls files into the log meanwhile)."""
    tag = f"-import-{stem}-"
    return sorted(f for f in set(EventLog(settings.events_dir).files()) - files_before if tag in f.name)


def _kept_note(settings: Settings, files_before: set[Path], stem: str) -> str:
    """For an import that ends in an error: what the chunks before it wrote, which stay in the log."""
    added = _written_by(settings, files_before, stem)
    if not added:
        return ""
    n = EventLog(settings.events_dir).count(added)
    return (
        f". The chunks read before it put {n:,} events in the log, and they stay: the same import run again "
        f"(once the file is whole) adds the rest; to read the file with other options, {_start_over(settings)}"
    )


class _Run:
    """One import's run, as its ledger lines name it."""

    def __init__(self, lineage_dir: Path) -> None:
        self.lineage_dir, self.id, self.wrote = lineage_dir, uuid.uuid4().hex[:12], False

    def writing(self) -> None:
        """Before its first append to the log: from here on, a run that does not finish may have left rows."""
        from setlist.lineage import record_import_writing

        if not self.wrote:
            record_import_writing(self.lineage_dir, self.id)
            self.wrote = True


@contextmanager
def _recorded(settings: Settings, files_before: set[Path], stem: str, **fields: object) -> Iterator[_Run]:
    """An import's start on record before it reads a row, and its first write to the log (a run killed
    after it leaves both), and its end if an error ends it, with whether it had written to the log by
    then: the ledger holds every file rows came from."""
    from setlist.lineage import record_import_failure, record_import_start

    run = _Run(settings.lineage_dir)
    # the process, as the job's running mark names it: status tells this run, alive, from one killed
    record_import_start(settings.lineage_dir, run.id, pid=os.getpid(), host=socket.gethostname(), **fields)
    try:
        yield run
    except BaseException as exc:
        kept = bool(_written_by(settings, files_before, stem))
        record_import_failure(settings.lineage_dir, run.id, kept, f"{type(exc).__name__}: {exc}"[:500])
        raise


def _refuse_rereading(source: Path, digest: str, reading: dict[str, str], settings: Settings) -> None:
    """Refuse, before anything is read or written, a file imported before with other event options:
    its rows are the same events (their ids are made of user, item and time), so they would be
    quarantined as duplicates, and the rows the first import left out (sampled views, rows it
    quarantined) would come in read the other way, two readings of one file in one log. The same
    options again is a re-run, let through. Followed in the same directory, a note's advice
    (``--unrated 0`` after Goodreads' zeros were read as skips) did just that, and exited 0."""
    from setlist.lineage import imports, unfinished_imports

    # an import that kept nothing (it ended in an error) put none of its events in the log: its fix is let
    # through; one killed, or ended by an error after writing, may have put some there, and counts
    before = [
        r
        for r in [*imports(settings.lineage_dir), *unfinished_imports(settings.lineage_dir)]
        if r.get("sha256") == digest and "options" in r and int(r.get("accepted", 1)) > 0
    ]
    if not before or any(r["options"] == reading for r in before):
        return
    then = before[-1]["options"]
    changed = sorted(set(then) ^ set(reading) | {k for k in set(then) & set(reading) if then[k] != reading[k]})
    shown = ", ".join(_flag(k) for k in changed[:6])
    raise UsageError(
        f"{source.name} was imported before with other options ({shown} differ{'s' if len(changed) == 1 else ''}): "
        "its rows are the same events as then, so they would not be read again, and rows it left out would come "
        f"in read the other way; nothing was imported. To import it with these options, {_start_over(settings)}"
    )


def _imported_unrecorded(source: Path, digest: str, settings: Settings) -> str | None:
    """What to say, instead of importing, of a file whose only imports were recorded by a version that
    kept no record of its options (an upgraded data directory): whether these options are the same
    cannot be told. The same ones would add nothing (the file's events are in the log), other ones
    would read its rows a second way; so it is not read again, and the way to read it otherwise is said."""
    from setlist.lineage import imports

    earlier = [r for r in imports(settings.lineage_dir) if r.get("sha256") == digest and int(r.get("accepted", 1)) > 0]
    if not earlier or any("options" in r for r in earlier):
        return None
    at = str(earlier[-1].get("at", "?"))[:10]
    return (
        f"{source.name} was imported on {at} by an earlier version of Setlist, which did not record the "
        f"options it was read with, so whether they match these cannot be told: nothing was read again. "
        f"With the same options a re-run would add nothing (its {int(earlier[-1].get('accepted', 0)):,} events "
        f"are in the event log); to read it with other options, {_start_over(settings)}"
    )


def _zone_note(zone: str | None, settings: Settings) -> str | None:
    """``--time-zone`` places the times; the hour and weekday features read them on SETLIST_TIMEZONE's clock."""
    if zone is None:
        return None
    from setlist.request_time import parse_zone, zone_name

    # pandas reads zones zoneinfo does not (its "dateutil/Europe/Paris"): the setting takes the IANA name alone
    try:
        named = zone_name(parse_zone(zone.removeprefix("dateutil/")))
    except ValueError:  # no name the setting reads: which zone it is, not a value it would refuse
        named = None
    if named == settings.timezone:
        return None
    setting = f"SETLIST_TIMEZONE={named}" if named else f"SETLIST_TIMEZONE to the IANA name of {zone}"
    return (
        f"--time-zone {zone} placed the times; the hour and weekday features read them on SETLIST_TIMEZONE's clock "
        f"({settings.timezone} now): set {setting} before `make train` so they follow the users' clocks"
    )


def _check_time_options(
    unit: str | None, origin: str | None, fmt: str | None, year: int | None, zone: str | None, no_time: bool
) -> None:
    """The time options that cannot go together, refused before the file is read."""
    from ingest.import_values import EPOCH_UNITS, ImportFormatError, check_zone, time_unit_ns

    given = [f"--{n}" for n, v in (("time-unit", unit), ("time-origin", origin), ("time-format", fmt)) if v]
    if no_time and unit:
        raise UsageError("--no-time and --time-unit contradict each other: a file without times has no unit")
    if no_time and (given or zone or year):
        raise UsageError(f"--no-time: a file without times takes no {', '.join(given) or '--time-zone or --year'}")
    try:
        if unit is not None:
            time_unit_ns(unit)
        if zone is not None:
            check_zone(zone)
    except ImportFormatError as exc:
        raise UsageError(str(exc)) from exc
    if unit is not None and unit not in EPOCH_UNITS and origin is None:
        raise UsageError(f"--time-unit {unit} counts from a start: give it with --time-origin DATE")
    if origin is not None and unit is None:
        raise UsageError("--time-origin counts the time column's numbers from a date: it needs --time-unit")
    if fmt is not None and (unit or origin):
        raise UsageError("--time-format reads written times: it does not combine with --time-unit or --time-origin")
    if year is not None and fmt is None:
        raise UsageError("--year completes a --time-format without a year (%m%d): it needs --time-format")


def _say_summary(
    summary: ImportSummary, item_frame: pd.DataFrame | None, settings: Settings, consent_given: bool
) -> None:
    """The import's summary and consent note, and its items merged into the catalogue (before the
    events are ingested when the file was read at once, after when it was read in chunks)."""
    console.print(str(summary), markup=False, highlight=False)  # the file's own cells: "[x86 8]" is no markup
    if not consent_given and not settings.consent_granted_by_default:
        console.print(
            "[yellow]note:[/] these rows carry no personalization consent and SETLIST_CONSENT_DEFAULT is deny: "
            "their users get popularity rankings and are left out of training. Pass --consent-col, or "
            "--assume-consent if the data was collected under another legal basis."
        )
    if item_frame is not None:
        merged = merge_items(load_items(settings.catalog_path), item_frame, set(summary.described_items))
        save_items(merged, settings.catalog_path)


def _import_in_chunks(
    source: Path,
    options: ImportOptions,
    chunk_rows: int,
    settings: Settings,
    consent_given: bool,
    per_line: float = 1.0,
    before_write: Callable[[], None] | None = None,
) -> tuple[IngestReport, ImportSummary]:
    """A file too big to import at once, a stretch of time at a time (``InteractionStream``: the
    events an import at once gives)."""
    from ingest.import_files import estimate_rows
    from ingest.importer import InteractionStream
    from ingest.intake import logged_event_ids

    if settings.import_chunk_rows:
        why = "SETLIST_IMPORT_CHUNK_ROWS"
    else:
        why = (
            f"about {int((estimate_rows(source) or 0) * per_line):,} rows: more than the memory available holds at once"
        )
    console.print(
        f"importing {source.name} in chunks of about {chunk_rows:,} rows ({why}): a first pass reads the users, "
        "times and ratings of every row, then one pass per chunk (a stretch of time) builds and ingests its events"
    )
    report = IngestReport()
    with console.status(f"{source.name}: first pass…") as status:
        stream = InteractionStream(
            source,
            options,
            chunk_rows,
            progress=lambda said: status.update(f"{source.name}: {said}"),
            per_line=per_line,
            warn=lambda said: console.print(f"[yellow]warning:[/] {said}", soft_wrap=True),
        )
        known, files_before = logged_event_ids(settings), EventLog(settings.events_dir).files()
        for k, events in enumerate(stream, start=1):
            status.update(f"{source.name}: chunk {k} of {stream.chunks}: ingesting {len(events):,} events…")
            times = events["timestamp"].dropna()
            span = f"{times.iloc[0]:%Y-%m-%d} … {times.iloc[-1]:%Y-%m-%d}" if len(times) else "no valid times"
            report.merge(
                ingest(
                    events,
                    settings,
                    source=f"import-{source.stem}",
                    known=known,
                    before_write=before_write,
                    log_files_before=files_before,
                )
            )
            console.print(
                f"  chunk {k} of {stream.chunks}: {len(events):,} row{'s' if len(events) != 1 else ''}, {span}; "
                f"{report.accepted:,} accepted so far"
            )
            del events
        del known
    assert stream.summary is not None
    _say_summary(stream.summary, stream.item_frame, settings, consent_given)
    return report, stream.summary


#: the smallest chunk an import in chunks plans for: smaller ones would each cost a read of the file
MIN_CHUNK_ROWS = INGEST_SLICE_ROWS


def _untimed_after_note(start: pd.Timestamp | None, newest: pd.Timestamp | None) -> str:
    """What an untimed import into a log that held events means for training: its stamps end at the
    import, so they follow a timed log, but interleave with an earlier untimed import's (whose stamps
    also ended at its own import, a moment ago)."""
    if start is not None and newest is not None and start <= newest:
        from ingest.importer import UNTIMED_MIN_SPAN_DAYS

        return (
            f"the event log held events up to {newest:%Y-%m-%d %H:%M:%S}, and these rows had no times: they are "
            f"stamped from {start:%Y-%m-%d %H:%M:%S} to now, so the two interleave (untimed rows span a second per "
            f"row, at least {UNTIMED_MIN_SPAN_DAYS} days, ending at their import). Neither is the hold-out on its own: "
            "to evaluate on this file apart (a test "
            "file beside its train file), give both files times first, the second after the first, and train with "
            "SETLIST_SPLIT=global and SETLIST_HOLDOUT_DAYS set to the second file's span (or the split may choose "
            "another period); or import them into data directories of their own. Validation sees the interleaved "
            "visits too (their session lengths may read as drift)"
        )
    return (
        "the event log held events before this import, and these rows had no times: they are stamped ending now, "
        "so they are the newest events, the hold-out that training evaluates on and the window validation "
        "compares. If they are not the newest part of the history (a to-read list beside ratings), import them "
        "into a data directory of their own, or give them times first"
    )


def _chunk_rows(source: Path, settings: Settings, memory_check: bool, per_line: float = 1.0) -> int | None:
    """Rows per chunk when ``source`` is too big to import at once, None to import it at once.
    Refused, before any work, when even a chunked import would not fit: a clear message now rather
    than the kernel killing the import half-way. ``per_line``: rows the import makes of each line
    (``importer.rows_per_line``)."""
    from ingest.import_files import estimate_rows, streams
    from setlist.memory import USABLE_SHARE, available_memory

    chunked = streams(source)
    if settings.import_chunk_rows and chunked:
        return settings.import_chunk_rows
    if not memory_check:
        return None
    lines, free = estimate_rows(source), available_memory()
    if lines is None or free is None:
        return None
    rows = int(lines * per_line)
    budget = USABLE_SHARE * free
    per_row = settings.import_bytes_per_row
    if rows * per_row <= budget:
        return None
    if not chunked:
        fits = int(budget / per_row / per_line)  # in the file's own lines
        raise UsageError(
            f"{source.name} holds about {rows:,} rows; importing it at once needs about "
            f"{rows * per_row / 2**30:.1f} GB and {free / 2**30:.1f} GB is available, and a JSON array, a file of "
            "Python dicts or XML cannot be read in chunks. Convert it to JSON lines (one object per line), which "
            "are, or "
            f"import it in parts of at most ~{fits:,} rows; --no-memory-check skips this estimate"
        )
    # what the whole file's state leaves, for chunks no smaller than MIN_CHUNK_ROWS
    held = rows * settings.import_stream_bytes_per_row
    if budget - held >= MIN_CHUNK_ROWS * per_row:
        return int((budget - held) / per_row)
    fits = int((budget - MIN_CHUNK_ROWS * per_row) / settings.import_stream_bytes_per_row / per_line)
    raise UsageError(
        f"{source.name} holds about {rows:,} rows; even in chunks, its import holds about "
        f"{held / 2**30:.1f} GB for the whole file and {free / 2**30:.1f} GB is available. Import it in parts of "
        f"at most ~{max(fits, 0):,} rows, split by user (each part keeping the header line, or with --names), one "
        "`make import` per part, with the same --rating-max for every part (docs/scale.md); "
        "--no-memory-check skips this estimate"
    )


def _generated_world(settings: Settings) -> int:
    """How many event-log files the data directory holds when it holds a generated world (0 if not)."""
    if not (settings.data_dir / "generated" / "users.parquet").exists():
        return 0
    return len(EventLog(settings.events_dir).files())


def _refuse_generated_world(settings: Settings) -> None:
    """The README starts with `make demo`, which fills the default data directory with a synthetic
    world; an import there would append the user's log to it, and training would then hold out,
    and score the model on, synthetic listening. Said before anything is read or written."""
    files = _generated_world(settings)
    if not files:
        return
    raise UsageError(
        f"the data directory {settings.data_dir} holds the synthetic events `make demo` generated "
        f"({files:,} event-log files); your events would be mixed with them, and the model trained and judged "
        "on both. Import into a data directory of its own: export SETLIST_DATA_DIR=var/mydata (for this "
        "and every later make command), or move the demo's directory aside; --mix-with-generated imports "
        "into it anyway"
    )


@app.command()
def erase(
    user: str = typer.Argument(..., help="the application's user id (always taken as such, whatever it looks like)"),
    pseudonym: bool = typer.Option(False, "--pseudonym", help="USER is a pseudonym (u_ + 32 hex), not an app id"),
    verify: bool = typer.Option(
        True, help="then scan every file, SQL store and Redis for the id and the pseudonym; fail on any residue"
    ),
) -> None:
    """Erase one user from every copy: identity map, online store and caches, journals, event logs,
    quarantine, impressions, feature files, training sets and the candidate models' user factors."""
    from ingest.erasure import Receipt, erase_all, targets

    settings = get_settings()
    found = targets(user, settings, pseudonym)
    if found.note:
        console.print(f"[yellow]{escape(found.note)}: each is erased, with a receipt of its own[/]")

    def show(receipt: Receipt) -> None:  # as each is written: a later pseudonym's failure leaves these said
        table = Table(title=f"erased user (digest {receipt.digest[:16]}…)")
        for column in ("place", "looked in", "removed", "note"):
            table.add_column(column, justify="right" if column == "removed" else "left")
        for p in receipt.places:
            table.add_row(p.name, ", ".join(p.looked) or "—", f"{p.removed:,} {p.unit}", p.note)
        console.print(table)
        if receipt.resumes:
            console.print(
                f"finishes the erasure cut short at {', '.join(receipt.resumes)}: what it removed is counted above"
            )
        console.print(f"receipt: {receipt.path}")

    with console.status("erasing…") as status:
        receipts = erase_all(
            user,
            settings,
            by_pseudonym=pseudonym,
            progress=lambda step: status.update(f"erasing: {step}"),
            found=found,
            on_receipt=show,
        )
    if verify:
        from ingest.erasure import record_verification
        from ingest.residue import Token, places, render, scan

        kinds = ["pseudonym" if i == 0 else f"pseudonym {i + 1}" for i in range(len(found.ids))]
        needles: dict[str, str | Token] = dict(zip(kinds, found.ids, strict=True))
        if not pseudonym:
            # matched as a whole token: erasing user 17 must not find 1705, a count or a timestamp
            needles["raw id"] = Token(user.strip())
        notes: list[str] = []
        with console.status("verifying: scanning files, SQL stores and Redis for residue…"):
            findings = scan(settings, needles, notes)
        console.print(render(findings, notes))
        for receipt, kind, p in zip(receipts, kinds, found.ids, strict=True):  # each its own pseudonym's, and the id's
            record_verification(receipt, places(findings, (kind, "raw id")))
            if kind != "pseudonym" and any(f.needle_kind == kind for f in findings):
                # its identity pair is gone: the id no longer reaches it, only the pseudonym does
                console.print(
                    f"[yellow]{kind} is {p}: once its copies are gone, `make erase USER_ID={p} "
                    "ERASE_ARGS=--pseudonym` writes its receipt anew (the id no longer reaches it)[/]"
                )
        if findings:
            raise Refused(f"{places(findings)} place(s) still hold the user after erasure (see above)")


@app.command()
def access(
    user: str = typer.Argument(..., help="the application's user id (always taken as such, whatever it looks like)"),
    pseudonym: bool = typer.Option(False, "--pseudonym", help="USER is a pseudonym (u_ + 32 hex), not an app id"),
    export: Path | None = typer.Option(None, "--export", help="write a copy of every row found here (JSON lines)"),
    scan_all: bool = typer.Option(
        True, "--scan/--no-scan", help="also scan every file, SQL store and Redis for other places naming the user"
    ),
) -> None:
    """A subject-access request: every place that holds one user's data, with row counts; --export copies
    the rows. Reads the places erasure reaches, by the same ids; changes nothing."""
    from ingest.access import export as write_export
    from ingest.access import gather, require_empty, summarize, time_span

    settings = get_settings()
    if export is not None:
        require_empty(export)  # before the work, not after it
    with console.status("looking…") as status:
        found = gather(settings, user, by_pseudonym=pseudonym, progress=lambda step: status.update(f"looking: {step}"))
    who = found.raw_id if found.raw_id is not None else "not in the identity map (erased, or never stored)"
    console.print(f"user {escape(found.user)}: pseudonym {found.pseudonym}; identity map: {escape(who)}")
    for n, other in enumerate(found.others, start=2):
        console.print(f"pseudonym-{n}: {other} (another key's, read too)")
    table = Table(title="what is stored about the user")
    for column in ("place", "dataset", "rows", "from", "to"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for held in found.held:
        table.add_row(held.place, escape(held.dataset), f"{len(held.rows):,}", *time_span(held.rows))
    for view, values in found.online.items():
        table.add_row("online store", view, "1", "", str(values.get("written_at") or "")[:19])
    for where, row in found.models.items():
        table.add_row("candidate model", escape(f"{where} ({', '.join(sorted(row))})"), "1", "", "")
    console.print(table)
    for note in found.notes:
        console.print(f"note: {note}")
    if not found.held and not found.online and not found.models:
        console.print(
            "no rows of this user in the event logs, quarantine, impressions, features, online store or models"
        )
    if scan_all:
        from ingest.residue import Token, scan

        needles: dict[str, str | Token] = {"pseudonym": found.pseudonym}
        needles |= {f"pseudonym {n}": other for n, other in enumerate(found.others, start=2)}
        if not pseudonym:
            needles["raw id"] = Token(user.strip())  # a whole token: user 17 is not in 1705
        notes: list[str] = []
        with console.status("scanning files, SQL stores and Redis for the ids…"):
            findings = scan(settings, needles, notes)
        console.print("every place naming the user (the same scan `make erase` verifies with):")
        console.print(escape(summarize(findings, notes)), highlight=False)
    if export is not None:
        written = write_export(found, export)
        console.print(f"exported {len(written)} files to {export} (readable by you only: they hold the user's data)")


@app.command()
@jobmetrics.reports("retention")
def retention(dry_run: bool = typer.Option(False, "--dry-run", help="print what would go; change nothing")) -> None:
    """Apply each dataset's retention (SETLIST_RETENTION_*): events, impressions, quarantine, journal, reports."""
    from setlist.retention import apply

    settings = get_settings()
    with console.status("retention…") as status:
        results = apply(settings, dry_run=dry_run, progress=lambda step: status.update(f"retention: {step}"))
    title = "retention (dry run: nothing changed)" if dry_run else "retention"
    table = Table(title=title)
    for column in ("dataset", "keeps since", "files before", "files after", "MB before", "MB after", "removed"):
        table.add_column(column, justify="left" if column in ("dataset", "keeps since") else "right")
    for r in results:
        removed = f"{r.files_removed:,} files" + (f", {r.rows_removed:,} rows" if r.rows_removed else "")
        if r.moved:
            removed += f" ({r.moved:,} events moved into the log)"
        table.add_row(
            r.dataset,
            r.cutoff.strftime("%Y-%m-%d %H:%M") if r.cutoff else "forever",
            f"{r.files_before:,}",
            f"{r.files_after:,}",
            f"{r.bytes_before / 1e6:.1f}",
            f"{r.bytes_after / 1e6:.1f}",
            removed,
        )
    console.print(table)
    for r in results:
        for note in r.notes:
            console.print(f"  {r.dataset}: {note}")


@app.command()
def summary() -> None:
    """What the event log and the quarantine hold."""
    settings = get_settings()
    log = EventLog(settings.events_dir)
    events = log.read(columns=["type", "timestamp", "user_id", "item_id"])
    q = Quarantine(settings.quarantine_dir).read()
    table = Table(title=f"event log at {settings.events_dir}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("events", f"{len(events):,}")
    if len(events):
        table.add_row("users / items", f"{events['user_id'].nunique():,} / {events['item_id'].nunique():,}")
        table.add_row("from", str(events["timestamp"].min()))
        table.add_row("to", str(events["timestamp"].max()))
        for t, n in events["type"].value_counts().items():
            table.add_row(f"  {t}", f"{n:,}")
    table.add_row("quarantined", f"{len(q):,}")
    console.print(table)


if __name__ == "__main__":
    app()
