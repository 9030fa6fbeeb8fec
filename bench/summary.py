"""A run's report as a page to read: written beside every run, and as
``bench/results/SUMMARY-<scale>.md`` when published.

The notes are derived from the numbers of the run they describe, so the page cannot claim more than
was measured.
"""

from __future__ import annotations

from typing import Any

STAGE_LABELS = {
    "pseudonymize": "pseudonymize the user id (HMAC)",
    "user_features": "user rows from the online store (consent, profile, session)",
    "candidates": "candidate generation (index.generate)",
    "assembly": "cross features + matrix assembly (NumPy)",
    "scoring": "scoring (XGBoost inplace_predict, default threads, as served)",
    "topk": "top-k selection and response items",
    "sum": "sum of the stages",
}


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _latency_row(name: str, s: dict[str, Any]) -> str:
    return (
        f"| {name} | {_f(s.get('p50_ms'))} | {_f(s.get('p90_ms'))} | {_f(s.get('p99_ms'))} | "
        f"{_f(s.get('p999_ms'))} | {_f(s.get('max_ms'))} | {_f(s.get('rps'), 1)} | {_f(s.get('errors'))} "
        f"{_codes(s)} |"
    )


def _codes(s: dict[str, Any]) -> str:
    codes = s.get("errors_by_code") or {}
    return "(" + ", ".join(f"{c}: {n}" for c, n in codes.items()) + ")" if codes else ""


