"""Erasure: remove one user from every copy Setlist keeps, and write a receipt that says so.

The order matters. The tombstone goes first, so every reader and every later rebuild already skips
the user while the copies are removed; then the online rows (with the consent row gone, serving
treats the user as unknown: no personalization, no new impressions); then every file: journal
segments (running servers' are waited for, they roll within seconds and drop tombstoned users), the
event logs, the quarantine, the impressions, the feature files, the training set, and the rows of the
registered candidate models' user factors; the identity map last, since under a refused key (or for an
older key's pseudonym) its pair is the only thing that names the pseudonym, and a run cut short must
find it again. The shared prediction cache gets a version bump (not a scan): entries written before are
never served again and expire by TTL.

The tombstone and the receipt hold a one-way digest of the pseudonym; no raw id is written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setlist import liveness, turns
from setlist.atomicfile import fsync_dir, write_atomic_bytes
from setlist.compaction import dataset_at, rewriting
from setlist.errors import Refused, UsageError
from setlist.eventlog import (
    TOMBSTONES,
    EventLog,
    Quarantine,
    erasure_digest,
    remove_stale_temporaries,
    settle_pending,
    write_atomic,
)
from setlist.pseudonym import (
    PSEUDONYM_PREFIX,
    IdentityMap,
    KeyMismatch,
    app_id,
    check_key,
    identity_rows,
    pseudonymize,
)
from setlist.settings import Settings

RECEIPTS = Path("erasure") / "receipts"
#: the places a running (or cut-short) erasure has finished, per digest (``_Tally``)
PROGRESS = Path("erasure") / "progress"
#: held (``liveness.exclusive``) by the one erasure running, with its digest
ERASING = Path("erasure") / ".running"
_PSEUDONYM_LEN = len(PSEUDONYM_PREFIX) + 32
if TYPE_CHECKING:
    from feature_repo.online import OnlineFeatures

log = logging.getLogger("setlist.erasure")


@dataclass
class Place:
    """One kind of copy: where erasure looked, and what it removed there."""

    name: str
    looked: list[str] = field(default_factory=list)  # paths (relative to the data directory) or stores
    removed: int = 0
    unit: str = "rows"
    note: str = ""


@dataclass
class Receipt:
    digest: str  # erasure_digest(pseudonym): matches the tombstone, identifies no one
    erased_at: str
    profile: str
    places: list[Place]
    path: Path | None = None
    #: places the scan after the erasure still found the user in (None: not scanned)
    residue: int | None = None
    #: when the earlier runs of this erasure that were cut short started; what they removed is counted here
    resumes: list[str] = field(default_factory=list)
    #: the digests of every pseudonym this erasure of an app id reached (one user under several keys): one
    #: user to ``erased_users``, whatever receipts each pseudonym's run writes
    group: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(p.removed for p in self.places)

    def removed_in(self, name: str) -> int:
        return sum(p.removed for p in self.places if p.name == name)

    def to_json(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "path"}
        return json.dumps(body, indent=1, sort_keys=True)


Progress = Callable[[str], None]


def resolve(user: str, settings: Settings, by_pseudonym: bool) -> str:
    """The pseudonym to erase. An application id is always pseudonymized, whatever it looks like;
    only ``by_pseudonym`` takes the input as a pseudonym (which must then look like one)."""
    user = app_id(user)
    if not user:
        raise UsageError("the user id is empty")
    if not by_pseudonym:
        key = settings.existing_hmac_key()  # never a new one: its pseudonym would be no one's
        if key is None:
            raise Refused(
                f"no pseudonymization key yet ({settings.hmac_key_source()} does not exist): nothing here is "
                "stored under a pseudonym; for data written elsewhere, set the key it was written with "
                "(SETLIST_HMAC_KEY or SETLIST_HMAC_KEY_FILE)"
            )
        return pseudonymize(user, key)
    if not (user.startswith(PSEUDONYM_PREFIX) and len(user) == _PSEUDONYM_LEN):
        raise UsageError(f"--pseudonym expects {PSEUDONYM_PREFIX} followed by 32 hex characters")
    return user


@dataclass(frozen=True)
class Pseudonyms:
    """The pseudonyms of one app id, the key in use's first, and why the list is not just that one."""

    ids: list[str]
    note: str = ""


