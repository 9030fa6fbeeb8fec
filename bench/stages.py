"""Where a cache-miss Rank spends its time, measured in-process on the real service.

``python -m bench.stages OUT.json [USERS]`` (with the bench's SETLIST_* environment) builds the
service with ``serving.bootstrap.build`` and, for a set of real users, times the functions
``RankingService`` runs, in its order: the pseudonym, the user's online rows (``reader.read``), then
the stages of serving.rank_stages themselves: ``request`` + ``candidates``, ``features`` (cross
features and matrix assembly), ``score`` and ``top_k`` + ``explain`` (off, as the bench's queries
ask). It then times whole ``service.rank`` calls (cache off, with impression logging, with tracing
on, and cache hits) and profiles them.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench.latency import PERCENTILES, percentile
from bench.users import load_users


def _summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    out = {f"p{p:g}".replace(".", "") + "_ms": round(percentile(s, p), 4) for p in PERCENTILES}
    out["mean_ms"] = round(float(np.mean(s)), 4)
    return out


STAGES = ("pseudonymize", "user_features", "candidates", "assembly", "scoring", "topk")


def measure(n_users: int = 300, repeats: int = 2) -> dict[str, object]:
    from serving import rank_stages
    from serving.bootstrap import build, make_cache
    from serving.rollout.routing import CHAMPION
    from serving.types import RankQuery
    from setlist.settings import get_settings

    # as the cache-miss servers run: no cache, and no impression logging
    settings = get_settings().model_copy(update={"cache_enabled": False, "impressions_enabled": False})
    server = build(settings, load=True, start=False)
    svc, live = server.service, server.service.live
    if live is None:
        raise RuntimeError("the service has no live models: prepare the data dir first")
    variant, bundle = live.variant(CHAMPION), live.bundle
    inputs = rank_stages.Inputs.of(svc.features)
    users = load_users(settings.data_dir, n_users, seed=1)
    stages: dict[str, list[float]] = {k: [] for k in (*STAGES, "sum", "scoring_1_thread")}
    # CPU of the whole process per stage (XGBoost's scoring threads included): the split of the server's
    # CPU per request that the report sets beside rank.server_cpu, far steadier than wall-clock times
    cpu: dict[str, list[float]] = {k: [] for k in (*STAGES, "sum")}
    # The same matrix scored again by a one-thread copy of the booster: XGBoost's default uses every
    # core, which on a 2-core box shared with gRPC threads (and the load generator) can stall.
    one_thread = bundle.booster.copy()
    one_thread.set_param({"nthread": 1})
    n_cand: list[int] = []
    n_features = 0
    for _ in range(repeats):
        for u in users:
            q = RankQuery(u.user_id, 10, {"device": u.device, "locale": u.locale})
            t, c0 = [time.perf_counter()], [time.process_time()]
            user = svc.pseudonym(u.user_id)
            t.append(time.perf_counter())
            c0.append(time.process_time())
            rows = svc.reader.read(user)
            t.append(time.perf_counter())
            c0.append(time.process_time())
            request = rank_stages.request(q, user, rows, datetime.now(UTC), u.device, u.locale, "model")
            # every sample takes the model path (load_users picks consenting users; this makes sure)
            ctx = rank_stages.RankContext(replace(request, personal=True), variant, inputs, settings.candidate_pool)
            c = rank_stages.candidates(ctx)
            t.append(time.perf_counter())
            c0.append(time.process_time())
            X = rank_stages.features(ctx, c)
            t.append(time.perf_counter())
            c0.append(time.process_time())
            scores = rank_stages.score(ctx, X)
            t.append(time.perf_counter())
            c0.append(time.process_time())
            top = rank_stages.top_k(scores, q.k)
            why = rank_stages.explain(ctx, X, c, top)
            ids = bundle.index.item_ids[c.idx[top]]
            _ = [(str(i), float(s), w) for i, s, w in zip(ids, scores[top], why, strict=True)]
            t.append(time.perf_counter())
            c0.append(time.process_time())
            for name, a, b in zip(STAGES, t, t[1:]):
                stages[name].append((b - a) * 1000)
            for name, a, b in zip(STAGES, c0, c0[1:]):
                cpu[name].append((b - a) * 1000)
            stages["sum"].append((t[-1] - t[0]) * 1000)
            cpu["sum"].append((c0[-1] - c0[0]) * 1000)
            t1 = time.perf_counter()
            one_thread.inplace_predict(X)
            stages["scoring_1_thread"].append((time.perf_counter() - t1) * 1000)
            n_cand.append(len(c.idx))
            n_features = X.shape[1]

    queries = [RankQuery(u.user_id, 10, {"device": u.device, "locale": u.locale}) for u in users]
    cpu0 = time.process_time()
    total_miss = _time_calls(svc.rank, queries * repeats)
    cpu_miss = (time.process_time() - cpu0) * 1000 / len(total_miss)
    impressions = _with_impressions(svc, settings, queries * repeats)
    # half the users per round and twice the rounds: more alternations between off and on, same calls
    traced = _with_tracing(svc, queries[: max(len(queries) // 2, 1)], rounds=2 * repeats)
    # hits on the cache the servers run with (Redis, shared, at full scale: one round trip per hit)
    no_cache, svc.cache = svc.cache, make_cache(get_settings().model_copy(update={"cache_enabled": True}))
    for q in queries:
        svc.rank(q)  # fill
    total_hit = _time_calls(svc.rank, queries * repeats)
    svc.cache = no_cache

    profile_top = _profile(svc, queries)
    agreement = _agreement_with_baseline(settings, svc, queries[:30])
    server.close()
    booster = bundle.booster
    return {
        "stages_ms": {k: _summary(v) for k, v in stages.items()},
        "stages_cpu_ms": {k: round(float(np.mean(v)), 4) for k, v in cpu.items()},
        "service_rank_miss_ms": _summary(total_miss),
        "service_rank_hit_ms": _summary(total_hit),
        # CPU of the whole process (every thread, OpenMP spinning included) per cache-miss Rank
        "service_rank_miss_cpu_ms": round(cpu_miss, 3),
        "impressions_on": impressions,
        "tracing_on": traced,
        "candidate_pool": settings.candidate_pool,
        "candidates_mean": round(float(np.mean(n_cand)), 1),
        "features": int(n_features),
        "trees": int(booster.num_boosted_rounds()),
        "profile_top": profile_top,
        "baseline_agreement": agreement,
        "users": len(users),
        "calls": len(stages["sum"]),
    }


def _with_impressions(svc, settings, queries: list) -> dict[str, object]:
    """The same cache-miss Rank calls with impression logging attached as bootstrap attaches it, CPU
    of the writer thread included (it is flushed inside the measured window)."""
    import tempfile

    from serving.impressions import ImpressionLog

    with tempfile.TemporaryDirectory() as tmp:
        log = ImpressionLog.to_directory(
            Path(tmp),
            maxsize=settings.impressions_queue,
            batch=settings.impressions_batch,
            flush_s=settings.impressions_flush_s,
        )
        svc.impressions = log
        try:
            cpu0 = time.process_time()
            times = _time_calls(svc.rank, queries)
            log.flush()
            cpu = (time.process_time() - cpu0) * 1000 / len(queries)
        finally:
            svc.impressions = None
            log.close()
    return {"service_rank_miss_ms": _summary(times), "service_rank_miss_cpu_ms": round(cpu, 3)}


class _Counted(SpanExporter):
    """A span exporter that counts the spans it passes on to another."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner, self.spans = inner, 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _with_tracing(svc, queries: list, rounds: int = 2) -> dict[str, object]:
    """The same cache-miss Rank calls with tracing off and on, in alternating rounds (so a change in
    the machine's load falls on both alike). On is ``SETLIST_TRACING=console`` as a server sets it
    up: every trace kept, a BatchSpanProcessor, the console exporter's JSON lines (to the null
    device). Also: every span made but none exported (what making the spans costs), and one trace in
    ten kept (``SETLIST_TRACE_SAMPLE_RATIO=0.1``). CPU per call includes the export thread's (the
    spans are flushed inside the window). The start-up objects are frozen out of garbage
    collection, as a server worker freezes them: otherwise the spans' garbage sets off full
    collections over every model object, a cost no server pays."""
    import gc

    from setlist import tracing

    modes = {"off": None, "on": 1.0, "spans_only": 1.0, "sampled_0_1": 0.1}  # mode: sample ratio
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    times: dict[str, list[float]] = {m: [] for m in modes}
    spans = 0
    gc.collect()
    gc.freeze()
    with open(os.devnull, "w") as sink:
        for n in range(rounds):
            order = list(modes)[n % len(modes) :] + list(modes)[: n % len(modes)]  # no mode always first
            for mode in order:
                ratio = modes[mode]
                exporter = _Counted(_Discard() if mode == "spans_only" else tracing.console_exporter(sink))
                if ratio is not None:
                    tracing.install(exporter, service_name="setlist-bench", sample_ratio=ratio)
                try:
                    cpu0 = time.process_time()
                    times[mode] += _time_calls(svc.rank, queries)
                    tracing.force_flush()
                    cpu[mode].append((time.process_time() - cpu0) * 1000 / len(queries))
                finally:
                    tracing.shutdown()
                if mode == "on":
                    spans = exporter.spans
    gc.unfreeze()
    return {
        "service_rank_miss_ms": _summary(times["on"]),
        "service_rank_miss_cpu_ms": round(float(np.median(cpu["on"])), 3),
        "off_ms": _summary(times["off"]),
        "off_cpu_ms": round(float(np.median(cpu["off"])), 3),
        "spans_only_cpu_ms": round(float(np.median(cpu["spans_only"])), 3),
        "sampled_0_1_cpu_ms": round(float(np.median(cpu["sampled_0_1"])), 3),
        "spans_per_rank": round(spans / len(queries), 2),
    }


