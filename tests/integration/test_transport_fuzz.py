"""Garbage on the wire: random bytes and malformed messages must never take the server down."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from serving.client import SetlistClient
from serving.grpc import proto
from serving.grpc.server import start_server
from tests.fakes.dataplane import Dataplane
from tests.fakes.transport import make_settings

METHODS = ("/setlist.v1.RankingService/Rank", "/setlist.v1.RankingService/Track")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


MALFORMED = [
    b"\x0a\x02\xff\xfe",  # user_id that is not UTF-8
    b"\x0a\xff\xff\xff\xff\x0f",  # a length far beyond the message
    b"\x10" + _varint(2**64 - 1),  # k as a 64-bit varint: truncated to int32 -1
    b"\x10" + _varint(2**31 - 1),  # k = INT32_MAX
    b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # an overlong varint
    b"\x1a\x03\x0a\x01",  # a truncated map entry
    b"\x0b",  # a deprecated start-group tag
    b"\x0a\x00" * 10_000,  # ten thousand empty user_ids (last one wins)
    b"\x22\x01x" * 50_000,  # fifty thousand exclusions
    b"\x07",  # field number 0
]


@pytest.fixture
def raw(serve_fake):
    server, client, fake = serve_fake(max_concurrency=4)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    calls = {m: channel.unary_unary(m, request_serializer=None, response_deserializer=None) for m in METHODS}
    yield calls, client
    channel.close()


def _call(method, payload: bytes) -> grpc.StatusCode:
    try:
        method(payload, timeout=5)
    except grpc.RpcError as exc:
        assert exc.code() != grpc.StatusCode.UNKNOWN, exc.details()  # every failure is a deliberate status
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert exc.details()
        return exc.code()
    return grpc.StatusCode.OK


def test_malformed_messages_are_invalid_arguments(raw, caplog):
    calls, client = raw
    rank = calls[METHODS[0]]
    with pytest.raises(grpc.RpcError) as err:
        rank(MALFORMED[0], timeout=5)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request body is not a valid RankRequest message",
    )
    for payload in MALFORMED:
        for method in calls.values():
            assert _call(method, payload) in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    assert len(client.rank("user-1", k=2).items) == 2
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per bad message


def test_random_bytes_never_break_the_server(raw):
    calls, client = raw
    rng = random.Random(20240601)
    seen: set[grpc.StatusCode] = set()
    for _ in range(300):
        payload = rng.randbytes(rng.choice((1, 3, 8, 64, 512, 4096)))
        seen.add(_call(calls[rng.choice(METHODS)], payload))
    assert grpc.StatusCode.INVALID_ARGUMENT in seen
    assert seen <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}  # garbage is the caller's fault
    assert client.health() == "SERVING"
    assert len(client.rank("user-1", k=2).items) == 2


def test_well_formed_but_hostile_values(raw):
    calls, client = raw
    m = proto.ranking_pb2
    hostile = m.RankRequest(
        user_id="\x00" * 10_000 + "\U0001f600",
        k=-5,
        context={"\u202e": "x" * 100_000},
        exclude_item_ids=["\x00"] * 1000,
    )
    assert _call(calls[METHODS[0]], hostile.SerializeToString()) == grpc.StatusCode.INVALID_ARGUMENT
    event = m.Event(event_id="", timestamp_ms=-(2**63), value=float("nan"))
    assert _call(calls[METHODS[1]], m.TrackRequest(events=[event] * 100).SerializeToString()) == grpc.StatusCode.OK
    with grpc.insecure_channel(client.target) as channel:  # an unknown method is UNIMPLEMENTED
        nowhere = channel.unary_unary("/setlist.v1.RankingService/Nope")
        with pytest.raises(grpc.RpcError) as err:
            nowhere(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert len(client.rank("user-1", k=2).items) == 2


# --- the real ranking service behind the transport (every data dependency faked) -----------------
DAY_MS = 86_400_000


@pytest.fixture
def real(tmp_path: Path) -> Iterator[tuple[dict, SetlistClient, Dataplane]]:
    plane = Dataplane.fresh(tmp_path, impressions_enabled=False)
    server = plane.build()
    with start_server(server, make_settings(max_concurrency=4), ready_poll_s=0.02) as running:
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        calls = {m: channel.unary_unary(m, request_serializer=None, response_deserializer=None) for m in METHODS}
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10.0)
        assert client.wait_ready(timeout=10)
        yield calls, client, plane
        client.close()
        channel.close()
    server.close()


def _hostile_events(now_ms: int) -> list:
    m = proto.ranking_pb2
    base = dict(user_id="user-0", item_id="item-3", type="play", timestamp_ms=now_ms)
    return [
        m.Event(**{**base, "event_id": "old", "timestamp_ms": now_ms - 8 * DAY_MS}),
        m.Event(**{**base, "event_id": "far", "timestamp_ms": 10**15}),
        m.Event(**{**base, "event_id": "keys"}, context={f"k{n}": "v" for n in range(1000)}),
        m.Event(**{**base, "event_id": "big"}, context={"device": "x" * 3_000_000}),
        m.Event(**{**base, "event_id": "long-user", "user_id": "u" * 100_000}),
    ]


def test_hostile_track_events_are_rejected_each_with_a_reason(real):
    calls, client, plane = real
    m = proto.ranking_pb2
    now_ms = int(plane.clock() * 1000)
    good = m.Event(event_id="good", user_id="user-0", item_id="item-3", type="play", timestamp_ms=now_ms)
    track = calls[METHODS[1]]
    request = m.TrackRequest(events=[good, *_hostile_events(now_ms)])
    reply = m.TrackResponse.FromString(track(request.SerializeToString(), timeout=10))
    reasons = {r.event_id: r.reason for r in reply.rejected}
    assert reply.accepted == 1 and [r["event_id"] for r in plane.journal.rows] == ["good"]
    assert {k: v.split(":")[0] for k, v in reasons.items()} == {
        "old": "stale_timestamp",
        "far": "bad_timestamp",
        "keys": "bad_context",
        "big": "bad_context",
        "long-user": "too_long",
    }
    for event in _hostile_events(now_ms):  # alone, each is the caller's fault, said briefly
        with pytest.raises(grpc.RpcError) as err:
            track(m.TrackRequest(events=[event]).SerializeToString(), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(err.value.details()) < 1000
    assert client.health() == "SERVING" and len(client.rank("user-0", k=2).items) == 2


def test_random_and_truncated_messages_never_break_the_real_service(real):
    calls, client, plane = real
    m = proto.ranking_pb2
    now_ms = int(plane.clock() * 1000)
    whole = m.TrackRequest(
        events=[
            m.Event(event_id=f"e{n}", user_id=f"user-{n}", item_id="item-3", type="play", timestamp_ms=now_ms)
            for n in range(5)
        ]
    ).SerializeToString()
    rng = random.Random(20240602)
    payloads = [whole[:cut] for cut in range(0, len(whole), 7)]
    payloads += [rng.randbytes(rng.choice((1, 3, 8, 64, 512, 4096))) for _ in range(200)]
    seen: set[grpc.StatusCode] = set()
    for payload in payloads:
        for method in calls.values():
            seen.add(_call(method, payload))
    assert seen <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}  # never INTERNAL
    assert client.health() == "SERVING" and len(client.rank("user-0", k=2).items) == 2
