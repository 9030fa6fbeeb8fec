"""The fault drills, in the order of the table. Each starts a real server on its lab's copy of a
world, puts the retrying Track load on it (``load.Load``), injects one fault under load, removes it,
lets the clients retry what is still pending, stops the server gracefully and counts
(``report.counted``).

Every phase waits for a condition on the load's tally (so many acknowledged events, so many refused
calls) with a deadline; a deadline that passes is reported in the row's note, not hidden. The
recovery time runs from the moment the fault is removed (or the server relaunched) to the first
acknowledged Track after it; for a fault that refuses nothing by design it is "—".
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.backing import PostgresServer, RedisServer, wait_for
from bench.chaos.lab import SLOW_WRITE_MS, WITHOUT_DAC_OVERRIDE, Lab, Server, Skip
from bench.chaos.load import Load, Tally, acked, acked_since, failed_since
from bench.chaos.report import Row, counted
from bench.chaos.slow_fsync import DELAY_ENV
from serving.client import ClientError, SetlistClient
from serving.tracking import STILL_WRITING

ACKS_BEFORE = 300  # events acknowledged before the fault: the server is warm and its journal busy
ACKS_AFTER = 200  # events acknowledged after it: a recovery that holds, not one lucky call
# events acknowledged while a store Track does not wait for is down: a couple of seconds, long enough
# for the server's retries (identity writes, breaker probes) to meet the outage more than once
ACKS_DURING = 2000
WAIT_S = 30.0  # the most any phase waits for its condition
REFUSALS = 20  # refused calls that show a fault biting (about a second of four clients retrying)
DRAIN_S = 10.0  # the clients' last retries of the batches still pending
ROLL_S = "0.5"  # journal segments roll (and move into the event log) during the drill, not only at the stop
SLOW_FSYNC = ("-m", "bench.chaos.slow_fsync")
SLOW_DISK_MS = 50
DEADLINE_FSYNC_MS = 300
DEADLINE_CALL_S = 0.1  # shorter than one fsync: every call times out while its events are being written
PATIENT_CALL_S = 5.0
DISK_SIZE = "8m"  # the journal's tmpfs: the ballast takes whatever the journal leaves
STAMP_S = 0.002  # two roundings to the millisecond in the server's log


B = TypeVar("B", RedisServer, PostgresServer)


class DrillError(RuntimeError):
    """The drill could not be carried out as designed (no acknowledged Track before the fault)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    profile: str  # the world it runs on: local or production
    slug: str  # its work directory
    run: Callable[[Lab], Row]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, profile: str, slug: str) -> Callable[[Callable[[Lab], Row]], Callable[[Lab], Row]]:
    def register(drill: Callable[[Lab], Row]) -> Callable[[Lab], Row]:
        def run(lab: Lab) -> Row:
            row = drill(lab)
            row.scenario = name  # the lab's name is only for progress lines (a test's, in tests)
            return row

        SCENARIOS[name] = Scenario(name, profile, slug, run)
        return drill

    return register


def run(s: Scenario, make_lab: Callable[[], Lab]) -> Row:
    """Run one drill on the lab ``make_lab()`` makes; a drill that cannot run here, or breaks, is a
    row too, with the reason in its note."""
    lab: Lab | None = None
    try:
        lab = make_lab()
        return s.run(lab)
    except Skip as exc:
        return Row(s.name, status="skipped", note=str(exc))
    except Exception as exc:  # the table must still come out: the row says what broke, in one line
        first = (str(exc).splitlines() or [""])[0].removesuffix("; log tail:")
        where = f" (logs in {lab.workdir})" if lab is not None else ""
        return Row(s.name, status="error", note=f"{type(exc).__name__}: {first}{where}")