def notes(r: dict[str, Any]) -> list[str]:
    out = []
    st, rank, base, hit = r["stages"], r["rank"], r["baseline"], r["cache_hit"]
    miss, cpu = st["service_rank_miss_ms"], st.get("service_rank_miss_cpu_ms")
    overhead = st.get("grpc_and_client_overhead_p50_ms") or 0.0
    unmet = {t["field"] for t in r["targets"] if t["met"] is False}
    if unmet & {"rank.p99_ms", "saturation.best_rps", "rank.errors"} and cpu:
        workers = int(r["plan"].get("workers") or 1)
        served = (rank.get("server_cpu") or {}).get("cpu_ms_per_request")
        per_request = served or cpu + overhead
        how = (
            f"the server processes used {_f(served)} ms of CPU per request at {r['rps_target']:g} req/s "
            f"({_f(rank['server_cpu']['cores_busy'])} cores busy{_shares(rank['server_cpu'])})"
            if served
            else f"with about {_f(overhead)} ms of gRPC and client overhead that is ~{_f(per_request, 1)} ms "
            "per request"
        )
        busy = 100 * r["rps_target"] * per_request / 1000 / min(workers, r["machine"]["cores"])
        out.append(
            f"Rank is CPU-bound. In-process (no gRPC) a cache-miss `service.rank` takes p50 {_f(miss['p50_ms'])} ms "
            f"and {_f(cpu)} ms of CPU; over gRPC {how}. Each of the {workers} server process(es) runs Python under "
            f"one GIL, and the {r['machine']['cores']} cores are shared with the load generator, so the ceiling is "
            f"near {_f(1000 * min(workers, r['machine']['cores']) / per_request, 0)} req/s and at "
            f"{r['rps_target']:g} req/s the server is {_f(busy, 0)}% busy: "
            f"queues form, and the tail grows with them. The stage table below shows where the milliseconds go."
        )
    served_cpu = rank.get("server_cpu") or {}
    split = served_cpu.get("stages_ms") or {}
    if served_cpu.get("handler_cpu_ms_per_request") is not None and "handler_beyond_stages" in split:
        out.append(
            f"Of the servers' {_f(served_cpu.get('cpu_ms_per_request'))} ms of CPU per request, "
            f"{_f(served_cpu['handler_cpu_ms_per_request'])} ms ran inside the Rank handler (its own count, "
            f"`setlist_rpc_cpu_seconds_total`) and {_f(split.get('grpc_and_other'))} ms outside it (gRPC, the "
            f"guard, the process's other threads). The in-process stages account for "
            f"{_f(served_cpu['handler_cpu_ms_per_request'] - (split['handler_beyond_stages'] or 0.0))} ms of the "
            f"handler's; the other {_f(split['handler_beyond_stages'])} ms is what a served call pays beyond a "
            "tight loop (caches gone cold between calls) and the steps around the stages."
        )
    shares = served_cpu.get("process_shares") or []
    workers = int(r["plan"].get("workers") or 1)
    if workers > 1 and shares and shares[0] > 1 / workers + 0.1:
        out.append(
            f"The busiest server process used {_f(100 * shares[0], 0)}% of the servers' CPU, where an even "
            f"spread over {workers} workers gives {_f(100 / workers, 0)}%: the kernel hashed more of the "
            "load generator's connections to it, so it queued while another idled (`process_shares`)."
        )
    sat = r["saturation"]["by_concurrency"]
    if len(sat) > 1:
        lo, hi = min(sat, key=int), max(sat, key=int)
        if (sat[hi].get("rps") or 0) < 0.85 * (sat[lo].get("rps") or 0):
            out.append(
                f"Throughput falls as concurrency grows ({_f(sat[lo]['rps'], 0)} req/s with {lo} closed-loop "
                f"workers, {_f(sat[hi]['rps'], 0)} with {hi}): more requests in flight in a process only "
                "contend for its GIL (and the scoring threads for the cores), and an overloaded server keeps "
                "working on calls whose clients already gave up. A concurrency limit near the core count, "
                "with more worker processes, would keep goodput at capacity and refuse the excess at once."
            )
    if "rank.errors" in unmet:
        out.append(
            f"Rank returned errors at the open-loop rate {_codes(rank)}: calls over the 2 s deadline or "
            "refused by the concurrency limit once the queue was long; they count at the deadline."
        )
    if unmet & {"cache_hit.p99_ms", "cache_hit.unloaded.p99_ms"}:
        svc, unl = hit.get("service_side", {}), hit.get("unloaded", {})
        out.append(
            f"A cache hit costs p50 {_f(svc.get('p50_ms'), 3)} ms in-process (one cache round trip on the "
            f"shared Redis cache; an in-process cache also reads the user's rows, whose timestamps are part of "
            f"its key); over gRPC, unloaded, one at a time, it is "
            f"p50 {_f(unl.get('p50_ms'))} / p99 {_f(unl.get('p99_ms'))} ms. The 200 req/s run adds queueing "
            f"behind the server processes' other calls and the load generator's own scheduling."
        )
        floor = hit.get("grpc_floor") or {}
        if floor.get("p50_ms") is not None:
            out.append(
                f"A gRPC health check, which does no work, took p50 {_f(floor.get('p50_ms'))} / p99 "
                f"{_f(floor.get('p99_ms'))} ms over the same client and server, one at a time: the round trip "
                "that any cache hit pays before its own work (Python's gRPC on both ends, on shared cores)."
            )
    for label, m in (("unloaded", hit.get("unloaded", {})), ("open-loop", hit)):
        share = m.get("cache_hit_fraction")
        if share is not None and share < 1:
            out.append(
                f"Only {_pct(share)} of the {label} cache-hit run's calls were hits: the rest computed a "
                "ranking, so its percentiles overstate a hit's latency."
            )
    if "track.events_per_s" in unmet:
        t = r["track"]["throughput"]
        out.append(
            f"Track reached {_f(t['events_per_s'], 0)} events/s with {t['streams']} streams of "
            f"{t['batch']}-event batches (batch p50 {_f(t['batch_p50_ms'])} ms, p99 {_f(t['batch_p99_ms'])} ms). "
            "Each batch is journaled durably, then folded into the users' session rows in the online store "
            "before the ack; the fold (Feast value conversion and the online write) is most of the time."
        )
    if "track.freshness_p99_ms" in unmet:
        out.append("Freshness includes one full Rank after the ack; a slow Rank makes it slow too.")
    if (base.get("errors") or 0) > 0 or (base.get("rps") or 0) < 0.9 * r["rps_target"]:
        out.append(
            f"The baseline cannot sustain {r['rps_target']:g} req/s here: it served {_f(base.get('rps'), 1)} "
            f"req/s with {_f(base.get('errors'))} errors {_codes(base)} in a run bounded to "
            f"{_f(r['plan']['baseline_s'], 0)} s. Failed calls count at its {_f(r['plan']['baseline_timeout_s'], 0)} s "
            f"deadline, so its p99 is a lower bound, and when the fast path also misses its deadline "
            f"`ratio_p99` compares two censored numbers and says little. The like-for-like comparison is "
            f"unloaded, one call at a time: baseline p50 {_f(base['unloaded'].get('p50_ms'))} ms / p99 "
            f"{_f(base['unloaded'].get('p99_ms'))} ms against the fast path's p50 "
            f"{_f(rank['unloaded'].get('p50_ms'))} / p99 {_f(rank['unloaded'].get('p99_ms'))} ms: "
            f"{_f(r.get('ratio_p99_unloaded'), 1)}× at p99."
        )
    agree = base.get("agreement_with_fast") or {}
    if agree.get("users"):
        out.append(
            f"Like for like: ranking the same {agree['users']} users at the same moment in one process, the "
            f"baseline returned the fast path's top 10 in {agree['identical_top10']} cases (mean overlap "
            f"{_f(agree['mean_overlap_at_10'] * 100, 0)}%; largest score difference "
            f"{agree['max_abs_score_diff']:.2g})."
        )
    imp = st.get("impressions_on")
    if imp and r["impressions"].get("supported"):
        delta = imp["service_rank_miss_cpu_ms"] - (cpu or 0)
        cost = f"{_f(delta, 3)} ms" if delta > 0.05 else "no measurable"
        overloaded = (rank.get("errors") or 0) > 0 or (rank.get("rps") or 0) < 0.9 * r["rps_target"]
        out.append(
            f"Impression logging costs {cost} CPU per Rank in-process (writer thread included: "
            f"{_f(imp['service_rank_miss_cpu_ms'], 3)} ms with it, {_f(cpu, 3)} ms without). "
            + (
                "The gRPC on/off pair above ran at a rate the server cannot sustain, where small capacity "
                "differences and other load decide how long the queue gets; read it with that in mind."
                if overloaded
                else "In the gRPC on/off pair above, tails at this load move with small differences in how "
                "busy the cores were; compare their p50s."
            )
        )
    if (rank.get("send_lag_p99_ms") or 0) > 5:
        out.append(
            f"The load generator itself fell behind its schedule (send lag p99 {_f(rank['send_lag_p99_ms'])} ms, "
            f"{rank['late_sends']} of {rank['offered']} sends over 1 ms late): those requests are still "
            "charged from their scheduled time, so the latencies stay honest, but the box was saturated."
        )
    m = r["machine"]
    out.append(
        f"The load generator (Python, grpc.aio, one process) shares the {m['cores']} cores with the server, "
        f"so saturation and tail numbers are lower bounds of what the server alone would do. Load average "
        f"(1/5/15 min) was {m['loadavg_start']} at the start and {m.get('loadavg_end')} at the end (the bench "
        "itself accounts for about 2); more means other processes competed for the cores."
    )
    return out


