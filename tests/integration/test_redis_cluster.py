"""The cluster profile's online store on a real 3-master Redis Cluster: Feast writes and reads
through ``RedisCluster``, Rank and Track serve from it, erasure and the residue scan reach every
master, and a master killed under load degrades only its own users' answers while Track keeps
acknowledging (and journaling) every event.

The world is the tiny local one (``tiny_copy``); its feature files are written into the cluster with
Feast's ``write_to_online_store`` under the cluster profile's store config (registry in the test
PostgreSQL, as the profile has it; the models stay in the copy's MLflow). The prediction cache and
Track's dedupe use the plain test Redis, as the profile does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from feature_repo.incremental import latest_rows
from feature_repo.online import OnlineFeatures, entity_key
from feature_repo.store import apply, definitions, get_store
from serving.bootstrap import build
from serving.client import ClientError, SetlistClient, new_event
from serving.grpc.server import start_server
from serving.user_features import VIEWS as USER_VIEWS
from setlist.errors import Refused
from setlist.eventlog import EventLog
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings
from tests.servers import (  # noqa: F401  (redis_cluster: the fixture, by import)
    MissingServer,
    RedisClusterServer,
    cluster_ports,
    find_postgres_bin,
    find_redis_server,
    free_port,
    redis_cluster,
    skip_or_fail,
)

PUBLISHED = (
    ("user_profile", USER_PROFILE_FILE, "user_id"),
    ("item_stats", ITEM_STATS_FILE, "item_id"),
    ("session", SESSION_FILE, "user_id"),
    ("user_consent", CONSENT_FILE, "user_id"),
)


@dataclass
class ClusterWorld:
    settings: Settings
    local: Settings  # the same data in the local profile (SQLite online store)
    users: list[str]  # raw ids
    items: list[str]


@pytest.fixture
def cluster_world(tiny_copy, redis_cluster: RedisClusterServer, redis_server, postgres_server) -> ClusterWorld:  # noqa: F811
    redis_cluster.start()  # a test may have killed a master
    redis_cluster.flush()
    return _world(tiny_copy, redis_cluster, redis_server, postgres_server)


def _world(tiny_copy, cluster: RedisClusterServer, redis_server, postgres_server) -> ClusterWorld:
    redis_server.start()
    redis_server.flush()
    local = tiny_copy.settings
    s = local.model_copy(
        update={
            "profile": "cluster",
            "redis_cluster_nodes": cluster.nodes,
            "redis_url": redis_server.url,
            "database_url": postgres_server.create_database(),
            "mlflow_tracking_uri": local.tracking_uri,  # the world's models, in its own MLflow
            "cache_backend": "redis",
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "online_timeout_ms": 100,
            "insecure": True,
        }
    )
    store = get_store(s)
    apply(store, s)  # the registry, in PostgreSQL
    for view, fname, key in PUBLISHED:  # what a full publish leaves online, written by Feast
        store.write_to_online_store(view, latest_rows(pd.read_parquet(s.features_dir / fname), key))
    consent = pd.read_parquet(s.features_dir / CONSENT_FILE)
    consented = set(consent.loc[consent["consent_personalization"], "user_id"])
    key = s.secret_hmac_key()
    users = [str(u) for u in tiny_copy.users["user_id"] if pseudonymize(str(u), key) in consented][:45]
    items = [str(i) for i in tiny_copy.items["item_id"][:20]]
    return ClusterWorld(s, local, users, items)


def _online_features(settings: Settings, views: tuple[str, ...] = USER_VIEWS) -> OnlineFeatures:
    store = get_store(settings)
    return OnlineFeatures.from_registry(store, list(views))


def _plain(rows: list) -> list:
    """Rows with timestamps as whole Unix seconds (Feast's SQLite store keeps naive UTC datetimes to
    the second, its Redis store aware ones to the millisecond)."""
    out = []
    for ts, values in rows:
        stamp = None if ts is None else int((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp())
        out.append((stamp, values))
    return out


def _hmgets(cluster: RedisClusterServer) -> dict[int, int]:
    """HMGET calls each master has served (INFO commandstats)."""
    out = {}
    for port in cluster.ports:
        with cluster.node(port) as c:
            out[port] = int(c.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))
    return out


def test_feast_rows_spread_over_every_master_and_read_back_as_the_local_store_holds_them(
    cluster_world: ClusterWorld,
    redis_cluster: RedisClusterServer,  # noqa: F811
):
    s, key = cluster_world.settings, cluster_world.settings.secret_hmac_key()
    sizes = redis_cluster.dbsize()
    assert all(n > 0 for n in sizes.values()), sizes  # every master holds some entities

    cluster, local = _online_features(s), _online_features(cluster_world.local)
    pseudonyms = [pseudonymize(u, key) for u in cluster_world.users]
    shards = {cluster.shard("session", p) for p in pseudonyms}
    assert shards == set(redis_cluster.nodes)  # the test users live on all three masters
    for p in pseudonyms:
        assert _plain(cluster.read_views(USER_VIEWS, p)) == _plain(local.read_views(USER_VIEWS, p))

    # every view of one entity is one hash, one slot: the multi-view read is one HMGET on one master
    # (one round trip), none on the others
    before = _hmgets(redis_cluster)
    rows = cluster.read_views(USER_VIEWS, pseudonyms[0])
    after = _hmgets(redis_cluster)
    served = {port: after[port] - before[port] for port in redis_cluster.ports}
    home = int(cluster.shard("session", pseudonyms[0]).rsplit(":", 1)[1])
    assert served == {port: 1 if port == home else 0 for port in redis_cluster.ports}
    assert rows[0][1] is not None  # the consent row

    # a multi-entity read is one pipeline that redis-py splits per master
    before = _hmgets(redis_cluster)
    many = cluster.read("session", pseudonyms)
    after = _hmgets(redis_cluster)
    assert all(after[port] > before[port] for port in redis_cluster.ports)
    assert sum(after.values()) - sum(before.values()) == len(pseudonyms)
    assert _plain(many) == _plain(local.read("session", pseudonyms))

    # items too
    items = _online_features(s, ("item_stats",)).read("item_stats", cluster_world.items)
    assert _plain(items) == _plain(
        _online_features(cluster_world.local, ("item_stats",)).read("item_stats", cluster_world.items)
    )


def test_write_read_delete_of_one_entity_and_a_fast_failure_on_its_dead_master(
    cluster_world: ClusterWorld,
    redis_cluster: RedisClusterServer,  # noqa: F811
):
    s = cluster_world.settings
    online = _online_features(s, ("session", "user_consent", "user_profile"))
    row = {
        "session_id": "s-1",
        "session_last_items": ["i-1"],
        "session_skip_rate": 0.5,
        "session_genre": "rock",
        "session_length": 1,
    }
    when = datetime(2026, 11, 2, tzinfo=UTC)
    online.write("session", [("u-cluster", row, when)])
    online.write("user_consent", [("u-cluster", {"consent_personalization": True, "consent_analytics": False}, when)])
    ((ts, values),) = online.read("session", ["u-cluster"])
    assert ts == when and {k: values[k] for k in row} == row

    online.delete("session", "u-cluster")  # that view only: the consent row stays
    (gone, (_, consent)) = online.read_views(["session", "user_consent"], "u-cluster")
    assert gone == (None, None) and consent == {"consent_personalization": True, "consent_analytics": False}
    online.delete("user_consent", "u-cluster")  # the last view: no key is left on its master
    assert online.read_views(["session", "user_consent"], "u-cluster") == [(None, None)] * 2
    assert not online.redis_client.exists(online.redis_key(entity_key("user_id", "u-cluster")))

    # its master dies: a read of it fails at once (one retry, no backoff), the others keep answering
    online.write("session", [("u-cluster", row, when)])
    home = online.shard("session", "u-cluster")
    port = int(home.rsplit(":", 1)[1])
    other = next(f"u-{i}" for i in range(1000) if online.shard("session", f"u-{i}") != home)
    online.write("session", [(other, row, when)])
    redis_cluster.kill(port)
    started = time.monotonic()
    with pytest.raises(Exception, match="(?i)connect"):
        online.read("session", ["u-cluster"])
    took = time.monotonic() - started
    assert took < 1.0, took  # one refused connect, a slot map refresh, one retry: ~10 ms
    ((_, values),) = online.read("session", [other])
    assert values is not None and values["session_id"] == "s-1"


@dataclass
class Load:
    """Rank and Track under load, each outcome stamped with the time it came back."""

    # answers computed for the request, (when, user, degraded, seconds taken): a cache hit reads no
    # rows (the shared cache is looked up first), so it says nothing about the online store
    ranks: list[tuple[float, str, bool, float]]
    tracks: list[tuple[float, str, list[str], str]]  # (when, user, event ids acknowledged, session id)
    failures: list[Exception]


class Traffic:
    """Rank (two threads) and Track (one) for ``users`` round-robin until the block ends, every
    outcome recorded in ``load``; ``wait(check, what)`` polls the records until ``check()`` holds."""

    def __init__(self, client: SetlistClient, users: list[str], item: str) -> None:
        self.client, self.users, self.item = client, users, item
        self.load = Load([], [], [])
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=f) for f in (self._rank, self._rank, self._track)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _rank(self) -> None:
        n = 0
        while not self._stop.is_set():
            u = self.users[n % len(self.users)]
            started = time.monotonic()
            try:
                reply = self.client.rank(u, k=10)
            except ClientError as exc:
                with self._lock:
                    self.load.failures.append(exc)
            else:
                done = time.monotonic()
                if not reply.cache_hit:
                    with self._lock:
                        self.load.ranks.append((done, u, reply.degraded, done - started))
            n += 1

    def _track(self) -> None:
        n = 0
        while not self._stop.is_set():
            u = self.users[n % len(self.users)]
            event = new_event(u, self.item, "play", session_id=f"load-{n}", value=0.5)
            try:
                accepted, rejected = self.client.track([event])
            except ClientError as exc:
                with self._lock:
                    self.load.failures.append(exc)
            else:
                assert rejected == ()
                with self._lock:
                    self.load.tracks.append(
                        (time.monotonic(), u, [event.event_id] if accepted else [], event.session_id)
                    )
            n += 1

    def wait(self, check, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if check():
                    return
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)  # polling the load threads' records


@pytest.fixture
def serving(cluster_world: ClusterWorld) -> Iterator[tuple[SetlistClient, object]]:
    server = build(cluster_world.settings)
    with start_server(server, cluster_world.settings) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10)
        assert client.wait_ready(timeout=60)
        try:
            yield client, server
        finally:
            client.close()


def test_rank_and_track_on_the_cluster_and_a_master_killed_under_load(
    cluster_world: ClusterWorld,
    redis_cluster: RedisClusterServer,  # noqa: F811
    serving,
):
    client, server = serving
    s, key = cluster_world.settings, cluster_world.settings.secret_hmac_key()
    users, item = cluster_world.users, cluster_world.items[0]
    online = server.online
    home = {u: online.shard("session", pseudonymize(u, key)) for u in users}

    # real answers from the features on the cluster
    for u in users[:10]:
        reply = client.rank(u, k=10)
        assert not reply.degraded and len(reply.items) == 10
    # Track's session push folds the event into the user's session row on the user's master
    played = new_event(users[0], item, "play", session_id="cluster-1", value=0.9)
    assert client.track([played]) == (1, ())
    ((_, session),) = online.read("session", [pseudonymize(users[0], key)])
    assert session is not None and item in session["session_last_items"]
    assert server.service.tracker.push_failures == 0

    victim = home[users[0]]
    doomed = [u for u in users if home[u] == victim]
    spared = [u for u in users if home[u] != victim]
    assert doomed and spared

    with Traffic(client, users, item) as traffic:
        load, wait = traffic.load, traffic.wait
        wait(lambda: len(load.ranks) >= 20 and len(load.tracks) >= 5, "load before the kill")
        killed = time.monotonic()
        redis_cluster.kill(int(victim.rsplit(":", 1)[1]))
        # the dead master's users degrade; the others' answers stay personalized meanwhile
        wait(lambda: any(t > killed and d and u in doomed for t, u, d, _ in load.ranks), "a degraded answer")
        first_degraded = min(t for t, u, d, _ in load.ranks if t > killed and d)
        # then the cluster itself notices (after its node timeout) and marks the master failed; the
        # surviving masters keep serving their slots (cluster-require-full-coverage no)
        wait(lambda: redis_cluster.marked_failed(int(victim.rsplit(":", 1)[1])), "the master marked failed")
        marked = time.monotonic()
        wait(
            lambda: (
                sum(t > marked and u in spared for t, u, _, _ in load.ranks) >= 30
                and any(t > marked and u in doomed for t, u, _, _ in load.ranks)
            ),
            "answers for every master's users after the master was marked failed",
        )
        # Track keeps acknowledging, for users of every master
        wait(
            lambda: {home[u] for t, u, ids, _ in load.tracks if t > marked and ids} == set(home.values()),
            "acknowledged Track events after the kill",
        )

    after = [(u, d, took) for t, u, d, took in load.ranks if t > killed]
    # judged by when a request started: one already in flight at the kill may have read its rows
    # from the master before it died, and come back after another request's degraded answer
    spared_after = [d for t, u, d, took in load.ranks if t - took > killed and u in spared]
    doomed_after = [d for t, u, d, took in load.ranks if t - took > killed and u in doomed]
    before = sorted(took for t, _, _, took in load.ranks if t <= killed)
    slowest = max(took for _, _, took in after)
    acked = [e for _, _, ids, _ in load.tracks for e in ids]
    print(
        f"\nkill to first degraded answer {first_degraded - killed:.3f} s, to marked failed {marked - killed:.2f} s; "
        f"Rank after the kill: {len(after)} answers, {sum(d for _, d, _ in after)} degraded, slowest "
        f"{slowest * 1000:.0f} ms (before: median {before[len(before) // 2] * 1000:.0f} ms, slowest "
        f"{before[-1] * 1000:.0f} ms); other masters' users: {len(spared_after)} answers, {sum(spared_after)} "
        f"degraded; dead master's users: {len(doomed_after)} answers, {sum(doomed_after)} degraded; Track: "
        f"{len(load.tracks)} requests, {len(acked)} acknowledged, {server.service.tracker.push_failures} session "
        "pushes failed"
    )
    assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[0]}"
    assert not any(spared_after), "users of the live masters were degraded"
    assert all(doomed_after), "the dead master's users were answered as if their rows had been read"
    # a dead master costs a refused connection and one retry (~10 ms), never a hang
    assert slowest < 2.0, slowest
    assert len(acked) == len(load.tracks), "a Track request was not acknowledged"
    assert server.service.tracker.push_failures > 0  # the dead master's users' session pushes failed
    # the other masters' users' sessions were pushed: each holds the session of its last event
    last = {u: sid for _, u, ids, sid in load.tracks if ids and u in spared}
    rows = online.read("session", [pseudonymize(u, key) for u in last])
    assert [values["session_id"] for _, values in rows] == list(last.values())
    # acknowledged means journaled (fsynced before the answer): every event is in a journal segment
    # or already rolled into the event log
    journaled = _journaled(s)
    assert not [e for e in acked if e not in journaled]


def _journaled(s: Settings) -> set[str]:
    """Event ids in the event log and the Track journal segments."""
    import json

    ids = set(EventLog(s.events_dir).read(columns=["event_id"])["event_id"])
    for seg in s.wal_dir.rglob("*.jsonl"):
        for line in seg.read_text().splitlines():
            if line.strip():
                ids.add(json.loads(line).get("event_id"))
    return ids


def test_erasure_and_the_residue_scan_reach_every_master(
    cluster_world: ClusterWorld,
    redis_cluster: RedisClusterServer,  # noqa: F811
):
    # erasure's online-store steps only: the whole erase() would also rewrite the models' artifacts,
    # which this copy of the world shares with the session's other tests
    from ingest.erasure import _cluster_sweep, _online
    from ingest.residue import ResidueScanError, scan_redis_cluster

    s, key = cluster_world.settings, cluster_world.settings.secret_hmac_key()
    pseudonym = pseudonymize(cluster_world.users[0], key)
    nodes = redis_cluster.nodes
    (row,) = scan_redis_cluster(nodes, {"pseudonym": pseudonym})  # the user's one hash, all views
    online = _online_features(s)
    home = online.shard("session", pseudonym)
    assert row.store == "redis cluster" and row.where.startswith(f"{home} ")
    # a stray copy on another master (another project's key, say) is residue too
    tag = next(f"{{{i}}}" for i in range(1000) if f"127.0.0.1:{redis_cluster.port_of(f'{{{i}}}')}" != home)
    with redis_cluster.client() as c:
        c.set(f"{tag}old:{pseudonym}", b"x")
    found = scan_redis_cluster(nodes, {"pseudonym": pseudonym})
    assert len({f.where.split(" ", 1)[0] for f in found}) == 2  # on two masters

    user_views = [v for v in definitions(s).views.all() if list(v.entities) == ["user"]]
    assert _online(s, pseudonym).removed == len(user_views)
    swept = _cluster_sweep(s, pseudonym)
    assert swept.removed == 1 and len(swept.looked) == 3  # the stray key; every master looked at
    assert scan_redis_cluster(nodes, {"pseudonym": pseudonym}) == []
    assert online.read_views(USER_VIEWS, pseudonym) == [(None, None)] * 3

    # a master that cannot be scanned makes the scan fail, never read as clean; erasure refuses too
    redis_cluster.kill(redis_cluster.ports[0])
    with pytest.raises(ResidueScanError, match="could not be scanned"):
        scan_redis_cluster(nodes, {"pseudonym": pseudonym}, timeout_s=1.0)
    with pytest.raises(Refused, match="run the erasure again"):
        _cluster_sweep(s, pseudonym)


# --- scripts/services.sh (`SETLIST_PROFILE=cluster make services`) --------------------------------------
SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


@pytest.fixture
def services_env() -> Iterator[dict[str, str]]:
    try:
        find_redis_server()
        find_postgres_bin()  # the script starts PostgreSQL too
    except MissingServer as exc:
        skip_or_fail(str(exc))
    # Under /tmp and traversable: as root, PostgreSQL runs as the `postgres` user, who must reach it.
    state = Path(tempfile.mkdtemp(prefix="setlist-svc-", dir="/tmp"))
    state.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SETLIST_")},
        "SETLIST_PROFILE": "cluster",
        "SETLIST_SERVICES_DIR": str(state),
        "SETLIST_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SETLIST_DATABASE_URL": f"postgresql://setlist:s3cret@127.0.0.1:{free_port()}/setlist",
        "SETLIST_REDIS_CLUSTER_NODES": ",".join(f"127.0.0.1:{p}" for p in cluster_ports(3)),
    }
    try:
        yield env
    finally:
        subprocess.run([str(SERVICES), "down"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def _services(env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SERVICES), action], env=env, capture_output=True, text=True, timeout=120)


def test_services_start_the_cluster_once_ok_idempotently_and_bring_a_killed_master_back(services_env):
    from redis.cluster import ClusterNode, RedisCluster

    env = services_env
    ports = [int(n.rsplit(":", 1)[1]) for n in env["SETLIST_REDIS_CLUSTER_NODES"].split(",")]
    up = _services(env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "redis cluster: created, 3 masters" in up.stdout and "cluster_state:ok" in up.stdout

    cluster = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports], socket_timeout=2)
    try:
        for i in range(30):
            cluster.set(f"k{i}", i)
        owners = {cluster.nodes_manager.get_node_from_slot(cluster.keyslot(f"k{i}")).port for i in range(30)}
        assert owners == set(ports)  # the slots are split over the three masters
    finally:
        cluster.close()

    again = _services(env, "up")
    assert again.returncode == 0 and "redis cluster: already running, cluster_state:ok" in again.stdout

    # a master killed -9 is started again by the next `up`, rejoins, and its data comes back (AOF)
    pidfile = Path(env["SETLIST_SERVICES_DIR"]) / "redis-cluster" / str(ports[1]) / "redis.pid"
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert _services(env, "status").returncode == 3
    back = _services(env, "up")
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"started node(s) {ports[1]}; cluster_state:ok" in back.stdout
    cluster = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", ports[0])], socket_timeout=2)
    try:
        assert [int(cluster.get(f"k{i}")) for i in range(30)] == list(range(30))
    finally:
        cluster.close()
    assert _services(env, "status").returncode == 0

    down = _services(env, "down")
    assert down.returncode == 0 and "redis cluster: stopped" in down.stdout
    assert _services(env, "status").returncode == 3


@pytest.fixture
def replicated_cluster(tmp_path) -> Iterator[RedisClusterServer]:
    """A fresh 3-master cluster with one replica per master (its own: a failover changes roles)."""
    try:
        cluster = RedisClusterServer(tmp_path / "replicated", replicas=1)
    except MissingServer as exc:
        skip_or_fail(str(exc))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _poll(check, what: str, timeout: float = 30.0) -> float:
    """Poll ``check`` (it talks to a server) until it holds; the time it did."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a Redis node's view of the cluster
    return time.monotonic()


