"""Direct access to the online store through Feast's own provider, for hot paths.

``FeatureStore.get_online_features`` resolves feature references against the registry and
builds response protos on every call (tens of milliseconds). Here the feature views are resolved
once, and reads go straight to the online store's ``online_read`` with Feast's key layout, so the
values are exactly those Feast wrote.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any, cast

from feast import FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import StringList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from feature_repo.entities import item, user
from setlist.eventlog import Erased

JOIN_KEYS = {user.name: user.join_key, item.name: item.join_key}
Row = tuple[datetime | None, dict[str, Any] | None]
#: entities whose Redis key is remembered (about 100 bytes each)
KEY_CACHE = 100_000
#: entity keys per SCAN step and per pipeline of HDELs when a publish drops features no longer declared
DROP_BATCH = 5_000


def of_project(key: bytes, prefix: bytes, project: str) -> bool:
    """Whether a key a SCAN of ``prefix*project`` matched is one entity's key of ``project`` (Feast's layout:
    the serialized join keys, the value's type, length and bytes, then the project). The pattern's ``*``
    also matches the keys of another project whose name ends with this one (``staging_setlist`` for
    ``setlist``, ``preprod`` for ``prod``) on a shared Redis."""
    at = len(prefix) + 4  # past the value's type
    if not key.startswith(prefix) or len(key) < at + 4:
        return False
    (size,) = struct.unpack_from("<I", key, at)
    return key[at + 4 + size :] == project.encode("utf8")


def entity_key(join_key: str, value: str) -> EntityKeyProto:
    return EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=value)])


# Track writes session rows on the hot path; Feast's python_values_to_proto_values inspects every
# value (tens of microseconds each). Plain Python values of these types convert directly; anything
# else (numpy scalars, NaN, other types) still goes through Feast.
_DIRECT: dict[ValueType, tuple[tuple[type, ...], Callable[[Any], ValueProto]]] = {
    ValueType.STRING: ((str,), lambda v: ValueProto(string_val=v)),
    ValueType.INT64: ((int,), lambda v: ValueProto(int64_val=v)),
    ValueType.BOOL: ((bool,), lambda v: ValueProto(bool_val=v)),
    ValueType.STRING_LIST: ((list, tuple), lambda v: ValueProto(string_list_val=StringList(val=v))),
}


def to_proto(value: Any, dtype: ValueType) -> ValueProto:
    """One Python value as Feast would store it."""
    direct = _DIRECT.get(dtype)
    if direct is not None:
        kinds, make = direct
        if type(value) in kinds and (dtype != ValueType.STRING_LIST or all(type(x) is str for x in value)):
            return make(value)
        if value is None:
            return ValueProto()
    elif dtype == ValueType.DOUBLE and type(value) is float and value == value:
        return ValueProto(double_val=value)
    return python_values_to_proto_values([value], dtype)[0]


def _row(ts: datetime | None, values: dict[str, ValueProto] | None) -> Row:
    """Python values, or ``(None, None)`` when the entity has no row in the view. Redis answers a
    view that was never written for a known (or unknown) entity with the epoch and all-empty values;
    that is "no row" too, not a row of nulls (a null consent flag must not read as an opt-out)."""
    if values is None:
        return None, None
    out = {k: feast_value_type_to_python_type(v) for k, v in values.items()}
    if all(v is None for v in out.values()):
        return None, None
    return ts, out


# Feast decodes a Redis reply into a dict of ValueProtos, then each to Python through
# feast_value_type_to_python_type, which tests the kind against a dozen special cases: two thirds
# of Track's session push and a third of Rank's row read were spent there (NOTES.md, Performance).
# Plain scalars and plain lists come straight off the proto; every other kind (maps, sets, JSON,
# timestamps, UUIDs, decimals, null) still goes through Feast, so the values are the same.
_SCALARS = frozenset({"string_val", "int64_val", "int32_val", "double_val", "float_val", "bool_val", "bytes_val"})
_LISTS = frozenset(
    {
        "string_list_val",
        "int64_list_val",
        "int32_list_val",
        "double_list_val",
        "float_list_val",
        "bool_list_val",
        "bytes_list_val",
    }
)


def python_value(raw: bytes | None) -> Any:
    """One stored field (a serialized ValueProto, or None) as feast_value_type_to_python_type gives it."""
    if not raw:
        return None
    value = ValueProto.FromString(raw)
    kind = value.WhichOneof("val")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind in _LISTS:
        return list(getattr(value, kind).val)
    if kind is None:
        return None
    return feast_value_type_to_python_type(value)


def stored_time(raw: bytes | None) -> datetime:
    """A row's ``_ts`` field as Feast reads it (the epoch when absent)."""
    ts = Timestamp.FromString(raw) if raw else Timestamp()
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1_000_000_000.0, tz=UTC)


