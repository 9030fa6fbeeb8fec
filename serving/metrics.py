"""Prometheus metrics for serving: what the transport records, and what the ranking service updates.

Ownership, so nothing is counted twice:
- the transport (serving.grpc.interceptors) records ``RPC_*`` for every Rank/Track call;
- the ranking service records everything else: cache, candidates, model versions, feature freshness
  and degraded responses, because only it knows why a response was cached or degraded.

The objects live in prometheus_client's default registry, the usual pattern: defining them is cheap
and starts no threads; :func:`start_metrics_server` is what opens a port.

Several workers (``--workers N``): each worker serves its own registry on ``metrics_port + index``
(scrape each port, or sum in PromQL). This avoids prometheus multiprocess mode, whose environment
variable has to be set before the first import and whose gauges need per-metric aggregation modes.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from serving.hosts import bare_host
from setlist.jobmetrics import CATALOGUE, field_of, reason_code
from setlist.registry import CHAMPION

# Fine-grained at the bottom: cache hits should take well under a millisecond, the Rank p99 target
# is 10 ms, and a histogram cannot resolve latencies below its smallest bucket.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
CANDIDATE_BUCKETS = (0, 10, 25, 50, 100, 200, 300, 400, 500, 750, 1000, 2000, 5000)

# --- transport ------------------------------------------------------------------------------
RPC_LATENCY = Histogram(
    "setlist_rpc_latency_seconds", "Server-side latency of each RPC, by RPC.", ["rpc"], buckets=LATENCY_BUCKETS
)
RPC_REQUESTS = Counter("setlist_rpc_requests", "RPCs handled, by RPC and final status code.", ["rpc", "code"])
RPC_ERRORS = Counter("setlist_rpc_errors", "RPCs that ended with a non-OK status, by RPC and code.", ["rpc", "code"])
RPC_IN_FLIGHT = Gauge("setlist_rpc_in_flight", "Rank/Track calls being worked on right now.")
RPC_WAIT = Histogram(
    "setlist_rpc_wait_seconds",
    "Time an admitted call waited for its turn to run (SETLIST_RANK_MAX_RUNNING), by RPC.",
    ["rpc"],
    buckets=LATENCY_BUCKETS,
)
RPC_WAITING = Gauge("setlist_rpc_waiting", "Admitted calls in line for their turn to run, by RPC.", ["rpc"])
RPC_SHED = Counter(
    "setlist_rpc_shed",
    "Calls refused with RESOURCE_EXHAUSTED because their turn would not come in time, by RPC.",
    ["rpc"],
)
# by RPC only, never by token: a label per caller would be an unbounded (and secret-adjacent) series set
QUOTA_REJECTIONS = Counter(
    "setlist_quota_rejections",
    "Calls refused with RESOURCE_EXHAUSTED because the caller's quota was spent, by RPC.",
    ["rpc"],
)
QUOTA_BACKEND_ERRORS = Counter(
    "setlist_quota_backend_errors",
    "Quota checks the shared (Redis) buckets could not answer; each such call was let through.",
    ["rpc"],
)
QUOTA_FILE_RELOADS = Counter(
    "setlist_quota_file_reloads",
    "Times the quota file (SETLIST_QUOTA_FILE) was read again after it changed, by outcome: applied, or "
    "rejected (the limits before the change stay in force).",
    ["outcome"],
)
QUOTA_FILE_REJECTED = Gauge(
    "setlist_quota_file_rejected",
    "1 while the quota file on disk is a version this server rejected (it enforces the last valid one); "
    "0 otherwise, and when no quota file is configured.",
)

# --- ranking service ------------------------------------------------------------------------
CACHE_HITS = Counter("setlist_cache_hits", "Rank requests answered from the prediction cache.")
CACHE_MISSES = Counter("setlist_cache_misses", "Rank requests that had to be computed.")
CACHE_HIT_LATENCY = Histogram(
    "setlist_cache_hit_latency_seconds", "Service-side Rank latency when the cache answered.", buckets=LATENCY_BUCKETS
)
CACHE_MISS_LATENCY = Histogram(
    "setlist_cache_miss_latency_seconds",
    "Service-side Rank latency when the ranking was computed.",
    buckets=LATENCY_BUCKETS,
)
CACHE_ENTRIES = Gauge(
    "setlist_cache_entries",
    "Rank results held in this process's in-process prediction cache (SETLIST_CACHE_BACKEND=memory), "
    "computed when scraped; 0 with the shared Redis cache (Redis reports its own memory) or none.",
)
CANDIDATES = Histogram("setlist_candidates", "Candidates scored per computed Rank request.", buckets=CANDIDATE_BUCKETS)
MODEL_VERSION = Gauge(
    "setlist_model_version_info",
    "1 for the model version currently serving, by model name and version.",
    ["model", "version"],
)
FEATURE_LAST_PUBLISH = Gauge(
    "setlist_feature_last_publish_timestamp_seconds", "Unix time of the newest feature publish the server has seen."
)
FEATURE_FRESHNESS = Gauge(
    "setlist_feature_freshness_seconds", "Seconds since the newest feature publish (computed when scraped)."
)
DEGRADED = Counter("setlist_degraded_responses", "Rank responses served by a fallback, by reason.", ["reason"])
# CPU per call, for `python -m ops cost`: the handler thread's own CPU time (time.thread_time), so
# other calls running meanwhile are not counted in; the transport's and background threads' CPU is not in it
RPC_CPU = Counter("setlist_rpc_cpu_seconds", "CPU time of the Rank/Track handler thread, by RPC.", ["rpc"])
RPC_CPU_CALLS = Counter("setlist_rpc_cpu_calls", "Rank/Track calls whose handler CPU time is counted, by RPC.", ["rpc"])

# --- experiments, impressions and rollout -----------------------------------------------------
RANK_ARM = Counter("setlist_rank_arm", "Rank responses by experiment arm (live sample-ratio check).", ["arm"])
IMPRESSIONS_WRITTEN = Counter("setlist_impressions_written", "Impression rows (one per shown item) written.")
IMPRESSIONS_DROPPED = Counter(
    "setlist_impressions_dropped", "Rank impression records dropped because the writer queue was full."
)
CANARY_SHARE = Gauge("setlist_canary_share", "Share of champion traffic served by the canary version (0 when none).")
CANARY_DECISIONS = Counter("setlist_canary_decisions", "Canary state changes, by action.", ["action"])

# --- Track ----------------------------------------------------------------------------------
TRACK_DEGRADED = Counter(
    "setlist_track_degraded",
    "Track calls acknowledged without one of their checks or writes, by reason: dedupe_unavailable (a retry "
    "may be stored twice; the feature build drops repeated ids), session_push_failed (session features lag "
    "until the next event or build).",
    ["reason"],
)
TRACK_DUPLICATES = Counter(
    "setlist_track_duplicates",
    "Track events acknowledged without storing them again: retries of an event_id already stored.",
)

# --- the pipeline as serving sees it (names and help from setlist.jobmetrics.CATALOGUE) ----------------


def _help(name: str) -> str:
    return CATALOGUE[name].help


TRACK_ACKNOWLEDGED = Counter(
    "setlist_track_events_acknowledged", "Track events acknowledged as durable (written to the journal)."
)
TRACK_LOGGED = Counter("setlist_track_events_logged", "Track events moved from the journal into the event log.")
JOURNAL_WRITE = Histogram(
    "setlist_journal_write_seconds",
    "Each disk step of the Track journal's writer: a group commit's write and fsync, or a new segment's "
    "directory fsync. Every Track waiting behind a step waits as long.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SAMPLED_OUT = Counter(
    "setlist_track_events_sampled_out",
    "Batch-tier Track events acknowledged but left out by their type's sample (setlist.tiers), by type.",
    ["type"],
)
QUARANTINED = Counter(
    "setlist_events_quarantined",
    _help("setlist_events_quarantined_total"),
    CATALOGUE["setlist_events_quarantined_total"].labels,
)
SCHEMA_VIOLATIONS = Counter(
    "setlist_schema_violations",
    _help("setlist_schema_violations_total"),
    CATALOGUE["setlist_schema_violations_total"].labels,
)
INGEST_LAG = Gauge("setlist_ingest_lag_seconds", _help("setlist_ingest_lag_seconds"))
FEATURE_LAG = Gauge("setlist_feature_lag_seconds", _help("setlist_feature_lag_seconds"))
FEATURE_AGE = Gauge("setlist_feature_age_seconds", _help("setlist_feature_age_seconds"), ["view"])
MODEL_AGE = Gauge("setlist_model_age_seconds", _help("setlist_model_age_seconds"), ["model", "alias"])
MODEL_METRIC = Gauge("setlist_model_metric", _help("setlist_model_metric"), ["model", "metric"])

_lock = threading.Lock()
_versions: dict[str, str] = {}
_last_publish: list[float] = []  # empty until the first publish is known


def set_model_version(model: str, version: str) -> None:
    """Mark ``version`` as the one serving for ``model``; the previous version's series is removed,
    so a dashboard never shows two live versions of one model."""
    with _lock:
        previous = _versions.get(model)
        if previous is not None and previous != version:
            MODEL_VERSION.remove(model, previous)
        _versions[model] = version
        MODEL_VERSION.labels(model=model, version=version).set(1)


def record_cache(hit: bool, seconds: float) -> None:
    """One Rank served from the cache (hit) or computed (miss), with its service-side latency."""
    if hit:
        CACHE_HITS.inc()
        CACHE_HIT_LATENCY.observe(seconds)
    else:
        CACHE_MISSES.inc()
        CACHE_MISS_LATENCY.observe(seconds)


def record_candidates(count: int) -> None:
    CANDIDATES.observe(count)


def record_degraded(reason: str = "fallback") -> None:
    DEGRADED.labels(reason=reason).inc()


_arms: dict[str, Counter] = {}


def record_arm(arm: str) -> None:
    child = _arms.get(arm)  # labels() takes a lock and builds a key; the child is cached here
    if child is None:
        child = _arms.setdefault(arm, RANK_ARM.labels(arm=arm))
    child.inc()


def record_quota_rejection(rpc: str) -> None:
    QUOTA_REJECTIONS.labels(rpc=rpc).inc()


_cpu: dict[str, tuple[Counter, Counter]] = {}


def record_cpu(rpc: str, seconds: float) -> None:
    """One Rank or Track call's handler CPU seconds (children cached, as in record_arm)."""
    children = _cpu.get(rpc)
    if children is None:
        children = _cpu.setdefault(rpc, (RPC_CPU.labels(rpc=rpc), RPC_CPU_CALLS.labels(rpc=rpc)))
    children[0].inc(seconds)
    children[1].inc()