def pseudonyms_of(user: str, settings: Settings) -> Pseudonyms:
    """What an erasure of app id ``user`` must reach: its pseudonym under the key in use, then every other
    pseudonym the identity map pairs with the id (a key an older release made where the key file was
    missing). Under a key the stored users refuse (``check_key``), or none, the identity map's pairs alone:
    the erasure is owed whatever became of the key, and the map says which pseudonyms are the user's; a key
    computed anyway would name someone else, or no one."""
    raw = app_id(user)
    if not raw:
        raise UsageError("the user id is empty")
    pairs = identity_rows(settings, raw_id=raw)  # the id as stored padded with spaces too, by older releases
    stored = [p for p, _ in pairs]
    try:
        check_key(settings)
    except KeyMismatch as refused:
        if not stored:
            raise KeyMismatch(
                f"{refused}. The identity map pairs no pseudonym with this id either, so nothing names the "
                "user's rows without the key"
            ) from None
        n = len(stored)
        refused_note = (
            f"the pseudonymization key in use is refused ({settings.hmac_key_source()} is not the one the "
            f"stored users were written with): the identity map's {n} pseudonym{'s' if n > 1 else ''} for this "
            f"id {'are' if n > 1 else 'is'} used instead"
        )
        return Pseudonyms(stored, refused_note)
    own = resolve(raw, settings, by_pseudonym=False)
    others = [p for p, r in pairs if p != own]
    padded = sum(r != raw for p, r in pairs if p != own)
    kinds = [
        f"{padded} under the id with surrounding spaces, as releases before ids were trimmed stored it"
        if padded
        else "",
        f"{len(others) - padded} of another key (an older release's)" if len(others) > padded else "",
    ]
    n = len(others)
    note = (
        f"the identity map also pairs this id with {n} pseudonym{'s' if n > 1 else ''}: "
        + "; ".join(k for k in kinds if k)
        if others
        else ""
    )
    return Pseudonyms([own, *others], note)


def targets(user: str, settings: Settings, by_pseudonym: bool) -> Pseudonyms:
    """The pseudonyms an erasure (or an access request) of ``user`` reaches: the one given with
    ``by_pseudonym``, else ``pseudonyms_of`` the app id."""
    return Pseudonyms([resolve(user, settings, True)]) if by_pseudonym else pseudonyms_of(user, settings)


def erase(user: str, settings: Settings, *, by_pseudonym: bool = False, progress: Progress | None = None) -> Receipt:
    """Erase ``user`` (an app id, or with ``by_pseudonym`` a pseudonym); the first receipt. An app id's
    every pseudonym is erased (``pseudonyms_of``), each with a receipt of its own: ``erase_all``."""
    return erase_all(user, settings, by_pseudonym=by_pseudonym, progress=progress)[0]


def erase_all(
    user: str,
    settings: Settings,
    *,
    by_pseudonym: bool = False,
    progress: Progress | None = None,
    found: Pseudonyms | None = None,
    on_receipt: Callable[[Receipt], None] | None = None,
) -> list[Receipt]:
    """Erase each of the user's pseudonyms (``found``, else ``targets``) in turn, one receipt each, handed
    to ``on_receipt`` as it is written: when a later one fails, the earlier ones are done and said."""
    found = found or targets(user, settings, by_pseudonym)
    group = [erasure_digest(p) for p in found.ids]
    receipts = []
    for pseudonym in found.ids:
        receipts.append(_erase_one(user, pseudonym, settings, by_pseudonym, progress, group))
        if on_receipt is not None:
            on_receipt(receipts[-1])
    return receipts


def _erase_one(
    user: str, pseudonym: str, settings: Settings, by_pseudonym: bool, progress: Progress | None, group: list[str]
) -> Receipt:
    say = progress or (lambda _: None)
    data = settings.data_dir
    logs = event_logs(settings)
    digest = erasure_digest(pseudonym)
    # one erasure at a time (each rewrites the same event-log files); the holder's digest tells status this
    # run from one killed between its tombstone and its receipt
    facts = {"pid": os.getpid(), "digest": digest}
    turn = liveness.exclusive(data / ERASING, facts)
    if turn is None:
        say("waiting for another erasure to finish")
        turn = liveness.exclusive(data / ERASING, facts, wait=True)
    assert turn is not None  # a blocking take returns the mark
    try:
        with turns.erasure(settings, say):
            return _erase(settings, user, pseudonym, by_pseudonym, logs, say, group)
    finally:
        turn.release(remove=False)