def _aware(ts: datetime) -> datetime:
    """Feast compares event times as UTC-aware; a naive time is UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _decoded_row(features: Sequence[str], reply: Sequence[bytes | None]) -> Row:
    """``_row`` of one view's HMGET reply (its features' fields, then ``_ts``), decoded directly."""
    out = {name: python_value(raw) for name, raw in zip(features, reply)}
    if all(v is None for v in out.values()):
        return None, None
    return stored_time(reply[len(features)]), out


class OnlineFeatures:
    """Feature views resolved once; reads and writes without registry lookups."""

    def __init__(
        self,
        store: FeatureStore,
        views: Iterable[FeatureView],
        request_store: Any | None = None,
        read_wait_s: float | None = None,
        write_wait_s: float | None = None,
    ) -> None:
        """``request_store``: a Redis store configuration (``feature_repo.store.request_store_config``)
        for a second client that serves one entity's reads and a Track's writes with its own, shorter
        timeouts; without one, Feast's client serves them too. ``read_wait_s``: on SQLite, how long one
        entity's read (``read_views``, Rank's) waits for the store's lock before it gives up with a
        TimeoutError, as a Redis read gives up on its socket timeout; None waits as long as it takes.
        ``write_wait_s``: on SQLite, how long a write waits for another process's (a materialize
        publishing) before it fails with "database is locked"; None keeps sqlite3's 5 s."""
        self.store = store
        self.config = store.config
        self.provider = store._get_provider()
        # Any: the helpers used below are private to Feast's concrete stores (Redis, SQLite); the
        # base OnlineStore type does not declare them, and the code checks which store it holds
        self.online_store: Any = cast(Any, self.provider.online_store)
        self.views = {v.name: v for v in views}
        self._join_key = {v.name: JOIN_KEYS[v.entities[0]] for v in self.views.values()}
        self._dtypes = {v.name: {f.name: f.dtype.to_value_type() for f in v.features} for v in self.views.values()}
        self._fields: dict[tuple[str, ...], tuple[list[str], list[tuple[list[str], list[Any]]]]] = {}
        self._keys: dict[tuple[str, str], bytes] = {}
        # Feast's SQLite store shares one connection; concurrent Track pushes and Rank reads on it
        # fail with OperationalError, so SQLite access is serialized. Redis clients are thread-safe.
        self._sqlite_lock = threading.Lock() if type(self.online_store).__name__ == "SqliteOnlineStore" else None
        self._guard = self._sqlite_lock if self._sqlite_lock is not None else nullcontext()
        self._read_wait_s = read_wait_s
        self._redis = type(self.online_store).__name__ == "RedisOnlineStore"
        self._request_client: Any = None
        if self._redis:
            # redis-py retries a refused connection with backoff (~7 s); a hot path must fail at
            # once and let the caller degrade. On a Redis Cluster (the cluster profile) Feast's
            # client is a RedisCluster, whose own default is 3 retries for commands and pipelines
            # alike (4 socket timeouts on a hung master: 0.8 s at 200 ms; its connections to each
            # node never retry). One retry, on a slot map refreshed after the failure, is what lets
            # a failover to a replica go unnoticed; a hung master costs two timeouts, a dead one a
            # refused connection (docs/redis-cluster.md has the measurements).
            from setlist.redis_client import fail_fast_retry

            self.online_store._get_client(self.config.online_store).set_retry(fail_fast_retry(1))
            if request_store is not None:
                # Feast's parsing of the same connection string (host, password, TLS, cluster seeds),
                # on a store object of its own so the two clients' pools stay apart. A dropped
                # connection (Redis restarted) is worth one retry; a hung Redis is not: a second
                # timeout would only double what the request waits.
                client = type(self.online_store)()._get_client(request_store)
                client.set_retry(fail_fast_retry(1, retry_timeouts=False))
                self._request_client = client
        elif type(self.online_store).__name__ == "SqliteOnlineStore":
            # readers (serving) and a writer (materialize) in different processes: WAL mode lets
            # reads go on while a publish writes
            conn = self.online_store._get_conn(self.config)
            conn.execute("PRAGMA journal_mode=WAL")
            if write_wait_s is not None:
                # a Track's session push behind a publish's write: its events are journaled already, so it
                # degrades (session_push_failed) in time for the call's deadline rather than wait 5 s
                conn.execute(f"PRAGMA busy_timeout = {max(1, round(write_wait_s * 1000))}")

    @classmethod
    def from_registry(
        cls,
        store: FeatureStore,
        names: Sequence[str],
        request_store: Any | None = None,
        read_wait_s: float | None = None,
        write_wait_s: float | None = None,
    ) -> OnlineFeatures:
        return cls(store, [store.get_feature_view(n) for n in names], request_store, read_wait_s, write_wait_s)

    def read(self, view: str, ids: Sequence[str], features: Sequence[str] | None = None) -> list[Row]:
        if self._redis and not features:  # every feature: the direct read (startup loads 50k items so)
            # a bulk read (every item at start and refresh): its keys are not worth remembering
            return [rows[0] for rows in self._read_redis((view,), ids, remember=False)]
        return self.feast_read(view, ids, features)

    def feast_read(self, view: str, ids: Sequence[str], features: Sequence[str] | None = None) -> list[Row]:
        """Rows through Feast's own ``online_read`` and value conversion (the reference for the
        direct reads, and the path of every store other than Redis)."""
        fv = self.views[view]
        keys = [entity_key(self._join_key[view], i) for i in ids]
        with self._guard:
            raw = self.online_store.online_read(self.config, fv, keys, list(features) if features else None)
        return [_row(ts, values) for ts, values in raw]

    def read_views(self, views: Sequence[str], entity_id: str) -> list[Row]:
        """One entity's row in each of ``views`` (all on the same entity), in one round trip on Redis.

        Feast keeps every view of an entity in one Redis hash; its online_read asks for one view
        at a time. Here one HMGET asks for every view's fields, built and decoded by the store's own
        helpers, so the layout stays Feast's. On a Redis Cluster the one key is one slot, so the
        command goes to the one master that holds it, still in one round trip."""
        lock = self._sqlite_lock
        if lock is None or self._read_wait_s is None:
            return self.read_views_many(views, [entity_id])[0]
        # SQLite: a Track flood's session pushes queue on the one lock, and Rank must not queue behind
        # all of them; it degrades instead, as it does when Redis does not answer in time
        if not lock.acquire(timeout=self._read_wait_s):
            raise TimeoutError(f"the SQLite online store stayed busy for {self._read_wait_s * 1000:.0f} ms")
        try:
            rows = []
            for view in views:
                keys = [entity_key(self._join_key[view], entity_id)]
                ((ts, values),) = self.online_store.online_read(self.config, self.views[view], keys, None)
                rows.append(_row(ts, values))
            return rows
        finally:
            lock.release()

    def read_views_many(self, views: Sequence[str], entity_ids: Sequence[str]) -> list[list[Row]]:
        """``read_views`` for several entities: one HMGET each, in one pipeline (Track's session push
        reads the session and consent of a batch's users this way)."""
        if not self._redis:
            per_view = [self.read(v, entity_ids) for v in views]
            return [list(rows) for rows in zip(*per_view)] if per_view else [[] for _ in entity_ids]
        return self._read_redis(tuple(views), entity_ids)

    def _read_redis(self, views: tuple[str, ...], entity_ids: Sequence[str], remember: bool = True) -> list[list[Row]]:
        """Each entity's row in each view: one HMGET per entity, in one pipeline, with Feast's hash
        fields, decoded directly (``python_value``)."""
        store = self.online_store
        join_key = self._join_key[views[0]]
        keys = [self._key(join_key, i) if remember else self.redis_key(entity_key(join_key, i)) for i in entity_ids]
        _, requests = self._hash_fields(views)
        fields = [f for _, view_fields in requests for f in view_fields]
        if remember and self._request_client is not None:
            # what Feast's helper does on its redis-py path, on the per-request client
            with self._request_client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, fields)
                replies = pipe.execute()
        else:
            replies = store._read_hash_fields(self.config, [(key, fields) for key in keys])
        out: list[list[Row]] = []
        for reply in replies:
            rows: list[Row] = []
            start = 0
            for features, view_fields in requests:
                end = start + len(view_fields)
                rows.append(_decoded_row(features[:-1], reply[start:end]))  # the last field is _ts
                start = end
            out.append(rows)
        return out

    def _hash_fields(self, views: tuple[str, ...]) -> tuple[list[str], list[tuple[list[str], list[Any]]]]:
        """Each view's versioned name and (features, hash fields) in Feast's Redis layout: the same
        for every entity, so worked out once per set of views rather than on every Rank."""
        cached = self._fields.get(views)
        if cached is None:
            from feast.infra.online_stores.redis import _versioned_fv_name

            names = [_versioned_fv_name(self.views[v], self.config) for v in views]
            requests = [
                self.online_store._generate_hset_keys_for_features(self.views[v], None, fv_name_override=n)
                for v, n in zip(views, names)
            ]
            cached = self._fields[views] = (names, requests)
        return cached

    def write(
        self,
        view: str,
        rows: Sequence[tuple[str, dict[str, Any], datetime]],
        stored: Sequence[datetime | None] | None = None,
    ) -> None:
        """Write ``(entity_id, {feature: value}, event_time)`` rows, one per entity, as a push would.

        Feast keeps a row only if it is newer than the one stored, which costs it a read of every
        row's time before the write. A caller that has just read the rows passes their times as
        ``stored`` (None: no row): the same rule is applied here, and on Redis the rows are written
        in one round trip."""
        if stored is not None:
            rows = [r for r, was in zip(rows, stored, strict=True) if was is None or _aware(r[2]) > _aware(was)]
            if not rows:
                return
            if self._redis:
                self._write_redis(view, rows)
                return
        fv = self.views[view]
        dtypes = self._dtypes[view]
        batch = []
        for entity_id, values, ts in rows:
            protos = {name: to_proto(v, dtypes.get(name, ValueType.UNKNOWN)) for name, v in values.items()}
            batch.append((entity_key(self._join_key[view], entity_id), protos, ts, None))
        with self._guard:
            self.online_store.online_write_batch(self.config, fv, batch, progress=None)

    def _write_redis(self, view: str, rows: Sequence[tuple[str, dict[str, Any], datetime]]) -> None:
        """Feast's Redis layout written directly (what its write does once the time check is done):
        per entity one HSET of the row's time and each feature's serialized value under the field
        names Feast's own helper gives, then the store's key TTL. Feast's write hashes every field
        name and serializes every entity key again for each row: half of Track's CPU."""
        ((features, fields),) = self._hash_fields((view,))[1]
        field_of = dict(zip(features, fields))
        time_field = field_of.pop(features[-1])  # _ts:<view>
        dtypes = self._dtypes[view]
        join_key = self._join_key[view]
        ttl = self.config.online_store.key_ttl_seconds
        client = self.redis_client if self._request_client is None else self._request_client
        with client.pipeline(transaction=False) as pipe:
            for entity_id, values, ts in rows:
                stamp = Timestamp()
                stamp.FromDatetime(_aware(ts))
                mapping = {time_field: stamp.SerializeToString()}
                for name, value in values.items():
                    proto = to_proto(value, dtypes.get(name, ValueType.UNKNOWN))
                    mapping[field_of[name]] = proto.SerializeToString()
                key = self._key(join_key, entity_id)
                pipe.hset(key, mapping=mapping)
                if ttl:
                    pipe.expire(key, ttl)
            pipe.execute()

    def forget_erased(self, erased: Erased) -> None:
        """Drop the remembered keys of erased entities."""
        gone = erased.among([entity_id for _, entity_id in list(self._keys)])
        for cached in [k for k in list(self._keys) if k[1] in gone]:
            self._keys.pop(cached, None)

    def _key(self, join_key: str, entity_id: str) -> bytes:
        """Feast's Redis key of one entity, remembered: Rank and Track ask for the same users again
        and again, and each key is a proto built and encoded by Feast (a few microseconds a time)."""
        key = self._keys.get((join_key, entity_id))
        if key is None:
            key = self.redis_key(entity_key(join_key, entity_id))
            if len(self._keys) >= KEY_CACHE:
                self._keys.clear()  # a bound, not an LRU: refilling costs one serialization per user
            self._keys[(join_key, entity_id)] = key
        return key

    @property
    def redis_client(self) -> Any:
        """Feast's client of the Redis online store (``redis.Redis``, or ``RedisCluster`` in the
        cluster profile); None for other stores."""
        if type(self.online_store).__name__ != "RedisOnlineStore":
            return None
        return self.online_store._get_client(self.config.online_store)

    def redis_key(self, key: EntityKeyProto) -> bytes:
        """Feast's Redis key of one entity: its serialized key and the project. Every view of the
        entity is a field group in this one hash, so on a cluster they share one slot."""
        from feast.infra.online_stores.helpers import _redis_key

        return _redis_key(self.config.project, key, self.config.entity_key_serialization_version)

    def shard(self, view: str, entity_id: str) -> str | None:
        """The Redis Cluster master (``host:port``) holding one entity's row, from the client's
        cached slot map (no round trip); None when the store is not a cluster. The per-request
        client's map, where there is one: it is the map those reads follow, refreshed after a failover."""
        client = self.redis_client if self._request_client is None else self._request_client
        if client is None or not hasattr(client, "keyslot"):
            return None
        slot = client.keyslot(self.redis_key(entity_key(self._join_key[view], entity_id)))
        try:
            return str(client.nodes_manager.get_node_from_slot(slot).name)
        except Exception:  # a slot map being refreshed: no shard to blame
            return None

    def drop_features(self, fv: FeatureView, names: Sequence[str]) -> int:
        """Remove the values of ``names`` from every row of ``fv`` (as registered: it still declares them),
        once a publish no longer declares them: how many rows (SQLite) or entity hashes (Redis) held one.
        A later declaration of the same name then reads nothing until a build writes it, never the old
        values. SQLite: one DELETE on the view's table. Redis: every entity key of the view's entity
        (SCAN, on every master of a cluster), then an HDEL of those features' fields alone in pipelines of
        ``DROP_BATCH`` keys; the row's time and the other features stay. Store-specific, as Feast has no API."""
        if not names:
            return 0
        kind = type(self.online_store).__name__
        if kind == "SqliteOnlineStore":
            import sqlite3

            from feast.infra.online_stores.sqlite import _table_id

            with self._guard:
                conn = self.online_store._get_conn(self.config)
                marks = ", ".join("?" for _ in names)
                try:
                    cursor = conn.execute(
                        f'DELETE FROM "{_table_id(self.config.project, fv)}" WHERE feature_name IN ({marks})',
                        tuple(names),
                    )
                except sqlite3.OperationalError as exc:  # the view was registered but never materialized
                    if "no such table" in str(exc):
                        return 0
                    raise
                conn.commit()
                return int(cursor.rowcount)
        elif kind == "RedisOnlineStore":
            from feast.infra.online_stores.helpers import _redis_key_prefix
            from feast.infra.online_stores.redis import _versioned_fv_name

            _, fields = self.online_store._generate_hset_keys_for_features(
                fv, list(names), fv_name_override=_versioned_fv_name(fv, self.config)
            )
            fields = fields[:-1]  # the last is the view's `_ts` field, which its other features keep
            client = self.redis_client
            prefix = _redis_key_prefix(list(fv.join_keys))
            pattern = b"".join([prefix, b"*", self.config.project.encode("utf8")])
            dropped = 0
            batch: list[bytes] = []

            def flush() -> int:
                with client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        pipe.hdel(key, *fields)
                    held = sum(1 for n in pipe.execute() if n)
                batch.clear()
                return held

            for key in client.scan_iter(match=pattern, count=DROP_BATCH):
                if not of_project(key, prefix, self.config.project):
                    continue  # another project's, whose name ends with this one's
                batch.append(key)
                if len(batch) >= DROP_BATCH:
                    dropped += flush()
            return dropped + (flush() if batch else 0)
        else:  # pragma: no cover - other stores are not configured by Setlist
            raise NotImplementedError(f"dropping features is not implemented for {kind}")

    def delete(self, view: str, entity_id: str) -> bool:
        """Remove one entity's row from a view (erasure); whether there was one. Store-specific, as
        Feast has no API."""
        fv = self.views[view]
        key = entity_key(self._join_key[view], entity_id)
        kind = type(self.online_store).__name__
        if kind == "SqliteOnlineStore":
            from feast.infra.key_encoding_utils import serialize_entity_key
            from feast.infra.online_stores.sqlite import _table_id

            with self._guard:
                conn = self.online_store._get_conn(self.config)
                table = _table_id(self.config.project, fv)
                cursor = conn.execute(
                    f'DELETE FROM "{table}" WHERE entity_key = ?',
                    (serialize_entity_key(key, self.config.entity_key_serialization_version),),
                )
                conn.commit()
                return bool(cursor.rowcount)
        elif kind == "RedisOnlineStore":
            # Only this view's fields of the entity's one hash: deleting the key would take its other
            # views too (a withdrawn user's consent row with their profile). Redis drops the key with
            # its last field, so erasing every view leaves no key. On a cluster: the slot's master.
            from feast.infra.online_stores.redis import _versioned_fv_name

            _, fields = self.online_store._generate_hset_keys_for_features(
                fv, None, fv_name_override=_versioned_fv_name(fv, self.config)
            )
            return bool(self.online_store._get_client(self.config.online_store).hdel(self.redis_key(key), *fields))
        else:  # pragma: no cover - other stores are not configured by Setlist
            raise NotImplementedError(f"erasure is not implemented for {kind}")
