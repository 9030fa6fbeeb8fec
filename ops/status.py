"""``python -m ops status``: the whole loop at a glance, each line with an age and a mark.

It reads what the stages leave behind, never asks them to run: the event log and the journals on
disk, the feature publish log, the lineage ledger (every gate run), the jobs' status files
(setlist.jobmetrics), the model registry, and, when a server answers, its health and /metrics. The
SLO file (``SETLIST_SLO_FILE``) says what "holding" means; the command exits 1 when an SLO is broken
or a store it depends on is down or unreadable, so cron and CI can gate on it. A source that cannot be
read is a line that says so, not a traceback.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from serving.hosts import bare_host
from setlist import jobmetrics, lineage
from setlist.cli import console as cli_console
from setlist.cli import first_line, require_data_dir, store_down
from setlist.errors import BadInput, InputMissing
from setlist.eventlog import EventLog
from setlist.journal_dirs import held_files, journal_dirs, read_held
from setlist.settings import Settings, get_settings
from setlist.yamlfile import load_yaml

if TYPE_CHECKING:
    from training.lineage import ManualPromotion

Mark = Literal["ok", "fail", "warn", "none"]
_GLYPH = {"ok": "[green]✓[/]", "fail": "[bold red]✗[/]", "warn": "[yellow]![/]", "none": "[dim]·[/]"}
_SLO_MARK: dict[str, Mark] = {"holds": "ok", "broken": "fail", "no data": "none"}
#: how long status waits for a server's health answer or /metrics page
PROBE_TIMEOUT_S = 1.0

Samples = list[tuple[str, dict[str, str], float]]


@dataclass
class Line:
    section: str
    name: str
    mark: Mark
    value: str
    age_s: float | None = None  # seconds since what the line reports happened
    data: dict[str, Any] = field(default_factory=dict)


def _unreadable(exc: BaseException) -> dict[str, Any]:
    """A source whose store is down: status cannot say the loop holds, so it exits 1. Another error (a
    version deleted by hand, a bug) is its line's failure, not an outage a cron gate should fail on."""
    return {"unreadable": True} if store_down(exc) is not None else {}


# --- reading the sources -------------------------------------------------------------------------------
def _age(then: float | None, now: float) -> float | None:
    return None if then is None else max(0.0, now - then)


def event_lines(settings: Settings, now: float) -> list[Line]:
    events = EventLog(settings.events_dir)
    files = events.files()
    if not files:
        return [Line("events", "event log", "fail", f"empty ({settings.events_dir}): run make demo or make import")]
    newest_write = max(f.stat().st_mtime for f in files)
    newest_day = max(f.parent.name.removeprefix("date=") for f in files)
    lines = [
        Line(
            "events",
            "newest event",
            "ok",
            f"{len(files):,} files, newest partition {newest_day}; last write",
            _age(newest_write, now),
        )
    ]
    oldest = _oldest_unlogged(settings.journal_sweep_dir or settings.wal_dir)
    lag = _age(oldest, now) or 0.0
    lines.append(Line("events", "ingest lag", "ok", _dur(lag) + (" (journal → event log)" if oldest else ""), None))
    lines[-1].data["seconds"] = lag
    lines.extend(_held_lines(settings.journal_sweep_dir or settings.wal_dir, now))
    lines.extend(key_lines(settings))
    from ingest import erasure  # reads the tombstones and the receipts

    if cut := erasure.unfinished(settings):
        n, who = len(cut), "the users are" if len(cut) != 1 else "the user is"
        digests = ", ".join(u.digest[:12] for u in cut[:5]) + (", …" if n > 5 else "")
        lines.append(
            Line(
                "events",
                "erasure cut short",
                "fail",
                f"{n} erasure{'s' if n != 1 else ''} started, never wrote a receipt (killed, or ended by an error; "
                f"digest {digests}, as receipts are named): {who} out of every read, but copies the run had not "
                "reached stay until the same `make erase USER_ID=…` runs again",
                _age(cut[0].started.timestamp(), now),
            )
        )
    if left := erasure.left_copies(settings):
        n = len(left)
        digests = ", ".join(d[:12] for d, _, _ in left[:5]) + (", …" if n > 5 else "")
        places = sum(p for _, p, _ in left)
        lines.append(
            Line(
                "events",
                "erasure left copies",
                "fail",
                f"{n} erasure{'s' if n != 1 else ''} (digest {digests}) found the user in {places} place(s) after "
                "erasing: run the same `make erase USER_ID=…` again (ERASE_ARGS=--pseudonym for one by pseudonym)",
                _age(left[0][2].timestamp(), now),
            )
        )
    erased, last = erasure.erased_users(settings)
    if erased:
        lines.append(
            Line(
                "events",
                "erasures",
                "ok",
                f"{erased} user{'s' if erased != 1 else ''} erased (receipts in "
                f"{settings.data_dir / erasure.RECEIPTS}), the last {_ago(last.timestamp() if last else None, now)}",
            )
        )
    lines.extend(_import_lines(settings, now))
    return lines


