"""The MLflow registry contract: the one place where training hands models to serving.

Training registers a pair of models (candidates, ranker) and moves aliases onto it; serving reads
the aliases and loads the pair. What both sides must agree on lives here and nowhere else: the
registered model names (from settings), the alias names, the tag keys that link a pair's versions
to each other and to the data they came from, how an alias becomes versions and versions become
loaded models, and how a process connects to the tracking server and the registry.

MLflow is imported inside the functions: the constants are read by modules (experiment config,
routing) that must stay cheap to import.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from setlist.errors import InputMissing
from setlist.featureset import DEFAULT_SERVICE, MODEL_SERVICE_ATTR

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from setlist.candidates import CandidateIndex
    from setlist.settings import Settings

#: the alias serving always loads, and the one the promotion gate moves
CHAMPION = "champion"
#: the alias every newly trained pair gets, promoted or not; an experiment arm may serve it
CHALLENGER = "challenger"

Pair = tuple[str, str]  # (candidates version, ranker version), the form serving passes around

# Tags on model versions. The ranker's feature service is also saved in the model file (the
# booster attribute of the same name); the tag lets a reader know it without loading the model.
TAG_FEATURE_SERVICE = MODEL_SERVICE_ATTR
#: each half of a pair names its partner: on the ranker the candidates version, and the other way round
TAG_CANDIDATES_VERSION = "candidates_version"
TAG_RANKER_VERSION = "ranker_version"
#: a canary rollout's outcome, on both versions of the candidate pair
TAG_ROLLOUT_STATUS = "rollout.status"  # canary | complete | rolled_back
TAG_ROLLOUT_STABLE = "rollout.stable"  # the pair it was judged against, as pair_tag() writes it
TAG_ROLLOUT_SHARE = "rollout.share"
TAG_ROLLOUT_REASON = "rollout.reason"
TAG_ROLLOUT_AT = "rollout.at"

# Tags on the training run that registered a pair: the data it was trained on.
LINEAGE_FEATURE_SERVICE = "lineage.feature_service"
LINEAGE_FEATURE_VIEWS = "lineage.feature_views"
LINEAGE_FEATURES = "lineage.features"
LINEAGE_WINDOW_START = "lineage.window_start"
LINEAGE_CUTOFF = "lineage.cutoff"
LINEAGE_WINDOW_END = "lineage.window_end"
LINEAGE_SNAPSHOT = "lineage.event_log_snapshot"  # the event log's fingerprint
LINEAGE_TRAINING_SET = "lineage.training_set"  # SHA-256 of the gated training set file
LINEAGE_PUBLISH = "lineage.feature_publish"  # the feature publish version online when training ran
LINEAGE_ROWS = "lineage.rows."  # prefix: one tag per row count

_log = logging.getLogger(__name__)
_warned: set[str] = set()

#: MLflow's error codes for "no such model" and (SQL stores) "no such alias"
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


class AliasNotSet(InputMissing):
    """A registered model has no version under the alias (nothing trained, or not promoted yet)."""


class ModelNames(NamedTuple):
    candidates: str
    ranker: str


def model_names(settings: Settings) -> ModelNames:
    """The two registered models, named by settings so a deployment can keep its own."""
    return ModelNames(settings.candidates_model, settings.ranker_model)


@dataclass(frozen=True)
class ModelPair:
    """The two versions an alias names; always used together."""

    candidates: str
    ranker: str
    #: set when the candidates alias named another version: a move of the alias cut short (see lookup_pair)
    cut_short: str | None = field(default=None, compare=False)

    @property
    def pair(self) -> Pair:
        return self.candidates, self.ranker


class _NotOurs(logging.Filter):
    """MLflow's advice on pickled models: the project logs its ranking code as a Python object on
    purpose (serving loads it from its own store), so the warning on every training says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Passing a Python object as `python_model`" not in record.getMessage()


class _RaisedAnyway(logging.Filter):
    """Lines logged about an error that is raised right after, to a caller that says it in one line:
    MLflow's store logs a whole traceback for a database it cannot reach (then raises it as a
    TEMPORARILY_UNAVAILABLE MlflowException: serving logs one warning, a job one error), and psycopg
    one for the pipeline a failed statement aborted (MLflow's store catches that statement's error, a
    metric logged twice by ``log_model`` on PostgreSQL, and goes on)."""

    NOISE = ("SQLAlchemy database error", "error ignored terminating")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


