"""The production profile against real servers: the Feast SQL registry on PostgreSQL with the Redis
online store, MLflow tracking and model registry on PostgreSQL, and fast failures when a server is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from feature_repo.online import OnlineFeatures, entity_key
from feature_repo.store import apply, get_store
from serving.grpc.proto import SERVICE_NAME
from serving.grpc.server import InsecureServer
from setlist.eventlog import Erased, erasure_digest
from setlist.settings import Settings
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]

SESSION_ROW = {
    "session_id": "s-1",
    "session_last_items": ["i-1", "i-2"],
    "session_skip_rate": 0.25,
    "session_genre": "rock",
    "session_length": 2,
}


def _written(values: dict | None) -> dict | None:
    """The features this test wrote (the view may have more, which stay unset)."""
    return None if values is None else {k: values.get(k) for k in SESSION_ROW}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_production_settings_point_at_the_test_servers(production_settings: Settings, redis_server, postgres_server):
    s = production_settings
    assert s.profile == "production"
    assert s.redis_url == redis_server.url
    assert s.tracking_uri.startswith(f"postgresql+psycopg://setlist:setlist@127.0.0.1:{postgres_server.port}/")
    assert s.secret_hmac_key() == b"test-key-production"


def test_feast_apply_then_write_read_delete_on_redis_with_the_registry_in_postgres(production_settings, redis_server):
    s = production_settings
    apply(get_store(s), s)
    assert {"feature_views", "entities", "feast_metadata"} <= _tables(s.sqlalchemy_database_url)

    # A second store resolves the views from PostgreSQL, as a separate serving process would.
    online = OnlineFeatures.from_registry(get_store(s), ["session", "user_profile"])
    event_time = datetime.now(UTC).replace(microsecond=0)
    online.write("session", [("u-1", SESSION_ROW, event_time)])

    (ts, values), (_, missing) = online.read("session", ["u-1", "u-unknown"])
    assert _written(values) == SESSION_ROW
    assert ts == event_time
    assert missing is None
    with redis_server.client() as r:
        assert r.dbsize() >= 1

    # a withdrawal deletes the personal views only: the user's consent row, in the same Redis hash, stays
    consent = OnlineFeatures.from_registry(get_store(s), ["user_consent"])
    consent.write("user_consent", [("u-1", {"consent_personalization": False, "consent_analytics": True}, event_time)])
    online.delete("session", "u-1")
    ((_, gone),) = online.read("session", ["u-1"])
    assert gone is None
    ((_, flags),) = consent.read("user_consent", ["u-1"])
    assert flags == {"consent_personalization": False, "consent_analytics": True}


def test_one_round_trip_read_of_several_views_equals_reading_them_one_by_one(production_settings, redis_server):
    s = production_settings
    apply(get_store(s), s)
    online = OnlineFeatures.from_registry(get_store(s), ["session", "user_consent", "user_profile"])
    t1 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    t2 = datetime(2026, 1, 3, tzinfo=UTC)
    online.write("session", [("u-views", SESSION_ROW, t1)])
    online.write("user_consent", [("u-views", {"consent_personalization": False, "consent_analytics": True}, t2)])
    views = ["user_consent", "user_profile", "session"]
    together = online.read_views(views, "u-views")
    assert together == [online.read(v, ["u-views"])[0] for v in views]
    assert together[0] == (t2, {"consent_personalization": False, "consent_analytics": True})
    assert together[1] == (None, None)  # never written for this user
    assert together[2][0] == t1 and _written(together[2][1]) == SESSION_ROW
    # no row reads as no row (not the epoch with nulls, which would make a null consent an opt-out)
    assert online.read_views(views, "u-nobody") == [(None, None)] * 3
    # several users at once (Track's session push), each as read alone
    many = online.read_views_many(views, ["u-nobody", "u-views"])
    assert many == [online.read_views(views, "u-nobody"), together]


def _sample(dtype: object, n: int) -> object:
    """A non-null value of a view field's Feast type."""
    text = str(dtype)
    if "Array" in text:
        return [f"v{n}", "w"] if "String" in text else [0.5 * n, 1.25]
    if "String" in text:
        return f"v{n}"
    if "Bool" in text:
        return n % 2 == 0
    if "Int" in text:
        return n
    return 0.25 * n  # Float32 and Float64: values a float32 holds exactly


