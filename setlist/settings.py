"""One typed settings object, read from ``SETLIST_*`` environment variables or a YAML file.

The YAML file (``SETLIST_SETTINGS_FILE``) may reference secrets as ``${VAR}``; they are expanded from
the environment so that no secret has to live in a file that is committed.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import secrets
from collections.abc import Mapping
from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from setlist.request_time import parse_zone, zone_name

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, path: str) -> Any:
    """``${VAR}`` references replaced from the environment; one that is not set is an error, since an
    empty secret would otherwise pass for a value (``hmac_key: ${HMAC_KEY}`` in a shell without it)."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: _reference(m.group(1), path), value)
    if isinstance(value, dict):
        return {k: _expand(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path) for v in value]
    return value


def _reference(name: str, path: str) -> str:
    from setlist.errors import UsageError

    if name not in os.environ:
        raise UsageError(f"the settings file {path} refers to ${{{name}}}, which is not set in the environment")
    return os.environ[name]


PREFIX = "SETLIST_"
SETTINGS_FILE_VARIABLE = "SETLIST_SETTINGS_FILE"

#: ``SETLIST_`` variables that are read outside the settings object: the settings file's own name, the
#: client CLI's target and token, ``make services`` and the test fixtures' PostgreSQL, the bench and chaos
#: drills, and the Spark deployment's ``feature_store.yaml`` template. Listed so that the warning about
#: variables that are no setting is kept for real misspellings.
OTHER_VARIABLES = frozenset(
    {
        SETTINGS_FILE_VARIABLE,
        "SETLIST_TARGET",
        "SETLIST_CLIENT_TOKEN",
        "SETLIST_SERVICES_DIR",
        "SETLIST_SERVICES_TIMEOUT",
        "SETLIST_SERVICES_CLUSTER",
        "SETLIST_PG_BIN",
        "SETLIST_PG_OS_USER",
        "SETLIST_REQUIRE_SERVERS",
        "SETLIST_BENCH_DATABASE_URL",
        "SETLIST_BENCH_REDIS_URL",
        "SETLIST_CHAOS_FSYNC_DELAY_MS",
        "SETLIST_FEAST_REDIS",
        "SETLIST_FEAST_REDIS_TYPE",
        "SETLIST_FEAST_REGISTRY_URL",
        "SETLIST_IMAGE",
    }
)

log = logging.getLogger(__name__)


def setting_variables() -> dict[str, str]:
    """Each setting's environment variable (``SETLIST_WAL_DIR``) and its field's name
    (``wal_dir_override``): the variable is ``SETLIST_`` and the name, unless the field has an alias."""
    return {_alias(field) or PREFIX + name.upper(): name for name, field in Settings.model_fields.items()}


def _alias(field: Any) -> str | None:
    return field.validation_alias if isinstance(field.validation_alias, str) else None


def _suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _file_keys(doc: dict[Any, Any], path: str) -> dict[str, Any]:
    """The file's values by variable name. A key is the variable's name without ``SETLIST_``, in any
    case (``wal_dir``), or the whole variable name; a key that names no setting is an error, as is one
    setting given twice."""
    from setlist.errors import UsageError

    variables = setting_variables()
    keys = sorted(v.removeprefix(PREFIX).lower() for v in variables)
    # a field named otherwise than its variable (wal_dir_override for SETLIST_WAL_DIR): the key it means
    by_field = {field: v.removeprefix(PREFIX).lower() for v, field in variables.items()}
    read: dict[str, Any] = {}
    given: dict[str, str] = {}
    unknown = []
    for key, value in doc.items():
        text = str(key)
        variable = PREFIX + text.upper().removeprefix(PREFIX)
        if variable not in variables:
            meant = by_field.get(text.lower())
            name = text.lower().removeprefix(PREFIX.lower())
            unknown.append(f"{text!r}" + (f" (did you mean {meant}?)" if meant else _suggestion(name, keys)))
            continue
        if variable in given:
            raise UsageError(f"the settings file {path} sets {variable} twice: as {given[variable]!r} and as {text!r}")
        given[variable] = text
        read[variable] = value
    if unknown:
        raise UsageError(
            f"the settings file {path} has keys that are no setting: {', '.join(unknown)}. Its keys are the "
            "variables' names without SETLIST_ (wal_dir for SETLIST_WAL_DIR); README.md lists the settings"
        )
    return read


