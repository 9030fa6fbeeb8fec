"""Honest fakes for the data side of serving: the online store, the model registry and its model
pairs, the journal, the publish log, the identity map, metrics and a clock.

Each behaves like the real adapter on what the tests rely on (documented per class), so a test
through ``serving.bootstrap.build`` with these runs the service's real code. No tests live here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from serving.dedupe import MemoryDedupe
from serving.rollout.models import ModelBundle, ModelHolder, ModelLoadError, Pair
from setlist.candidate_sources import GLOBAL_COHORT
from setlist.candidates import CandidateIndex
from setlist.feature_layout import Layout
from setlist.features import USER_TOP_GENRE, USER_VECTOR
from setlist.featureset import DEFAULT_SERVICE, MODEL_SERVICE_ATTR, FeatureSet
from setlist.impressions import Impression
from setlist.pseudonym import pseudonymize
from setlist.publish import Publish
from setlist.settings import Settings

if TYPE_CHECKING:  # bootstrap imports the real adapters (Feast...): only Dataplane.build needs it
    from serving.bootstrap import Server

Row = tuple[datetime | None, dict[str, Any] | None]
GENRES = ["rock", "pop", "jazz", "folk"]
#: 2026-11-01 12:00 UTC, a Sunday: a fixed "now" so request hours and weekdays are reproducible
START = 1_793_534_400.0


class FakeClock:
    """Seconds that move only when a test says so; usable as a wall clock and a monotonic one."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class FakeOnlineFeatures:
    """feature_repo.online.OnlineFeatures in memory. As the real one: a write replaces an entity's
    row in a view and keeps its event time; a missing row, or one whose values are all None, reads
    as ``(None, None)``; reads return fresh dicts. ``fail`` makes every read raise it (a store that
    times out), ``fail_writes`` every write (a store that still answers reads: locked, or out of
    memory); ``reads`` counts read calls per view."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, tuple[datetime, dict[str, Any]]]] = {}
        self.fail: BaseException | None = None
        self.fail_writes: BaseException | None = None
        self.reads: dict[str, int] = {}
        self._lock = threading.Lock()

    def read(self, view: str, ids: Sequence[str], features: Sequence[str] | None = None) -> list[Row]:
        with self._lock:
            self.reads[view] = self.reads.get(view, 0) + 1
            if self.fail is not None:
                raise self.fail
            stored = self.rows.get(view, {})
            out: list[Row] = []
            for i in ids:
                hit = stored.get(i)
                if hit is None:
                    out.append((None, None))
                    continue
                ts, values = hit
                values = {k: v for k, v in values.items() if features is None or k in features}
                out.append((None, None) if all(v is None for v in values.values()) else (ts, dict(values)))
            return out

    def read_views(self, views: Sequence[str], entity_id: str) -> list[Row]:
        return [self.read(v, [entity_id])[0] for v in views]

    def read_views_many(self, views: Sequence[str], entity_ids: Sequence[str]) -> list[list[Row]]:
        return [self.read_views(views, i) for i in entity_ids]

    def write(
        self,
        view: str,
        rows: Sequence[tuple[str, dict[str, Any], datetime]],
        stored: Sequence[datetime | None] | None = None,
    ) -> None:
        with self._lock:
            if self.fail_writes is not None:
                raise self.fail_writes
            table = self.rows.setdefault(view, {})
            for n, (entity_id, values, ts) in enumerate(rows):
                if stored is not None and stored[n] is not None and ts <= stored[n]:
                    continue  # as Feast: a row no newer than the stored one is not written
                table[entity_id] = (ts, dict(values))

    def delete(self, view: str, entity_id: str) -> None:
        with self._lock:
            self.rows.get(view, {}).pop(entity_id, None)

    def forget_erased(self, erased: Any) -> None:
        return None  # the fake remembers no keys


class FakeJournal:
    """serving.journal.Journal without a disk: ``append`` returns once the rows are kept (so they
    count as acknowledged) and refuses after ``close``, as the real one does."""

    def __init__(self, held_path: Path | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.closed = False
        self.held_path = held_path  # where Track keeps held consent withdrawals: None, in memory only
        self._lock = threading.Lock()

    def append(
        self,
        rows: list[dict[str, Any]],
        timeout: float | None = None,
        on_late: Callable[[bool], None] | None = None,
    ) -> None:
        with self._lock:
            if self.closed:
                raise RuntimeError("journal is closed")
            self.rows.extend(dict(r) for r in rows)

    def close(self) -> None:
        self.closed = True


class FakeIdentities:
    """setlist.pseudonym.IdentityMap in memory: existing pairs are left alone."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        for p, raw in pairs:
            self.known.setdefault(p, raw)

    def dispose(self) -> None:
        return None