GROUP_LABELS = {"brand_new": "brand-new ids (never in the event log)", "few_events": "users with 1-9 events"}


def _shares(server_cpu: dict[str, Any]) -> str:
    """Each server process's share of the CPU, busiest first (runs before the figure: nothing)."""
    shares = server_cpu.get("process_shares")
    return f"; shares by process {' / '.join(_pct(v) for v in shares)}" if shares else ""


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def sampling_lines(m: dict[str, Any] | None) -> list[str]:
    """What the tiers' sampling did to the player mix of Track events; nothing for runs without it."""
    if not m or not m.get("accepted"):
        return []
    mix = ", ".join(f"{t} {n:,}" for t, n in m["sent_by_type"].items())
    return [
        f"Track sampling (a player's mix of {m['sent']:,} events: {mix}): {m['accepted']:,} acknowledged, "
        f"{m['sampled_out']:,} of them ({m['sampled_out'] / m['accepted']:.1%}) sampled out by the batch tier "
        f"(`tiers.yaml`) and not stored, {m['stored']:,} stored; `make cost` prices what that saves.",
        "",
    ]


def new_users_lines(r: dict[str, Any]) -> list[str]:
    """The new-user scenario as a paragraph (nothing for runs that did not measure it)."""
    nu = r.get("rank_new_users")
    if not nu:
        return []
    sel = nu.get("selection") or {}
    few = sel.get("few_events") or {}
    groups = nu.get("by_group") or {}
    parts = [
        f"{GROUP_LABELS.get(g, g)}: p50 {_f(s.get('p50_ms'))} ms, p99 {_f(s.get('p99_ms'))} ms over {_f(s.get('n'))} "
        f"requests, {_pct(s.get('popularity_fraction'))} from the popularity fallback"
        for g, s in groups.items()
    ]
    target = next((t for t in r["targets"] if t["field"] == "rank_new_users.p99_ms"), None)
    verdict = ""
    if target is not None and target["met"] is not None:
        verdict = f" (the Rank target, {target['goal']}: {'met' if target['met'] else '**not met**'})"
    return [
        f"New users (fewer than {sel.get('below_events', 10)} events in the event log), cache off, at the main "
        f"open loop's {r['rps_target']:g} req/s for {_f(r['plan'].get('new_s'), 0)} s: p50 {_f(nu.get('p50_ms'))} "
        f"ms, p99 {_f(nu.get('p99_ms'))} ms{verdict} over {_f(nu.get('n'))} requests with {_f(nu.get('errors'))} "
        f"errors; all users' p99 was {_f(r['rank'].get('p99_ms'))} ms. The users: "
        f"{(sel.get('brand_new') or {}).get('users', 0)} brand-new ids and {few.get('users', 0)} consenting users "
        f"with {_f(few.get('events_min'))} to {_f(few.get('events_max'))} events (median "
        f"{_f(few.get('events_median'), 0)}), requests alternating between the two kinds. By kind: "
        + "; ".join(parts)
        + ".",
        "",
    ]