def test_direct_decoding_reads_every_user_view_exactly_as_feast_does(production_settings, redis_server):
    s = production_settings
    apply(get_store(s), s)
    views = ["user_profile", "session", "user_consent"]
    online = OnlineFeatures.from_registry(get_store(s), views)
    t = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    for view in views:
        fields = online.views[view].features
        full = {f.name: _sample(f.dtype, n) for n, f in enumerate(fields)}
        sparse = {f.name: (None if n % 2 else _sample(f.dtype, n)) for n, f in enumerate(fields)}
        online.write(view, [("u-full", full, t), ("u-sparse", sparse, t)])
    for user in ("u-full", "u-sparse", "u-none"):
        # read_views and read decode the reply themselves; feast_read goes through Feast's online_read
        reference = [online.feast_read(v, [user])[0] for v in views]
        assert online.read_views(views, user) == reference
        assert [online.read(v, [user])[0] for v in views] == reference
    assert online.read_views(views, "u-full")[0][0] == t

    # the Redis keys remembered for the users read are forgotten when they are erased
    assert ("user_id", "u-full") in online._keys
    online.forget_erased(Erased([erasure_digest("u-full")]))
    assert ("user_id", "u-full") not in online._keys and ("user_id", "u-sparse") in online._keys


def test_a_write_with_the_stored_times_keeps_feasts_newer_row_wins_rule(production_settings, redis_server):
    s = production_settings
    apply(get_store(s), s)
    online = OnlineFeatures.from_registry(get_store(s), ["session", "user_consent"])
    t1, t2, t3 = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3))
    online.write("session", [("u-a", SESSION_ROW, t2), ("u-b", SESSION_ROW, t2)])
    older = {**SESSION_ROW, "session_genre": "older"}
    newer = {**SESSION_ROW, "session_genre": "newer"}
    # Feast's own check, then the caller's: an older or equal row is dropped, a newer one is written
    online.write("session", [("u-a", older, t1)])
    stored = [row[0] for row, _ in online.read_views_many(["session", "user_consent"], ["u-a", "u-b", "u-c"])]
    assert stored == [t2, t2, None]
    online.write("session", [("u-a", older, t1), ("u-b", newer, t3), ("u-c", older, t1)], stored=stored)
    rows = dict(zip(["u-a", "u-b", "u-c"], online.read("session", ["u-a", "u-b", "u-c"])))
    assert rows["u-a"][0] == t2 and rows["u-a"][1]["session_genre"] == "rock"
    assert rows["u-b"][0] == t3 and rows["u-b"][1]["session_genre"] == "newer"
    assert rows["u-c"][0] == t1 and rows["u-c"][1]["session_genre"] == "older"  # no row before: written
    online.write("session", [("u-b", older, t3)], stored=[t3])  # the same instant is not newer
    assert online.read("session", ["u-b"])[0][1]["session_genre"] == "newer"

    # the direct write leaves the very hash Feast's own write leaves: same fields, same bytes, same TTL
    online.write("session", [("u-feast", SESSION_ROW, t3)])
    online.write("session", [("u-direct", SESSION_ROW, t3)], stored=[None])
    client = online.redis_client
    feast_key, direct_key = (online.redis_key(entity_key("user_id", u)) for u in ("u-feast", "u-direct"))
    assert client.hgetall(direct_key) == client.hgetall(feast_key) != {}
    assert (client.ttl(direct_key) > 0) == (client.ttl(feast_key) > 0)


def test_reader_reconnects_after_redis_dies_and_keeps_data_over_a_graceful_restart(production_settings, redis_server):
    s = production_settings
    defs = apply(get_store(s), s)
    online = OnlineFeatures(get_store(s), [defs.views.session])
    online.write("session", [("u-2", SESSION_ROW, datetime.now(UTC))])

    redis_server.kill()
    assert not redis_server.ping()
    redis_server.start()
    # The same reader reconnects by itself once Redis is back.
    online.write("session", [("u-2", SESSION_ROW, datetime.now(UTC))])
    ((_, values),) = online.read("session", ["u-2"])
    assert _written(values) == SESSION_ROW

    redis_server.stop()  # graceful: the append-only file is flushed
    redis_server.start()
    ((_, values),) = online.read("session", ["u-2"])
    assert _written(values) == SESSION_ROW


def test_online_read_fails_fast_while_redis_is_down(production_settings, redis_server):
    s = production_settings
    defs = apply(get_store(s), s)
    online = OnlineFeatures(get_store(s), [defs.views.session])
    online.read("session", ["u-3"])  # connected

    redis_server.kill()
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)connect"):
            online.read("session", ["u-3"])
        # not a speed test: without the retry fix this takes ~7 s of backoff, with it no retry at all
        assert time.monotonic() - started < 2.0
    finally:
        redis_server.start()