class FakePublishLog:
    """setlist.publish.PublishLog in memory: versions count up from 1; None before any publish."""

    def __init__(self) -> None:
        self.publishes: list[Publish] = []

    def record(self, snapshot: str = "test", rows: int = 0, at: float = START) -> Publish:
        p = Publish(len(self.publishes) + 1, datetime.fromtimestamp(at, tz=UTC), snapshot, rows)
        self.publishes.append(p)
        return p

    def latest(self) -> Publish | None:
        return self.publishes[-1] if self.publishes else None

    def dispose(self) -> None:
        return None


class RecordingMetrics:
    """A serving.bootstrap.MetricsSink that keeps every call as ``(name, args)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            return [n for n, _ in self.calls]

    def __getattr__(self, name: str) -> Any:
        if not name.startswith(("record_", "set_", "mark_", "watch_")):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            with self._lock:
                self.calls.append((name, args))

        return record


class RecordingImpressions:
    """An ImpressionSink that keeps what it was handed (the real one writes parquet later)."""

    def __init__(self) -> None:
        self.records: list[Impression] = []

    def submit(self, record: Impression) -> bool:
        self.records.append(record)
        return True

    def close(self) -> None:
        return None


class FakeBooster:
    """What serving needs of an xgboost.Booster: ``feature_names``, ``attr`` and ``inplace_predict``.
    Scores are a fixed linear function of the inputs (NaN counts as 0), so they are deterministic and
    depend on the user, the item and the request like a real ranker's."""

    def __init__(self, names: Sequence[str], seed: int, service: str = DEFAULT_SERVICE) -> None:
        self.feature_names = list(names)
        self.weights = np.random.default_rng(seed).normal(size=len(names)).astype(np.float32)
        self._attrs = {MODEL_SERVICE_ATTR: service}

    def attr(self, name: str) -> str | None:
        return self._attrs.get(name)

    def set_param(self, params: dict[str, Any]) -> None:
        return None

    def inplace_predict(self, X: np.ndarray, **kw: Any) -> np.ndarray:
        if X.shape[1] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} features, got {X.shape[1]}")
        return np.nan_to_num(np.asarray(X, np.float32)) @ self.weights


def user_ids(n: int) -> list[str]:
    """Raw ids ``user-0`` … of the users the fake models know (their pseudonyms are in the index)."""
    return [f"user-{k}" for k in range(n)]


def fake_index(settings: Settings, n_items: int = 60, n_users: int = 10, seed: int = 0) -> CandidateIndex:
    """A small real CandidateIndex: known users (by pseudonym), factors, co-visits, a popularity list."""
    rng = np.random.default_rng(seed)
    key = settings.secret_hmac_key()
    dense = rng.random((n_items, n_items)) * (rng.random((n_items, n_items)) < 0.1)
    return CandidateIndex(
        np.array([f"item-{k}" for k in range(n_items)]),
        rng.integers(0, len(GENRES), n_items),
        GENRES,
        np.array([pseudonymize(u, key) for u in user_ids(n_users)]),
        rng.normal(size=(n_users, 8)),
        rng.normal(size=(n_items, 8)),
        sp.csr_matrix(dense.astype(np.float32)),
        {GLOBAL_COHORT: rng.permutation(n_items)},
    )


class FakeModelRegistry:
    """The MLflow side of ModelHolder: ``versions`` is the alias lookup, ``load`` the loader.

    ``aliases`` maps alias → pair; ``bundles`` holds what each pair loads as; a pair in ``broken``
    fails to load with ModelLoadError (as load_bundle refuses a bad version); a pair in ``gates``
    waits on its event before loading (announcing itself on ``loading``), to hold a swap mid-way."""

    def __init__(self, settings: Settings, features: FeatureSet) -> None:
        self.settings, self.features = settings, features
        self.aliases: dict[str, Pair] = {}
        self.bundles: dict[Pair, ModelBundle] = {}
        self.broken: set[Pair] = set()
        self.gates: dict[Pair, threading.Event] = {}
        self.loading = threading.Event()
        self.loads: list[Pair] = []

    def add(self, pair: Pair, seed: int = 0, alias: str | None = "champion") -> ModelBundle:
        """Register a pair (its scorer drawn from ``seed``) and optionally point ``alias`` at it."""
        names = self.features.service(DEFAULT_SERVICE).inputs
        bundle = ModelBundle(
            fake_index(self.settings),
            FakeBooster(names, seed),
            pair[0],
            pair[1],
            Layout.of(names, self.features),
            DEFAULT_SERVICE,
        )
        self.bundles[pair] = bundle
        if alias is not None:
            self.aliases[alias] = pair
        return bundle

    def versions(self, settings: Settings, alias: str) -> Pair:
        if alias not in self.aliases:
            raise LookupError(f"alias {alias} is not set")  # MLflow raises RESOURCE_DOES_NOT_EXIST
        return self.aliases[alias]

    def load(self, settings: Settings, pair: Pair) -> ModelBundle:
        self.loads.append(pair)
        gate = self.gates.get(pair)
        if gate is not None:
            self.loading.set()
            if not gate.wait(timeout=30):
                raise ModelLoadError(f"{pair}: the test never released the load")
        if pair in self.broken or pair not in self.bundles:
            raise ModelLoadError(f"cannot load {pair}: broken artifact")
        return self.bundles[pair]

    def holder(self, aliases: tuple[str, ...] = ("champion",)) -> ModelHolder:
        return ModelHolder(self.settings, loader=self.load, versions=self.versions, aliases=aliases)


