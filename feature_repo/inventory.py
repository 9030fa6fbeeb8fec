"""What the feature CLI shows: every declared feature with its owner, source, freshness and the
model versions that read it (``list``, ``describe``), and what an apply would change (``plan``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.data_sources import ITEM_STATS_FILE, USER_PROFILE_FILE
from setlist import registry
from setlist.featureset import DEFAULT_SERVICE, MODEL_SERVICE_ATTR, DeclarationError, Feature, FeatureSet
from setlist.pseudonym import KeyMismatch
from setlist.settings import Settings

_FILES = {"user_profile": USER_PROFILE_FILE, "item_stats": ITEM_STATS_FILE}


@dataclass(frozen=True)
class ModelUse:
    """One registered ranker version and the feature service it was trained on."""

    version: str
    service: str
    aliases: tuple[str, ...]
    run_id: str | None
    importance: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"v{self.version}" + (f" ({', '.join(self.aliases)})" if self.aliases else "")


def model_uses(settings: Settings, with_importance: bool = False, newest: int = 3) -> list[ModelUse] | None:
    """Ranker versions that hold an alias, plus the ``newest`` others; None when the registry
    cannot be read (the listing then says so rather than failing). No store yet (a local directory never
    trained in): no versions, and no database is created by looking."""
    if registry.no_store_yet(settings):
        return []
    try:
        client = registry.reader(settings)
        found = client.search_model_versions(f"name='{settings.ranker_model}'")
    except Exception:
        return None
    try:  # search results do not carry aliases on every store; the registered model does
        by_version: dict[str, list[str]] = {}
        for alias, ver in client.get_registered_model(settings.ranker_model).aliases.items():
            by_version.setdefault(str(ver), []).append(alias)
    except Exception:
        by_version = {}
    versions = sorted(found, key=lambda v: int(v.version), reverse=True)
    aliases = {
        str(v.version): tuple(sorted(set(v.aliases or ()) | set(by_version.get(str(v.version), ())))) for v in versions
    }
    keep = [v for v in versions if aliases[str(v.version)]] + [v for v in versions if not aliases[str(v.version)]][
        :newest
    ]
    out = []
    for v in sorted(keep, key=lambda v: int(v.version)):
        imp: dict[str, float] = {}
        if with_importance and v.run_id:
            try:
                metrics = client.get_run(v.run_id).data.metrics
                imp = {k.split(".", 1)[1]: val for k, val in metrics.items() if k.startswith("importance.")}
            except Exception:
                imp = {}
        out.append(
            ModelUse(
                str(v.version), v.tags.get(MODEL_SERVICE_ATTR, DEFAULT_SERVICE), aliases[str(v.version)], v.run_id, imp
            )
        )
    return out


def served_reads(store: Any, settings: Settings) -> dict[tuple[str, str], list[str]] | None:
    """(view, feature) → the served ranker versions (those holding an alias: champion, challenger) whose
    registered feature service reads it; None when the model registry cannot be read. The registered
    service, not the declarations: a declaration deleted since still names what a served model reads."""
    uses = model_uses(settings, newest=0)
    if uses is None:
        return None
    out: dict[tuple[str, str], list[str]] = {}
    for use in uses:
        if not use.aliases:
            continue
        try:
            service = store.get_feature_service(use.service)
        except Exception:  # not registered (any more): nothing served reads through it
            continue
        for projection in service.feature_view_projections:
            for f in projection.features:
                out.setdefault((projection.name, f.name), []).append(f"{use.label} on {use.service}")
    return out


def users_of(fs: FeatureSet, feature: Feature, uses: list[ModelUse]) -> list[ModelUse]:
    out = []
    for u in uses:
        try:
            if feature in fs.service(u.service).features:
                out.append(u)
        except DeclarationError:
            continue  # a model on a service no longer declared reads nothing declared here
    return out


def freshness(settings: Settings, feature: Feature) -> str:
    """The newest snapshot of the feature's batch view offline, or how it is kept fresh."""
    if feature.entity == "session":
        return "pushed by Track"
    if feature.entity in ("request", "user_item"):
        return "computed per request"
    path = Path(settings.features_dir) / _FILES[feature.view or ""]
    if not path.exists():
        return "not built yet"
    names, newest = _newest_snapshot(str(path), path.stat().st_mtime_ns)
    if feature.name not in names:
        return "declared, not built yet"
    return newest