class _Tally:
    """The places an erasure has finished, on disk as it goes (``erasure/progress/<digest>.json``). A run cut
    short removed rows the run that finishes it no longer finds: the finishing run's receipt adds them, so it
    does not tell an auditor the user had none."""

    def __init__(self, settings: Settings, digest: str) -> None:
        self.path = settings.data_dir / PROGRESS / f"{digest}.json"
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.earlier: list[dict] = []
        if self.path.exists():
            try:
                self.earlier = list(json.loads(self.path.read_text(encoding="utf-8"))["runs"])
            except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable: this run's counts alone
                log.warning("could not read %s (%s): the earlier runs' counts are left out", self.path, exc)
        # a run stopped after its receipt, before it removed this file, was counted in that receipt
        receipted = _newest_receipt(settings, digest)
        if receipted is not None:
            self.earlier = [run for run in self.earlier if str(run.get("started", "")) > receipted]
        self.places: list[Place] = []

    def add(self, place: Place) -> None:
        self.places.append(place)
        runs = [*self.earlier, {"started": self.started, "places": [asdict(p) for p in self.places]}]
        write_atomic_bytes(self.path, json.dumps({"runs": runs}, indent=1))

    def merged(self) -> list[Place]:
        """This run's places, each with what earlier runs removed in the place of its name added."""
        out = [replace(p) for p in self.places]
        by_name = {p.name: p for p in out}
        for run in self.earlier:
            for before in run.get("places", []):
                mine = by_name.get(before.get("name"))
                if mine is not None:
                    mine.removed += int(before.get("removed", 0))
        return out

    def resumes(self) -> list[str]:
        return [str(run.get("started")) for run in self.earlier]

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def _erase(
    settings: Settings,
    user: str,
    pseudonym: str,
    by_pseudonym: bool,
    logs: list[EventLog],
    say: Progress,
    group: list[str],
) -> Receipt:
    data = settings.data_dir
    tally = _Tally(settings, erasure_digest(pseudonym))
    for log in logs:
        log.tombstone(pseudonym)  # first: readers and rebuilds skip the user from now on
    say("online store and prediction cache")
    tally.add(_online(settings, pseudonym))
    if settings.profile == "cluster":
        tally.add(_cluster_sweep(settings, pseudonym))
    tally.add(_cache(settings, pseudonym))
    if settings.on_servers:
        tally.add(_redis_files(settings))
    say("Track journals (waiting for running servers' segments to roll)")
    tally.add(_journals(settings, pseudonym, logs))
    say("event logs")
    events = Place("event log", [relative(log.root, data) for log in logs])
    for log in logs:
        with _rewriting(settings, log.root, events, say):
            events.removed += log.compact_out(pseudonym)
    tally.add(events)
    # a killed writer's temporaries (never renamed into place, so never acknowledged) hold whole batches
    # that no reader lists: removed, whoever's rows they hold
    left = Place("files a killed writer left", [relative(data, data)])
    left.removed = remove_stale_temporaries(data)
    tally.add(left)
    say("quarantine")
    tally.add(_quarantine(settings, pseudonym, say))
    say("impressions")
    tally.add(_impressions(settings, pseudonym, say))
    say("feature files and training sets")
    tally.add(_parquet_files("feature files", settings.features_dir, pseudonym, data))
    tally.add(_parquet_files("training sets", data / "training", pseudonym, data))
    say("registered candidate models")
    tally.add(_model_factors(settings, pseudonym))
    if not by_pseudonym and (settings.data_dir / "generated").exists():  # only the synthetic world has one
        tally.add(_generated(settings, app_id(user)))
    # last: under a refused key the identity map's pair is the only thing naming this pseudonym, so a run
    # cut short before here must still find it when `make erase USER_ID=…` runs again
    say("identity map")
    tally.add(_identity(settings, pseudonym))
    receipt = Receipt(
        erasure_digest(pseudonym),
        datetime.now(UTC).isoformat(timespec="seconds"),
        settings.profile,
        tally.merged(),
        resumes=tally.resumes(),
        group=group if len(group) > 1 else [],
    )
    receipt.path = _write_receipt(settings, receipt)
    tally.close()
    return receipt


# --- the places --------------------------------------------------------------------------------------
def event_logs(settings: Settings) -> list[EventLog]:
    """The event log, and the simulation's (its listeners are real pseudonyms too)."""
    roots = [settings.events_dir, settings.simulation_dir / "events"]
    return [EventLog(r) for r in dict.fromkeys(roots) if r == settings.events_dir or r.exists()]


def user_views(settings: Settings) -> tuple[OnlineFeatures, list[str]] | None:
    """The online store and its views keyed by user, or None before there is a feature store."""
    if not ((settings.data_dir / "registry.db").exists() or settings.on_servers):
        return None
    from feature_repo.online import OnlineFeatures
    from feature_repo.store import definitions, get_store

    views = [v for v in definitions(settings).views.all() if list(getattr(v, "entities", [])) == ["user"]]
    return OnlineFeatures(get_store(settings), views), [v.name for v in views]