def _import_lines(settings: Settings, now: float) -> list[Line]:
    """Imports that wrote to the event log and never finished: the log holds part of each file until the
    same import runs again. The job's own "(killed)" line goes as soon as any import reports; this one
    stays until that file is imported whole. An import running now is not one of them."""
    alive = [r for r in jobmetrics.running(settings.status_dir) if r.job == "import" and r.alive]
    cut = []
    for record in lineage.unfinished_imports(settings.lineage_dir):
        at = datetime.fromisoformat(str(record["at"])).timestamp()
        if record["ended"] is None and _running_now(record, at, alive):
            continue
        cut.append((at, record))
    if not cut:
        return []
    named = []
    for _, record in cut[:5]:
        how = "killed" if record["ended"] is None else f"ended by {str(record['ended'])[:80]}"
        named.append(f"{record.get('source', '?')} ({how})")
    more = f", and {len(cut) - 5} more" if len(cut) > 5 else ""
    n = len(cut)
    text = (
        f"{n} import{'s' if n != 1 else ''} wrote to the event log and never finished: {'; '.join(named)}{more}. "
        "The log holds part of each: the same `make import` again completes it (rows already logged are "
        "counted, not stored twice); `make lineage` lists them"
    )
    return [Line("events", "import cut short", "warn", text, _age(cut[0][0], now))]


def _running_now(record: dict[str, Any], at: float, alive: list[jobmetrics.Running]) -> bool:
    """Whether an import's record may be that of a run alive now: the same process (pid and host, as
    its job mark names them), or, for records from before imports named their process, a run that
    started before it (records are stamped to the second)."""
    if "pid" in record:
        return any((r.pid, r.host) == (record["pid"], record.get("host")) for r in alive)
    return any(r.started < at + 1 for r in alive)


def _held_lines(wal_root: Path, now: float) -> list[Line]:
    """Consent withdrawals a server took while the online store did not answer, not written there yet."""
    files = {path: read_held(path, look_only=True) for path in held_files(wal_root)}
    held = {path: users for path, users in files.items() if users}
    if not held:
        return []
    users, dirs = sum(len(u) for u in held.values()), len(held)
    oldest = min(r["timestamp"].timestamp() for u in held.values() for rows in u.values() for r in rows)
    return [
        Line(
            "events",
            "consent withdrawals held",
            "warn",
            f"{users} user{'s' if users != 1 else ''} withdrew a consent the online store has not taken yet "
            f"(held in {dirs} journal director{'ies' if dirs != 1 else 'y'}; age: the oldest withdrawal's): a "
            "running server pushes them once the store answers; a dead one's wait for the next server start on "
            "this WAL directory (a materialize meanwhile writes their consent from the event log, and this line "
            "stays until a server takes them over)",
            _age(oldest, now),
        )
    ]


def _oldest_unlogged(wal_root: Path) -> float | None:
    """The creation time of the oldest non-empty journal segment not yet moved into the log."""
    oldest: float | None = None
    for directory in journal_dirs(wal_root):
        for segment in directory.glob("*.jsonl"):
            try:
                if segment.stat().st_size == 0:
                    continue
                created = int(segment.name.split("-", 1)[0]) / 1e9
            except (OSError, ValueError):
                continue
            oldest = created if oldest is None else min(oldest, created)
    return oldest


