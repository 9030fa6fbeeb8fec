"""Every threshold of the gates, read once from one YAML file into typed objects.

The packaged file (``validation/thresholds.yaml``) documents each default; a user's copy named by
``settings.validation_thresholds_file`` may leave keys out (they keep the defaults) but may not add
unknown ones. A bad file raises ``ThresholdsError`` with a one-line message; the CLI turns it into
a usage error (exit 2). The defaults below and the packaged file agree (a test checks it).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from setlist.errors import UsageError
from setlist.yamlfile import load_yaml

PACKAGED = Path(__file__).with_name("thresholds.yaml")
Method = Literal["psi", "js"]


class ThresholdsError(UsageError, ValueError):  # still a ValueError for callers that catch that
    """The thresholds file is missing, not YAML, or holds a wrong key or value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ratio(v: tuple[float, float]) -> tuple[float, float]:
    if not 0 < v[0] <= 1 <= v[1]:
        raise ValueError(f"must satisfy 0 < low <= 1 <= high (got {list(v)})")
    return v


class WindowLimits(_Section):
    share: float = Field(default=0.1, gt=0, lt=1)
    min_events: int = Field(default=1000, ge=1)
    max_share: float = Field(default=0.5, gt=0, lt=1)
    prefer_batch: bool = True


class DriftThresholds(_Section):
    psi_warn: float = Field(default=0.1, gt=0)
    psi_fail: float = Field(default=0.25, gt=0)
    js_warn: float = Field(default=0.1, gt=0)
    js_fail: float = Field(default=0.2, gt=0)
    categorical_method: Method = "psi"
    numeric_bins: int = Field(default=10, ge=2)
    min_samples: int = Field(default=500, ge=1)
    noise_slices: int = Field(default=24, ge=0)
    noise_draws: int = Field(default=60, ge=0)
    noise_min_scores: int = Field(default=5, ge=1)
    noise_quantile: float = Field(default=0.95, ge=0, le=1)
    noise_margin: float = Field(default=1.5, ge=1)

    def levels(self, method: Method) -> tuple[float, float]:
        return (self.psi_warn, self.psi_fail) if method == "psi" else (self.js_warn, self.js_fail)

    def model_post_init(self, _context: object) -> None:
        if self.psi_warn > self.psi_fail or self.js_warn > self.js_fail:
            raise ValueError("a warn level must not be above its fail level")


class CardinalityLimits(_Section):
    ratio: tuple[float, float] = (0.5, 2.0)
    max_windows: int = Field(default=24, ge=1)
    reuse_tolerance: float = Field(default=0.1, ge=0)

    _check_ratio = field_validator("ratio")(_ratio)


class FreshnessLimits(_Section):
    max_age_hours: float = Field(default=48.0, gt=0)

    @property
    def max_age(self) -> timedelta:
        return timedelta(hours=self.max_age_hours)


class ParityLimits(_Section):
    min_match: float = Field(default=0.99, ge=0, le=1)
    tolerance: float = Field(default=1e-4, ge=0)
    min_fresh: float = Field(default=0.99, ge=0, le=1)


class TrainingSetLimits(_Section):
    # The ranker learns from each query's positives plus up to 50 sampled negatives, so a log with
    # one positive per query (sparse reviews, sessions) gives 1/51 ≈ 0.0196: the floor sits below
    # that, where only a broken label join or sampler lands.
    positive_share: tuple[float, float] = (0.01, 0.8)

    @field_validator("positive_share")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1] <= 1:
            raise ValueError(f"must satisfy 0 <= low <= high <= 1 (got {list(v)})")
        return v


class Thresholds(_Section):
    window: WindowLimits = WindowLimits()
    drift: DriftThresholds = DriftThresholds()
    cardinality: CardinalityLimits = CardinalityLimits()
    freshness: FreshnessLimits = FreshnessLimits()
    parity: ParityLimits = ParityLimits()
    training_set: TrainingSetLimits = TrainingSetLimits()
    _source: str = PrivateAttr(default="built-in defaults")

    @property
    def source(self) -> str:
        """Where the values came from, for the gates' notes."""
        return self._source

    def override(self, origin: str, **sections: dict) -> Thresholds:
        """A copy with some values replaced (validated like the file), e.g. from command-line flags:
        ``override("command line", drift={"psi_fail": 0.3})``. Empty sections are ignored."""
        sections = {k: v for k, v in sections.items() if v}
        if not sections:
            return self
        data = self.model_dump()
        for name, values in sections.items():
            data[name] = {**data[name], **values}
        out = _validated(data, origin)
        flags = ", ".join(f"{k}={v}" for values in sections.values() for k, v in values.items())
        out._source = f"{self._source}; {flags} from the {origin}"
        return out


def _validated(data: object, where: str) -> Thresholds:
    try:
        return Thresholds.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ThresholdsError(f"bad thresholds in {where}: {loc}: {first['msg']}{more}") from None


@lru_cache(maxsize=8)
def load_thresholds(path: Path | None = None) -> Thresholds:
    """The thresholds in ``path`` (None: the packaged file), read and checked once per path."""
    where = Path(path) if path is not None else PACKAGED
    if not where.is_file():
        raise ThresholdsError(
            f"thresholds file {where} does not exist (unset validation_thresholds_file "
            f"to use the packaged {PACKAGED.name})"
        )
    try:
        data = load_yaml(where.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ThresholdsError(f"thresholds file {where} is not valid YAML{at}") from None
    if data is not None and not isinstance(data, dict):
        raise ThresholdsError(f"thresholds file {where} must hold a mapping of sections, not {type(data).__name__}")
    out = _validated(data, str(where))
    out._source = "packaged validation/thresholds.yaml" if path is None else str(where)
    return out


def thresholds_for(settings: object) -> Thresholds:
    """The thresholds the settings name (``validation_thresholds_file``; None: the packaged file)."""
    return load_thresholds(getattr(settings, "validation_thresholds_file", None))