# --- the drills --------------------------------------------------------------------------------------
@scenario("kill -9, two workers", "local", "kill-9")
def kill_9(lab: Lab) -> Row:
    notes: list[str] = []
    with Server(lab, {"SETLIST_WORKERS": "2", "SETLIST_JOURNAL_ROLL_S": ROLL_S}) as server:
        server.start()
        with Load(server.target, lab.users, lab.items) as load:
            _warm(lab, load)
            lab.say(f"kill -9 the server's process group ({len(load.tally.acked)} events acknowledged)")
            server.kill()
            lab.say("restart it on the same data and port while the clients retry")
            restarted = server.start()
            _acks_after(load, restarted, "after the restart", notes)
            load.finish(DRAIN_S)
        row = _conclude(lab, server, load, notes)
    return _recovery(row, load.tally, restarted)


@scenario("redis killed and restarted", "production", "redis")
def redis_killed(lab: Lab) -> Row:
    redis = _backing(lab.redis, "Redis")
    notes: list[str] = []
    try:
        with Server(lab, {"SETLIST_JOURNAL_ROLL_S": ROLL_S}) as server:
            server.start()
            with Load(server.target, lab.users, lab.items) as load, SetlistClient(server.target) as probe:
                _warm(lab, load)
                redis.kill()
                down = time.monotonic()
                lab.say("redis-server killed (SIGKILL): Track goes on without its retry check and session pushes")
                _hold(load, acked_since(down, ACKS_DURING), f"{ACKS_DURING} events acknowledged without Redis", notes)
                notes.append(_rank_during_outage(probe, lab.users[-1]))
                redis.start()
                back = time.monotonic()
                lab.say(f"redis-server restarted after {back - down:.1f} s down; waiting for an undegraded Rank")
                recovery_s = _rank_recovers(probe, lab.users[-2], back)
                _acks_after(load, back, "after the restart", notes)
                load.finish(DRAIN_S)
            row = _conclude(lab, server, load, notes)
    finally:
        if not redis.running:
            redis.start()
    # recovery here is Rank's: Redis holds the features it ranks with, while Track never needed it
    row.recovered, row.recovery_s = recovery_s is not None, recovery_s
    return row


@scenario("postgres killed mid-run", "production", "postgres")
def postgres_killed(lab: Lab) -> Row:
    postgres = _backing(lab.postgres, "PostgreSQL")
    notes: list[str] = []
    try:
        with Server(lab, {"SETLIST_JOURNAL_ROLL_S": ROLL_S}) as server:
            server.start()
            with Load(server.target, lab.users, lab.items) as load:
                _warm(lab, load)
                postgres.kill()
                down = time.monotonic()
                lab.say("PostgreSQL killed (SIGKILL to the postmaster): identity writes queue and retry")
                _hold(
                    load, acked_since(down, ACKS_DURING), f"{ACKS_DURING} events acknowledged without PostgreSQL", notes
                )
                _restart_postgres(postgres)
                back = time.monotonic()
                lab.say(f"PostgreSQL restarted after {back - down:.1f} s down (same port, same data)")
                _acks_after(load, back, "after the restart", notes)
                load.finish(DRAIN_S)
            row = _conclude(lab, server, load, notes)
    finally:
        if not postgres.running:
            _restart_postgres(postgres)
    return _recovery(row, load.tally, back)


@scenario("journal disk full", "local", "disk-full")
def disk_full(lab: Lab) -> Row:
    if os.geteuid() != 0:
        raise Skip("needs root: the journal's disk is a small tmpfs mounted for the drill")
    wal = lab.workdir / "wal"
    notes: list[str] = []
    with _tmpfs(wal, DISK_SIZE), Server(lab, {"SETLIST_WAL_DIR": str(wal), "SETLIST_JOURNAL_ROLL_S": ROLL_S}) as server:
        server.start()
        with Load(server.target, lab.users, lab.items) as load:
            _warm(lab, load)
            ballast = Ballast(wal / "ballast")
            try:
                full = time.monotonic()
                written = ballast.fill()
                lab.say(f"filled the journal's {DISK_SIZE} tmpfs with {written / 1e6:.1f} MB of ballast (ENOSPC)")
                _hold(load, failed_since(full, REFUSALS), f"{REFUSALS} Track calls refused on the full disk", notes)
            finally:
                ballast.release()
            freed = time.monotonic()
            lab.say(f"deleted the ballast ({load.tally.failed_since(full)} calls refused meanwhile)")
            _acks_after(load, freed, "after the disk was freed", notes)
            load.finish(DRAIN_S)
        row = _conclude(lab, server, load, notes)  # the stop moves the tmpfs's segments into the log: before umount
    return _recovery(row, load.tally, freed)