def record_impression_drop() -> None:
    IMPRESSIONS_DROPPED.inc()


def record_impressions_written(rows: int) -> None:
    IMPRESSIONS_WRITTEN.inc(rows)


def record_track_duplicates(count: int) -> None:
    TRACK_DUPLICATES.inc(count)


def record_track_degraded(reason: str) -> None:
    TRACK_DEGRADED.labels(reason=reason).inc()


def record_canary(action: str, share: float) -> None:
    CANARY_DECISIONS.labels(action=action).inc()
    CANARY_SHARE.set(share)


def mark_feature_publish(published_at: float) -> None:
    """Record the Unix time of a feature publish; freshness is computed from it at scrape time."""
    with _lock:
        if not _last_publish or published_at > _last_publish[0]:
            _last_publish[:] = [published_at]
            FEATURE_LAST_PUBLISH.set(published_at)


def _freshness() -> float:
    # NaN until a publish is known: "never published" must not look perfectly fresh (0 s).
    return time.time() - _last_publish[0] if _last_publish else float("nan")


FEATURE_FRESHNESS.set_function(_freshness)


def record_acknowledged(count: int) -> None:
    TRACK_ACKNOWLEDGED.inc(count)


def record_logged(count: int) -> None:
    TRACK_LOGGED.inc(count)


