"""A dedicated data directory per bench scale, prepared by the real pipeline and reused when it can be.

The stages run as subprocesses (``python -m ingest generate``, ``feature_repo materialize``,
``training``) exactly as ``make demo`` runs them, with ``SETLIST_*`` pointing at the bench's own
directory and stores, so a benchmark never touches ``var/data`` or the services' default databases.
A marker file written after the last stage records scale, seed and stage timings; a directory whose
marker matches is reused, anything else is rebuilt from scratch.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
MARKER = "bench-prepared.json"
MARKER_VERSION = 1
# The production profile's stores, bench-only: Redis database 1 and PostgreSQL database setlist_bench
# on the servers `make services` runs, so the bench neither reads nor clobbers anyone's registry.
BENCH_REDIS_URL = "redis://127.0.0.1:6379/1"
BENCH_DATABASE_URL = "postgresql://setlist:setlist@127.0.0.1:5432/setlist_bench"


@dataclass(frozen=True)
class Scale:
    name: str  # small | full
    generator: str  # ingest's scale: demo | bench
    profile: str  # local | production

    def data_dir(self) -> Path:
        return ROOT / "var" / "bench" / self.name


SCALES = {"small": Scale("small", "demo", "local"), "full": Scale("full", "bench", "production")}


@dataclass
class Prepared:
    scale: Scale
    data_dir: Path
    env: dict[str, str]
    reused: bool
    stage_s: dict[str, float] = field(default_factory=dict)


def base_env(scale: Scale, data_dir: Path) -> dict[str, str]:
    env = {
        "SETLIST_DATA_DIR": str(data_dir),
        "SETLIST_PROFILE": scale.profile,
        "PYTHONPATH": str(ROOT),
        # BLAS threads oversubscribe 2 cores when the pipeline's libraries each start a pool
        "OPENBLAS_NUM_THREADS": "1",
    }
    if scale.profile == "production":
        env["SETLIST_REDIS_URL"] = os.environ.get("SETLIST_BENCH_REDIS_URL", BENCH_REDIS_URL)
        env["SETLIST_DATABASE_URL"] = os.environ.get("SETLIST_BENCH_DATABASE_URL", BENCH_DATABASE_URL)
        env["SETLIST_HMAC_KEY"] = _bench_key(data_dir)
        # the bench's servers listen on loopback only, and measure the path without TLS
        env["SETLIST_INSECURE"] = "true"
    return env


def _bench_key(data_dir: Path) -> str:
    """Production refuses to start without a key; the bench makes one per data dir, kept beside it."""
    path = data_dir / "secrets" / "bench-hmac.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        os.chmod(path, 0o600)
    return path.read_text().strip()


def _matches(marker: Path, scale: Scale, seed: int) -> dict | None:
    try:
        m = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    same = (m.get("version"), m.get("scale"), m.get("generator"), m.get("seed"), m.get("profile")) == (
        MARKER_VERSION,
        scale.name,
        scale.generator,
        seed,
        scale.profile,
    )
    return m if same else None


def prepare(scale: Scale, seed: int, console: Console, fresh: bool = False) -> Prepared:
    data_dir = scale.data_dir()
    marker = data_dir / MARKER
    if scale.profile == "production":
        start_services(scale, data_dir, console)
    m = None if fresh else _matches(marker, scale, seed)
    if (
        m is not None
        and scale.profile == "production"
        and "materialize" in m.get("stage_s", {})
        and not stores_intact(base_env(scale, data_dir))
    ):
        # The data dir survived but the services lost the bench's stores (restarted with fresh data,
        # or emptied): the event log is still here, so publish and train again.
        console.print(
            "[yellow]the bench's Redis/PostgreSQL stores are empty or incomplete[/]: "
            "materializing and training again from the kept event log"
        )
        reset_stores(base_env(scale, data_dir), console)
        m = {**m, "complete": False, "stage_s": {k: v for k, v in m["stage_s"].items() if k == "generate"}}
    if m is not None and m.get("complete"):
        console.print(
            f"[green]reusing[/] {data_dir} (prepared {m['prepared_at']}, scale={scale.generator}, "
            f"seed={seed}); pass --fresh to rebuild"
        )
        return Prepared(scale, data_dir, base_env(scale, data_dir), True, m.get("stage_s", {}))
    timings: dict[str, float] = dict(m.get("stage_s", {})) if m else {}
    if m is None:  # nothing usable: start from an empty directory (and empty bench stores)
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        if scale.profile == "production":
            reset_stores(base_env(scale, data_dir), console)
    env = base_env(scale, data_dir)
    stages = [
        ("generate", ["ingest", "generate", "--scale", scale.generator, "--seed", str(seed)]),
        ("materialize", ["feature_repo", "materialize"]),
        ("train", ["training"]),
    ]
    for n, (name, args) in enumerate(stages, 1):
        if name in timings:  # finished by an earlier, interrupted preparation: resume after it
            console.print(f"[{n}/{len(stages)}] {name} [green]already done[/] ({timings[name]:,.1f}s earlier)")
            continue
        timings[name] = run_stage(
            f"[{n}/{len(stages)}] {name}", args, env, data_dir / "logs" / f"prepare-{name}.log", console
        )
        _write_marker(marker, scale, seed, timings, complete=len(timings) == len(stages))
    return Prepared(scale, data_dir, env, False, timings)


def _write_marker(marker: Path, scale: Scale, seed: int, timings: dict[str, float], complete: bool) -> None:
    """Written after every stage, so an interrupted preparation resumes instead of starting over."""
    marker.write_text(
        json.dumps(
            {
                "version": MARKER_VERSION,
                "scale": scale.name,
                "generator": scale.generator,
                "seed": seed,
                "profile": scale.profile,
                "stage_s": timings,
                "complete": complete,
                "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )


def run_stage(title: str, module_args: list[str], env: dict[str, str], log: Path, console: Console) -> float:
    """Run ``python -m <module_args>`` with its output in ``log``; a live timer shows progress."""
    log.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"{title}: python -m {' '.join(module_args)} [dim](output in {log})[/]")
    started = time.monotonic()
    with open(log, "wb") as out, console.status(f"{title}: python -m {' '.join(module_args)}") as status:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        while True:
            try:
                proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                status.update(f"{title}: python -m {' '.join(module_args)}  [dim]{time.monotonic() - started:,.0f}s[/]")
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{title} failed (exit {proc.returncode}) after {seconds:.0f}s; log {log}:\n{tail}")
    console.print(f"{title} [green]done[/] in {seconds:,.1f}s")
    return seconds


def start_services(scale: Scale, data_dir: Path, console: Console) -> None:
    """``scripts/services.sh up`` with the bench's URLs: starts Redis/PostgreSQL if needed and creates
    the bench database (idempotent; servers already running are left as they are)."""
    script = ROOT / "scripts" / "services.sh"
    if not script.exists():
        raise RuntimeError("full scale needs Redis and PostgreSQL: scripts/services.sh is missing")
    env = {**os.environ, **base_env(scale, data_dir)}
    done = subprocess.run([str(script), "up"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/services.sh up failed:\n{done.stdout}{done.stderr}")
    console.print(done.stdout.strip())


def stores_intact(env: dict[str, str]) -> bool:
    """Whether the production stores still hold what a preparation put there: online rows in Redis,
    the Feast registry and an MLflow champion in PostgreSQL."""
    import redis
    from sqlalchemy import create_engine, text

    from setlist.registry import CHAMPION

    url = env["SETLIST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        if redis.Redis.from_url(env["SETLIST_REDIS_URL"], socket_timeout=3).dbsize() == 0:
            return False
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                views = conn.execute(text("SELECT count(*) FROM feature_views")).scalar()
                champions = conn.execute(
                    text("SELECT count(*) FROM registered_model_aliases WHERE alias = :alias"), {"alias": CHAMPION}
                ).scalar()
        finally:
            engine.dispose()
    except Exception:
        return False
    return bool(views) and bool(champions)


def reset_stores(env: dict[str, str], console: Console) -> None:
    """Empty the bench's Redis database and PostgreSQL schema before a fresh preparation, so a new
    model is not judged against (or kept behind) a champion from an earlier bench run."""
    import redis
    from sqlalchemy import create_engine, text

    redis.Redis.from_url(env["SETLIST_REDIS_URL"]).flushdb()
    url = env["SETLIST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    console.print("emptied the bench's Redis database and PostgreSQL schema")