def _online(settings: Settings, pseudonym: str) -> Place:
    place = Place("online store", unit="views")  # the views that held a row of the user
    opened = user_views(settings)
    if opened is None:
        place.note = "no feature store yet"
        return place
    online, views = opened
    for view in views:
        place.removed += online.delete(view, pseudonym)
        place.looked.append(view)
    online_db = settings.data_dir / "online.db"
    if online_db.exists():  # the deleted rows would stay readable in SQLite's free pages
        _vacuum_sqlite(online_db)
        place.note = "SQLite online store vacuumed"
    return place


def _cluster_sweep(settings: Settings, pseudonym: str) -> Place:
    """The cluster profile's online store is a Redis Cluster: besides the rows deleted by key (each
    on the master of its slot), every master is scanned for any other key that holds the pseudonym
    (another Feast project's, an older key layout's) and those go too. A cluster's SCAN walks one
    node, so each master is scanned through a client of its own; a master that cannot be reached
    stops the erasure (run it again once the master is back), it is never skipped."""
    from urllib.parse import urlsplit

    from redis.exceptions import RedisClusterException, RedisError

    from setlist.redis_client import fail_fast_redis_cluster

    place = Place("online store, every Redis Cluster master", unit="keys")
    pattern = b"*" + _glob_escape(pseudonym.encode()) + b"*"
    timeout_s = max(settings.online_timeout_ms, 500) / 1000
    try:
        url = urlsplit(settings.redis_url)
        cluster = fail_fast_redis_cluster(
            settings.redis_cluster_nodes, timeout_s, retries=1, password=url.password, tls=url.scheme == "rediss"
        )
    except (RedisError, RedisClusterException) as exc:
        raise Refused(f"the Redis Cluster could not be reached ({type(exc).__name__}); run the erasure again") from None
    try:
        for master in sorted(cluster.get_primaries(), key=lambda node: node.name):
            node = cluster.get_redis_connection(master)
            try:
                keys = list(node.scan_iter(match=pattern, count=1000))
                # one DEL per key: one DEL of keys in different slots is refused (CROSSSLOT), even
                # when one master holds them all
                pipe = node.pipeline(transaction=False)
                for key in keys:
                    pipe.delete(key)
                place.removed += sum(int(n) for n in pipe.execute()) if keys else 0
            except RedisError as exc:
                raise Refused(
                    f"Redis Cluster master {master.name} could not be swept ({type(exc).__name__}); "
                    "run the erasure again once it is back"
                ) from None
            place.looked.append(f"redis cluster {master.name}")
    finally:
        cluster.close()
    return place


def _glob_escape(value: bytes) -> bytes:
    """``value`` matched literally by a Redis glob pattern."""
    out = bytearray()
    for byte in value:
        if bytes([byte]) in (b"*", b"?", b"[", b"]", b"\\"):
            out += b"\\"
        out.append(byte)
    return bytes(out)


def _cache(settings: Settings, pseudonym: str) -> Place:
    place = Place("prediction cache", unit="version bumps")
    if settings.cache_store != "redis":
        place.note = (
            "in-process caches: a server no longer serves the user a personalized entry once their consent "
            "row is gone, and entries expire by TTL"
        )
        return place
    from setlist.cachekeys import new_token, shared_cache, user_version_key

    client = shared_cache(settings)
    try:
        # a new version makes every replica's entries for the user stale at once; no key is scanned
        client.set(
            user_version_key(pseudonym, settings.feast_project), new_token(), px=int(2 * settings.cache_ttl_s * 1000)
        )
    finally:
        client.close()
    place.looked.append("redis")
    place.removed = 1
    return place


def _redis_files(settings: Settings) -> Place:
    """Redis keeps a deleted key in its append-only file until the file is rewritten: ask for the rewrite
    (it runs in the background; the key is gone from the file when it ends). A Redis that refuses the
    command (a managed one may) is named in the note, not an error: the live keys are gone either way."""
    from redis.exceptions import RedisError

    from setlist.redis_client import fail_fast_redis

    place = Place("Redis append-only file", ["redis"], unit="rewrites")
    client = fail_fast_redis(settings.redis_url, max(settings.online_timeout_ms, 500) / 1000, retries=1)
    try:
        # a Redis without an append-only file would write one, with every user's keys, when asked
        if not int(client.info("persistence").get("aof_enabled", 0)):
            place.note = "Redis keeps no append-only file (appendonly no): nothing to rewrite"
            return place
        client.bgrewriteaof()
        place.removed = 1
        place.note = "rewrite started; RDB snapshots taken before keep deleted keys until they are replaced"
    except RedisError as exc:
        if "already in progress" in str(exc):  # a rewrite that began before the deletes may miss them
            place.note = "a rewrite was already running: run the erasure again once it ends to rewrite it after"
        else:
            place.note = f"could not ask for a rewrite ({type(exc).__name__}: {exc}); the file keeps deleted keys"
    finally:
        client.close()
    return place


