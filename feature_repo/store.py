"""The Feast store for the active profile, configured from settings (no YAML to keep in sync)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.infra.registry.sql import SqlRegistryConfig

from feature_repo.data_sources import build_sources
from feature_repo.entities import item, user
from feature_repo.feature_services import build_services
from feature_repo.features import Views, batch_ttl, build_views
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


def repo_config(settings: Settings) -> RepoConfig:
    data = settings.data_dir.resolve()
    if settings.profile == "production":
        registry_path = settings.sqlalchemy_database_url
        online: Any = RedisOnlineStoreConfig(
            connection_string=redis_connection_string(settings.redis_url, max(settings.online_timeout_ms, 200))
        )
    else:
        registry_path = f"sqlite:///{data}/registry.db"
        online = SqliteOnlineStoreConfig(path=str(data / "online.db"))
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
        offline_store=DuckDBOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=str(REPO_DIR),
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
    views = build_views(build_sources(settings.features_dir), batch_ttl(settings.feature_ttl_days), fs)
    return Definitions(views=views, services=build_services(views, fs))


def get_store(settings: Settings) -> FeatureStore:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def apply(store: FeatureStore, settings: Settings) -> Definitions:
    defs = definitions(settings)
    store.apply(defs.objects())
    return defs
