"""Cost tiers of event types, and sampling weights that keep counts unbiased.

Not every event is worth the real-time path. The tiers file (``SETLIST_TIERS_FILE``, default
``tiers.yaml``) names two tiers:

- ``realtime`` types (plays, skips, likes, searches…) take the whole path: the journal, the
  session push to the online store and the invalidation of the user's cached rankings;
- ``batch`` types (impressions, views, heartbeats) go to the journal only (features see them at the
  next materialize), and each is kept with its type's ``sample`` rate.

The keep decision hashes the event id, so a retried event is decided the same way (and the dedupe
window still recognises it). A kept event stores ``weight = 1 / rate``: it stands for that many
events, and :func:`estimate_total` turns weights back into an unbiased count with a confidence
interval (Horvitz–Thompson under Bernoulli sampling).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from setlist.contract import EVENT_TYPES, ITEM_TYPES, LIGHT_TYPES, NO_ITEM_TYPES
from setlist.errors import UsageError
from setlist.yamlfile import load_yaml

_SCALE = float(2**64)


@dataclass(frozen=True)
class Tiers:
    realtime: frozenset[str]
    #: batch type → its sample rate, in (0, 1]
    batch: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Tiers:
        """Every item and onboarding type in real time, light types in batch at full rate (the file
        ships the sampled example)."""
        realtime = (set(ITEM_TYPES) | set(NO_ITEM_TYPES)) - {"impression"}
        return cls(frozenset(realtime), {t: 1.0 for t in ("impression", *LIGHT_TYPES)})

    @classmethod
    def load(cls, path: Path | None) -> Tiers:
        """The tiers file; a missing file means :meth:`default`. Raises UsageError on a bad file."""
        if path is None or not Path(path).exists():
            return cls.default()
        try:
            raw = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read the tiers file {path}: {exc}") from exc
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: Any, where: str = "tiers") -> Tiers:
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: expected a mapping with realtime and batch")
        unknown_keys = set(raw) - {"realtime", "batch"}
        if unknown_keys:
            raise UsageError(f"{where}: unknown keys {sorted(unknown_keys)} (known: realtime, batch)")
        realtime = raw.get("realtime") or []
        batch_raw = raw.get("batch") or {}
        if not isinstance(realtime, list) or not isinstance(batch_raw, dict):
            raise UsageError(f"{where}: realtime is a list of event types, batch a mapping type → {{sample: rate}}")
        batch: dict[str, float] = {}
        for etype, spec in batch_raw.items():
            rate = (spec or {}).get("sample", 1.0) if isinstance(spec, dict) else spec
            try:
                rate = float(rate)
            except (TypeError, ValueError):
                raise UsageError(f"{where}: batch.{etype}.sample must be a number in (0, 1], got {rate!r}") from None
            if not 0.0 < rate <= 1.0:
                raise UsageError(f"{where}: batch.{etype}.sample must be in (0, 1], got {rate}")
            batch[str(etype)] = rate
        named = [str(t) for t in realtime] + list(batch)
        unknown = sorted(set(named) - set(EVENT_TYPES))
        if unknown:
            raise UsageError(f"{where}: unknown event types {unknown} (known: {', '.join(EVENT_TYPES)})")
        both = sorted(set(realtime) & set(batch))
        if both:
            raise UsageError(f"{where}: {both} are in both tiers")
        missing = sorted(set(EVENT_TYPES) - set(named))
        if missing:
            raise UsageError(f"{where}: no tier for {missing}: put each event type in realtime or batch")
        return cls(frozenset(str(t) for t in realtime), batch)

    def is_realtime(self, etype: str) -> bool:
        return etype in self.realtime

    def rate(self, etype: str) -> float:
        return self.batch.get(etype, 1.0)

    def keep(self, etype: str, event_id: str) -> bool:
        """Whether a batch event is kept; always True for realtime types and rate 1."""
        rate = self.rate(etype)
        return rate >= 1.0 or unit_hash(event_id) < rate

    def weight(self, etype: str) -> float | None:
        """The weight a kept event stores: ``1 / rate`` when its type is sampled, else None (1)."""
        rate = self.rate(etype)
        return None if rate >= 1.0 else 1.0 / rate


def unit_hash(event_id: str) -> float:
    """A uniform number in [0, 1) from an event id, the same in every process."""
    digest = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class Estimate:
    total: float
    lo: float
    hi: float
    stored: int


def estimate_total(weights: Iterable[float | None], z: float = 1.96) -> Estimate:
    """The count the stored events stand for, with a normal-approximation interval.

    Each stored event with weight ``w`` was kept with probability ``1/w``; ``sum(w)`` is unbiased for
    the true count and ``sum(w * (w - 1))`` for its variance (unsampled events, ``w = 1``, add none).
    """
    ws = [1.0 if (w is None or w != w) else float(w) for w in weights]
    total = math.fsum(ws)
    var = math.fsum(w * (w - 1.0) for w in ws)
    half = z * math.sqrt(var)
    return Estimate(total, max(float(len(ws)), total - half), total + half, len(ws))