def test_mlflow_tracks_runs_and_registers_models_in_postgres(production_settings, tmp_path: Path):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.pyfunc import PythonModel

    class Constant(PythonModel):
        def predict(self, context, model_input, params=None):
            return [1.0] * len(model_input)

    s = production_settings
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(s.tracking_uri)
    try:
        experiment_id = mlflow.create_experiment(
            "setlist-production-test", artifact_location=(tmp_path / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metric("ndcg_at_10", 0.42)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=Constant(), pip_requirements=[], registered_model_name="setlist-test-ranker"
            )
        client = MlflowClient()
        client.set_registered_model_alias("setlist-test-ranker", "champion", info.registered_model_version)

        champion = client.get_model_version_by_alias("setlist-test-ranker", "champion")
        assert champion.run_id == run.info.run_id
        assert client.get_run(run.info.run_id).data.metrics == {"ndcg_at_10": 0.42}
        assert list((tmp_path / "artifacts").iterdir()), "artifacts belong under the experiment's location"
        assert {"experiments", "runs", "registered_model_aliases"} <= _tables(s.sqlalchemy_database_url)
    finally:
        mlflow.set_tracking_uri(previous)


def test_feast_and_mlflow_share_one_database_without_clashing(production_settings, tmp_path: Path):
    import mlflow

    s = production_settings
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(s.tracking_uri)
    try:
        mlflow.create_experiment("shared", artifact_location=(tmp_path / "a").as_uri())
    finally:
        mlflow.set_tracking_uri(previous)
    apply(get_store(s), s)  # MLflow's tables first, then Feast's, in the same database
    assert [fv.name for fv in get_store(s).list_feature_views()]


def _unreachable(tmp_path: Path) -> Settings:
    port = free_port()  # nothing listens there
    return Settings(
        profile="production",
        data_dir=tmp_path / "data",
        hmac_key="k",
        database_url=f"postgresql://setlist:setlist@127.0.0.1:{port}/setlist",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )


def test_feast_fails_fast_with_a_connection_error_when_postgres_is_down(tmp_path: Path):
    s = _unreachable(tmp_path)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="(?i)connect"):
        apply(get_store(s), s)
    assert time.monotonic() - started < 5


def test_mlflow_reports_a_connection_error_when_postgres_is_down(tmp_path: Path, monkeypatch):
    """MLflow retries engine creation with exponential backoff (about 100 s in all), so serving must
    check PostgreSQL itself before touching MLflow. Here the retries are cut to one attempt to see
    the error it finally raises."""
    import mlflow
    import mlflow.store.db.utils as db_utils
    from mlflow import MlflowClient

    monkeypatch.setattr(db_utils, "MAX_RETRY_COUNT", 1)
    s = _unreachable(tmp_path)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(s.tracking_uri)
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)connect"):
            MlflowClient().search_experiments()
        assert time.monotonic() - started < 5
    finally:
        mlflow.set_tracking_uri(previous)


# --- transport security of a production server ------------------------------------------------------
def _serving_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETLIST_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "SETLIST_PROFILE": "production",
        "SETLIST_DATA_DIR": str(settings.data_dir),
        "SETLIST_DATABASE_URL": settings.database_url,
        "SETLIST_REDIS_URL": settings.redis_url,
        "SETLIST_HMAC_KEY": "k",
        "SETLIST_HOST": "127.0.0.1",
        "SETLIST_PORT": str(free_port()),
        "SETLIST_METRICS_PORT": "0",
        **extra,
    }


def test_a_production_server_without_tls_or_tokens_refuses_to_start_with_one_line(production_settings):
    done = subprocess.run(
        [sys.executable, "-m", "serving"],
        env=_serving_env(production_settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = done.stdout + done.stderr
    assert done.returncode == 1, err
    (line,) = [ln for ln in err.splitlines() if "cannot start" in ln]
    for needed in ("SETLIST_TLS_CERT", "SETLIST_TLS_KEY", "SETLIST_AUTH_TOKENS", "SETLIST_INSECURE=true"):
        assert needed in line
    assert "Traceback" not in err


def test_production_needs_tls_and_tokens_unless_insecure_is_said(serve_fake):
    with pytest.raises(InsecureServer, match="SETLIST_TLS_CERT, SETLIST_TLS_KEY are unset") as refused:
        serve_fake(profile="production", auth_tokens="t:read+write")
    assert "AUTH_TOKENS" not in str(refused.value)
    with pytest.raises(InsecureServer, match="SETLIST_AUTH_TOKENS"):
        serve_fake(profile="production")
    _, client, _ = serve_fake(profile="production", insecure=True)
    assert client.wait_ready(timeout=10)


def test_the_health_port_answers_probes_in_plaintext_and_serves_nothing_else(serve_fake):
    server, _, _ = serve_fake(health_port=0)
    assert server.health_port is not None and server.health_port != server.port
    with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        rank = channel.unary_unary(f"/{SERVICE_NAME}/Rank")
        with pytest.raises(grpc.RpcError) as failed:
            rank(b"", timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_metrics_listen_on_their_own_host(serve_fake):
    port = free_port()
    serve_fake(host="127.0.0.1", metrics_port=port, metrics_host="127.0.0.2")
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
