"""The Feast store for the active profile, configured from settings (no YAML to keep in sync)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from feast import FeatureStore, FeatureView, RepoConfig
from feast.errors import FeatureViewNotFoundException
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.infra.registry.sql import SqlRegistryConfig

from feature_repo.data_sources import build_sources
from feature_repo.entities import item, user
from feature_repo.feature_services import build_services
from feature_repo.features import NO_EXPIRY, Views, batch_ttl, build_views
from setlist.atomicfile import write_atomic_bytes
from setlist.errors import Refused
from setlist.featureset import SERVICE_PREFIX
from setlist.redis_client import BULK_TIMEOUT_FLOOR_MS, cluster_seed
from setlist.settings import Settings
from setlist.sqltimeouts import engine_options

REPO_DIR = Path(__file__).resolve().parent


def redis_connection_string(url: str, timeout_ms: int) -> str:
    """``redis://[:pw@]host:port/db`` → Feast's ``host:port,db=N,...`` format, with timeouts so a
    dead Redis fails fast instead of hanging a request."""
    u = urlparse(url)
    parts = [
        f"{u.hostname or '127.0.0.1'}:{u.port or 6379}",
        f"db={(u.path or '/0').lstrip('/') or 0}",
        f"socket_timeout={timeout_ms / 1000:.3f}",
        f"socket_connect_timeout={timeout_ms / 1000:.3f}",
    ]
    if u.password:
        parts.append(f"password={u.password}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def redis_cluster_connection_string(
    nodes: list[str], timeout_ms: int, password: str | None = None, *, tls: bool = False
) -> str:
    """Seed nodes → Feast's cluster format (``h1:p1,h2:p2,…``; a cluster has no ``db``). Feast splits
    the string on commas and each node on its colon, so what it would misread is refused here."""
    if not nodes:
        raise ValueError("the cluster profile needs SETLIST_REDIS_CLUSTER_NODES (host:port,host:port,…)")
    parts = [n.strip() for n in nodes]
    for n in parts:
        cluster_seed(n)
    parts += [f"socket_timeout={timeout_ms / 1000:.3f}", f"socket_connect_timeout={timeout_ms / 1000:.3f}"]
    if password:
        if "," in password:
            raise ValueError("the Redis password contains a comma, which Feast's connection string cannot carry")
        parts.append(f"password={password}")
    if tls:
        parts.append("ssl=true")
    return ",".join(parts)


def online_store_config(settings: Settings, timeout_ms: int | None = None) -> Any:
    """The online store of the profile; on Redis with socket timeouts of ``timeout_ms``. By default
    those of Feast's own client, which does the bulk work: SETLIST_ONLINE_TIMEOUT_MS, at least
    ``BULK_TIMEOUT_FLOOR_MS``; only serving's per-request client (``request_store_config``) waits
    no longer than SETLIST_ONLINE_TIMEOUT_MS."""
    if timeout_ms is None:
        timeout_ms = max(settings.online_timeout_ms, BULK_TIMEOUT_FLOOR_MS)
    if settings.profile == "cluster":
        return RedisOnlineStoreConfig(
            redis_type=RedisType.redis_cluster,
            connection_string=redis_cluster_connection_string(
                settings.redis_cluster_nodes,
                timeout_ms,
                urlparse(settings.redis_url).password,
                tls=urlparse(settings.redis_url).scheme == "rediss",
            ),
        )
    if settings.profile == "production":
        return RedisOnlineStoreConfig(connection_string=redis_connection_string(settings.redis_url, timeout_ms))
    return SqliteOnlineStoreConfig(path=str(settings.data_dir.resolve() / "online.db"))


def request_store_config(settings: Settings) -> Any | None:
    """The Redis store again, for one client of serving's own: a user's rows read on a Rank, a
    session written on a Track, each given up after SETLIST_ONLINE_TIMEOUT_MS so that a hung Redis
    degrades a request instead of holding it. None for the embedded SQLite store (local: no timeout)."""
    if not settings.on_servers:
        return None
    return online_store_config(settings, settings.online_timeout_ms)


def offline_store_config(settings: Settings) -> Any:
    """DuckDB over the feature files; Spark (the same files, or object storage) in the cluster profile."""
    if settings.on_spark:
        from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStoreConfig

        from setlist.spark import conf

        return SparkOfflineStoreConfig(
            spark_conf=conf(settings, "setlist-feast-offline"), staging_location=settings.spark_staging_location
        )
    return DuckDBOfflineStoreConfig()


def batch_engine_config(settings: Settings) -> Any:
    """Feast's default (local) materialization; Spark's engine in the cluster profile."""
    if settings.on_spark:
        from feast.infra.compute_engines.spark.compute import SparkComputeEngineConfig

        from setlist.spark import conf

        # as a dict: RepoConfig (Feast 0.67) drops an engine config handed over as an object
        return SparkComputeEngineConfig(
            spark_conf=conf(settings, "setlist-feast-materialize"),
            staging_location=settings.spark_staging_location,
            partitions=settings.spark_shuffle_partitions,
        ).model_dump()
    return None


def repo_config(settings: Settings) -> RepoConfig:
    data = settings.data_dir.resolve()
    registry_path = settings.sqlalchemy_database_url if settings.on_servers else f"sqlite:///{data}/registry.db"
    online = online_store_config(settings)
    extra: dict[str, Any] = {}
    engine = batch_engine_config(settings)
    if engine is not None:
        extra["batch_engine"] = engine
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=SqlRegistryConfig(
            registry_type="sql",
            path=registry_path,
            cache_ttl_seconds=60,
            # a hung PostgreSQL fails a registry read within the deadlines instead of hanging it
            sqlalchemy_config_kwargs={
                "pool_pre_ping": True,
                **engine_options(
                    registry_path, settings.database_connect_timeout_s, settings.database_statement_timeout_ms
                ),
            },
        ),
        online_store=online,
        offline_store=offline_store_config(settings),
        entity_key_serialization_version=3,
        repo_path=str(REPO_DIR),
        **extra,
    )


@dataclass(frozen=True)
class Definitions:
    views: Views
    services: list[Any]

    def objects(self) -> list[Any]:
        return [user, item, *self.views.all(), *self.services]


def definitions(settings: Settings) -> Definitions:
    from feature_repo.declarations import load

    fs = load(settings)
    views = build_views(
        build_sources(settings.feature_files_location, spark=settings.on_spark),
        batch_ttl(settings.feature_ttl_days),
        fs,
    )
    return Definitions(views=views, services=build_services(views, fs))


def get_store(settings: Settings) -> FeatureStore:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def _ttl(ttl: timedelta | None) -> str:
    return "none" if not ttl else f"{ttl.total_seconds() / 86_400:g} days"


def registry_drift(store: FeatureStore, defs: Definitions) -> list[str]:
    """How the registered views' TTLs differ from the definitions'. A TTL changes with no feature
    file to rebuild (SETLIST_FEATURE_TTL_DAYS, or the code's), and training's point-in-time join
    reads the registry's, so a build with nothing to rebuild must still apply it."""
    drift = []
    for view in (defs.views.user_profile, defs.views.item_stats, defs.views.session, defs.views.consent):
        try:
            have = store.get_feature_view(view.name).ttl
        except FeatureViewNotFoundException:
            drift.append(f"{view.name} not registered")
            continue
        if (have or NO_EXPIRY) != (view.ttl or NO_EXPIRY):
            drift.append(f"{view.name} TTL {_ttl(have)} → {_ttl(view.ttl)}")
    return drift


@dataclass(frozen=True)
class Applied(Definitions):
    #: feature services this apply removed from the registry: no longer declared
    removed: list[str] = field(default_factory=list)
    #: per view, the features whose online values this apply dropped (registered, no longer declared) and
    #: how many rows (SQLite) or entities (Redis) held one
    dropped: dict[str, tuple[list[str], int]] = field(default_factory=dict)
    #: per view, the features no longer declared whose online values this apply kept, and why: a served
    #: model reads them (or the model registry could not say)
    kept: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def undeclared(store: FeatureStore, defs: Definitions) -> list[tuple[FeatureView, list[str]]]:
    """Each batch view as registered, with the features it has that the definitions no longer declare
    (the `-` lines of ``plan``). Only the declared views: the session and consent fields are code."""
    gone = []
    for view in (defs.views.user_profile, defs.views.item_stats):
        try:
            registered = store.get_feature_view(view.name)
        except FeatureViewNotFoundException:
            continue
        names = sorted({f.name for f in registered.features} - {f.name for f in view.features})
        if names:
            gone.append((registered, names))
    return gone


#: the features an apply kept online though no longer declared (a served model read them): later applies
#: drop them once nothing served reads them, as the registry no longer names them
KEPT_ONLINE_FILE = "_kept_online.json"


def kept_online(settings: Settings) -> set[tuple[str, str]]:
    """(view, feature) pairs an earlier apply kept online though no longer declared."""
    path = Path(settings.features_dir) / KEPT_ONLINE_FILE
    try:
        return {(str(v), str(n)) for v, n in json.loads(path.read_text(encoding="utf-8"))}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, TypeError) as exc:
        raise Refused(f"{path} cannot be read ({type(exc).__name__}); remove it to drop nothing it names") from None