def _identity(settings: Settings, pseudonym: str) -> Place:
    ids = IdentityMap(settings.metadata_url)
    try:
        removed = ids.forget(pseudonym)
    finally:
        ids.dispose()
    return Place("identity map", ["metadata store"], int(removed), note="vacuumed" if removed else "")


def _journals(settings: Settings, pseudonym: str, logs: list[EventLog]) -> Place:
    """Journal segments hold acknowledged events not yet in the log. A dead server's are moved now;
    a running server rolls its own within ``journal_roll_s``, and a roll drops tombstoned users:
    erasure waits for the segments that hold the user to be gone. Beside them, a server keeps the
    consent withdrawals the online store has not taken yet: a dead one's lose the user here, a running
    one drops erased users at its next retry (within a second), which erasure waits for too."""
    from setlist.journal_dirs import held_files, read_held, recover_orphans, write_held

    place = Place("Track journals")

    def strip(path: Path) -> None:  # an orphan's held withdrawals, under its directory's lock
        held = read_held(path)
        if pseudonym in held:
            place.removed += len(held.pop(pseudonym))
            write_held(path, held)

    roots = [(settings.journal_sweep_dir or settings.wal_dir, logs[0])]
    sim = settings.simulation_dir / "wal"
    if sim.exists() and len(logs) > 1:
        roots.append((sim, logs[1]))
    holding: set[Path] = set()
    for root, log in roots:
        if not root.exists():
            continue
        place.looked.append(relative(root, settings.data_dir))
        found = {seg: _rows_of(seg, pseudonym) for seg in root.rglob("*.jsonl")}
        place.removed += sum(found.values())
        holding |= {seg for seg, n in found.items() if n}
        # under each directory's lock; a live server's are skipped
        recover_orphans(root, log, on_held=strip)
        holding |= {path for path in held_files(root) if _rows_of(path, pseudonym, _held_needle)}
    deadline = time.monotonic() + 2 * settings.journal_roll_s + 5
    while holding and time.monotonic() < deadline:
        holding = {path for path in holding if _still_holds(path, pseudonym)}
        if holding:
            time.sleep(0.05)  # polling another process's files: there is nothing to wait on
    if holding:
        raise Refused(
            f"{len(holding)} journal file(s) of running servers still hold the user after "
            f"{2 * settings.journal_roll_s + 5:g} s; run the erasure again"
        )
    return place


def _held_needle(pseudonym: str) -> str:
    return f'"{pseudonym}":'  # a user's key in a held-withdrawals file (setlist.journal_dirs.write_held)


def _segment_needle(pseudonym: str) -> str:
    return f'"user_id":"{pseudonym}"'


def _still_holds(path: Path, pseudonym: str) -> bool:
    """A segment holds the user until it is rolled (gone); a held-withdrawals file until rewritten without them."""
    if path.suffix == ".jsonl":
        return path.exists()
    return bool(_rows_of(path, pseudonym, _held_needle))


def _rows_of(segment: Path, pseudonym: str, needle_of: Callable[[str], str] = _segment_needle) -> int:
    needle = needle_of(pseudonym)
    try:
        with open(segment, encoding="utf-8", errors="replace") as fh:
            return sum(needle in line for line in fh)
    except FileNotFoundError:  # rolled meanwhile
        return 0


def _quarantine(settings: Settings, pseudonym: str, say: Progress) -> Place:
    # Track buffers rejected rows before they become parquet: wait for running servers to flush
    # them (or adopt a dead one's), so the scrub below sees every row
    quarantine = Quarantine(settings.quarantine_dir)
    wait_s = 2 * settings.track_quarantine_flush_s + 1
    holding = settle_pending(quarantine, wait_s)
    if holding:
        raise Refused(
            f"{len(holding)} quarantine buffer(s) of running servers did not flush within {wait_s:g} s "
            f"({', '.join(p.name for p in holding)}); run the erasure again"
        )
    place = Place("quarantine", [relative(settings.quarantine_dir, settings.data_dir)])
    with _rewriting(settings, settings.quarantine_dir, place, say):
        place.removed = _scrub_parquet_tree(settings.quarantine_dir, pseudonym)
    return place