@scenario("journal directory read-only", "local", "read-only")
def read_only(lab: Lab) -> Row:
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root ignores mode bits unless the server runs without CAP_DAC_OVERRIDE
        if not shutil.which("setpriv"):
            raise Skip("as root, needs setpriv (util-linux) to run the server without CAP_DAC_OVERRIDE")
        prefix = WITHOUT_DAC_OVERRIDE
    wal = lab.workdir / "wal"
    journal = wal / "worker-0"
    notes: list[str] = []
    # a short roll: a new segment must be opened soon, which is where a read-only directory bites
    env = {"SETLIST_WAL_DIR": str(wal), "SETLIST_JOURNAL_ROLL_S": "0.2"}
    try:
        with Server(lab, env, prefix=prefix) as server:
            server.start()
            with Load(server.target, lab.users, lab.items) as load:
                _warm(lab, load)
                journal.chmod(0o555)
                locked = time.monotonic()
                lab.say(f"made {journal.name}/ read-only (0555)")
                _hold(load, failed_since(locked, REFUSALS), f"{REFUSALS} Track calls refused", notes)
                journal.chmod(0o755)
                restored = time.monotonic()
                lab.say(f"restored 0755 ({load.tally.failed_since(locked)} calls refused meanwhile)")
                _acks_after(load, restored, "after the restore", notes)
                load.finish(DRAIN_S)
            row = _conclude(lab, server, load, notes)
    finally:
        if journal.exists():
            journal.chmod(0o755)
    return _recovery(row, load.tally, restored)


@scenario("client retries after deadline", "local", "deadline")
def deadline_retries(lab: Lab) -> Row:
    notes: list[str] = []
    env = {
        DELAY_ENV: str(DEADLINE_FSYNC_MS),
        "SETLIST_JOURNAL_ROLL_S": ROLL_S,
        # every fsync is slowed on purpose here: only a stall beyond that is the machine's own
        "SETLIST_JOURNAL_SLOW_WRITE_MS": str(DEADLINE_FSYNC_MS + int(SLOW_WRITE_MS)),
    }
    with Server(lab, env, module=SLOW_FSYNC) as server:
        server.start()
        with Load(server.target, lab.users, lab.items, timeout_s=DEADLINE_CALL_S) as load:
            started = time.monotonic()
            lab.say(
                f"fsync takes +{DEADLINE_FSYNC_MS} ms and each call gets {DEADLINE_CALL_S * 1000:.0f} ms: "
                "calls time out while their events are written, and are retried"
            )
            _hold(load, failed_since(started, 2 * REFUSALS), f"{2 * REFUSALS} calls past their deadline", notes)
            load.timeout_s = PATIENT_CALL_S
            patient = time.monotonic()
            lab.say(
                f"the clients now give each call {PATIENT_CALL_S:.0f} s; pending batches are retried until acknowledged"
            )
            _acks_after(load, patient, "with the longer deadline", notes)
            load.finish(DRAIN_S)
        # every call times out here on purpose, so its late callers' commits are the drill's doing
        return _conclude(lab, server, load, notes, late_callers=False)  # nothing is removed: no recovery time