def record_journal_write(seconds: float) -> None:
    JOURNAL_WRITE.observe(seconds)


def record_sampled_out(types: list[str]) -> None:
    for etype, n in collections.Counter(types).items():  # types are the contract's: a bounded label
        SAMPLED_OUT.labels(type=etype).inc(n)


def record_quarantined(reasons: list[str]) -> None:
    """Rejected events, by their reason's code and the field the reason blames."""
    for reason in reasons:
        QUARANTINED.labels(reason=reason_code(reason)).inc()
        field = field_of(reason)
        if field is not None:
            SCHEMA_VIOLATIONS.labels(field=field).inc()


def _since(clock: Callable[[], float | None]) -> Callable[[], float]:
    """A scrape-time age: seconds since the time ``clock`` returns, 0 when it returns None."""

    def age() -> float:
        then = clock()
        return max(0.0, time.time() - then) if then is not None else 0.0

    return age


def _fixed(then: float) -> Callable[[], float | None]:
    return lambda: then


def watch_ingest(oldest_unlogged: Callable[[], float | None]) -> None:
    """Ingest lag, computed when scraped: the wait of the oldest acknowledged event not yet in the log."""
    INGEST_LAG.set_function(_since(oldest_unlogged))


def watch_cache(entries: Callable[[], int]) -> None:
    """The in-process cache's size, computed when scraped: its bound (SETLIST_CACHE_SIZE) is the memory
    a worker may give it (~4 KB an entry), and a size far below it with a low hit ratio means short TTLs
    or keys that change (a Track, the hour) rather than too small a cache."""
    CACHE_ENTRIES.set_function(lambda: float(entries()))


