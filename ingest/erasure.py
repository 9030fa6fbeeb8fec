"""Erasure: remove one user everywhere (identity map, online store, event log)."""

from __future__ import annotations

from dataclasses import dataclass

from setlist.errors import Refused
from setlist.eventlog import EventLog, Quarantine, settle_pending, write_atomic
from setlist.pseudonym import PSEUDONYM_PREFIX, IdentityMap, pseudonymize
from setlist.settings import Settings


@dataclass
class ErasureReport:
    pseudonym: str
    identity_removed: bool
    events_removed: int
    online_views_cleared: list[str]


def erase(user: str, settings: Settings) -> ErasureReport:
    """``user`` is the application's id (or an existing pseudonym, for requests that only have it)."""
    pseudonym = (
        user
        if user.startswith(PSEUDONYM_PREFIX) and len(user) == 34
        else pseudonymize(user, settings.secret_hmac_key())
    )
    ids = IdentityMap(settings.metadata_url)
    try:
        identity_removed = ids.forget(pseudonym)
    finally:
        ids.dispose()
    log = EventLog(settings.events_dir)
    # The tombstone goes first: if compaction is interrupted, readers already skip the user.
    log.tombstone(pseudonym)
    removed = log.compact_out(pseudonym)
    # Track buffers rejected rows before they become parquet: wait for running servers to flush
    # them (or adopt a dead one's), so the scrub below sees every row
    holding = settle_pending(Quarantine(settings.quarantine_dir), 2 * settings.track_quarantine_flush_s + 1)
    if holding:
        raise Refused(
            f"{len(holding)} quarantine buffer(s) of running servers did not flush within "
            f"{2 * settings.track_quarantine_flush_s + 1:g} s ({', '.join(p.name for p in holding)}); "
            "run the erasure again"
        )
    removed += _scrub_quarantine(settings, pseudonym)
    cleared: list[str] = []
    if (settings.data_dir / "registry.db").exists() or settings.profile == "production":
        from feature_repo.online import OnlineFeatures
        from feature_repo.store import definitions, get_store

        defs = definitions(settings)
        online = OnlineFeatures(get_store(settings), [defs.views.user_profile, defs.views.session])
        for view in ("user_profile", "session"):
            online.delete(view, pseudonym)
            cleared.append(view)
    return ErasureReport(pseudonym, identity_removed, removed, cleared)


def _scrub_quarantine(settings: Settings, pseudonym: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    removed = 0
    for f in sorted(settings.quarantine_dir.rglob("*.parquet")) if settings.quarantine_dir.exists() else []:
        table = pq.read_table(f)
        if "user_id" not in table.column_names:
            continue
        kept = table.filter(pc.fill_null(pc.not_equal(table.column("user_id"), pseudonym), True))
        if kept.num_rows != table.num_rows:
            removed += table.num_rows - kept.num_rows
            write_atomic(kept, f)
    return removed
