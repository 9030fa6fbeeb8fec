"""Where the drills run: one built world per profile, a private copy of it per scenario, and real
``python -m serving`` processes on that copy which a scenario can kill, restart and stop.

A server runs in a process group of its own, so ``kill`` reaches the parent and every worker at
once, as the loss of a node would. Its environment is built here from the scenario's settings alone:
``SETLIST_*`` variables of the calling shell are dropped, so a drill runs the same whatever the
operator has exported.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.backing import MissingServer, PostgresServer, RedisServer, free_port, wait_for
from bench.world import World, build_world, tiny_settings
from serving.client import ClientError, SetlistClient
from setlist.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVE = ("-m", "serving")
# As root, file permissions bind nobody: the read-only drill starts the server without the two
# capabilities that bypass them (the process stays root, it just has to respect mode bits).
WITHOUT_DAC_OVERRIDE = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
)
# the journal's disk steps logged as stalls: a tenth of the clients' 2 s deadline, so that a call
# that timed out behind the machine's own disk can be told from one the drill's fault failed
SLOW_WRITE_MS = "200"
READY_TIMEOUT_S = 120.0  # a server loads its models before it serves: ~10 s here, far more on a busy CI box
STOP_TIMEOUT_S = 60.0  # SIGTERM drains requests (10 s grace at most), then rolls every journal segment


class Skip(Exception):
    """The scenario cannot run on this machine (not root, no tmpfs, no Redis): why, for the report."""


@dataclass
class Lab:
    """One scenario's world: a private data directory, users and items to send events about, a work
    directory (server log, WAL, mounts) and, for the production profile, the backing servers."""

    name: str
    settings: Settings
    users: list[str]
    items: list[str]
    workdir: Path
    console: Console
    redis: RedisServer | None = None
    postgres: PostgresServer | None = None

    @classmethod
    def of(
        cls,
        name: str,
        world: World,
        workdir: Path,
        console: Console,
        redis: RedisServer | None = None,
        postgres: PostgresServer | None = None,
    ) -> Lab:
        workdir.mkdir(parents=True, exist_ok=True)
        users = [str(u) for u in world.users["user_id"][:50]]
        items = [str(i) for i in world.items["item_id"][:50]]
        return cls(name, world.settings, users, items, workdir, console, redis, postgres)

    def say(self, message: str) -> None:
        self.console.print(f"  [dim]{self.name}:[/] {message}", highlight=False)


def production_settings(data_dir: Path, redis_url: str, database_url: str) -> Settings:
    """The tiny world's settings on the production profile: features and sessions in Redis, the
    registry and MLflow in PostgreSQL, plaintext on loopback (which production allows only when told).
    Rank reads the online store with a 100 ms budget, so a dead Redis degrades it instead of failing it."""
    return tiny_settings(
        data_dir,
        profile="production",
        redis_url=redis_url,
        database_url=database_url,
        mlflow_tracking_uri=None,
        insecure=True,
        online_timeout_ms=100,
    )


def copy_world(world: World, data_dir: Path) -> World:
    """A private copy of ``world``'s data directory, for a scenario that writes to it. MLflow keeps
    absolute artifact locations, so the copy reads its models from the original: fine for serving."""
    shutil.copytree(world.settings.data_dir, data_dir)
    settings = world.settings.model_copy(update={"data_dir": data_dir})
    return World(settings, world.users, world.items, world.raw_events, world.training)


def server_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m serving`` on ``settings``' data: loopback, ``port``, no
    metrics port, no model reloads during a drill; ``extra`` adds or overrides ``SETLIST_*`` variables."""
    if settings.hmac_key is None:
        raise ValueError("a drill's settings carry their own HMAC key")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETLIST_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SETLIST_PROFILE=settings.profile,
        SETLIST_DATA_DIR=str(settings.data_dir),
        SETLIST_HMAC_KEY=settings.hmac_key.get_secret_value(),
        SETLIST_PORT=str(port),
        SETLIST_HOST="127.0.0.1",
        SETLIST_METRICS_PORT="0",
        SETLIST_RELOAD_INTERVAL_S="3600",
        SETLIST_ONLINE_TIMEOUT_MS=str(settings.online_timeout_ms),
        SETLIST_JOURNAL_SLOW_WRITE_MS=SLOW_WRITE_MS,
    )
    if settings.profile == "production":
        env.update(
            SETLIST_REDIS_URL=settings.redis_url,
            SETLIST_DATABASE_URL=settings.database_url,
            SETLIST_INSECURE="true",
        )
    if settings.mlflow_tracking_uri:
        env["SETLIST_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    env.update(extra)
    return env


#: (length, start) fields of the holds of the journal a server logs at SETLIST_JOURNAL_SLOW_WRITE_MS: a disk
#: step, and the late callers' dedupe commits the writer ran (``serving.journal``'s ``_late_told``)
DISK_STEP = ("journal_stall_s", "journal_stall_started")
LATE_CALLERS = ("journal_late_told_s", "journal_late_told_started")


def journal_stalls(server_log: Path, late_callers: bool = False) -> list[tuple[float, float]]:
    """The holds of the journal a server logged, as (start, length) in Unix seconds: its disk steps, and
    with ``late_callers`` the late callers' commits too (where the dedupe store is on the same disk: the
    local profile's SQLite; a Redis that holds them is the fault of a drill, not the machine's)."""
    if not server_log.exists():
        return []
    kinds = (DISK_STEP, LATE_CALLERS) if late_callers else (DISK_STEP,)
    stalls = []
    for line in server_log.read_text(errors="replace").splitlines():
        for length, start in kinds:
            if f'"{length}"' not in line:
                continue
            try:
                entry = json.loads(line)
                stalls.append((float(entry[start]), float(entry[length])))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a drill's kill
    return stalls


class Server:
    """One ``python -m serving`` (``module``, behind an optional command ``prefix``) on the lab's
    data. ``start`` returns when it serves; ``kill`` is SIGKILL to the whole process group; ``stop``
    is the graceful SIGTERM that moves every journal segment into the event log. Leaving the
    ``with`` block kills whatever still runs, so a failed drill never leaves a server behind."""

    def __init__(
        self,
        lab: Lab,
        env: Mapping[str, str] | None = None,
        *,
        module: Sequence[str] = SERVE,
        prefix: Sequence[str] = (),
    ) -> None:
        self.lab = lab
        self.port = free_port()
        self.env = server_env(lab.settings, self.port, **dict(env or {}))
        self.cmd = [*prefix, sys.executable, *module]
        self.log = lab.workdir / "server.log"
        self.wal_dir = Path(self.env.get("SETLIST_WAL_DIR") or lab.settings.wal_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> float:
        """Start the server (again: same port, same data) and wait until it serves. Returns the
        monotonic time of the launch, from which a restart's recovery is measured."""
        with open(self.log, "ab") as out:
            self._proc = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: kill reaches the workers too
            )
        launched = time.monotonic()
        # A fresh channel per probe: a channel that found nothing listening backs off for seconds,
        # which would be measured as the server's start-up.
        wait_for(self._serving, ready_timeout_s, f"the server on port {self.port}", alive=self._alive, log=self.log)
        self.lab.say(f"server serving on {self.target} after {time.monotonic() - launched:.1f} s")
        return launched

    def _alive(self) -> bool:
        return self.running

    def journal_stalls(self, late_callers: bool = False) -> list[tuple[float, float]]:
        return journal_stalls(self.log, late_callers)

    def _serving(self) -> bool:
        with SetlistClient(self.target, timeout=1.0) as client:
            try:
                return client.health() == "SERVING"
            except ClientError:
                return False

    def kill(self) -> None:
        """SIGKILL the parent and every worker at once: nothing runs a handler, nothing is flushed."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self.exit_codes.append(self._proc.wait())
        self._proc = None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM and wait: the server drains and its journals roll every segment into the event
        log. False if it did not exit in time (then it is killed, and its segments wait for the next
        start's recovery)."""
        if self._proc is None:
            return True
        self._proc.send_signal(signal.SIGTERM)  # the parent forwards it to its workers
        try:
            self.exit_codes.append(self._proc.wait(timeout_s))
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its parent
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc = None
        return True

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Worlds:
    """The run's worlds, one per profile, built on first use (about a minute each on two cores) and
    copied for every scenario. The production world gets a Redis and a PostgreSQL of its own, on free
    ports, which its scenarios may kill and restart."""

    def __init__(self, root: Path, console: Console) -> None:
        self.root, self.console = root, console
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self._worlds: dict[str, World] = {}
        self._unavailable: dict[str, BaseException] = {}  # a profile that failed once is not retried

    def lab(self, profile: str, name: str, slug: str) -> Lab:
        world = self._world(profile)
        workdir = self.root / "drills" / slug  # never beside the worlds or the backing servers' data
        if workdir.exists():
            shutil.rmtree(workdir)
        copy = copy_world(world, workdir / "data")
        return Lab.of(name, copy, workdir, self.console, self.redis, self.postgres)

    def _world(self, profile: str) -> World:
        if profile in self._unavailable:
            raise self._unavailable[profile]
        if profile not in self._worlds:
            try:
                self._worlds[profile] = self._build(profile)
            except Exception as exc:
                self._unavailable[profile] = exc
                raise
        return self._worlds[profile]

    def _build(self, profile: str) -> World:
        data_dir = self.root / "worlds" / profile
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if profile == "production":
            try:
                self.redis = RedisServer(self.root / "backing" / "redis")
                self.postgres = PostgresServer()
            except MissingServer as exc:
                raise Skip(str(exc)) from None
            self.redis.start()
            self.postgres.start()
            settings = production_settings(data_dir, self.redis.url, self.postgres.url)
        else:
            settings = tiny_settings(data_dir, profile="local")
        log = self.root / "worlds" / f"{profile}.log"
        self.console.print(f"building the tiny {profile} world (generate, ingest, features, train) [dim]log: {log}[/]")
        started = time.monotonic()
        with _output_to(log):  # MLflow and friends talk a lot; the table is what this run prints
            world = build_world(data_dir, settings)
        self.console.print(f"  built in {time.monotonic() - started:,.0f} s")
        return world

    def close(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.destroy()


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's stdout and stderr, file descriptors included (libraries' own handlers
    write to them), to ``log`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