_marks: dict[str, float | None] = {"uncovered": None}
_view_marks: dict[str, float] = {}


def mark_feature_lag(oldest_uncovered: float | None) -> None:
    """The write time of the oldest event-log file no publish covers yet (None: all covered)."""
    _marks["uncovered"] = oldest_uncovered


def mark_view(view: str, newest: float) -> None:
    """A feature view's newest online row was written at ``newest`` (Unix seconds); its age grows from there."""
    with _lock:
        first = view not in _view_marks
        if first or newest > _view_marks[view]:
            _view_marks[view] = newest
    if first:
        FEATURE_AGE.labels(view=view).set_function(lambda: max(0.0, time.time() - _view_marks[view]))


FEATURE_LAG.set_function(_since(lambda: _marks["uncovered"]))

_metric_series: set[tuple[str, str]] = set()


def set_model_facts(alias: str, facts: list[tuple[str, float, dict[str, float]]]) -> None:
    """The models an alias serves: (model, registered at, offline metrics) each. Ages grow at scrape
    time; metrics are reported for the champion only, and a model's old metrics are removed."""
    with _lock:
        for model, created, metrics in facts:
            MODEL_AGE.labels(model=model, alias=alias).set_function(_since(_fixed(created)))
            if alias != CHAMPION or not metrics:
                continue
            for stale in [m for m in _metric_series if m[0] == model and m[1] not in metrics]:
                MODEL_METRIC.remove(*stale)
                _metric_series.discard(stale)
            for name, value in metrics.items():
                MODEL_METRIC.labels(model=model, metric=name).set(value)
                _metric_series.add((model, name))


class MetricsServer(Protocol):
    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


def start_metrics_server(port: int, host: str = "0.0.0.0") -> tuple[MetricsServer, int] | None:
    """Serve /metrics over HTTP on ``port`` (0 means disabled). Returns the server and its port."""
    if port == 0:
        return None
    host = bare_host(host)  # SETLIST_HOST's [::], which this server shares with gRPC
    httpd, _thread = start_http_server(port, addr=host)
    return httpd, int(httpd.server_port)


def stop_metrics_server(server: tuple[MetricsServer, int] | None) -> None:
    if server is not None:
        server[0].shutdown()
        server[0].server_close()