def feature_lines(settings: Settings, now: float) -> list[Line]:
    from setlist.publish import cut_short, in_progress

    lines = _publish_lines(settings, now)
    if unfinished := cut_short(settings.features_dir):
        lines.append(Line("features", "publish cut short", "fail", unfinished))
    elif running := in_progress(settings.features_dir):
        lines.append(Line("features", "publish in progress", "none", running))
    return lines


def _publish_lines(settings: Settings, now: float) -> list[Line]:
    from setlist.publish import PublishLog

    try:
        log = PublishLog(settings.metadata_url, settings.database_connect_timeout_s)
        try:
            latest = log.latest()
        finally:
            log.dispose()
    except Exception as exc:
        why = f"cannot read the publish log: {type(exc).__name__}: {first_line(exc)}"
        return [Line("features", "last publish", "fail", why, data=_unreadable(exc))]
    if latest is None:
        return [Line("features", "last publish", "fail", "never published: run make materialize")]
    published = latest.published_at.timestamp()
    uncovered = EventLog(settings.events_dir).oldest_write_after(published)
    lag = _age(uncovered, now) or 0.0
    return [
        Line("features", "last publish", "ok", f"v{latest.version}, {latest.rows:,} rows", _age(published, now)),
        Line(
            "features",
            "feature lag",
            "ok" if uncovered is None else "warn",
            "every event is covered" if uncovered is None else f"events written {_dur(lag)} ago are not published",
            None,
            {"seconds": lag},
        ),
    ]