def _quiet_mlflow() -> None:
    """MLflow's chatter kept out of the jobs' own progress output: a progress bar per artifact
    download (tqdm, in the middle of a training's report), the store's schema set-up lines, the
    pickling advice above and the lines of ``_RaisedAnyway``. Other errors and warnings still show."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's own use of SQLAlchemy, not ours: printed by every command that opens its store
    warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name, kind in (
        ("mlflow.pyfunc", _NotOurs),
        ("mlflow.store.db.utils", _RaisedAnyway),
        ("psycopg", _RaisedAnyway),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def connect(settings: Settings) -> MlflowClient:
    """Point this process's MLflow at the settings' store and return a client for it; idempotent.

    The registry is the same store. MLflow's registry follows the tracking URI unless something
    overrides it, and an override is sticky: process-wide, and inherited by child processes as
    MLFLOW_REGISTRY_URI. So the registry URI is set only when an override would send fluent calls
    (log_model, models:/ URIs) somewhere else; pinning it always would make a later client of
    another store (a test's second world) read this one's registry."""
    import mlflow

    _quiet_mlflow()
    uri = settings.tracking_uri
    mlflow.set_tracking_uri(uri)
    if mlflow.get_registry_uri() != uri:
        mlflow.set_registry_uri(uri)
    return reader(settings)


def reader(settings: Settings) -> MlflowClient:
    """A client of the settings' store that leaves the process's MLflow state alone: for code that
    only reads (listings, reports) and must not redirect another component's fluent calls."""
    from mlflow import MlflowClient

    _quiet_mlflow()
    _reachable(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


_reached: set[str] = set()


def _reachable(settings: Settings) -> None:
    """A PostgreSQL store answers, once per process, within the connect deadline: MLflow's own engine
    retries a refused connect for about two minutes and, with libpq's default, waits on a silent server
    forever. Its engines get the same connect deadline through libpq's environment."""
    from setlist.sqltimeouts import libpq_environment, probe

    uri = settings.tracking_uri
    if not uri.startswith("postgresql") or uri in _reached:
        return
    connect = libpq_environment(settings.database_connect_timeout_s, settings.database_statement_timeout_ms)
    os.environ.setdefault("PGCONNECT_TIMEOUT", connect["PGCONNECT_TIMEOUT"])  # not the statements': jobs run long
    probe(uri, settings.database_connect_timeout_s)
    _reached.add(uri)


#: said by training and ``make status`` when :func:`artifacts_elsewhere` finds the model files elsewhere
ELSEWHERE = (
    "the models' files are in %s, outside this data directory's %s (a copied or moved data directory keeps "
    "using the original's): train under a new SETLIST_EXPERIMENT_NAME to keep them here"
)


def no_store_yet(settings: Settings) -> bool:
    """Whether the settings' MLflow store is a SQLite file that does not exist yet (no model was ever
    trained here): opening a client (``reader``) would create it, and its schema, for a reader."""
    store = settings.tracking_uri
    return store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists()


def artifact_roots(settings: Settings) -> list[Path]:
    """The local directories holding the artifacts of every registered model version (wherever the
    experiment put them: not always under ``settings.artifact_root``), and that root itself."""
    from urllib.parse import unquote, urlsplit

    roots = {Path(settings.artifact_root)}
    if no_store_yet(settings):
        return sorted(roots)  # no registry yet: opening the client would create its database
    client = reader(settings)
    for name in model_names(settings):
        for mv in client.search_model_versions(f"name='{name}'"):
            uri = urlsplit(client.get_model_version_download_uri(name, mv.version))
            if uri.scheme in ("", "file"):
                roots.add(Path(unquote(uri.path)))
    return sorted(roots)


def artifacts_elsewhere(client: MlflowClient, settings: Settings) -> Path | None:
    """The experiment's artifact directory when it is a local one outside ``settings.artifact_root``: MLflow
    keeps the absolute location it was created with, so a data directory copied or moved goes on reading
    and writing the model files where it was first trained. None when they are where settings say."""
    from urllib.parse import unquote, urlsplit

    exp = client.get_experiment_by_name(settings.experiment_name)
    if exp is None:
        return None
    uri = urlsplit(exp.artifact_location)
    if uri.scheme not in ("", "file"):
        return None  # an artifact server or bucket: not tied to a data directory
    where = Path(unquote(uri.path))
    return None if where.is_relative_to(settings.artifact_root) else where


def ensure_experiment(client: MlflowClient, settings: Settings) -> str:
    """The project's experiment id, created (with its artifacts under settings) on first use."""
    exp = client.get_experiment_by_name(settings.experiment_name)
    if exp is not None:
        elsewhere = artifacts_elsewhere(client, settings)
        if elsewhere is not None:
            _log.warning(ELSEWHERE, elsewhere, settings.artifact_root)
        return exp.experiment_id
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(settings.experiment_name, artifact_location=settings.artifact_root.as_uri())


def alias_version(client: MlflowClient, model: str, alias: str) -> str:
    """The version of one registered model under ``alias``; AliasNotSet when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise  # the registry is unreachable or broken: not the same as "no model yet"
        raise AliasNotSet(f"registered model {model!r} has no {alias!r} version") from exc


def lookup_pair(client: MlflowClient, settings: Settings, alias: str) -> ModelPair:
    """Both versions under ``alias``; AliasNotSet when either model lacks it.

    Two aliases cannot move as one step, so ``set_alias`` moves the ranker's last: its move commits
    the pair. When neither half names the other as its partner, a move was cut short (a training or
    promotion killed between the two): the pair is the ranker's, with the candidates version it
    names, never the two halves of different pairs, which were never evaluated together."""
    names = model_names(settings)
    candidates = alias_version(client, names.candidates, alias)
    ranker = alias_version(client, names.ranker, alias)
    partner = client.get_model_version(names.ranker, ranker).tags.get(TAG_CANDIDATES_VERSION)
    if partner in (None, candidates):
        return ModelPair(candidates, ranker)
    named = client.get_model_version(names.candidates, candidates).tags.get(TAG_RANKER_VERSION)
    if named == ranker:  # a candidates version paired again with another ranker: its own tag still agrees
        return ModelPair(candidates, ranker)
    note = (
        f"the {alias!r} alias of {names.candidates} is on v{candidates} (partner of {names.ranker} "
        f"v{named or '?'}) but {names.ranker}'s on v{ranker}, whose partner is v{partner}: a move cut short. "
        f"The pair is v{partner}+v{ranker} until the alias is moved again (make train, or training.promote)"
    )
    if note not in _warned:  # serving looks the pair up on every refresh: said once per process
        _warned.add(note)
        _log.warning(note)
    return ModelPair(partner, ranker, cut_short=note)


def find_pair(client: MlflowClient, settings: Settings, alias: str) -> ModelPair | None:
    """Like lookup_pair, but None when the alias is not set."""
    try:
        return lookup_pair(client, settings, alias)
    except AliasNotSet:
        return None


def set_alias(client: MlflowClient, settings: Settings, pair: Pair, alias: str) -> None:
    """Move ``alias`` onto both versions of ``pair``, each tagged with its partner first and the
    ranker's alias moved last: a process killed anywhere in between leaves the previous pair
    served whole (``lookup_pair``), never half of each."""
    names = model_names(settings)
    client.set_model_version_tag(names.ranker, pair[1], TAG_CANDIDATES_VERSION, pair[0])
    client.set_model_version_tag(names.candidates, pair[0], TAG_RANKER_VERSION, pair[1])
    client.set_registered_model_alias(names.candidates, alias, pair[0])
    client.set_registered_model_alias(names.ranker, alias, pair[1])


def tag_pair(client: MlflowClient, settings: Settings, pair: Pair, tags: dict[str, str]) -> None:
    """Set the same tags on both versions of a pair (a pair's status concerns both halves)."""
    for model, version in zip(model_names(settings), pair, strict=True):
        for key, value in tags.items():
            client.set_model_version_tag(model, version, key, value)


def ranker_tags(client: MlflowClient, settings: Settings, version: str) -> dict[str, str]:
    return dict(client.get_model_version(settings.ranker_model, version).tags or {})


def feature_service_of(client: MlflowClient, settings: Settings, version: str) -> str:
    """The feature service a ranker version was trained on (models from before services had
    versions carry no tag and read the first one)."""
    return ranker_tags(client, settings, version).get(TAG_FEATURE_SERVICE, DEFAULT_SERVICE)


def pair_tag(pair: Pair) -> str:
    """A pair as one tag value, ``candidates:ranker``."""
    return f"{pair[0]}:{pair[1]}"


def parse_pair_tag(value: str) -> Pair | None:
    parts = value.split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def version_uri(model: str, version: str) -> str:
    """By version, not alias: what is loaded is then exactly the version that was looked up,
    even if the alias moves in between."""
    return f"models:/{model}/{version}"


def load_index(settings: Settings, version: str) -> CandidateIndex:
    """The candidate index of one candidates version (the pyfunc model's payload)."""
    import mlflow

    connect(settings)  # the fluent loaders read the process-wide URIs
    model = _load(mlflow.pyfunc.load_model, version_uri(settings.candidates_model, version))
    return model.unwrap_python_model().index.search_with(settings.exact_search_max_items)


def load_pair(settings: Settings, pair: Pair) -> tuple[CandidateIndex, Any]:
    """The candidate index and the ranker (an xgboost.Booster) of a pair, as registered.
    Raises whatever MLflow raises; callers decide whether a broken pair is fatal."""
    import mlflow

    index = load_index(settings, pair[0])
    return index, _load(mlflow.xgboost.load_model, version_uri(settings.ranker_model, pair[1]))


_UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _load(loader: Callable[..., Any], uri: str) -> Any:
    """``loader(uri)``, or from a private copy when MLflow may not write into the model's directory: it
    writes a small ``registered_model_meta`` file into a local artifact store's model directory on
    every load, so a server allowed only to read the store (a read-only volume, another owner) would
    refuse every model. The copy is removed once loaded: the index reads its arrays at load and maps
    its one memory-mapped table then, and a mapping outlives its file's name."""
    try:
        return loader(uri)
    except OSError as exc:
        if exc.errno not in _UNWRITABLE or not str(exc.filename or "").endswith(_MODEL_META):
            raise
        copy = tempfile.mkdtemp(prefix="setlist-model-")  # TMPDIR decides where
        _log.warning(
            "MLflow may not write %s (%s); loading %s from a copy in %s", exc.filename, exc.strerror, uri, copy
        )
        try:
            return loader(uri, dst_path=copy)
        finally:
            shutil.rmtree(copy, ignore_errors=True)


#: the file MLflow writes beside a registered model's files on each load
_MODEL_META = "registered_model_meta"


@dataclass(frozen=True)
class VersionFacts:
    """What operations report of one registered version: when it was registered, and (a ranker) the
    offline metrics its training run logged."""

    model: str
    version: str
    created: float  # Unix seconds
    metrics: dict[str, float]


def _reported(name: str) -> bool:
    # the headline metrics only: per-feature importances and the previous champion's scores (logged
    # on the same run for comparison) would multiply the series without saying more
    return "." not in name and not name.startswith("champion_")


def version_facts(client: MlflowClient, model: str, version: str, with_metrics: bool) -> VersionFacts:
    mv = client.get_model_version(model, version)
    metrics: dict[str, float] = {}
    if with_metrics and mv.run_id:
        run = client.get_run(mv.run_id)
        metrics = {k: float(v) for k, v in run.data.metrics.items() if _reported(k)}
    return VersionFacts(model, str(version), (mv.creation_timestamp or 0) / 1000.0, metrics)


def alias_facts(client: MlflowClient, settings: Settings, alias: str) -> list[VersionFacts]:
    """Both versions an alias names, the ranker's with its run's metrics; empty when the alias is not set."""
    return pair_facts(client, settings, find_pair(client, settings, alias))


def pair_facts(client: MlflowClient, settings: Settings, pair: ModelPair | None) -> list[VersionFacts]:
    """Both versions of a pair, the ranker's with its run's metrics; empty for no pair."""
    if pair is None:
        return []
    names = model_names(settings)
    return [
        version_facts(client, names.candidates, pair.candidates, with_metrics=False),
        version_facts(client, names.ranker, pair.ranker, with_metrics=True),
    ]