def test_a_killed_master_fails_over_to_its_replica_and_its_users_are_served_again(
    tiny_copy,
    replicated_cluster: RedisClusterServer,
    redis_server,
    postgres_server,
):
    cluster = replicated_cluster
    world = _world(tiny_copy, cluster, redis_server, postgres_server)
    cluster.wait_replicated()  # the features are on the replicas too
    server = build(world.settings)
    key = world.settings.secret_hmac_key()
    users, item = world.users, world.items[0]
    with start_server(server, world.settings) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10)
        try:
            assert client.wait_ready(timeout=60)
            online = server.online
            home = {u: online.shard("session", pseudonymize(u, key)) for u in users}
            victim = home[users[0]]
            port = int(victim.rsplit(":", 1)[1])
            (replica,) = cluster.replicas[port]
            doomed = [u for u in users if home[u] == victim]
            spared = [u for u in users if home[u] != victim]
            assert doomed and spared and not client.rank(doomed[0], k=10).degraded

            with Traffic(client, users, item) as traffic:
                load = traffic.load
                traffic.wait(lambda: len(load.ranks) >= 20 and len(load.tracks) >= 5, "load before the kill")
                killed = time.monotonic()
                cluster.kill(port)
                promoted = _poll(lambda: cluster.promoted(replica), "the replica promoted to master")

                def served_again() -> list[float]:
                    return [t for t, u, d, took in load.ranks if t - took > promoted and u in doomed and not d]

                traffic.wait(lambda: bool(served_again()), "a personalized answer for the dead master's users")
                # when the first one came back: that request was the breaker's probe, and requests
                # that arrived while it was out were refused by the half-open breaker (degraded)
                back = min(served_again())
                traffic.wait(
                    lambda: sum(t - took > back and u in doomed for t, u, _, took in load.ranks) >= 15,
                    "more answers for the dead master's users after the first personalized one",
                )
            # Track's session push reaches the promoted replica again; sent once the load has stopped,
            # so that no load Track of the same user lands after it (newest session wins)
            pushed = new_event(doomed[0], item, "play", session_id="after-failover", value=0.9)
            assert client.track([pushed]) == (1, ())
        finally:
            client.close()

    degraded_doomed = [t for t, u, d, took in load.ranks if d and u in doomed]
    after_back = [d for t, u, d, took in load.ranks if t - took > back and u in doomed]
    print(
        f"\nreplica promoted {promoted - killed:.2f} s after the kill, the dead master's users personalized "
        f"again {back - killed:.2f} s after it; {len(degraded_doomed)} degraded answers meanwhile; "
        f"{len(after_back)} answers for them since, {sum(after_back)} degraded"
    )
    assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[0]}"
    assert not any(d for t, u, d, took in load.ranks if u in spared), "users of the live masters were degraded"
    assert not any(after_back), "the dead master's users were degraded again after the replica took over"
    # the rows are the replica's copy: the session row read through the cluster is the one just pushed
    assert cluster.promoted(replica) and online.shard("session", pseudonymize(doomed[0], key)) == f"127.0.0.1:{replica}"
    ((_, session),) = online.read("session", [pseudonymize(doomed[0], key)])
    assert session is not None and session["session_id"] == "after-failover"