def _impressions(settings: Settings, pseudonym: str, say: Progress) -> Place:
    roots = [
        r for r in dict.fromkeys([settings.impressions_dir, settings.simulation_dir / "impressions"]) if r.exists()
    ]
    if roots and settings.impressions_enabled:
        # rows a server queued before the consent row went; none are queued after (no consent, no record)
        time.sleep(2 * settings.impressions_flush_s + 0.5)
    place = Place("impressions", [relative(r, settings.data_dir) for r in roots])
    for root in roots:
        with _rewriting(settings, root, place, say):
            place.removed += _scrub_parquet_tree(root, pseudonym)
    return place


@contextmanager
def _rewriting(settings: Settings, root: Path, place: Place, say: Progress) -> Iterator[None]:
    """``root``'s files with no compaction or down-sampling under way: one running would delete a file this
    erasure is about to read, and a killed one's staged outputs hold rows no scrub reaches until the swap is
    finished (done here first)."""
    dataset = dataset_at(settings, root)
    with rewriting(dataset, say) as finished:
        if finished and dataset is not None:
            note = f"{finished} interrupted compaction(s) of the {dataset.name} finished first"
            place.note = f"{place.note}; {note}" if place.note else note
        yield


def _parquet_files(name: str, root: Path, pseudonym: str, data: Path) -> Place:
    place = Place(name, [relative(root, data)] if root.exists() else [])
    place.removed = _scrub_parquet_tree(root, pseudonym)
    return place


def _model_factors(settings: Settings, pseudonym: str) -> Place:
    """Every registered candidate model version holds a factor row per user it was trained on:
    the row goes from each version's artifacts (serving needs none for an unknown user)."""
    from setlist.registry import artifact_roots

    place = Place("candidate models' user factors", unit="model versions")
    roots = [r for r in artifact_roots(settings) if r.exists()]
    # a version's directory may lie inside the artifact root: each file once
    files = sorted({f.resolve() for root in roots for f in root.rglob("arrays.npz")})
    place.looked = sorted(
        {relative(r, settings.data_dir) for r in roots if not any(r != o and r.is_relative_to(o) for o in roots)}
    )
    place.removed = sum(_drop_user_row(f, pseudonym) for f in files)
    return place


def _generated(settings: Settings, raw_id: str) -> Place:
    """The synthetic world's ground truth (a simulated listener's hidden tastes) is keyed by raw id."""
    root = settings.data_dir / "generated"
    place = Place("generator's ground truth", [relative(root, settings.data_dir)] if root.exists() else [])
    if root.exists():
        place.removed = _scrub_parquet_tree(root, raw_id)
        place.removed += sum(_drop_user_row(f, raw_id) for f in sorted(root.rglob("*.npz")))
    return place