class FakeRolloutRegistry:
    """serving.rollout.driver.RolloutRegistry that records calls; no version carries rollout tags."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def status(self, pair: Pair) -> tuple[str, Pair | None]:
        return "", None

    def mark(self, pair: Pair, tags: dict[str, str]) -> None:
        self.calls.append(("mark", (pair, tags)))

    def set_champion(self, pair: Pair) -> None:
        self.calls.append(("set_champion", (pair,)))

    def log_run(self, name: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        self.calls.append(("log_run", (name, tags, metrics)))


def fill_store(online: FakeOnlineFeatures, features: FeatureSet, index: CandidateIndex, seed: int = 1) -> None:
    """Item stats for every item, a profile and a consent row for every known user, as a materialization would."""
    rng = np.random.default_rng(seed)
    at = datetime.fromtimestamp(START - 86_400, tz=UTC)
    item_names, user_names = features.inputs("item"), features.inputs("user")
    online.write(
        "item_stats",
        [
            (
                str(i),
                {**{n: float(rng.random()) for n in item_names}, "item_genre": GENRES[int(index.item_genre[k])]},
                at,
            )
            for k, i in enumerate(index.item_ids)
        ],
    )
    online.write(
        "user_profile",
        [
            (
                str(u),
                {
                    **{n: float(rng.random()) for n in user_names},
                    USER_VECTOR: rng.random(len(GENRES)).tolist(),
                    USER_TOP_GENRE: GENRES[int(rng.integers(len(GENRES)))],
                },
                at,
            )
            for u in index.user_ids
        ],
    )
    # every user has a consent row (serving fails closed without one); these users consented
    online.write(
        "user_consent",
        [(str(u), {"consent_personalization": True, "consent_analytics": True}, at) for u in index.user_ids],
    )


@dataclass
class Dataplane:
    """Every fake a server needs, consistent with one another (same items, users and key)."""

    settings: Settings
    features: FeatureSet
    clock: FakeClock = field(default_factory=FakeClock)
    online: FakeOnlineFeatures = field(default_factory=FakeOnlineFeatures)
    journal: FakeJournal = field(default_factory=FakeJournal)
    identities: FakeIdentities = field(default_factory=FakeIdentities)
    publishes: FakePublishLog = field(default_factory=FakePublishLog)
    metrics: RecordingMetrics = field(default_factory=RecordingMetrics)
    impressions: RecordingImpressions = field(default_factory=RecordingImpressions)
    rollout: FakeRolloutRegistry = field(default_factory=FakeRolloutRegistry)
    registry: FakeModelRegistry = field(init=False)
    dedupe: MemoryDedupe = field(init=False)  # Track's retry marks, on the plane's clock

    def __post_init__(self) -> None:
        self.registry = FakeModelRegistry(self.settings, self.features)
        self.dedupe = MemoryDedupe(self.settings.track_dedupe_hours * 3600, clock=self.clock)
        champion = self.registry.add(("1", "1"), seed=0)
        fill_store(self.online, self.features, champion.index)
        self.publishes.record()

    @classmethod
    def fresh(cls, tmp_path: Path, **settings: Any) -> Dataplane:
        """A plane over ``tmp_path/data`` with the test key and the built-in feature declarations;
        ``settings`` set anything else (``impressions_enabled=False``, a reload interval...)."""
        from feature_repo.declarations import load

        config = Settings(**{"data_dir": tmp_path / "data", "hmac_key": "test-hmac-key", **settings})
        return cls(config, load(config))

    def build(self, load: bool = True, **overrides: Any) -> Server:
        """serving.bootstrap.build with every dependency a fake (``overrides`` replace any)."""
        from serving.bootstrap import build

        parts: dict[str, Any] = dict(
            online=self.online,
            features=self.features,
            models=self.registry.holder(),
            rollout_registry=self.rollout,
            publishes=self.publishes,
            journal=self.journal,
            identities=self.identities,
            dedupe=self.dedupe,
            impressions=self.impressions,
            clock=self.clock,
            metrics_sink=self.metrics,
        )
        parts.update(overrides)
        return build(self.settings, load=load, **parts)