@scenario(f"slow disk (fsync +{SLOW_DISK_MS}ms)", "local", "slow-disk")
def slow_disk(lab: Lab) -> Row:
    notes: list[str] = []
    with Server(lab, {DELAY_ENV: str(SLOW_DISK_MS), "SETLIST_JOURNAL_ROLL_S": ROLL_S}, module=SLOW_FSYNC) as server:
        server.start()
        with Load(server.target, lab.users, lab.items) as load:
            lab.say(f"every fsync takes +{SLOW_DISK_MS} ms; the clients keep their {load.timeout_s:.0f} s deadline")
            _warm(lab, load, ACKS_BEFORE + ACKS_AFTER)
            load.finish(DRAIN_S)
        return _conclude(lab, server, load, notes)


# --- shared steps ------------------------------------------------------------------------------------
def _warm(lab: Lab, load: Load, events: int = ACKS_BEFORE) -> None:
    if not load.wait(acked(events), WAIT_S):
        raise DrillError(
            f"only {len(load.tally.acked)} of {events} events acknowledged in {WAIT_S:.0f} s before any fault "
            f"({load.tally.failed} calls failed: {dict(load.tally.errors)}); server log: {lab.workdir / 'server.log'}"
        )
    lab.say(f"{len(load.tally.acked)} events acknowledged")


def _acks_after(load: Load, since: float, what: str, notes: list[str]) -> bool:
    """Wait for ACKS_AFTER acknowledged events after ``since`` (``what`` happened then)."""
    return _hold(load, acked_since(since, ACKS_AFTER), f"{ACKS_AFTER} events acknowledged {what}", notes)


def _hold(load: Load, condition: Callable[[Tally], bool], what: str, notes: list[str]) -> bool:
    """Wait for ``condition``; a deadline that passes is a finding, noted for the report."""
    if load.wait(condition, WAIT_S):
        return True
    notes.append(f"no {what} within {WAIT_S:.0f} s")
    return False


def _conclude(lab: Lab, server: Server, load: Load, notes: list[str], late_callers: bool = True) -> Row:
    """Stop the server gracefully (its journals roll into the event log), then count. ``late_callers``:
    whether the writer's holds by late callers' commits may be the machine's disk (a drill that makes
    callers late on purpose says not)."""
    if not server.stop():
        notes.append("the server did not stop on SIGTERM in time and was killed")
    if [c for c in server.exit_codes if c > 0]:
        notes.append(f"server exit codes {server.exit_codes} (see {server.log})")
    left = sorted(server.wal_dir.rglob("*.jsonl")) if server.wal_dir.exists() else []
    if left:
        notes.append(f"{len(left)} journal segments left on disk after the stop (not counted as stored)")
    if load.tally.rejected:
        notes.append(f"{load.tally.rejected} events rejected as invalid")
    row = counted(lab.name, load.tally, lab.settings.events_dir)
    # the local profile's dedupe store is a SQLite file on the machine's disk: a late caller's commit there
    # is a disk wait too; the production profile's is Redis, which some drills kill on purpose
    stalls = server.journal_stalls(late_callers=late_callers and not lab.settings.on_servers)
    row.failed_in_disk_stalls = in_disk_stalls(load.tally, stalls, time.time() - time.monotonic())
    if stalls:
        notes.append(
            f"the journal was held by the machine's disk {len(stalls)} times (longest "
            f"{max(s for _, s in stalls):.2f} s); {row.failed_in_disk_stalls} failed calls waited on those holds"
        )
    if row.acknowledged != row.sent:
        notes.append(f"{(row.sent or 0) - (row.acknowledged or 0)} sent events never acknowledged")
    row.note = "; ".join(notes)
    lab.say(
        f"stored {row.stored:,} of {row.sent:,} sent, lost {row.lost}, duplicated {row.duplicated}, "
        f"{row.failed_requests} failed calls"
    )
    return row