def gate_lines(settings: Settings, now: float) -> list[Line]:
    """Each gate's newest run, from the lineage ledger (every gate run is recorded there)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in lineage.gates(settings.lineage_dir):
        latest[str(record["gate"])] = record
    if not latest:
        return [Line("gates", "gates", "none", "no gate has run yet: make validate")]
    lines = []
    for gate, record in sorted(latest.items()):
        at = datetime.fromisoformat(str(record["at"])).timestamp()
        mark: Mark = "fail" if not record.get("passed") else ("warn" if record.get("warnings") else "ok")
        value = {"fail": "fail", "warn": f"pass, {record.get('warnings')} warnings", "ok": "pass"}[mark]
        if record.get("manual"):  # a promotion by hand passed no gate: it was overridden, with a reason
            mark, value = "warn", f"overridden by hand: {str(record.get('reason', ''))[:60]}"
        lines.append(Line("gates", gate, mark, value, _age(at, now)))
    return lines


def job_lines(settings: Settings, now: float) -> list[Line]:
    status = jobmetrics.read_status(settings.status_dir)
    lines = []
    for job, samples in sorted(status.items()):

        def value(name: str, job: str = job, samples: dict[Any, float] = samples) -> float | None:
            return samples.get((name, (("job", job),)))

        failed = value("setlist_job_failed") == 1.0
        last_run = value("setlist_job_last_run_timestamp_seconds")
        success = value("setlist_job_last_success_timestamp_seconds")
        took = value("setlist_job_duration_seconds")
        how = "was stopped (Ctrl-C or SIGTERM); run it again" if value("setlist_job_interrupted") else "failed"
        text = f"last run {how} (last success {_ago(success, now)})" if failed else f"succeeded in {_dur(took or 0)}"
        lines.append(Line("jobs", job, "fail" if failed else "ok", text, _age(last_run, now)))
        lines += _skipped_lines(samples, now)
    for run in jobmetrics.running(settings.status_dir):
        where = f"process {run.pid} on {run.host}"
        if not run.alive and run.ended == "failed":
            text = f"the last run failed and could not write its status file ({run.unreported}); run it again"
            lines.append(Line("jobs", f"{run.job} (unreported)", "fail", text, _age(run.started, now)))
        elif not run.alive and run.ended is not None:
            text = f"the last run {run.ended} but could not write its status file ({run.unreported})"
            lines.append(Line("jobs", f"{run.job} (unreported)", "warn", text, _age(run.started, now)))
        elif not run.alive:
            text = f"a run started {_ago(run.started, now)} never ended ({where} is gone: killed); run it again"
            lines.append(Line("jobs", f"{run.job} (killed)", "fail", text, _age(run.started, now)))
        else:
            lines.append(Line("jobs", f"{run.job} (running)", "none", f"since {_ago(run.started, now)}, {where}"))
    return lines or [Line("jobs", "jobs", "none", f"no job has reported yet ({settings.status_dir})")]


def _skipped_lines(samples: dict[Any, float], now: float) -> list[Line]:
    """A dataset the last compaction left alone (another job held it), with how long it has gone without one."""
    lines = []
    for (name, labels), value in sorted(samples.items()):
        if name != "setlist_compaction_skipped" or value != 1.0:
            continue
        dataset = dict(labels).get("dataset", "?")
        last = samples.get(("setlist_compaction_last_timestamp_seconds", labels))
        since = f"last compacted {_ago(last, now)}" if last is not None else "no compaction of it on record"
        text = f"skipped by the last run: another job was using it; {since}"
        lines.append(Line("jobs", f"compaction ({dataset})", "warn", text, _age(last, now)))
    return lines


def model_lines(settings: Settings, now: float) -> list[Line]:
    from setlist import mlflow_runs, registry

    if registry.no_store_yet(settings):  # nothing trained here: looking would create the database
        return [
            Line("models", registry.CHAMPION, "fail", "not set: run make train"),
            Line("models", registry.CHALLENGER, "none", "not set"),
        ]
    try:
        client = registry.reader(settings)  # within the connect deadline: MLflow alone retries for minutes
        pairs = {
            alias: registry.find_pair(client, settings, alias) for alias in (registry.CHAMPION, registry.CHALLENGER)
        }
        facts = {alias: registry.pair_facts(client, settings, pair) for alias, pair in pairs.items()}
    except Exception as exc:
        return [
            Line(
                "models",
                "registry",
                "fail",
                f"cannot read the model registry: {type(exc).__name__}: {first_line(exc)}",
                data=_unreadable(exc),
            )
        ]
    lines = []
    for alias, versions in facts.items():
        if not versions:
            mark: Mark = "fail" if alias == registry.CHAMPION else "none"
            lines.append(Line("models", alias, mark, "not set" + (": run make train" if mark == "fail" else "")))
            continue
        ranker = versions[-1]
        shown = {k: v for k, v in ranker.metrics.items() if k in ("ndcg_at_10", "recall_at_10")}
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
        pair = "+".join(f"{f.model} v{f.version}" for f in versions)
        lines.append(Line("models", alias, "ok", f"{pair}; {metrics}", _age(ranker.created, now), ranker.metrics))
        found = pairs[alias]
        if found is not None and found.cut_short:
            lines.append(Line("models", f"{alias} alias", "warn", found.cut_short))
        same_as_champion = alias == registry.CHALLENGER and pairs[alias] == pairs[registry.CHAMPION]
        promotion = None if same_as_champion else _manual_promotion(client, settings, ranker.version)
        # a recorded one is the gates' "overridden by hand" line already; one cut short is said here
        if promotion is not None and promotion.state != "recorded":
            lines.append(Line("models", f"{alias} promotion", "warn", promotion.says()))
        if alias == registry.CHAMPION:
            lines.append(_canary_line(client, settings, ranker.version))
    try:
        elsewhere = registry.artifacts_elsewhere(client, settings)
    except Exception:  # the pairs were read: a registry that answers those answers this; never fail status on it
        elsewhere = None
    if elsewhere is not None:
        lines.append(Line("models", "model files", "warn", registry.ELSEWHERE % (elsewhere, settings.artifact_root)))
    left = mlflow_runs.left_open(settings)
    if left:
        text = (
            f"{len(left)} MLflow run(s) left RUNNING by a process that stopped ({', '.join(r[:8] for r in left[:3])}"
            f"{', …' if len(left) > 3 else ''}); the next training or report ends them FAILED"
        )
        lines.append(Line("models", "runs left open", "warn", text))
    return lines


def _manual_promotion(client: Any, settings: Settings, ranker_version: str) -> ManualPromotion | None:
    from training.lineage import manual_promotion  # the reason tag and the ledger line, read as lineage reads them

    try:
        return manual_promotion(client, settings, str(ranker_version))
    except Exception:  # the pair's own lines already said what the registry answered
        return None


def _canary_line(client: Any, settings: Settings, ranker_version: str) -> Line:
    from setlist import registry

    tags = registry.ranker_tags(client, settings, ranker_version)
    state = tags.get(registry.TAG_ROLLOUT_STATUS)
    if state is None:
        return Line("models", "canary", "none", "no rollout recorded on the champion")
    share = tags.get(registry.TAG_ROLLOUT_SHARE, "?")
    reason = tags.get(registry.TAG_ROLLOUT_REASON, "")
    mark: Mark = "warn" if state == "rolled_back" else "ok"
    at = tags.get(registry.TAG_ROLLOUT_AT)
    when = _parse_time(at) if at else None
    return Line("models", "canary", mark, f"{state}, share {share}" + (f": {reason}" if reason else ""), when)


def _parse_time(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# --- serving ---------------------------------------------------------------------------------------------
def replicas(target: str) -> list[str]:
    """The servers a named ``host:port`` stands for: one per address its host resolves to, where it resolves
    to several (a Kubernetes headless Service names every ready pod so, ``setlist-serving-headless:50051``);
    else the target as given (an address, one server's name, a name that does not resolve now). Among a
    name's addresses the IPv4 ones are taken when there are any: ``localhost`` is one server, not two."""
    import socket

    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return [target]
    try:
        found = socket.getaddrinfo(bare_host(host), int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return [target]
    v4 = [str(a[4][0]) for a in found if a[0] == socket.AF_INET]
    addresses = list(dict.fromkeys(v4 or [str(a[4][0]) for a in found]))
    if len(addresses) < 2:
        return [target]
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]


def _targets(settings: Settings, expanded: dict[str, list[str]] | None = None) -> list[tuple[str, list[str]]]:
    """Each server's gRPC target for health, with its /metrics URLs (one per worker):
    ``SETLIST_STATUS_TARGET`` names one or more (replicas, comma-separated; a name that resolves to several
    addresses stands for each, ``replicas``, and is put in ``expanded`` with them), else this host's."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    given = [t.strip() for t in (settings.status_target or "").split(",") if t.strip()]
    each = {t: replicas(t) for t in given}
    if expanded is not None:
        expanded.update({t: r for t, r in each.items() if r != [t]})
    named = list(dict.fromkeys(r for t in given for r in each[t]))
    out = []
    for target in named or [f"{host}:{settings.health_port or settings.port}"]:
        metrics_host = target.rsplit(":", 1)[0] if named else (settings.metrics_host or host)
        if metrics_host in ("0.0.0.0", "::"):
            metrics_host = "127.0.0.1"
        workers = range(max(1, settings.workers))
        out.append((target, [f"http://{metrics_host}:{settings.metrics_port + i}/metrics" for i in workers]))
    return out


def serving_health(settings: Settings, target: str | None = None) -> str | None:
    """SERVING / NOT_SERVING, or None when nothing answers (``target``: the first server's by default)."""
    from serving.client.api import ClientError, SetlistClient

    target = target or _targets(settings)[0][0]
    tls = settings.tls_cert if settings.tls_cert is not None and settings.health_port is None else None
    try:
        with SetlistClient(target, tls_ca=tls, timeout=PROBE_TIMEOUT_S) as client:
            if not client.connect(PROBE_TIMEOUT_S):
                return None
            return client.health()
    except (ClientError, OSError):
        return None


def key_lines(settings: Settings) -> list[Line]:
    """A pseudonymization key the stored users were not written with: import, materialize, erasure and the
    server all refuse it, so the loop does not hold however green the rest reads (exit 1). Silent while
    the key matches, as every command that checks it is."""
    from setlist.pseudonym import KeyMismatch, check_key

    try:
        check_key(settings)
    except KeyMismatch as exc:
        return [Line("events", "pseudonymization key", "fail", str(exc), data={"stops": "the key is refused"})]
    except Exception as exc:  # the identity map's store down: said as such, never a traceback
        return [
            Line("events", "pseudonymization key", "fail", f"cannot check: {first_line(exc)}", data=_unreadable(exc))
        ]
    return []


def redis_line(settings: Settings) -> Line | None:
    """Whether the Redis of the server profiles answers (the online store in production, the shared cache,
    Track's dedupe and quotas in both). While it does not, Rank degrades and Track fails though the SLOs may
    still hold on the counters so far: a store down, so status exits 1, as for an unreadable registry."""
    if not settings.on_servers:
        return None
    from urllib.parse import urlsplit

    from setlist.redis_client import fail_fast_redis

    parts = urlsplit(settings.redis_url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    client = fail_fast_redis(settings.redis_url, PROBE_TIMEOUT_S, retries=0)
    try:
        client.ping()
    except Exception as exc:  # redis.RedisError, OSError: reported, never raised
        return Line(
            "serving",
            "redis",
            "fail",
            f"does not answer at {where} ({type(exc).__name__}): Rank degrades, Track's session pushes and "
            "dedupe fail (docs/runbooks/SetlistRedisDown.md)",
            data={"stops": "redis down"},
        )
    finally:
        client.close()
    return Line("serving", "redis", "ok", f"answers at {where}")


def scrape(urls: Iterable[str]) -> Samples | None:
    """Every sample of the servers' /metrics pages, or None when none answers."""
    return scrape_each(urls)[0]


def scrape_each(urls: Iterable[str]) -> tuple[Samples | None, list[str]]:
    """``scrape``, and the URLs that did not answer."""
    samples: Samples = []
    answered, silent = False, []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                text = response.read().decode("utf-8")
        except OSError:
            silent.append(url)
            continue
        answered = True
        for family in text_string_to_metric_families(text):
            samples.extend((s.name, dict(s.labels), float(s.value)) for s in family.samples)
    return (samples if answered else None), silent


def metrics_line(urls: list[str], silent: list[str]) -> Line:
    """How many of the workers' /metrics pages answered: the SLOs below are judged on those alone."""
    if not silent:
        return Line("serving", "metrics", "ok", f"{len(urls)} of {len(urls)} answered")
    hint = " (SETLIST_METRICS_PORT and SETLIST_WORKERS say where they are)" if len(silent) == len(urls) else ""
    value = f"{len(urls) - len(silent)} of {len(urls)} answered; not {', '.join(silent)}{hint}"
    return Line("serving", "metrics", "warn", value)


def scrape_servers(settings: Settings) -> Samples | None:
    """Every sample of the settings' servers' /metrics pages (one per worker), or None when none answers:
    what ``status`` judges the SLOs by and ``ops cost`` reads the CPU per call from."""
    return scrape([url for _, urls in _targets(settings) for url in urls])


# --- SLOs ---------------------------------------------------------------------------------------------
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_selector(selector: str) -> tuple[str, list[tuple[str, str, str]]]:
    """``name{label="v",code=~"A|B"}`` → (name, [(label, op, value)]): the subset of PromQL the SLO
    file's selectors use. Anything else raises BadInput."""
    m = re.fullmatch(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*", selector)
    if m is None:
        raise BadInput(f"cannot read the selector {selector!r} in the SLO file")
    name, body = m.group(1) or "", m.group(2) or ""
    matchers, pos = [], 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if mm is None:
            raise BadInput(f"cannot read the label matchers of {selector!r} in the SLO file")
        matchers.append((mm.group(1), mm.group(2), mm.group(3)))
        pos = mm.end()
    return name, matchers


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        have = labels.get(label, "")
        hit = re.fullmatch(value, have) is not None if op in ("=~", "!~") else have == value
        if hit != (op in ("=", "=~")):
            return False
    return True


def total(samples: Samples, selector: str, extra: str = "") -> float:
    name, matchers = parse_selector(selector)
    if extra:
        matchers += parse_selector("{" + extra + "}")[1]
    return sum(v for n, labels, v in samples if n == name and _matches(labels, matchers))


@dataclass
class Slo:
    name: str
    state: Literal["holds", "broken", "no data"]
    observed: str
    target: str


def judge(objectives: list[dict[str, Any]], samples: Samples | None, local: dict[str, float | None]) -> list[Slo]:
    """Each objective against what can be seen now: lifetime counters of the running servers (their
    ratios since start), the publish log's age, and the champion's metrics."""
    out = []
    for o in objectives:
        name, sli = str(o.get("name")), o.get("sli") or {}
        if "max_age_seconds" in o:
            age = local.get("feature_age")
            limit = float(o["max_age_seconds"])
            out.append(_threshold(name, age, limit, "max", _dur, f"≤ {_dur(limit)}"))
        elif "floor" in o:
            value = local.get(f"metric:{sli.get('metric', 'ndcg_at_10')}")
            floor = float(o["floor"])
            out.append(_threshold(name, value, floor, "min", "{:.4f}".format, f"≥ {floor:g}"))
        elif samples is None:
            out.append(Slo(name, "no data", "no server answered", _share(o)))
        elif "threshold_seconds" in o:
            hist, selector = str(sli.get("histogram")), str(sli.get("selector", ""))
            le = _bucket(samples, hist, selector, float(o["threshold_seconds"]))
            count = total(samples, f"{hist}_count{{{selector}}}")
            out.append(_ratio(name, le, count, float(o["objective"]), _share(o)))
        elif "errors" in sli:
            count = total(samples, str(sli["total"]))
            errors = total(samples, str(sli["errors"]))
            if sli.get("excused"):  # e.g. clients over their own quota
                errors = max(0.0, errors - total(samples, str(sli["excused"])))
            out.append(_ratio(name, count - errors, count, float(o["objective"]), _share(o)))
        elif "good" in sli:
            if total(samples, "setlist_ingest_lag_seconds") > 0:  # acknowledged events still on their way
                out.append(Slo(name, "no data", "events are rolling into the log; ask again", _share(o)))
                continue
            count = total(samples, str(sli["total"]))
            good = min(count, total(samples, str(sli["good"])))
            out.append(_ratio(name, good, count, float(o["objective"]), _share(o)))
        else:
            raise BadInput(f"SLO {name!r}: cannot tell what kind of objective it is (see the file's header)")
    return out


def _bucket(samples: Samples, hist: str, selector: str, threshold: float) -> float:
    """The count of the smallest bucket at or above ``threshold`` (what the histogram can resolve)."""
    name, matchers = parse_selector(f"{hist}_bucket{{{selector}}}")
    bounds = sorted({float(labels["le"]) for n, labels, _ in samples if n == name and "le" in labels})
    le = next((b for b in bounds if b >= threshold - 1e-12), math.inf)
    at_le = [(labels, v) for n, labels, v in samples if n == name and float(labels.get("le", "nan")) == le]
    return sum(v for labels, v in at_le if _matches(labels, matchers))


def _share(o: dict[str, Any]) -> str:
    return f"≥ {float(o.get('objective', 0)) * 100:g}%"


def _ratio(name: str, good: float, count: float, objective: float, target: str) -> Slo:
    if count <= 0:
        return Slo(name, "no data", "no requests yet", target)
    share = good / count
    return Slo(name, "holds" if share >= objective else "broken", f"{share * 100:.3f}% of {count:,.0f}", target)


def _threshold(
    name: str, value: float | None, limit: float, kind: Literal["max", "min"], fmt: Callable[[float], str], target: str
) -> Slo:
    if value is None:
        return Slo(name, "no data", "nothing to judge yet", target)
    holds = value <= limit if kind == "max" else value >= limit
    return Slo(name, "holds" if holds else "broken", fmt(value), target)


def load_objectives(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InputMissing(f"no SLO file at {path} (SETLIST_SLO_FILE)")
    try:
        doc = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}") from None
    objectives = doc.get("objectives") if isinstance(doc, dict) else None
    if not isinstance(objectives, list) or not all(isinstance(o, dict) and o.get("name") for o in objectives):
        raise BadInput(f"{path}: `objectives` must be a list of mappings, each with a name")
    return objectives


# --- the report -------------------------------------------------------------------------------------------
@dataclass
class Report:
    lines: list[Line]
    slos: list[Slo]

    @property
    def ok(self) -> bool:
        return not any(s.state == "broken" for s in self.slos) and not self.unreadable and not self.stops

    @property
    def stops(self) -> list[str]:
        """Why the loop does not hold now, SLOs aside: a store down, a key every job refuses, no server of
        those SETLIST_STATUS_TARGET names answering."""
        return [line.data["stops"] for line in self.lines if line.data.get("stops")]

    @property
    def unreadable(self) -> list[Line]:
        return [line for line in self.lines if line.data.get("unreadable")]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "lines": [asdict(line) for line in self.lines], "slos": [asdict(s) for s in self.slos]}


def collect(settings: Settings, now: float | None = None, probe: bool = True) -> Report:
    now = time.time() if now is None else now
    lines = [*event_lines(settings, now), *feature_lines(settings, now)]
    lines += gate_lines(settings, now) + job_lines(settings, now) + model_lines(settings, now)
    samples = None
    if probe:
        expanded: dict[str, list[str]] = {}
        targets = _targets(settings, expanded)
        for name, servers in expanded.items():
            lines.append(Line("serving", f"replicas {name}", "ok", f"{len(servers)} servers: {', '.join(servers)}"))
        urls = [url for _, server_urls in targets for url in server_urls]
        samples, silent = scrape_each(urls)  # the SLOs are judged on every replica's counters together
        answering = 0
        for target, _ in targets:
            health = serving_health(settings, target)
            answering += health is not None
            mark: Mark = "ok" if health == "SERVING" else ("warn" if health is None else "fail")
            name = "health" if len(targets) == 1 else f"health {target}"
            lines.append(Line("serving", name, mark, f"{health or 'not running'} at {target}"))
        if settings.status_target and not answering:
            # named on purpose (a deployment's servers, the cluster's Job): none answering is an outage, where
            # on one machine with no target a server not started yet is only a warning (make demo's status)
            lines.append(
                Line(
                    "serving",
                    "servers",
                    "fail",
                    f"none of the {len(targets)} named by SETLIST_STATUS_TARGET answered: Rank and Track are down",
                    data={"stops": "no server answered"},
                )
            )
        if settings.metrics_port == 0:
            lines.append(Line("serving", "metrics", "ok", "not served (SETLIST_METRICS_PORT=0): no SLO can be judged"))
        elif answering or len(silent) < len(urls):
            lines.append(metrics_line(urls, silent))
        redis = redis_line(settings)
        if redis is not None:
            lines.append(redis)
    local: dict[str, float | None] = {
        "feature_age": next((x.age_s for x in lines if x.name == "last publish" and x.mark == "ok"), None)
    }
    champion = next((x for x in lines if x.section == "models" and x.name == "champion" and x.mark == "ok"), None)
    for key, value in (champion.data if champion else {}).items():
        local[f"metric:{key}"] = value
    return Report(lines, judge(load_objectives(settings.slo_file), samples, local))


def _dur(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _ago(then: float | None, now: float) -> str:
    return "never" if then is None else f"{_dur(max(0.0, now - then))} ago"


def render(report: Report) -> None:
    console = cli_console()
    table = Table(title="setlist status", title_justify="left")
    for column in ("", "what", "state", "age"):
        table.add_column(column, justify="right" if column == "age" else "left")
    section = None
    for line in report.lines:
        if line.section != section:
            section = line.section
            table.add_row("", f"[bold]{section}[/]", "", "")
        table.add_row(_GLYPH[line.mark], line.name, line.value, "" if line.age_s is None else _dur(line.age_s))
    table.add_row("", "[bold]SLOs[/]", "", "")
    for s in report.slos:
        table.add_row(_GLYPH[_SLO_MARK[s.state]], s.name, f"{s.state}: {s.observed} (target {s.target})", "")
    console.print(table)
    broken = [s.name for s in report.slos if s.state == "broken"]
    if broken:
        console.print("[bold red]SLO broken: " + ", ".join(broken) + "[/]")
    if report.stops:
        console.print(f"[bold red]the loop does not hold: {', '.join(report.stops)}[/]")
    if report.unreadable:
        what = ", ".join(f"{line.section} ({line.name})" for line in report.unreadable)
        console.print(f"[bold red]cannot tell whether the loop holds: unreadable {what}[/]")
    if report.ok:
        console.print("[green]every SLO holds[/]")


def command(
    as_json: bool = typer.Option(False, "--json", help="print the same as one JSON object"),
    probe: bool = typer.Option(True, help="check the serving endpoint (health, /metrics); --no-probe skips it"),
) -> None:
    """The loop at a glance: events, ingest and feature lag, gates, jobs, models, canary, serving, SLOs.
    Exits 1 when an SLO is broken, a source (the publish log, the model registry) cannot be read, or the
    server profiles' Redis does not answer."""
    settings = get_settings()
    require_data_dir(settings.data_dir, "check the setting, or run make demo, make generate or make import first")
    report = collect(settings, probe=probe)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2, default=str))
    else:
        render(report)
    if not report.ok:
        raise typer.Exit(1)