def settings_file_values(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The values the settings file (``SETLIST_SETTINGS_FILE``) sets, by variable name, secrets
    expanded; empty without a file. A file that is missing, not YAML, not a mapping or that names
    something that is no setting raises a ``SetlistError`` naming the file."""
    from setlist.errors import BadInput
    from setlist.yamlfile import read_yaml

    path = environ.get(SETTINGS_FILE_VARIABLE)
    if not path:
        return {}
    doc = read_yaml(Path(path), f"settings file ({SETTINGS_FILE_VARIABLE})")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BadInput(
            f"the settings file {path} holds a {type(doc).__name__}, not a mapping of settings to values "
            "(wal_dir: /var/lib/setlist/wal)"
        )
    return {variable: _expand(value, path) for variable, value in _file_keys(doc, path).items()}


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        # the settings object reads a field with an alias by its alias only
        names = setting_variables()
        fields = Settings.model_fields
        return {
            _alias(fields[names[variable]]) or names[variable]: value
            for variable, value in settings_file_values().items()
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SETLIST_", extra="ignore")

    #: ``local``: SQLite and files, one process. ``production``: Redis and PostgreSQL. ``cluster``: as
    #: production, with Spark for the batch side and Redis Cluster as the online store
    profile: Literal["local", "production", "cluster"] = "local"
    data_dir: Path = Path("var/data")
    mlflow_tracking_uri: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://setlist:setlist@127.0.0.1:5432/setlist"
    #: the cluster profile's online store: Redis Cluster seed nodes, ``host:port`` comma-separated
    #: (``make services`` starts a local 3-master cluster on these ports)
    redis_cluster_nodes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
    )
    #: the cluster profile's Spark: the master URL (``local[2]``, ``spark://…``, ``k8s://https://…``)
    spark_master: str = "local[2]"
    #: where Spark reads the event log and writes the feature files; None: the local directories
    #: under data_dir. Object storage works too (``s3a://bucket/setlist/events``; docs/scale.md)
    spark_events_path: str | None = None
    spark_features_path: str | None = None
    #: where Feast's Spark offline store stages training frames; None: ``data_dir/spark-staging``
    spark_staging: str | None = None
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(default=8, gt=0)
    #: more Spark configuration (``{"spark.hadoop.fs.s3a.endpoint": "…"}``): JSON in the environment
    spark_conf: dict[str, str] = Field(default_factory=dict)
    #: the cluster profile fits the candidate model with Spark MLlib's ALS above this many
    #: (user, item) pairs, and with ``implicit`` on the driver below it
    spark_als_min_pairs: int = Field(default=5_000_000, ge=0)
    hmac_key: SecretStr | None = None
    hmac_key_file: Path | None = None
    seed: int = 7
    #: ``sparse`` writes a real-shaped ratings CSV and items file (``python -m ingest fixture``)
    scale: Literal["tiny", "demo", "bench", "sparse"] = "demo"

    feast_project: str = "setlist"
    experiment_name: str = "setlist"
    candidates_model: str = "setlist-candidates"
    ranker_model: str = "setlist-ranker"

    # time windows: each ``None`` is derived from the data's own density (setlist.windows), and the
    # value chosen is printed at every run; a number fixes it
    holdout_days: float | None = Field(default=None, gt=0)  # global split: the held-out trailing period
    # unset, holdout_days is derived as the trailing period that holds this share of events
    holdout_share: float = Field(default=0.1, gt=0, lt=1)
    # the ranker learns from queries in this trailing training period
    ranker_window_days: float | None = Field(default=None, gt=0)
    ranker_window_share: float = Field(default=0.3, gt=0, lt=1)
    # cohort popularity counts positives in this trailing period
    cohort_window_days: float | None = Field(default=None, gt=0)
    cohort_window_share: float = Field(default=0.25, gt=0, lt=1)
    #: where the probe finds counting every event best (a catalogue that turns over), only items with an
    #: event in the shortest window that would have lost at most this share of its positives are offered
    cohort_live_max_loss: float = Field(default=0.1, ge=0.0, le=1.0)

    #: how long a user or item row of the batch views counts as current, offline and online; None
    #: means no expiry: a ratings log's users return after years, and the rows carry their own age
    #: (``user_days_since_last``), while a calendar TTL would blank them offline and not online
    feature_ttl_days: float | None = Field(default=None, gt=0)
    #: more feature declaration files (``*.py`` with a ``FEATURES`` list), beside
    #: ``feature_repo/declarations/``; comma-separated in the environment
    feature_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    #: the feature service a training run uses (``ranker_vN``); None: the newest declared one
    feature_service: str | None = None

    # evaluation split: ``global`` holds out a trailing period; ``per_user`` each user's last
    # ``holdout_fraction`` of positives by time; ``auto`` takes global only when its period holds
    # enough users and queries, most of them users the training part has seen
    split: Literal["auto", "global", "per_user"] = "auto"
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_holdout_users: int = Field(default=50, ge=0)
    min_holdout_queries: int = Field(default=100, ge=0)
    min_holdout_warm_share: float = Field(default=0.5, ge=0.0, le=1.0)
    #: leave out items the user already interacted with; None decides from the data (yes when few
    #: positives are repeats, as in ratings logs; no for music, where replays are the norm)
    exclude_seen: bool | None = None
    #: leave out the user's recent items (the session state's last ones played); None decides from the
    #: data (yes, unless most positives repeat one: Reddit's posts to the same forums, a stream
    #: watched tick after tick)
    exclude_recent: bool | None = None
    #: EASE needs a dense item × item matrix (~19 bytes a pair at its fit: 10,000 items take ~1.9 GB and ~1 min):
    #: a larger catalogue gets it over this many items with the most users; 0 turns it off
    ease_max_items: int = Field(default=10_000, ge=0)
    ease_lambda: float = Field(default=500.0, gt=0)
    #: the embedding source searches exactly (one matrix-vector product over every item) up to this
    #: many items, and through an HNSW index (built at load, seconds) above. Asked for ~500 neighbours
    #: an HNSW search must explore at least that many nodes: at 50,000 items × 64 factors exact took
    #: 0.36 ms of CPU and found every neighbour, HNSW 0.56 ms and found 90% of them (7% for some users)
    exact_search_max_items: int = Field(default=100_000, ge=0)
    #: each known user's nearest items by the embeddings are found once at training and read by Rank
    #: (setlist.embedding_top: ~0.6 ms of CPU per cache-miss Rank at 50,000 items) when the table fits
    #: in this many MB (1 KB a user at a pool of 500 up to 65,535 items, 2 KB above, plus the seen items
    #: where those are left out); 0: search per Rank
    embedding_top_max_mb: int = Field(default=512, ge=0)

    # validation: thresholds (drift, cardinality, windows, freshness) come from this YAML file;
    # unset means the documented defaults in validation/thresholds.yaml
    validation_thresholds_file: Path | None = None
    #: where ``python -m validation`` gets the feature declarations and the online/offline pairs for
    #: the parity gate (``package.module:function``, called with the settings): validation imports
    #: no pipeline package, so point these at your own feature repository
    feature_declarations: str = "feature_repo.declarations:load"
    parity_adapter: str = "feature_repo.parity_inputs:parity_inputs"

    # training
    promotion_margin: float = 0.005
    #: a model beats popularity and ALS only by more than this many standard errors of its paired
    #: per-query ndcg@10 gain on the hold-out: a gain a few queries could have made is no reason to
    #: serve it (0 compares the means alone)
    promotion_baseline_se: float = Field(default=2.0, ge=0)
    #: False registers every new model as ``challenger`` only, for an experiment to decide (a model
    #: trained on a new feature service, for instance); True promotes one that passes the gate
    promote: bool = True
    candidate_pool: int = Field(default=500, gt=0)
    ranker_trees: int = Field(default=200, gt=0)
    #: the cheapest ranker (trees × depth) whose validation ndcg@10 trails the best by at most this
    #: share of it plus ``ranker_selection_se`` standard errors of the paired per-query loss is kept:
    #: a tree scored on every Rank must earn its cost (0 standard errors: the share alone)
    ranker_ndcg_tolerance: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.005
    ranker_selection_se: Annotated[float, Field(ge=0.0)] = 1.0
    #: candidates a request keeps for the trees after the pre-ranker (0: no pre-ranker)
    prerank_keep: Annotated[int, Field(ge=0)] = 150
    #: the largest share of the ranker's validation ndcg@10 and recall@100 the cascade may cost (at
    #: the upper 95% bound); training widens ``prerank_keep`` until it holds, or trains without one
    prerank_max_loss: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01
    max_train_queries: int = Field(default=6000, gt=0)

    # serving
    #: the share of a first slate the searched genre may fill for a user with no top genre (no profile) and nothing
    #: played yet, the rest in their cohort's popularity order (a search is a guess, and the ranker
    #: never saw such users); 1.0 leaves the model's order as it is
    new_user_genre_cap: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    host: str = "0.0.0.0"
    port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    workers: int = Field(default=1, gt=0)
    #: a client connection's longest life, in seconds: then the server asks the client to reconnect
    #: (GOAWAY; calls in flight finish). Worker processes share a port per *connection*, so without
    #: it a long-lived client stays on the worker it first drew; 0: connections live forever
    grpc_max_connection_age_s: Annotated[float, Field(ge=0)] = 60.0
    max_concurrency: int = Field(default=64, gt=0)
    #: Track calls one process admits at once, within max_concurrency, so a flood of Track batches leaves
    #: Rank room; None: half of max_concurrency (at least 1)
    track_max_concurrency: Annotated[int | None, Field(gt=0)] = None
    #: gRPC reflection streams open at once (each holds a worker thread while open, and needs no token);
    #: 0 turns reflection away
    reflection_max_streams: Annotated[int, Field(ge=0)] = 4
    #: Rank calls computing at once per server process; the rest of the admitted calls wait their turn,
    #: first come first served (the GIL runs one at a time: one computes while another waits on Redis;
    #: more only stretches each call, see NOTES.md "Performance")
    rank_max_running: Annotated[int, Field(ge=1)] = 2
    #: the longest a Rank call waits for its turn before it is refused (RESOURCE_EXHAUSTED, a
    #: retry-after hint); never past its own deadline less the recent run time. 0: never wait
    rank_max_wait_ms: Annotated[float, Field(ge=0)] = 100.0
    max_k: int = Field(default=500, gt=0)
    max_user_id_len: int = Field(default=256, gt=0)
    max_exclusions: int = Field(default=1000, ge=0)
    #: the most candidate_item_ids a Rank may ask to have ordered (a caller's own slate)
    max_candidate_ids: int = Field(default=1000, gt=0)
    max_future_skew_s: int = Field(default=300, ge=0)
    max_track_batch: int = Field(default=1000, gt=0)
    # Track's input bounds: each event outside them is rejected with a reason, the rest of the batch goes on
    #: live events older than this are rejected (the importer still takes history)
    track_max_age_days: float = Field(default=7.0, gt=0)
    #: what one imported row costs in memory at its peak (measured: 1.33 GB for 1M rows of a 4-column
    #: file); an import whose estimate exceeds the memory available is refused before it starts
    import_bytes_per_row: int = Field(default=1400, gt=0)
    #: what an import in chunks holds for every row of the file while it runs (the first pass's
    #: compact columns, each row's session and time, the ids of the events already ingested)
    import_stream_bytes_per_row: int = Field(default=400, gt=0)
    #: rows per chunk for a file too big to import at once (unset: as many as the memory available
    #: allows, since every chunk adds a file to each day it touches); set, every import goes in chunks
    import_chunk_rows: int | None = Field(default=None, gt=0)
    #: a full feature build's peak memory per event (measured: 12.1 GB for 16.4M ratings, built in
    #: shards; 17.1-18.2 GB at once before); a build that would not fit in the memory available stops
    #: before it reads the log, with what to do instead
    build_bytes_per_event: int = Field(default=800, gt=0)
    #: events per shard of a full feature build: it builds the users (then the items) a shard at a
    #: time from the compact log, so its memory follows a shard's rows and the views' own rows
    build_shard_events: int = Field(default=2_000_000, gt=0)
    #: a training run's peak memory per event, beside EASE's fit, which the estimate adds (measured on
    #: 16M ratings: 9.1 GB in all, EASE's ~1.9 GB included; 13.6 GB for 16.4M before stop 36); a run
    #: that would not fit stops before it reads the log
    train_bytes_per_event: int = Field(default=550, gt=0)

    # retention (setlist/retention.py, `make retention`): how long each dataset is kept
    #: events, from the wall clock; unset keeps history (an imported log may rightly span decades):
    #: set it to your legal period. Ingestion and Track then refuse older events (reason `retention`)
    retention_events_days: float | None = Field(default=None, gt=0)
    retention_impressions_days: float = Field(default=180.0, gt=0)
    retention_quarantine_days: float = Field(default=30.0, gt=0)
    #: an orphaned Track journal segment (a dead server's) older than this is moved into the event log,
    #: where the events retention applies; journal segments hold acknowledged events, never deleted
    retention_journal_hours: float = Field(default=24.0, gt=0)
    #: experiment reports and other files under <data_dir>/reports
    retention_reports_days: float = Field(default=365.0, gt=0)

    # lifecycle (setlist/compaction.py, setlist/downsample.py, `make compact`)
    #: compaction merges a partition's small files into files of about this size
    compaction_target_mb: float = Field(default=128.0, gt=0)
    #: the journal's rolls younger than this wait (the journal may re-roll a recent segment under the
    #: same name); every other file is written once and merges at once
    compaction_min_age_s: float = Field(default=3600.0, ge=0)
    #: impression rows older than this become daily counts (``setlist.downsample.KEYS``); experiment
    #: reports keep items shown and requests for those days, but users and rates only for raw days
    impressions_raw_days: float = Field(default=30.0, ge=0)
    # event_id, item_id, session_id and type (user_id: max_user_id_len), and each of a Rank's
    # candidate_item_ids
    track_max_id_len: int = Field(default=256, gt=0)
    track_max_context_keys: int = Field(default=32, gt=0)
    track_max_context_key_len: int = Field(default=64, gt=0)
    track_max_context_value_len: int = Field(default=256, gt=0)
    #: an event_id seen within this window is acknowledged as a duplicate and stored once
    track_dedupe_hours: float = Field(default=24.0, gt=0)
    #: consent for a user whose events never carried a flag (setlist.consent): ``deny`` or
    #: ``grant``; unset, the production profile denies and the local one grants
    consent_default: Literal["grant", "deny"] | None = None
    #: an event_id being written blocks its retries (UNAVAILABLE, retry) for at most this long: the
    #: write ends sooner, and only a server that died mid-write leaves a claim to expire
    track_claim_s: float = Field(default=30.0, gt=0)
    #: rejected Track events go to the quarantine in batches: this many rows, or this often
    track_quarantine_batch: int = Field(default=1000, gt=0)
    track_quarantine_flush_s: float = Field(default=10.0, gt=0)
    cache_enabled: bool = True
    #: unset: ``redis`` on the production and cluster profiles (shared by every worker and replica, so
    #: another process's Track invalidates it), ``memory`` locally; read it through ``cache_store``
    cache_backend: Literal["memory", "redis"] | None = None
    cache_ttl_s: float = Field(default=300.0, gt=0)
    cache_size: int = Field(default=100_000, ge=0)
    #: how long serving waits on Redis for one user's rows (Rank) or a session write (Track) before it
    #: degrades the request; the bulk reads and writes (every item at start, materialize) wait at least 200 ms
    online_timeout_ms: int = Field(default=50, gt=0)
    #: the embedded profile's SQLite online store serves one read or write at a time per process: how long
    #: Rank waits for its turn (behind Track's session pushes, a refresh's bulk read) before it degrades
    online_sqlite_wait_ms: int = Field(default=200, gt=0)
    #: how long a server's write to the SQLite online store (a Track's session push) waits for another
    #: process's (a materialize publishing) before the push degrades; its events are journaled already
    online_sqlite_write_wait_ms: int = Field(default=1000, gt=0)
    #: consecutive failed user-row reads that open the online store's breaker (per master on a
    #: cluster); one timeout alone degrades only its own request
    online_breaker_failures: Annotated[int, Field(ge=1)] = 3
    #: how long an open breaker leaves the store alone before one request probes it
    online_breaker_cooldown_s: Annotated[float, Field(gt=0.0)] = 1.0
    #: devices a request's context may name in cache keys and impressions; any other becomes "other"
    context_devices: list[str] = Field(
        default_factory=lambda: ["mobile", "desktop", "tablet", "smart_speaker", "web", "tv", "unknown"]
    )
    #: locales kept as sent (``en``, ``en_US``, ``pt-BR``: short by construction); any other becomes "other"
    context_locale_pattern: str = r"[a-z]{2,3}(?:[_-][A-Za-z]{2})?"
    #: the users' clock for the request features (hour, weekday): an IANA zone or a fixed offset.
    #: Training records it in the ranker; serving computes each Rank on the clock its model learned.
    timezone: str = "UTC"
    reload_interval_s: float = Field(default=30.0, gt=0)
    engine: Literal["fast", "baseline"] = "fast"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_tokens: SecretStr | None = Field(
        default=None, description="comma-separated token:scope pairs, scope being read, write or read+write"
    )
    # quotas (serving.grpc.quotas): a token bucket per client token and RPC, refilled at ``*_per_s``
    # and holding at most ``*_burst`` (unset or 0: one second's worth). Over it a call gets
    # RESOURCE_EXHAUSTED and ``retry-after-ms``. Rank costs one per call, Track one per event (at least
    # one per call). Without auth_tokens all callers share one bucket per RPC. ``*_per_s`` unset or 0:
    # no quota. ``quota_backend``: ``memory`` keeps the buckets per process (each worker and replica has
    # its own), ``redis`` in redis_url, shared by all of them (one round trip per call). ``quota_file``:
    # limits of their own for some tokens, named by fingerprint (serving.grpc.quota_file); None: none.
    # ``quota_file_poll_s``: how often a server looks for a new version of it (0: read at start only)
    quota_backend: Literal["memory", "redis"] = "memory"
    quota_file: Path | None = None
    quota_file_poll_s: Annotated[float, Field(ge=0)] = 10.0
    quota_rank_per_s: float | None = Field(default=None, ge=0)
    quota_rank_burst: int | None = Field(default=None, ge=0)
    quota_track_per_s: float | None = Field(default=None, ge=0)  # events per second
    # events; a Track with more events than this is always refused
    quota_track_burst: int | None = Field(default=None, ge=0)
    #: the production profile serves only with TLS and tokens; True says a plaintext, open server is
    #: intended (a one-machine demo on loopback, or a mesh that terminates TLS and authenticates)
    insecure: bool = False
    #: where /metrics listens; None: the gRPC host
    metrics_host: str | None = None
    #: a plaintext port serving grpc.health.v1 only, for probes that cannot speak TLS (Kubernetes'
    #: native gRPC probes); None: health is served on the main port only
    health_port: int | None = Field(default=None, ge=0, le=65535)

    # operations (setlist.jobmetrics, setlist.tracing, ops/)
    #: batch jobs push their metrics here (``http://host:9091``) as well as writing the status file
    pushgateway_url: str | None = None
    pushgateway_timeout_s: float = Field(default=5.0, gt=0)
    #: OpenTelemetry spans: ``off`` (no spans at all, Rank's path unchanged), ``console`` (stderr) or
    #: ``otlp`` (OTLP over HTTP to ``otlp_endpoint``, else the standard OTEL_EXPORTER_OTLP_* variables)
    tracing: Literal["off", "console", "otlp"] = "off"
    otlp_endpoint: str | None = None
    #: the share of traces kept (parent-based: a kept Rank keeps all its stage spans)
    trace_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    #: the SLO file ``python -m ops status`` judges and the alert rules come from
    slo_file: Path = Path("deploy/prometheus/slo.yaml")
    #: the serving endpoint ``python -m ops status`` checks (health over gRPC, /metrics over HTTP), or
    #: several replicas' (``host:port,host:port``); None: this host's ``port`` and ``metrics_port``
    status_target: str | None = None
    #: the prices ``python -m ops cost`` multiplies measured resources by (per CPU-second, GB-month,
    #: Redis GB-hour, million requests); relative to the working directory unless absolute
    cost_file: Path = Path("cost.yaml")

    # deadlines on dependencies, so a hung store fails a call instead of hanging it
    database_connect_timeout_s: float = Field(default=5.0, gt=0)  # PostgreSQL connect (libpq rounds below 2 s up to 2)
    # PostgreSQL statements; SQLite waits this long on a lock
    database_statement_timeout_ms: int = Field(default=5000, gt=0)
    mlflow_timeout_s: float = Field(default=10.0, gt=0)  # one registry lookup or write from serving's refresh loop
    # identity-map writes waiting for the database; beyond it Track logs a miss
    identity_queue: int = Field(default=10_000, gt=0)
    # first wait before a failed identity-map write is retried (doubling, <= 30 s)
    identity_retry_s: float = Field(default=0.5, gt=0)
    journal_roll_s: float = Field(default=2.0, gt=0)
    # one journal directory per process that serves Track (per pod in Kubernetes)
    wal_dir_override: Path | None = Field(default=None, validation_alias="SETLIST_WAL_DIR")
    #: how long a Track whose call has no deadline of its own waits for its events to be durable before
    #: DEADLINE_EXCEEDED (a call's deadline bounds the wait otherwise)
    journal_append_timeout_ms: int = Field(default=5_000, gt=0)
    #: a journal disk step (a batch's write and fsync, a new segment's creation and directory fsync) at
    #: least this long is logged as a stall: the Track calls behind it waited at least as long
    #: (``setlist_journal_write_seconds`` has every step)
    journal_slow_write_ms: int = Field(default=1_000, gt=0)
    #: how long a starting server waits for its journal directory's lock (held briefly by another
    #: server's orphan sweep) before refusing to start: the directory is then another server's
    journal_lock_wait_s: float = Field(default=10.0, ge=0)
    #: the WAL root whose unlocked journal directories (dead workers, dead pods) a starting server
    #: and ``python -m serving recover-journals`` move into the event log; unset: ``wal_dir``
    journal_sweep_dir: Path | None = None
    # simulated traffic serves with these pointed under simulation_dir (experiments.simulate),
    # so that it never writes to the event log and impressions that gates and training read
    events_dir_override: Path | None = None
    impressions_dir_override: Path | None = None

    # experiments and impressions (serving.impressions, setlist.experiment)
    experiments_file: Path | None = Field(
        default=None, description="YAML naming the A/B arms; unset or missing file means no experiment"
    )
    impressions_enabled: bool = True
    # Rank records waiting for the writer; beyond it they are dropped
    impressions_queue: int = Field(default=10_000, gt=0)
    impressions_flush_s: float = Field(default=2.0, gt=0)  # the writer wakes this often and writes what is queued ...
    impressions_batch: int = Field(default=2_000, gt=0)  # ... or whenever this many Rank records are pending

    #: which event types take the real-time path and which are batch-only and sampled (setlist.tiers);
    #: a missing file means every type in real time but impressions and the light types, unsampled
    tiers_file: Path = Path("tiers.yaml")

    # product KPIs (setlist.kpis): what counts as a "value" event, and an engaged user
    #: event types that are value (a ``play`` counts from ``value_play_fraction`` of the track on)
    value_types: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["play", "like"])
    value_play_fraction: float = Field(default=0.8, ge=0, le=1)
    #: a user with at least this many value events is engaged
    engaged_min_value_events: int = Field(default=3, gt=0)

    # canary rollout of a new champion (serving.rollout.canary, serving.rollout.driver)
    canary_enabled: bool = False
    canary_steps: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5, 1.0])
    canary_min_requests: int = Field(default=500, ge=0)  # per variant and step, before a step may widen
    canary_min_feedback: int = Field(default=300, ge=0)  # plays + skips per variant and step, for the skip guard
    # the error budget: canary scoring failures per request
    canary_max_error_rate: float = Field(default=0.01, ge=0, le=1)
    canary_max_p99_ratio: float = Field(default=1.5, gt=0)  # canary p99 may be this many times the stable p99 ...
    canary_p99_slack_ms: float = Field(default=2.0, ge=0)  # ... or this many ms above it, whichever is larger
    # absolute skip-rate increase tolerated before rollback
    canary_max_skip_increase: float = Field(default=0.03, ge=0, le=1)
    canary_alpha: float = Field(default=0.01, gt=0, lt=1)  # one-sided significance for the skip guard
    canary_check_s: float = Field(default=5.0, gt=0)  # how often the refresh loop evaluates an active canary

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _conf_as_text(cls, v: Any) -> Any:
        # Spark's configuration is text; a YAML file writes numbers and booleans as such
        if isinstance(v, dict):
            return {k: str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}
        return v

    @field_validator("timezone")
    @classmethod
    def _a_zone(cls, v: str) -> str:
        return zone_name(parse_zone(v))  # one spelling per zone: what models record and status shows

    @field_validator("feature_dirs", "value_types", "redis_cluster_nodes", mode="before")
    @classmethod
    def _comma_separated(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings

    @property
    def cache_store(self) -> Literal["memory", "redis"]:
        """Where the prediction cache lives: ``cache_backend``, or when unset the profile's default, resolved
        at each read (a copy of these settings for another profile takes that profile's)."""
        return self.cache_backend or ("redis" if self.on_servers else "memory")

    @property
    def request_zone(self) -> tzinfo:
        """``timezone`` as a zone: what training computes the request features in."""
        return parse_zone(self.timezone)

    @property
    def on_servers(self) -> bool:
        """The production and cluster profiles: PostgreSQL, Redis, a shared key, consent that fails closed."""
        return self.profile in ("production", "cluster")

    @property
    def on_spark(self) -> bool:
        return self.profile == "cluster"

    @property
    def feature_files_location(self) -> str:
        """Where the feature views' sources read: the features directory, or Spark's own location."""
        if self.on_spark and self.spark_features_path:
            return self.spark_features_path
        return str(self.features_dir.resolve())

    @property
    def spark_staging_location(self) -> str:
        return self.spark_staging or str((self.data_dir / "spark-staging").resolve())

    # --- derived locations -------------------------------------------------------------------
    @property
    def events_dir(self) -> Path:
        return self.events_dir_override or self.data_dir / "events"

    @property
    def simulation_dir(self) -> Path:
        """Where simulated traffic (the demo's A/B simulation) keeps its own event log, journal and
        impressions, so that it never reaches the log that gates and training read."""
        return self.data_dir / "simulation"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog" / "items.parquet"

    @property
    def wal_dir(self) -> Path:
        return self.wal_dir_override or self.data_dir / "wal"

    @property
    def impressions_dir(self) -> Path:
        return self.impressions_dir_override or self.data_dir / "impressions"

    @property
    def training_set_path(self) -> Path:
        """The gated training set of the last run, kept for the gate and for audits."""
        return self.data_dir / "training" / "training_set.parquet"

    @property
    def lineage_dir(self) -> Path:
        return self.data_dir / "lineage"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def status_dir(self) -> Path:
        """Batch jobs' status files (setlist.jobmetrics), one ``<job>.prom`` each."""
        return self.data_dir / "status"

    @property
    def consent_granted_by_default(self) -> bool:
        """Whether a user who never gave a consent flag counts as consenting (fails closed in production)."""
        if self.consent_default is not None:
            return self.consent_default == "grant"
        return not self.on_servers

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.on_servers:
            return self.sqlalchemy_database_url
        return f"sqlite:///{self.data_dir.resolve()}/mlflow.db"

    @property
    def artifact_root(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()

    @property
    def sqlalchemy_database_url(self) -> str:
        """The PostgreSQL URL with the psycopg 3 driver, which is the one installed."""
        url = self.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def metadata_url(self) -> str:
        if self.on_servers:
            return self.sqlalchemy_database_url
        return f"sqlite:///{self.data_dir.resolve()}/metadata.db"

    @property
    def local_hmac_key_path(self) -> Path:
        """The local profile's own key, made on first use when none is set."""
        return self.data_dir / "secrets" / "hmac.key"

    def hmac_key_source(self) -> str:
        """Where :meth:`secret_hmac_key` takes the key from, for messages (never the key itself)."""
        if self.hmac_key is not None and self.hmac_key.get_secret_value():
            return "SETLIST_HMAC_KEY"
        if self.hmac_key_file is not None:
            return f"SETLIST_HMAC_KEY_FILE={self.hmac_key_file}"
        return f"{self.local_hmac_key_path} (this data directory's own key)"

    def existing_hmac_key(self) -> bytes | None:
        """The key :meth:`secret_hmac_key` would return, or None where it would create one (locally, before
        the first run): for a check that must not leave a key behind."""
        set_explicitly = self.hmac_key is not None and self.hmac_key.get_secret_value()
        if set_explicitly or self.hmac_key_file is not None or self.on_servers:
            return self.secret_hmac_key()
        path = self.local_hmac_key_path
        return path.read_text().strip().encode() if path.exists() else None

    def secret_hmac_key(self) -> bytes:
        """The pseudonymization key. Locally a random key is created once under data_dir;
        production refuses to start without an explicit key."""
        if self.hmac_key is not None and self.hmac_key.get_secret_value():
            return self.hmac_key.get_secret_value().encode()
        if self.hmac_key_file is not None:
            if not self.hmac_key_file.exists():
                raise RuntimeError(f"SETLIST_HMAC_KEY_FILE points at {self.hmac_key_file}, which does not exist")
            return self.hmac_key_file.read_text().strip().encode()
        if self.on_servers:
            # every replica must derive the same pseudonyms, so production never invents a key
            raise RuntimeError(
                f"the {self.profile} profile needs SETLIST_HMAC_KEY or SETLIST_HMAC_KEY_FILE "
                "(`make services` writes var/services/hmac.key for local use)"
            )
        path = self.local_hmac_key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once; a value that does not read (``SETLIST_IMPORT_CHUNK_ROWS=``, empty) is a
    usage error naming its variable, not a validation traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from setlist.errors import UsageError

    try:
        settings = Settings()
    except SettingsError as exc:  # a list or mapping variable that is not JSON: no field-level error
        found = re.search(r'field "(\w+)"', str(exc))
        variable = next((v for v, f in setting_variables().items() if found and f == found.group(1)), None)
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise UsageError(
            f"{variable or 'a setting'} does not read{cause}; a list or mapping in the environment is JSON "
            '(\'["a", "b"]\', \'{"key": "value"}\')'
        ) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            # the variable from the field (the first part); the rest is a place within its value, as given
            head, *within = [str(part) for part in error["loc"]]
            variable = head.upper() if head.upper().startswith(PREFIX) else PREFIX + head.upper()
            field = variable + "".join(f"[{part!r}]" for part in within)
            given = error.get("input")
            shown = f" (got {given!r})" if isinstance(given, (str, int, float)) else ""
            problems.append(f"{field}{shown}: {error['msg']}")
        raise UsageError(
            f"settings that do not read, from the environment or {SETTINGS_FILE_VARIABLE}: " + "; ".join(problems)
        ) from None
    for warning in unknown_variables(os.environ):
        log.warning(warning)
    return settings


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``SETLIST_`` variable that is no setting (a misspelling would otherwise leave
    the default in force without a word). A warning, not an error: during a rolling change the
    environment may hold a variable that only the next release reads."""
    variables = setting_variables()
    known = sorted(variables)
    warnings = []
    for name in sorted(environ):
        upper = name.upper()  # the settings object reads its variables in any case
        if not upper.startswith(PREFIX) or upper in variables or upper in OTHER_VARIABLES:
            continue
        if _SERVICE_LINK.search(upper) or (upper.endswith("_PORT") and _LINK_VALUE.match(environ[name])):
            continue  # Kubernetes' variables for a Service named setlist-…, where a pod spec lets them in
        warnings.append(f"{name} is not a setting and is ignored{_suggestion(upper, known)}")
    return warnings


_SERVICE_LINK = re.compile(
    r"_SERVICE_HOST$|_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?$"
)
_LINK_VALUE = re.compile(r"(tcp|udp|sctp)://", re.I)


def exports(variables: list[str]) -> list[str]:
    """``export NAME=value`` lines, shell-quoted, for the settings named: how scripts that cannot read
    the settings file themselves (``make services``, the Makefile's profile switch) see what every
    Python command sees. Values are printed in clear, passwords included: the lines are for ``eval``."""
    import shlex

    from setlist.errors import UsageError

    names = setting_variables()
    settings = get_settings()
    lines = []
    for variable in variables:
        field = names.get(variable.upper())
        if field is None:
            raise UsageError(f"{variable} is not a setting{_suggestion(variable.upper(), sorted(names))}")
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        lines.append(f"export {variable.upper()}={shlex.quote('' if value is None else str(value))}")
    return lines


if __name__ == "__main__":
    import sys

    from setlist.errors import SetlistError

    # `python -m setlist.settings SETLIST_REDIS_URL …`: see exports. `--in-file`: the names of the
    # variables the settings file sets, which the Makefile must not export a default for (it would win),
    # and the profile's as NAME=value (the Makefile's defaults depend on it)
    try:
        if sys.argv[1:] == ["--in-file"]:
            for name, value in settings_file_values().items():
                print(f"{name}={value}" if name == "SETLIST_PROFILE" else name)
        else:
            print("\n".join(exports(sys.argv[1:])))
    except SetlistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
