"""Per-token quota overrides: ``SETLIST_QUOTA_FILE``, a YAML file that gives some client tokens rates
of their own (``deploy/quotas.example.yaml``)::

    tokens:
      mobile-app:                      # a name of your choosing, shown in that token's refusals
        fingerprint: 3f9a1c0b2d4e5f60  # `python -m serving token-fingerprints` prints each token's
        rank_per_s: 500
        rank_burst: 1000
      nightly-import:
        fingerprint: 0c1d2e3f40516273
        track_per_s: 20000             # events per second
      dashboards:
        fingerprint: 9a8b7c6d5e4f3a2b
        rank_per_s: 0                  # 0: no Rank quota for this token

A token is named by its fingerprint (``serving.grpc.auth.fingerprint``), so the file holds no secret
and can live in a config repository. Every fingerprint must belong to a token of
``SETLIST_AUTH_TOKENS``: a typo would otherwise leave a client on the default rate without a word.

For each RPC an entry may set a rate, a burst, both or neither:
- neither: the token has the default quota (``SETLIST_QUOTA_<RPC>_PER_S`` and ``_BURST``);
- a rate only: that rate, with one second's worth of it as the burst (the settings' own rule); 0 lifts
  the quota for that token;
- a burst only: the default rate with that burst (an error if there is no default rate).

The file is read when the server starts, and again whenever it changes (``serving.grpc.quota_reload``,
every ``SETLIST_QUOTA_FILE_POLL_S``): a valid version applies within two polls, an invalid one is
rejected and the limits in force stay.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from setlist.errors import UsageError
from setlist.yamlfile import load_yaml

RPCS = ("Rank", "Track")
_KEYS = frozenset({"fingerprint", *(f"{rpc.lower()}_{what}" for rpc in RPCS for what in ("per_s", "burst"))})
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Limit:
    """One token bucket's size: ``per_s`` units a second, at most ``burst`` at once."""

    per_s: float
    burst: int

    @classmethod
    def of(cls, per_s: float | None, burst: int | None) -> Limit | None:
        """None when there is no rate (unset or 0); a burst unset or 0 is one second's worth."""
        if not per_s:
            return None
        return cls(float(per_s), int(burst) if burst else max(1, math.ceil(per_s)))


@dataclass(frozen=True)
class TokenQuota:
    """One named token's own limits, by RPC; an RPC it does not set is absent (the default applies)."""

    name: str
    fingerprint: str
    limits: Mapping[str, Limit | None]  # None: no quota for this token on that RPC


def load(path: Path | None, known: Iterable[str], defaults: Mapping[str, Limit | None]) -> list[TokenQuota]:
    """The file's entries, checked against the configured tokens' fingerprints (``known``) and the
    default limits by RPC. No file configured: no overrides. Raises UsageError naming what to fix."""
    if path is None:
        return []
    try:
        raw = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read the quota file {path}: {exc}") from exc
    return parse(raw, set(known), defaults, str(path))


def parse(
    raw: Any, known: set[str], defaults: Mapping[str, Limit | None], where: str = "quota file"
) -> list[TokenQuota]:
    if raw is None:
        return []
    if not isinstance(raw, dict) or set(raw) - {"tokens"}:
        raise UsageError(f"{where}: expected a mapping with one key, tokens (name → fingerprint and limits)")
    tokens = raw.get("tokens") or {}
    if not isinstance(tokens, dict):
        raise UsageError(f"{where}: tokens must map a name to its fingerprint and limits")
    if tokens and not known:
        raise UsageError(f"{where}: per-token quotas need SETLIST_AUTH_TOKENS (without auth no caller is told apart)")
    out: list[TokenQuota] = []
    seen: dict[str, str] = {}
    for name, entry in tokens.items():
        at = f"{where}: tokens.{name}"
        out.append(_entry(str(name), entry, known, defaults, at))
        fp = out[-1].fingerprint
        if fp in seen:
            raise UsageError(f"{at}: fingerprint {fp} is also tokens.{seen[fp]}'s; give each token one entry")
        seen[fp] = str(name)
    return out


def _entry(name: str, entry: Any, known: set[str], defaults: Mapping[str, Limit | None], at: str) -> TokenQuota:
    if not isinstance(entry, dict):
        raise UsageError(f"{at}: expected a mapping with fingerprint and limits")
    unknown = set(entry) - _KEYS
    if unknown:
        raise UsageError(f"{at}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(_KEYS))})")
    raw = entry.get("fingerprint")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        # YAML reads a fingerprint of digits alone as a number, and drops its leading zeros
        raise UsageError(f"{at}: fingerprint reads as the number {raw}: quote it in the file ('…')")
    fp = str(raw or "").strip().lower()
    if not _FINGERPRINT.fullmatch(fp):
        raise UsageError(
            f"{at}: fingerprint must be 16 hex digits (`python -m serving token-fingerprints` prints them)"
        )
    if fp not in known:
        raise UsageError(f"{at}: fingerprint {fp} is not one of SETLIST_AUTH_TOKENS' tokens")
    limits: dict[str, Limit | None] = {}
    for rpc in RPCS:
        per_s = _number(entry, f"{rpc.lower()}_per_s", at)
        burst = _number(entry, f"{rpc.lower()}_burst", at)
        if burst is not None and burst != int(burst):
            raise UsageError(f"{at}: {rpc.lower()}_burst must be a whole number, got {burst}")
        if per_s is not None:
            limits[rpc] = Limit.of(per_s, int(burst) if burst is not None else None)
        elif burst is not None:
            default = defaults.get(rpc)
            if default is None:
                raise UsageError(
                    f"{at}: {rpc.lower()}_burst without a rate, and SETLIST_QUOTA_{rpc.upper()}_PER_S is not set: "
                    f"give {rpc.lower()}_per_s too"
                )
            limits[rpc] = Limit.of(default.per_s, int(burst))
    return TokenQuota(name, fp, limits)


def _number(entry: Mapping[str, Any], key: str, at: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{at}: {key} must be a number ≥ 0, got {value!r}")
    return float(value)