def test_a_dropped_feature_leaves_every_masters_rows_and_the_rest_of_each_row_stays(
    cluster_world: ClusterWorld,
    redis_cluster: RedisClusterServer,  # noqa: F811
):
    s, key = cluster_world.settings, cluster_world.settings.secret_hmac_key()
    store = get_store(s)
    view = store.get_feature_view("user_profile")
    gone, kept = view.features[0].name, [f.name for f in view.features[1:]]
    online = OnlineFeatures(store, [view])
    pseudonyms = [pseudonymize(u, key) for u in cluster_world.users]
    assert {online.shard("user_profile", p) for p in pseudonyms} == set(redis_cluster.nodes)
    before = online.read("user_profile", pseudonyms)
    assert any(values and values[gone] is not None for _, values in before)

    held = online.drop_features(view, [gone])
    after = online.read("user_profile", pseudonyms)
    assert held >= sum(1 for _, values in before if values and values[gone] is not None)
    assert all(values is None or values[gone] is None for _, values in after)  # on all three masters
    for (ts, was), (ts_now, now) in zip(before, after):
        assert ts_now == ts and (was is None) == (now is None)
        assert now is None or {n: now[n] for n in kept} == {n: was[n] for n in kept}
    assert online.drop_features(view, [gone]) == 0  # nothing left to drop
