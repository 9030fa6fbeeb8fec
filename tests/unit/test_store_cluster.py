"""The cluster profile's online store configuration: seed nodes to Feast's Redis Cluster connection
string, which Feast's own parser must read back as the nodes and timeouts meant."""

from __future__ import annotations

import pytest
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType

from feature_repo.store import online_store_config, redis_cluster_connection_string, request_store_config
from setlist.settings import Settings


def test_nodes_and_timeouts_make_a_string_feast_parses_back():
    text = redis_cluster_connection_string(["10.0.0.1:7001", " redis-2.internal:7002 "], 250, password="s3cret")
    assert text == (
        "10.0.0.1:7001,redis-2.internal:7002,socket_timeout=0.250,socket_connect_timeout=0.250,password=s3cret"
    )
    nodes, options = RedisOnlineStore._parse_connection_string(text)
    assert nodes == [{"host": "10.0.0.1", "port": "7001"}, {"host": "redis-2.internal", "port": "7002"}]
    assert options == {"socket_timeout": 0.25, "socket_connect_timeout": 0.25, "password": "s3cret"}


def test_no_password_adds_no_password_option():
    assert "password" not in redis_cluster_connection_string(["127.0.0.1:7001"], 200)


def test_no_nodes_is_a_clear_error():
    with pytest.raises(ValueError, match="SETLIST_REDIS_CLUSTER_NODES"):
        redis_cluster_connection_string([], 200)


@pytest.mark.parametrize(
    "bad",
    ["localhost", "127.0.0.1:", ":7001", "127.0.0.1:port", "127.0.0.1:70 01", "redis://127.0.0.1:7001/0"],
)
def test_a_node_that_is_not_host_colon_port_is_a_clear_error_naming_it(bad: str):
    with pytest.raises(ValueError, match="is not host:port") as refused:
        redis_cluster_connection_string(["127.0.0.1:7001", bad], 200)
    assert repr(bad.strip()) in str(refused.value)
    assert "SETLIST_REDIS_CLUSTER_NODES" in str(refused.value)


def test_the_cluster_profile_configures_a_redis_cluster_online_store(tmp_path):
    s = Settings(
        profile="cluster",
        data_dir=tmp_path,
        redis_cluster_nodes="127.0.0.1:7101, 127.0.0.1:7102,127.0.0.1:7103",  # as the environment gives it
        redis_url="redis://:pw@127.0.0.1:6390/0",
        online_timeout_ms=50,
    )
    config = online_store_config(s)
    assert config.redis_type == RedisType.redis_cluster
    nodes, options = RedisOnlineStore._parse_connection_string(config.connection_string)
    assert [n["port"] for n in nodes] == ["7101", "7102", "7103"]
    # never shorter than 200 ms (a cluster client also needs to fetch the slot map), password shared
    assert options == {"socket_timeout": 0.2, "socket_connect_timeout": 0.2, "password": "pw"}
    assert "db=" not in config.connection_string  # a cluster has one database; redis-py refuses db


def test_the_production_profile_keeps_a_single_redis(tmp_path):
    config = online_store_config(Settings(profile="production", data_dir=tmp_path))
    assert config.redis_type == RedisType.redis


@pytest.mark.parametrize("bad", ["h:0", "h:70000", "::1:7001", "[::1]:7001"])
def test_ports_out_of_range_and_ipv6_seeds_are_refused_before_feast_misreads_them(bad: str):
    with pytest.raises(ValueError, match="SETLIST_REDIS_CLUSTER_NODES"):
        redis_cluster_connection_string(["127.0.0.1:7001", bad], 200)


def test_a_password_with_a_comma_is_refused_and_tls_is_passed_on():
    with pytest.raises(ValueError, match="comma"):
        redis_cluster_connection_string(["h:7001"], 200, "a,b")
    assert redis_cluster_connection_string(["h:7001"], 200, tls=True).endswith(",ssl=true")


@pytest.mark.parametrize("profile", ["production", "cluster"])
def test_serving_per_request_client_waits_the_online_timeout_and_the_bulk_client_at_least_200_ms(tmp_path, profile):
    s = Settings(profile=profile, data_dir=tmp_path, redis_cluster_nodes="127.0.0.1:7101", online_timeout_ms=30)
    request = request_store_config(s)
    bulk = online_store_config(s)
    assert request.redis_type == bulk.redis_type
    _, request_options = RedisOnlineStore._parse_connection_string(request.connection_string)
    _, bulk_options = RedisOnlineStore._parse_connection_string(bulk.connection_string)
    assert request_options["socket_timeout"] == request_options["socket_connect_timeout"] == 0.03
    assert bulk_options["socket_timeout"] == bulk_options["socket_connect_timeout"] == 0.2
    # the same server and credentials: only the timeouts differ
    assert {k: v for k, v in request_options.items() if "timeout" not in k} == {
        k: v for k, v in bulk_options.items() if "timeout" not in k
    }


def test_the_embedded_store_has_no_per_request_client(tmp_path):
    assert request_store_config(Settings(profile="local", data_dir=tmp_path)) is None