def in_disk_stalls(tally: Tally, stalls: list[tuple[float, float]], wall_minus_monotonic: float) -> int:
    """The failed calls a stall of the journal's own disk explains: a timeout whose deadline passed
    while a stall held the journal (or within one unlogged step after it, the write the stall had
    kept waiting), and a retry of that same batch refused as still being written by then. Stalls are
    (start, length) in Unix seconds; the tally's times are monotonic."""
    # the server logs to the millisecond: each span is widened by that much so that no rounding drops it
    spans = [
        (start - wall_minus_monotonic - STAMP_S, start + length - wall_minus_monotonic + STAMP_S)
        for start, length in stalls
    ]
    after = int(SLOW_WRITE_MS) / 1000  # any step shorter than this is not logged

    def held(at: float) -> bool:
        return any(a <= at <= b + after for a, b in spans)

    explained, stalled_batches = 0, set()
    for _, ended, code, message, batch in sorted(tally.failed_calls, key=lambda f: f[1]):
        if code == "DEADLINE_EXCEEDED" and held(ended):
            stalled_batches.add(batch)
            explained += 1
        elif code == "UNAVAILABLE" and STILL_WRITING in message and batch in stalled_batches and held(ended):
            explained += 1
    return explained


def _recovery(row: Row, tally: Tally, since: float) -> Row:
    row.recovery_s = tally.first_ack_after(since)
    row.recovered = row.recovery_s is not None
    return row


def _backing(server: B | None, what: str) -> B:
    if server is None:
        raise Skip(f"the production profile's {what} is not running")
    return server


def _rank_during_outage(probe: SetlistClient, user: str) -> str:
    try:
        reply = probe.rank(user, k=5)
    except ClientError as exc:
        return f"Rank failed while Redis was down ({exc.code.name})"
    return "Rank answered degraded while Redis was down" if reply.degraded else "Rank was not degraded without Redis"


def _rank_recovers(probe: SetlistClient, user: str, since: float) -> float | None:
    """Seconds from ``since`` until a Rank is no longer degraded; None if not within WAIT_S. The
    online store's breaker lets one probe through per cool-down, so this polls."""
    while time.monotonic() - since < WAIT_S:
        with contextlib.suppress(ClientError):
            if not probe.rank(user, k=5).degraded:
                return time.monotonic() - since
        time.sleep(0.02)  # a poll interval, not a synchronisation: the condition is the reply
    return None


def _restart_postgres(postgres: PostgresServer) -> None:
    """A killed postmaster leaves its backends behind for a moment, and a new one refuses to start
    while they hold the old shared memory: wait until no process works in the data directory."""
    wait_for(lambda: not _processes_in(postgres.data), WAIT_S, "the killed PostgreSQL's backends to exit")
    postgres.start()


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is ``directory`` (PostgreSQL's backends work in its data dir)."""
    target = str(directory.resolve())
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd") == target:
                pids.append(int(proc.name))
    return pids


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    """A tmpfs of ``size`` mounted at ``path`` for the duration; unmounted whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount"):
        raise Skip("needs mount(8) to give the journal a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise Skip(f"cannot mount a tmpfs here: {done.stderr.strip() or f'mount exited {done.returncode}'}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            # still busy (a process that outlived the drill): detach it now, freed when the last file closes
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


class Ballast:
    """A file that takes every free byte of its disk, and goes on taking what is freed (the journal's
    roller deletes the segments it moved) until released: the disk stays full for the whole fault."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._top_up, name="chaos-ballast", daemon=True)

    def fill(self) -> int:
        """Write until ENOSPC, then keep the disk full in the background; returns the bytes written."""
        written = self._write_all()
        self._thread.start()
        return written

    def release(self) -> None:
        self._released.set()
        if self._thread.ident is not None:
            self._thread.join()
        os.close(self._fd)
        self.path.unlink(missing_ok=True)

    def _top_up(self) -> None:
        while not self._released.wait(0.02):
            self._write_all()

    def _write_all(self) -> int:
        written = 0
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):  # smaller and smaller: the last page too
            chunk = b"\0" * size
            while True:
                try:
                    n = os.write(self._fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += n
                if n < size:
                    break
        return written
