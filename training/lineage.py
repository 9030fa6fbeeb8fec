"""``python -m training.lineage [VERSION]``: a registered model version, traced back to its data.

The chain: the model version and the run that registered it → the training set (its digest, and the
gate that passed it) → the feature publish that was online (its event-log snapshot, and the features
gate) → the event-log snapshot (the data gates that judged it, and whether the log still matches) →
the imports recorded before the run. Read from the registry's lineage tags, the publish log and the
lineage ledgers (``setlist.lineage``); nothing is inferred that was not recorded.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import typer
from rich.tree import Tree

from setlist import registry
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.errors import InputMissing, UsageError
from setlist.eventlog import EventLog
from setlist.lineage import file_digest, gates, imports, unfinished_imports
from setlist.publish import PublishLog
from setlist.settings import Settings, get_settings

app = App(add_completion=False, help="Trace a registered model version back to its data.")
#: set by ``python -m training.promote`` on both versions of a pair promoted by hand: the reason
MANUAL_TAG = "promotion.manual"
#: set once the champion alias has moved onto the pair, to the reason it moved for: a pair served by hand
#: and replaced since still reads as served
SERVED_TAG = "promotion.manual.served"
console = cli_console()


@app.command(reads_only=True)
def main(
    version: str | None = typer.Argument(None, help="the model version (default: the champion)"),
    model: str = typer.Option("ranker", help="ranker or candidates: which registered model VERSION belongs to"),
) -> None:
    settings = get_settings()
    if model not in ("ranker", "candidates"):
        raise UsageError(f"--model must be ranker or candidates, got {model!r}")
    console.print(trace(settings, version, model))


def trace(settings: Settings, version: str | None, model: str = "ranker") -> Tree:
    if registry.no_store_yet(settings):  # opening the client would create the database, for a reader
        raise InputMissing(f"no model registry yet ({settings.tracking_uri}): run make train first")
    client = registry.reader(settings)
    name = settings.ranker_model if model == "ranker" else settings.candidates_model
    if version is None:  # the champion as serving reads it: a move cut short resolves to one whole pair
        champion = registry.lookup_pair(client, settings, registry.CHAMPION)
        version = champion.ranker if model == "ranker" else champion.candidates
    mv = _model_version(client, name, version)
    run = client.get_run(mv.run_id) if mv.run_id else None
    tags: dict[str, str] = run.data.tags if run else {}
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC) if run else None
    ledger_gates = gates(settings.lineage_dir)

    aliases = f" ({', '.join(mv.aliases)})" if getattr(mv, "aliases", None) else ""
    root = Tree(f"[bold]{name} v{mv.version}[/]{aliases}, registered {_ms(mv.creation_timestamp)}")
    pair = mv.tags.get(registry.TAG_CANDIDATES_VERSION), mv.tags.get(registry.TAG_RANKER_VERSION)
    if all(pair):
        root.add(f"pair: {settings.candidates_model} v{pair[0]} + {settings.ranker_model} v{pair[1]}")
    ranker_version = pair[1] or (mv.version if model == "ranker" else None)
    promotion = manual_promotion(client, settings, str(ranker_version)) if ranker_version else None
    if promotion is not None:
        root.add(f"[yellow]{promotion.says()}[/]")
    if run is None:
        root.add("[yellow]no training run is recorded for this version[/]")
        return root
    node = root.add(f"training run {run.info.run_id[:12]}, started {started:%Y-%m-%d %H:%M:%S} UTC")
    node.add(
        f"window {tags.get(registry.LINEAGE_WINDOW_START, '?')} → {tags.get(registry.LINEAGE_WINDOW_END, '?')}, "
        f"hold-out from {tags.get(registry.LINEAGE_CUTOFF, '?')}"
    )
    rows = {k[len(registry.LINEAGE_ROWS) :]: v for k, v in tags.items() if k.startswith(registry.LINEAGE_ROWS)}
    if rows:
        node.add("rows: " + ", ".join(f"{k} {int(v):,}" for k, v in sorted(rows.items()) if v.isdigit()))
    node.add(f"feature service {tags.get(registry.LINEAGE_FEATURE_SERVICE, '?')}")

    digest = tags.get(registry.LINEAGE_TRAINING_SET, "")
    path = settings.training_set_path
    now = file_digest(path) if digest and path.exists() else ""
    if not now:
        kept = ""
    elif now == digest:
        kept = "; the file still matches it"
    else:  # each training writes the file anew; an erasure rewrites it without the user
        kept = f"; the file has changed since (now {now[:16]}: a later training, or an erasure)"
    ts = node.add(f"training set sha256 {digest[:16] or '(not recorded)'}{kept}")
    _gates(ts, ledger_gates, f"training_set:{digest}" if digest else None)

    publish = _publish(settings, tags.get(registry.LINEAGE_PUBLISH))
    snapshot = tags.get(registry.LINEAGE_SNAPSHOT, "")
    if publish is not None:
        pub = node.add(
            f"feature publish v{publish.version}, {publish.published_at:%Y-%m-%d %H:%M:%S}, "
            f"{publish.rows:,} rows, from event-log snapshot {publish.snapshot}"
        )
        _gates(pub, ledger_gates, f"snapshot:{publish.snapshot}", only="features")
    else:
        node.add("[yellow]feature publish: not recorded[/]")

    log = EventLog(settings.events_dir)
    if started is not None and (erased := log.erased_since(started)):
        node.add(
            f"[yellow]{erased} user{'s' if erased != 1 else ''} erased since this run: whatever of theirs this "
            "run read is gone from the log, the feature files and the training set, and their rows from this "
            "version's candidate factors (rewritten in place, so the artifacts may no longer match what MLflow "
            "logged); receipts in erasure/receipts/[/]"
        )
    current = log.snapshot_hash()
    same = "the log still matches it" if current == snapshot else f"the log has changed since (now {current})"
    snap = node.add(f"event-log snapshot {snapshot or '(not recorded)'}: {same}")
    if snapshot:
        _gates(snap, ledger_gates, f"snapshot:{snapshot}", skip="features")
    before = [i for i in imports(settings.lineage_dir) if started is None or _when(i["at"]) <= started]
    src = snap.add(f"imports recorded before the run: {len(before)}")
    for i in before:
        src.add(
            f"{i['at']} {i.get('source')} sha256 {str(i.get('sha256', ''))[:16]}: {i.get('accepted', 0):,} accepted, "
            f"{i.get('quarantined', 0):,} quarantined{_left_out(i)}; consent: {i.get('consent', '?')}"
        )
    cut = unfinished_imports(settings.lineage_dir, as_of=started)  # as the ledger stood when the run began
    for i in cut:
        end = i["ended"] or "no end recorded: killed, or running still"
        src.add(
            f"[yellow]{i['at']} {i.get('source')} sha256 {str(i.get('sha256', ''))[:16]}: started, never finished "
            f"({end}); its rows may be in the log: run the same import again to finish it[/]"
        )
    if not before and not cut:
        src.add("none (generated events, or imported before imports were recorded)")
    return root


@dataclass(frozen=True)
class ManualPromotion:
    """A promotion by hand of one pair, as its versions' tags and the ledger tell it apart:
    ``python -m training.promote`` tags the reason, moves the alias, tags the pair as served for that
    reason, then writes the ledger line. A run killed between them leaves the reason on a pair that
    never became champion ("cut short") or that became champion without its line ("unrecorded")."""

    reason: str
    state: Literal["recorded", "unrecorded", "cut short"]
    #: whether the pair holds the alias still: the champion (a missing line can be recorded), the
    #: challenger (a promotion cut short can be run again)
    current: bool = False

    def says(self) -> str:
        if self.state == "recorded":
            return f"promoted to champion by hand, past the promotion gate: {self.reason}"
        if self.state == "unrecorded":
            then = "`python -m training.promote --complete` records it" if self.current else "replaced since"
            return (
                f"promoted to champion by hand, past the promotion gate: {self.reason} (killed before its "
                f"ledger line; {then})"
            )
        again = (
            f"`python -m training.promote --reason {shlex.quote(self.reason)}` runs it again"
            if self.current
            else "it is no longer the challenger"
        )
        return f"a promotion by hand was killed before the champion moved ({self.reason}): not served; {again}"


def manual_promotion(client: Any, settings: Settings, ranker_version: str) -> ManualPromotion | None:
    """How the pair whose ranker is ``ranker_version`` was promoted by hand, or None if it never was."""
    tags = registry.ranker_tags(client, settings, ranker_version)
    reason = tags.get(MANUAL_TAG)
    if not reason:
        return None
    subject = f"ranker:{ranker_version}"
    lines = [g for g in gates(settings.lineage_dir) if g.get("gate") == "promotion" and g.get("subject") == subject]
    if lines and lines[-1].get("reason") == reason:  # the same pair promoted by hand again has a line of its own
        return ManualPromotion(reason, "recorded")
    champion = registry.find_pair(client, settings, registry.CHAMPION)
    is_champion = champion is not None and str(champion.ranker) == ranker_version
    if tags.get(SERVED_TAG) == reason or is_champion:
        return ManualPromotion(reason, "unrecorded", is_champion)
    challenger = registry.find_pair(client, settings, registry.CHALLENGER)
    return ManualPromotion(reason, "cut short", challenger is not None and str(challenger.ranker) == ranker_version)


def _left_out(record: dict[str, Any]) -> str:
    """The rows of an import that are neither accepted nor quarantined, when there were any."""
    out = ""
    if sampled := record.get("sampled_out"):
        out += f", {sampled:,} left out by the batch tier's sample"
    if ignored := record.get("ignored"):
        out += f", {sum(ignored.values()):,} of kinds --type-map ignores"
    if erased := record.get("erased"):
        out += f", {erased:,} of users erased earlier"
    if held := record.get("already_logged"):
        out += f", {held:,} in the event log already (read before)"
    return out


def _model_version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise InputMissing(f"registered model {name!r} has no version {version!r}") from exc


def _publish(settings: Settings, version: str | None) -> Any:
    if not version or not version.isdigit():
        return None
    log = PublishLog(settings.metadata_url, settings.database_connect_timeout_s)
    try:
        return log.get(int(version))
    finally:
        log.dispose()


def _gates(node: Tree, ledger: list[dict[str, Any]], subject: str | None, only: str = "", skip: str = "") -> None:
    runs = [
        g
        for g in ledger
        if subject and g.get("subject") == subject and (not only or g["gate"] == only) and g["gate"] != skip
    ]
    if not runs:
        node.add("[yellow]gates: none recorded for it[/]")
        return
    latest: dict[str, dict[str, Any]] = {}
    for g in runs:
        latest[g["gate"]] = g  # the ledger is in time order: the last run of each gate counts
    for gate, g in sorted(latest.items()):
        mark = "[green]passed[/]" if g["passed"] else "[red]failed[/]"
        node.add(f"gate {gate}: {mark} at {g['at']}")


def _when(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _ms(ms: int | None) -> str:
    return "?" if ms is None else f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"


if __name__ == "__main__":
    app()