def _agreement_with_baseline(settings, svc, queries: list) -> dict[str, object]:
    """Rank the same queries, at the same moment, with serving.baseline: the bench compares two ways
    of doing the same work only if both return the same items with the same scores. (Answers taken
    minutes apart over gRPC can differ legitimately: the request hour is a feature.)"""
    from serving.baseline import build_baseline

    baseline = build_baseline(settings)
    identical, overlap, diff = 0, [], 0.0
    for q in queries:
        a, b = svc.rank(q), baseline.rank(q)
        ids_a, ids_b = [i.item_id for i in a.items], [i.item_id for i in b.items]
        identical += ids_a == ids_b
        overlap.append(len(set(ids_a) & set(ids_b)) / max(len(ids_a), 1))
        if ids_a == ids_b:
            diff = max([diff] + [abs(x.score - y.score) for x, y in zip(a.items, b.items)])
    baseline.close()
    return {
        "users": len(queries),
        "identical_top10": identical,
        "mean_overlap_at_10": round(float(np.mean(overlap)), 4),
        "max_abs_score_diff": float(diff),
    }


def _time_calls(fn, args: list) -> list[float]:
    out = []
    for a in args:
        t0 = time.perf_counter()
        fn(a)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _profile(svc, queries: list, top: int = 12) -> list[dict[str, object]]:
    """The functions with the most own time across cache-miss Rank calls (cProfile, per call)."""
    prof = cProfile.Profile()
    prof.enable()
    for q in queries:
        svc.rank(q)
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append(
            {
                "function": f"{Path(file).name}:{line}:{fn}",
                "calls_per_rank": round(nc / len(queries), 1),
                "own_ms_per_rank": round(tt * 1000 / len(queries), 4),
                "cumulative_ms_per_rank": round(ct * 1000 / len(queries), 4),
            }
        )
    rows.sort(key=lambda r: -float(r["own_ms_per_rank"]))
    return rows[:top]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    # On a pool thread, as gRPC calls the service: XGBoost's OpenMP scoring called from the main
    # thread between other work stalls in 4 ms scheduler ticks (p50 ~16 ms instead of ~3 ms here),
    # which a server never sees.
    with ThreadPoolExecutor(1, thread_name_prefix="bench-stages") as pool:
        result = pool.submit(measure, n).result()
    out.write_text(json.dumps(result, indent=2))