def tracing_lines(t: dict[str, Any] | None, rps_target: float) -> list[str]:
    """The tracing on/off comparison as a paragraph (nothing for runs that did not measure it)."""
    if not t:
        return []
    ip = t["in_process"]
    cpu = {k: (v or {}).get("cpu_ms_per_request") for k, v in (t.get("server_cpu") or {}).items()}
    overloaded = any((t[k].get("errors") or 0) > 0 or (t[k].get("rps") or 0) < 0.9 * rps_target for k in ("off", "on"))
    return [
        f"Tracing (`SETLIST_TRACING`; on: every trace kept, {t['exporter']}, {_f(ip['spans_per_rank'], 1)} spans "
        f"per cache-miss Rank in-process, {_f(t['spans_exported'])} spans exported by the server): over gRPC, "
        f"open loop p50 {_f(t['off']['p50_ms'])} ms off, {_f(t['on']['p50_ms'])} ms on, p99 "
        f"{_f(t['off']['p99_ms'])} / {_f(t['on']['p99_ms'])} ms, server CPU per request {_f(cpu.get('off'), 3)} / "
        f"{_f(cpu.get('on'), 3)} ms; unloaded p50 {_f(t['unloaded']['off']['p50_ms'])} "
        f"/ {_f(t['unloaded']['on']['p50_ms'])} ms. In-process CPU per cache-miss Rank (off and on in alternating "
        f"rounds, the export thread included): {_f(ip['off_cpu_ms'], 3)} ms off, {_f(ip['on_cpu_ms'], 3)} ms on, "
        f"{_f(ip.get('spans_only_cpu_ms'), 3)} ms with the spans made but not exported, "
        f"{_f(ip.get('sampled_0_1_cpu_ms'), 3)} ms keeping one trace in ten. Off, Rank creates no spans at all."
        + (
            " The open-loop pair ran at a rate the server could not sustain in at least one of the two runs: there "
            "the extra CPU of tracing (or other load on the machine) decides how long the queue gets, so compare "
            "the unloaded and in-process numbers."
            if overloaded
            else ""
        ),
        "",
    ]