# --- helpers -----------------------------------------------------------------------------------------
def relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def parquet_under(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def _scrub_parquet_tree(root: Path, pseudonym: str) -> int:
    """Rewrite every parquet file under ``root`` that has a ``user_id`` column without the user's rows."""
    removed = 0
    for f in parquet_under(root):
        if "user_id" not in pq.read_schema(f).names:
            continue
        table = pq.read_table(f)
        kept = table.filter(pc.fill_null(pc.not_equal(table.column("user_id"), pa.scalar(pseudonym)), True))
        if kept.num_rows != table.num_rows:
            removed += table.num_rows - kept.num_rows
            write_atomic(kept, f)
    return removed


#: what reading a model's ``.npz``/``.npy`` raises when the file is cut short or is not one (EOFError: empty)
MODEL_FILE_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


def _drop_user_row(arrays: Path, user: str) -> bool:
    """Rewrite an ``.npz`` keyed by ``user_ids`` without that user's row in every ``user_*`` array
    (a candidate index's factors, a generator's tastes), and a candidate index's ``seen`` matrix and
    table of nearest items, whose rows are read by user position: the files of one model are replaced
    together (:func:`_rewrite_together`), so a rewrite cut short never leaves them on different users."""
    folder = arrays.parent
    _finish_rewrite(folder)  # one a crash interrupted goes first: it decides what the files hold now
    # as they were before this run read them: a rewrite finished later must not overwrite a newer file
    before = {p.name: _stat(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    try:
        with np.load(arrays, allow_pickle=False) as z:
            if "user_ids" not in z.files:
                return False
            parts = {k: z[k] for k in z.files}
    except MODEL_FILE_ERRORS as exc:  # else only "Aborted."
        raise Refused(
            f"cannot read the model file {arrays} ({type(exc).__name__}: {exc}), so the user's row in it cannot be "
            "removed: restore the file or delete that model version, then run the same erasure again"
        ) from None
    keep = parts["user_ids"] != user
    if keep.all():
        return False
    n = len(keep)
    for k, v in parts.items():
        if k.startswith("user_") and v.ndim and len(v) == n:
            parts[k] = v[keep]
    writes: dict[str, Callable[[BinaryIO], object]] = {arrays.name: lambda fh: np.savez(fh, **parts)}  # type: ignore[arg-type]
    if arrays.name == "arrays.npz":
        writes.update(_seen_without(folder / "seen.npz", keep))
        writes.update(_table_without(folder, keep))
    _rewrite_together(folder, writes, before)
    return True


def _seen_without(seen: Path, keep: np.ndarray) -> dict[str, Callable[[BinaryIO], object]]:
    """A candidate index's ``seen`` matrix without the erased user's row (one row per user)."""
    if not seen.exists():
        return {}
    import scipy.sparse as sp

    matrix = sp.load_npz(seen).tocsr()
    if matrix.shape[0] != len(keep):  # not one row per user of this index: left as it is
        return {}
    kept = matrix[np.flatnonzero(keep)]
    return {seen.name: lambda fh: sp.save_npz(fh, kept)}


def _table_without(folder: Path, keep: np.ndarray) -> dict[str, Callable[[BinaryIO], object]]:
    """A candidate index's table of each user's nearest items (``setlist.embedding_top``) without
    the erased user's row: its rows are read by user position, so every later user's row would
    otherwise be the next user's, and the erased user's own would stay."""
    from setlist.embedding_top import INDPTR_FILE, ITEMS_FILE

    if not (folder / INDPTR_FILE).exists():
        return {}
    indptr, items = np.load(folder / INDPTR_FILE), np.load(folder / ITEMS_FILE)
    lengths = np.diff(indptr)
    if len(lengths) != len(keep):  # not one row per user of this index: left as it is
        return {}
    kept_items = items[np.repeat(keep, lengths)]
    kept_indptr = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(indptr.dtype)
    return {ITEMS_FILE: lambda fh: np.save(fh, kept_items), INDPTR_FILE: lambda fh: np.save(fh, kept_indptr)}


#: a rewrite's new files, and its list of them (the commit point), beside the files they replace. Not
#: ``.tmp``: the sweep of a killed writer's temporaries must leave a committed rewrite's files alone
_STAGED = ".erasing"
_REWRITE = ".erasure-rewrite.json"


def _rewrite_together(
    folder: Path, writes: dict[str, Callable[[BinaryIO], object]], before: dict[str, list[int]]
) -> None:
    """Replace several files of ``folder`` as one: each new file is written and synced beside the old one,
    then a list of them (with the size and time of each file it replaces) is written: the commit point;
    then each is renamed into place, the file ``writes`` names first last, and the list goes. A failure
    before the list removes the new files and changes nothing; a crash after it is finished by
    :func:`_finish_rewrite`, which the next erasure of any user calls first."""
    staged: list[Path] = []
    try:
        for name, write in writes.items():
            tmp = folder / f".{name}{_STAGED}"
            staged.append(tmp)
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(folder)  # every staged file is there before the list that names them
        order = [*list(writes)[1:], next(iter(writes))]
        replaced = {name: before[name] for name in order}
        write_atomic_bytes(folder / _REWRITE, json.dumps({"order": order, "replaced": replaced}))
    except BaseException:
        for tmp in staged:
            tmp.unlink(missing_ok=True)  # a full disk wants the room back; the old files are untouched
        raise
    _finish_rewrite(folder)


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _finish_rewrite(folder: Path) -> None:
    """Rename a committed rewrite's files into place (each may be done already), or remove the files of one
    that never committed. A file changed since the rewrite read it (a new world generated meanwhile) is
    not overwritten by the rewrite's older copy: the rewrite is dropped, and the next erasure reads afresh."""
    listed = folder / _REWRITE
    if listed.exists():
        plan = json.loads(listed.read_text(encoding="utf-8"))
        if isinstance(plan, list):  # the first form of the list: names only, nothing to compare
            plan = {"order": plan, "replaced": {}}
        pending = [n for n in plan["order"] if (folder / f".{n}{_STAGED}").exists()]
        was = plan["replaced"]
        if all(_stat(folder / n) == was[n] for n in pending if n in was and (folder / n).exists()):
            for name in pending:
                os.replace(folder / f".{name}{_STAGED}", folder / name)
            fsync_dir(folder)
        else:
            log.warning("%s: the files an interrupted erasure was rewriting changed since; not overwritten", folder)
        listed.unlink()
    for tmp in folder.glob(f".*{_STAGED}"):
        tmp.unlink(missing_ok=True)


def _vacuum_sqlite(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@dataclass(frozen=True)
class Unfinished:
    digest: str
    started: datetime


def unfinished(settings: Settings) -> list[Unfinished]:
    """Each erasure that never wrote its receipt and is not running now, oldest first: the tombstone is
    its first write and the receipt its last, so a run killed (or ended by an error) in between leaves a
    tombstone without a receipt. The user is out of every read already; the copies the run had not
    reached yet are not removed until the same erasure is run again (its receipt then closes it)."""
    tombstones = EventLog(settings.events_dir).root / TOMBSTONES
    if not tombstones.exists() or "erased_at" not in pq.read_schema(tombstones).names:
        return []
    bodies = list(_receipts(settings))
    receipted = {body["digest"] for body in bodies if "digest" in body}
    found = liveness.look(settings.data_dir / ERASING)
    running = {found.facts.get("digest")} if found is not None and found.alive else set()
    table = pq.read_table(tombstones).to_pydict()
    cut = [Unfinished(d, t) for d, t in zip(table["digest"], table["erased_at"]) if d not in receipted | running]
    # a pseudonym of a group whose run never began (the erasure of the id stopped between two pseudonyms):
    # no tombstone of its own, but a receipt of the group names it
    said = receipted | running | {u.digest for u in cut}
    for body in bodies:
        for d in body.get("group") or []:
            if isinstance(d, str) and d not in said:
                try:
                    cut.append(Unfinished(d, datetime.fromisoformat(body["erased_at"])))
                except (KeyError, TypeError, ValueError):
                    continue
                said.add(d)
    return sorted(cut, key=lambda u: u.started)


def record_verification(receipt: Receipt, residue: int) -> None:
    """The scan's answer, kept in the receipt: ``make status`` shows an erasure that left copies until the
    same erasure, run again, writes a receipt with none."""
    receipt.residue = residue
    if receipt.path is not None:
        write_atomic_bytes(receipt.path, receipt.to_json())


def _receipts(settings: Settings) -> Iterator[dict[str, Any]]:
    """Every readable receipt, oldest first (they are named by time)."""
    folder = settings.data_dir / RECEIPTS
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(body, dict):
            yield body


def erased_users(settings: Settings) -> tuple[int, datetime | None]:
    """How many users have a receipt (each erased once, whatever the runs), and the newest receipt's time:
    what an auditor asks first, and what ``make status`` shows."""
    root: dict[str, str] = {}  # the digests of one user's pseudonyms, joined through the receipts' groups

    def find(d: str) -> str:
        while root.setdefault(d, d) != d:
            d = root[d]
        return d

    newest = None
    for body in _receipts(settings):
        try:
            digest = str(body["digest"])
            newest = datetime.fromisoformat(body["erased_at"])
        except (KeyError, TypeError, ValueError):
            continue
        for other in body.get("group") or []:
            root[find(str(other))] = find(digest)
        find(digest)
    return len({find(d) for d in root}), newest


def left_copies(settings: Settings) -> list[tuple[str, int, datetime]]:
    """(digest, places, when) of each erased user whose newest receipt says the scan still found them."""
    newest: dict[str, tuple[int, datetime]] = {}
    for body in _receipts(settings):  # the last one wins
        try:
            if isinstance(body["residue"], int):  # an erasure run without the scan says nothing either way
                newest[str(body["digest"])] = (body["residue"], datetime.fromisoformat(body["erased_at"]))
        except (ValueError, KeyError, TypeError):
            continue
    out = [(digest, places, at) for digest, (places, at) in newest.items() if places > 0]
    return sorted(out, key=lambda d: d[2])


def _newest_receipt(settings: Settings, digest: str) -> str | None:
    """When the newest receipt for ``digest`` was written (ISO time, UTC), or None."""
    folder = settings.data_dir / RECEIPTS
    times = []
    for path in folder.glob(f"*-{digest[:12]}.json") if folder.is_dir() else []:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body["digest"] == digest:
                times.append(str(body["erased_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(times, default=None)


def _write_receipt(settings: Settings, receipt: Receipt) -> Path:
    folder = settings.data_dir / RECEIPTS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"{stamp}-{receipt.digest[:12]}.json"
    write_atomic_bytes(path, receipt.to_json())
    return path
