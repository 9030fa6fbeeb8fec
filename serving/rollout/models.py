"""The served models, loaded from the MLflow registry by alias and swapped atomically on change.

A new version is loaded and checked *before* it replaces the old one; a version that fails to
load or to score a smoke input is refused and the current one keeps serving. The champion is
always loaded; an experiment may add other aliases (``challenger``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, TypeVar

import numpy as np

from setlist import registry
from setlist.blend import scorer
from setlist.candidates import CandidateIndex
from setlist.feature_layout import Layout
from setlist.featureset import DEFAULT_SERVICE, MODEL_SERVICE_ATTR, DeclarationError, FeatureSet
from setlist.registry import CHAMPION, Pair
from setlist.request_time import model_zone, zone_name
from setlist.settings import Settings
from setlist.sqltimeouts import libpq_environment

log = logging.getLogger("setlist.serving.rollout.models")
T = TypeVar("T")


class ModelLoadError(RuntimeError):
    pass


class AlreadyRefused(ModelLoadError):
    """The pair failed (or was rolled back) before; it is not loaded again."""


@dataclass(frozen=True)
class ModelBundle:
    index: CandidateIndex
    booster: object  # xgboost.Booster, scored with inplace_predict only
    candidates_version: str
    ranker_version: str
    layout: Layout | None = None  # where each input comes from (None: the bundle is a test double)
    service: str = DEFAULT_SERVICE
    zone: tzinfo = UTC  # the clock of the request features, as the ranker was trained (setlist.request_time)

    @property
    def pair(self) -> Pair:
        return self.candidates_version, self.ranker_version

    @property
    def version(self) -> str:
        return f"candidates:{self.candidates_version}+ranker:{self.ranker_version}"

    def score(self, X: np.ndarray) -> np.ndarray:
        """All candidates of one request at once (a blended ranker scales its margin per request)."""
        cached = self.__dict__.get("_scorer")
        if cached is None or cached[0] is not self.booster:  # read the booster's attributes once
            cached = (self.booster, scorer(self.booster))
            object.__setattr__(self, "_scorer", cached)
        return cached[1](X)


class RegistryTimeout(TimeoutError):
    """The registry did not answer within the deadline (or a previous call is still waiting for it)."""


class Bounded:
    """Runs registry calls on a helper thread and waits at most ``timeout_s`` for each.

    MLflow retries a dead store for about 100 s (engine creation against a SQL store, HTTP retries
    against a tracking server); the refresh loop, which also judges the canary, must not stall behind
    it. A call that times out keeps running on its daemon thread, and no new call starts until it
    ends: at most one thread per ``Bounded`` is ever stuck, and the next call fails at once."""

    def __init__(self, timeout_s: float, name: str = "setlist-registry") -> None:
        self.timeout_s, self.name = timeout_s, name
        self._lock = threading.Lock()
        self._running: Future[Any] | None = None

    def __call__(self, fn: Callable[..., T], *args: object) -> T:
        future: Future[T] = Future()
        with self._lock:
            if self._running is not None and not self._running.done():
                raise RegistryTimeout(f"a registry call has been waiting for over {self.timeout_s:g}s")
            self._running = future

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller, whatever it is
                future.set_exception(exc)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise RegistryTimeout(f"the registry did not answer within {self.timeout_s:g}s") from None

    def wait_idle(self, timeout: float) -> bool:
        """True once no call is running (one that timed out has ended), False after ``timeout`` s."""
        with self._lock:
            running = self._running
        return running is None or not wait([running], timeout).not_done


def mlflow_environment(settings: Settings) -> dict[str, str]:
    """Bounds for MLflow's own clients, so a call that timed out in :class:`Bounded` also ends soon:
    HTTP retries and timeout for a tracking server, libpq deadlines for a PostgreSQL backend. The
    libpq ones reach every PostgreSQL connection of the process, engines we did not build included."""
    timeout = max(1, round(settings.mlflow_timeout_s))
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}
    if any(url.startswith("postgresql") for url in (settings.tracking_uri, settings.metadata_url)):
        env |= libpq_environment(settings.database_connect_timeout_s, settings.database_statement_timeout_ms)
    return env


def bound_mlflow(settings: Settings) -> None:
    """Apply :func:`mlflow_environment` to this process (values already set by the operator win).
    For a serving process only: training's long registry writes must not get serving's deadlines."""
    for name, value in mlflow_environment(settings).items():
        os.environ.setdefault(name, value)


def alias_versions(settings: Settings, alias: str) -> Pair:
    """The (candidates, ranker) versions an alias names, read from the registry (AliasNotSet if unset)."""
    return registry.lookup_pair(registry.connect(settings), settings, alias).pair


def load_bundle(settings: Settings, versions: Pair) -> ModelBundle:
    """Load one pair of versions and prove it can rank before anyone uses it."""
    try:
        index, booster = registry.load_pair(settings, versions)
    except Exception as exc:
        raise ModelLoadError(f"cannot load champion {versions}: {type(exc).__name__}: {exc}") from exc
    if not len(index.item_ids) or index.item_factors.shape[0] != len(index.item_ids):
        raise ModelLoadError(f"candidate index v{versions[0]} is empty or inconsistent")
    from feature_repo.declarations import load

    fs = load(settings)
    service, layout = check_signature(booster, versions[1], fs)
    check_store(settings, service, layout, index, versions[1])
    # One thread per request: OpenMP threads fight each other (and the other requests) on a small
    # machine, and parallelism comes from serving workers instead. Measured: p99 15.9 → 5.0 ms.
    booster.set_param({"nthread": 1})
    try:
        probe = scorer(booster)(np.zeros((2, len(layout.names)), np.float32))
    except ValueError as exc:  # a margin feature the booster does not have
        raise ModelLoadError(f"ranker v{versions[1]}: {exc}") from exc
    if probe.shape != (2,) or not np.all(np.isfinite(probe)):
        raise ModelLoadError(f"ranker v{versions[1]} returned {probe!r} on a probe input")
    return ModelBundle(
        index, booster, versions[0], versions[1], layout, service, ranker_zone(settings, booster, versions[1])
    )


def ranker_zone(settings: Settings, booster, version: str) -> tzinfo:
    """The ranker's clock; one that differs from ``SETLIST_TIMEZONE`` is kept (it is what the model
    learned) and said, since the setting takes effect at the next training."""
    try:
        zone = model_zone(booster)
    except ValueError as exc:
        raise ModelLoadError(f"ranker v{version}: its request time zone does not read: {exc}") from exc
    if zone_name(zone) != settings.timezone:
        log.warning(
            "ranker v%s computes its request features (hour, weekday) in %s, as it was trained; SETLIST_TIMEZONE "
            "is %s, which the next training applies",
            version,
            zone_name(zone),
            settings.timezone,
        )
    return zone


def check_signature(booster, version: str, fs: FeatureSet) -> tuple[str, Layout]:
    """The ranker's feature service (recorded at training) and its inputs, checked against the
    declarations: a model whose service is gone, or was redeclared differently, is refused."""
    names = list(getattr(booster, "feature_names", None) or [])
    service = booster.attr(MODEL_SERVICE_ATTR) or DEFAULT_SERVICE
    try:
        declared = fs.service(service)
    except DeclarationError as exc:
        raise ModelLoadError(
            f"ranker v{version} was trained on {service}, which this server's declarations lack: {exc}"
        ) from exc
    if names != list(declared.inputs):
        extra = [n for n in names if n not in declared.inputs]
        gone = [n for n in declared.inputs if n not in names]
        raise ModelLoadError(
            f"ranker v{version} has {len(names)} inputs that no longer match the declared "
            f"{service} ({len(declared.inputs)}; model only: {extra[:3]}, declared only: {gone[:3]}); "
            "declare a change as a new version (since=N+1) instead of editing an old one"
        )
    return service, Layout.of(names, fs)


#: how many catalogue items and users are probed for the model's features at load
PROBE = 200


def check_store(settings: Settings, service: str, layout: Layout, index: CandidateIndex, version: str) -> None:
    """Refuse a model whose features the online store does not hold: its service must be
    registered, and each of its user and item inputs must have a value for some probed entity
    (a feature declared but never materialized has none)."""
    from feature_repo.online import OnlineFeatures
    from feature_repo.store import get_store

    try:
        store = get_store(settings)
        store.get_feature_service(service)
    except Exception as exc:
        raise ModelLoadError(
            f"ranker v{version} reads feature service {service}, which the feature store does not "
            f"have ({type(exc).__name__}); run `make materialize` to register and publish it"
        ) from exc
    online = OnlineFeatures.from_registry(store, ["user_profile", "item_stats"])
    absent: list[str] = []
    for view, block, ids in (("item_stats", "item", index.item_ids), ("user_profile", "user", index.user_ids)):
        wanted = layout.block_names(block)
        if not wanted or not len(ids):
            continue
        step = max(1, len(ids) // PROBE)
        rows = [v for _, v in online.read(view, [str(i) for i in ids[::step][:PROBE]]) if v is not None]
        absent += [n for n in wanted if not any(r.get(n) is not None for r in rows)]
    if absent:
        raise ModelLoadError(
            f"ranker v{version} ({service}) needs features the online store does not hold: "
            f"{', '.join(absent[:5])}; run `make materialize`, then the server picks it up"
        )


class ModelHolder:
    """Holds one bundle per alias (champion first; challenger and others when an experiment serves
    them). ``bundles`` is replaced as a whole, so a request that read it keeps a consistent set.

    A version pair is loaded and checked before it replaces anything; a pair that fails is refused
    (and remembered, so it is not retried every refresh) and the alias keeps its previous bundle.
    Aliases that name the same pair share one loaded bundle."""

    def __init__(
        self,
        settings: Settings,
        on_change: Callable[[ModelBundle], None] | None = None,
        loader: Callable[[Settings, Pair], ModelBundle] = load_bundle,
        versions: Callable[[Settings, str], Pair] = alias_versions,
        aliases: tuple[str, ...] = (CHAMPION,),
    ) -> None:
        self.settings = settings
        self.aliases = (CHAMPION, *[a for a in aliases if a != CHAMPION])
        self.bundles: dict[str, ModelBundle] = {}
        self._loader, self._versions, self._on_change = loader, versions, on_change
        self._refused: dict[Pair, str] = {}
        self._unset: set[str] = set()  # aliases found unset, said once each
        #: why no champion is served yet, for a Rank told UNAVAILABLE (None once one is)
        self.waiting_for: str | None = None
        self._lock = threading.Lock()
        self._lookup = Bounded(settings.mlflow_timeout_s, "setlist-alias-lookup")

    @property
    def current(self) -> ModelBundle | None:
        """The champion bundle."""
        return self.bundles.get(CHAMPION)

    def refuse(self, pair: Pair, reason: str) -> None:
        """Never serve ``pair`` again in this process (a rolled-back canary, for instance)."""
        with self._lock:
            self._refused[pair] = reason

    def load(self, pair: Pair) -> ModelBundle:
        """A bundle for an explicit pair (the stable side of a canary): reused when loaded, else
        loaded and checked. Raises ModelLoadError for a refused or broken pair."""
        with self._lock:
            return self._get(pair, [])

    def refresh(self, reuse: tuple[ModelBundle | None, ...] = ()) -> bool:
        """Re-read every alias and load what changed; ``reuse`` offers bundles held elsewhere (the
        canary's stable side). Returns True when any alias changed bundle."""
        with self._lock:
            old = self.bundles
            new: dict[str, ModelBundle] = {}
            held = [b for b in reuse if b is not None]
            for alias in self.aliases:
                try:
                    wanted = self._lookup(self._versions, self.settings, alias)
                except registry.AliasNotSet:
                    # said once, in words: training keeps a model that does not beat popularity as
                    # challenger, and a server started on such a registry waits for a champion
                    if alias not in self._unset:
                        self._unset.add(alias)
                        log.warning(
                            "no %s model in the registry yet: not serving until one is set (make train "
                            "promotes a model that beats popularity; python -m training.promote --reason '…' "
                            "promotes the challenger); looked for again every %g s (SETLIST_RELOAD_INTERVAL_S)",
                            alias,
                            self.settings.reload_interval_s,
                        )
                    if alias in old:
                        new[alias] = old[alias]
                    elif alias == CHAMPION:
                        self.waiting_for = (
                            "no champion model in the registry yet (make train promotes one that beats popularity; "
                            "python -m training.promote --reason '…' serves the challenger it kept); looked for "
                            f"again every {self.settings.reload_interval_s:g} s"
                        )
                    continue
                except Exception as exc:
                    log.warning("cannot read alias %s: %s", alias, type(exc).__name__)
                    if alias in old:
                        new[alias] = old[alias]
                    elif alias == CHAMPION:
                        self.waiting_for = f"cannot read the model registry ({type(exc).__name__})"
                    continue
                self._unset.discard(alias)
                try:
                    new[alias] = self._get(wanted, [*new.values(), *held])
                except ModelLoadError as exc:
                    keep = old.get(alias)
                    # once per pair: a refused alias is re-read every refresh until someone moves it
                    log.log(
                        logging.DEBUG if isinstance(exc, AlreadyRefused) else logging.ERROR,
                        "refused %s %s, keeping %s: %s",
                        alias,
                        wanted,
                        keep.version if keep else "none",
                        exc,
                    )
                    if keep is not None and keep.pair not in self._refused:
                        new[alias] = keep
                    elif alias == CHAMPION:
                        self.waiting_for = f"the champion {wanted} was refused: {self._refused.get(wanted, exc)}"
            if CHAMPION in new:
                self.waiting_for = None
            changed = any(new.get(a) is not old.get(a) for a in set(new) | set(old))
            if changed:
                self.bundles = new  # one assignment: readers see the old set or the new one
                log.info("serving models %s", {a: b.version for a, b in new.items()})
        champion = self.current
        if changed and champion is not None and self._on_change is not None:
            self._on_change(champion)
        return changed

    def _get(self, pair: Pair, loaded: list[ModelBundle]) -> ModelBundle:
        if pair in self._refused:
            raise AlreadyRefused(f"{pair} was refused earlier: {self._refused[pair]}")
        for b in (*loaded, *self.bundles.values()):
            if b.pair == pair:
                return b
        try:
            return self._loader(self.settings, pair)
        except ModelLoadError as exc:
            self._refused[pair] = str(exc)
            raise