def _save_kept_online(settings: Settings, kept: set[tuple[str, str]]) -> None:
    path = Path(settings.features_dir) / KEPT_ONLINE_FILE
    if not kept:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_bytes(path, json.dumps(sorted(kept)).encode())


def apply(
    store: FeatureStore, settings: Settings, prune: bool = False, say: Callable[[str], None] | None = None
) -> Applied:
    """Register the declarations. ``prune`` (``python -m feature_repo apply``, asked for by hand) also
    removes the feature services of ours (``ranker_vN``) they no longer declare: Feast's apply only adds
    and updates, so a removed version stayed registered for good (and ``plan`` kept listing its removal).
    Never inside a job: one run without the declaration directories another component reads would remove
    that component's services. Another project's objects and other names are left alone.

    A registered feature no longer declared loses its online values first, in every apply (a job's too:
    its build has dropped the feature from the files and the registry as well), so a later declaration of
    the name serves nothing until a build writes it, not the old values; before the registry forgets it,
    so an apply that fails half-way drops them again the next time. Unless a served model (a ranker
    version holding an alias) reads it through its registered service: a running server resolved its views
    at start and goes on reading the values (a job run without another component's declarations would
    otherwise take them from under it), so they are kept, as when the model registry cannot be read; the
    registry forgets them all the same, so ``KEPT_ONLINE_FILE`` names them to later applies, which drop them
    once nothing served reads them, or when they are declared again. ``say`` hears each view dropped or kept."""
    defs = definitions(settings)
    dropped: dict[str, tuple[list[str], int]] = {}
    kept: dict[str, list[tuple[str, str]]] = {}
    gone = undeclared(store, defs)
    # kept by an earlier apply: the registry forgot them there, so only this record names them now
    pending = kept_online(settings)
    for view_name, name in sorted(pending):
        listed = next((names for fv, names in gone if fv.name == view_name), None)
        if listed is None:
            try:  # as registered: the registry's copy knows its entity's join keys, a fresh definition not yet
                gone.append((store.get_feature_view(view_name), listed := []))
            except FeatureViewNotFoundException:
                continue
        if name not in listed:
            listed.append(name)
    if gone:
        from feature_repo.inventory import served_reads
        from feature_repo.online import OnlineFeatures

        served = served_reads(store, settings)
        online: OnlineFeatures | None = None
        for fv, names in gone:
            held = [
                (n, "the model registry could not be read to tell whether a served model reads it")
                if served is None
                else (n, f"read by {', '.join(served[(fv.name, n)])}")
                for n in names
                if served is None or (fv.name, n) in served
            ]
            drop = [n for n in names if n not in {k for k, _ in held}]
            if held:
                kept[fv.name] = held
                for n, why in held:
                    if say is not None:
                        say(f"keeping {n} in the online {fv.name} rows, though no longer declared: {why}")
            if drop:
                if say is not None:
                    say(f"dropping {', '.join(drop)} from the online {fv.name} rows: no longer declared")
                online = online or OnlineFeatures(store, [fv for fv, _ in gone])
                dropped[fv.name] = (drop, online.drop_features(fv, drop))
    # one declared again is built again: its new values must not be dropped by a later apply
    declared_now = {(v.name, f.name) for v in (defs.views.user_profile, defs.views.item_stats) for f in v.features}
    now_kept = {(view, n) for view, held in kept.items() for n, _ in held} - declared_now
    if now_kept != pending:
        _save_kept_online(settings, now_kept)
    store.apply(defs.objects())
    if not prune:
        return Applied(defs.views, defs.services, dropped=dropped, kept=kept)
    declared = {s.name for s in defs.services}
    removed = []
    for service in store.list_feature_services():
        if re.fullmatch(rf"{SERVICE_PREFIX}\d+", service.name) and service.name not in declared:
            store.delete_feature_service(service.name)
            removed.append(service.name)
    return Applied(defs.views, defs.services, sorted(removed), dropped, kept)