@lru_cache(maxsize=4)
def _newest_snapshot(path: str, mtime_ns: int) -> tuple[frozenset[str], str]:
    """A view file's columns and newest snapshot, read once per listing (the file can be large)."""
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    names = frozenset(pq.read_schema(path).names)
    stamps = pq.read_table(path, columns=["event_timestamp"]).column("event_timestamp")
    if len(stamps) == 0:
        return names, "no rows"
    newest = pc.max(stamps).as_py()
    return names, newest.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- plan ------------------------------------------------------------------------------------------
@dataclass
class PlanLine:
    sign: str  # "+", "-", "~", "!"
    what: str

    def __str__(self) -> str:
        return f"{self.sign} {self.what}"


def plan(settings: Settings, fs: FeatureSet) -> list[PlanLine]:
    """What ``apply`` (and the next ``materialize``) would change, compared with the Feast registry,
    the feature files and the registered models."""
    from feature_repo.features import FEAST_TYPES
    from feature_repo.store import get_store

    store = get_store(settings)
    lines: list[PlanLine] = []
    registered: dict[str, dict[str, str]] = {}
    for view in ("user_profile", "item_stats"):
        try:
            fv = store.get_feature_view(view)
            registered[view] = {f.name: str(f.dtype) for f in fv.features}
        except Exception:
            registered[view] = {}
    for view in ("user_profile", "item_stats"):
        have = registered[view]
        for f in fs.view(view):
            want = str(FEAST_TYPES[f.dtype])
            if f.name not in have:
                lines.append(
                    PlanLine(
                        "+",
                        f"{view}.{f.name}: {f.dtype}, {f.describe_source()} "
                        f"(from ranker_v{f.since}; owner {f.owner or '?'})",
                    )
                )
            elif have[f.name] != want:
                lines.append(PlanLine("~", f"{view}.{f.name}: {have[f.name]} → {want}"))
        declared = {f.name for f in fs.view(view)}
        for name in sorted(set(have) - declared):
            lines.append(
                PlanLine(
                    "-",
                    f"{view}.{name}: no longer declared; apply (or materialize) drops its values from the online "
                    "store, so a later declaration of it serves nothing until a build writes it (unless a served "
                    "model reads it: then they are kept)",
                )
            )
    try:
        services = {s.name: s for s in store.list_feature_services()}
    except Exception:
        services = {}
    from feature_repo.store import definitions

    def fields(service) -> set[str]:
        return {f"{p.name}.{f.name}" for p in service.feature_view_projections for f in p.features}

    desired = {s.name: s for s in definitions(settings).services}
    changed: set[str] = set()
    for v in fs.versions:
        svc = fs.service(v)
        old = services.get(svc.name)
        if old is None:
            lines.append(PlanLine("+", f"feature service {svc.name}: {len(svc.inputs)} ranker inputs"))
        else:
            had, now = fields(old), fields(desired[svc.name])
            if had != now:
                added, removed = sorted(now - had), sorted(had - now)
                lines.append(PlanLine("~", f"feature service {svc.name}: +{added or '[]'} -{removed or '[]'}"))
                changed.add(svc.name)
    for name in sorted(set(services) - {fs.service(v).name for v in fs.versions}):
        lines.append(PlanLine("-", f"feature service {name}: no longer declared"))
    lines += _rebuild_note(settings, fs)
    uses = model_uses(settings) or []
    for u in uses:
        if not u.aliases:
            continue
        try:
            fs.service(u.service)
        except DeclarationError:
            lines.append(
                PlanLine(
                    "!", f"ranker {u.label} reads {u.service}, which is no longer declared: serving would refuse it"
                )
            )
            continue
        if u.service in changed:  # e.g. a built-in redeclared with other windows under the same version
            lines.append(
                PlanLine(
                    "!",
                    f"ranker {u.label} was trained on {u.service}, whose features this change alters: serving "
                    "would refuse it; declare the change under a new version (since=N+1) instead",
                )
            )
    return lines


def _rebuild_note(settings: Settings, fs: FeatureSet) -> list[PlanLine]:
    from feature_repo.buildstate import BuildState

    state = BuildState.load(Path(settings.features_dir))
    if state is None:
        return [PlanLine("!", "no feature build yet: `make materialize` builds every declared feature")]
    from feature_repo.materialize import Declared

    try:
        now = Declared.load(settings).fingerprint()
    except DeclarationError as exc:
        return [PlanLine("!", f"a registered table cannot be read: {exc}")]
    except KeyMismatch as exc:
        return [PlanLine("!", str(exc))]
    if state.features != now:
        return [
            PlanLine("!", "the next `make materialize` rebuilds every feature (the declarations or tables changed)")
        ]
    return []