def render(r: dict[str, Any], json_name: str, png_name: str) -> str:
    m, g, st = r["machine"], r["git"], r["stages"]
    lines = [
        f"# Setlist benchmark: {r['scale']} scale",
        "",
        f"Produced by `{r['command']}` at {r['finished_at']} in {_f(r['duration_s']['total'], 0)} s "
        f"(data preparation {_f(r['duration_s']['prepare'], 0)} s, "
        f"{'reused' if r['prepare']['reused'] else 'built'}; stage times when built: "
        f"{', '.join(f'{k} {v:.0f} s' for k, v in r['prepare']['stage_s'].items()) or '—'}).",
        f"Results: [`{json_name}`]({json_name}), plot [`{png_name}`]({png_name}).",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m.get('memory_gb')} GB; Python {m['python']}"
        + (
            f"; one core runs the reference workload in {_f(m['cpu_reference_ms'])} ms (`bench.machine`: "
            "scale CPU figures by it before comparing runs from different machines). "
            if m.get("cpu_reference_ms")
            else ". "
        )
        + f"Code: `{g['revision'][:12]}`"
        + (f" plus uncommitted edits to {', '.join(g['dirty_files'])}" if g["dirty_files"] else "")
        + ".",
        f"Data: `{r['generator_scale']}` generator, `{r['profile']}` profile; ranker with {r['trees']} trees over "
        f"{r['features']} features; {r['candidates']} candidates per request (measured mean "
        f"{_f(r['candidates_measured_mean'], 1)}); {r['rps_target']:g} req/s open loop (Poisson arrivals, "
        f"latency from the scheduled send time); {r['plan'].get('workers', 1)} server worker process(es), "
        f"load spread over {r['plan'].get('channels', 1)} connections."
        + (
            f" What-if run: every server had {r['plan']['server_env']} in its environment."
            if r["plan"].get("server_env")
            else ""
        ),
        "",
        "## Results against the targets",
        "",
        "| Target | Goal | Measured | Met |",
        "|---|---|---|---|",
    ]
    for t in r["targets"]:
        met = "—" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['goal']} | {_f(t['measured'])} | {met} |")
    lines += [
        "",
        "## Latency (ms, client side)",
        "",
        "Failed calls are counted as taking at least their deadline (2 s fast, "
        f"{_f(r['plan']['baseline_timeout_s'], 0)} s baseline); `p99_ok_only_ms` in the JSON leaves them out.",
        "",
        "| Run | p50 | p90 | p99 | p99.9 | max | ok req/s | errors |",
        "|---|---|---|---|---|---|---|---|",
        _latency_row(f"fast, cache miss, open loop {r['rps_target']:g} req/s", r["rank"]),
        _latency_row("fast, cache miss, unloaded (one at a time)", r["rank"]["unloaded"]),
    ]
    if r.get("rank_new_users"):
        lines.append(_latency_row("fast, cache miss, new users (< 10 events), same rate", r["rank_new_users"]))
        for g, s in r["rank_new_users"].get("by_group", {}).items():
            lines.append(_latency_row(f"… of which {GROUP_LABELS.get(g, g)}", s))
    for c, s in r["saturation"]["by_concurrency"].items():
        lines.append(_latency_row(f"fast, cache miss, closed loop {c} workers", s))
    if r["impressions"].get("supported"):
        lines.append(_latency_row("fast, cache miss, impression logging on", r["impressions"]["on"]))
    if r.get("tracing"):
        lines.append(_latency_row("fast, cache miss, tracing on (console exporter)", r["tracing"]["on"]))
        lines.append(_latency_row("fast, cache miss, tracing on, unloaded", r["tracing"]["unloaded"]["on"]))
    lines += [
        _latency_row(f"fast, cache hit, open loop {r['rps_target']:g} req/s", r["cache_hit"]),
        _latency_row("fast, cache hit, unloaded (one at a time)", r["cache_hit"].get("unloaded", {})),
        _latency_row(f"baseline, open loop {r['rps_target']:g} req/s (bounded run)", r["baseline"]),
        _latency_row("baseline, unloaded (one at a time)", r["baseline"]["unloaded"]),
        "",
        f"Track: {_f(r['track']['events_per_s'], 0)} events/s; freshness p50 "
        f"{_f(r['track']['freshness_p50_ms'])} ms, p99 {_f(r['track']['freshness_p99_ms'])} ms over "
        f"{r['track']['freshness']['trials']} trials. Impression logging: "
        + ("measured on and off above." if r["impressions"].get("supported") else r["impressions"]["note"] + "."),
        "",
        *sampling_lines(r["track"].get("sampling")),
        *new_users_lines(r),
        *tracing_lines(r.get("tracing"), r["rps_target"]),
        "## Where a cache-miss Rank spends its time (in-process, no gRPC)",
        "",
        "| Stage | p50 ms | p99 ms |",
        "|---|---|---|",
    ]
    for name, s in st["stages_ms"].items():
        label = STAGE_LABELS.get(name, "the same matrices scored by a one-thread booster (comparison only)")
        lines.append(f"| {label} | {_f(s['p50_ms'], 3)} | {_f(s['p99_ms'], 3)} |")
    lines += [
        f"| whole `service.rank`, cache off | {_f(st['service_rank_miss_ms']['p50_ms'], 3)} | "
        f"{_f(st['service_rank_miss_ms']['p99_ms'], 3)} |",
        f"| whole `service.rank`, cache hit | {_f(st['service_rank_hit_ms']['p50_ms'], 3)} | "
        f"{_f(st['service_rank_hit_ms']['p99_ms'], 3)} |",
        f"| CPU per cache-miss `service.rank` (all threads) | {_f(st.get('service_rank_miss_cpu_ms'), 3)} | |",
        f"| gRPC + client overhead (unloaded client p50 − service p50) | "
        f"{_f(st.get('grpc_and_client_overhead_p50_ms'), 3)} | |",
        "",
        "Most own time per cache-miss Rank (cProfile, so inflated by the profiler):",
        "",
    ]
    lines += [
        f"- `{p['function']}`: {p['own_ms_per_rank']:.3f} ms own, {p['cumulative_ms_per_rank']:.3f} ms "
        f"cumulative, {p['calls_per_rank']:g} calls"
        for p in st["profile_top"][:8]
    ]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes(r)] + [""]
    return "\n".join(lines)
