"""The request context every event and Rank carries (device, locale), bounded to a vocabulary, so
that serving and the importer read a context value the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

UNKNOWN, OTHER = "unknown", "other"
#: the context keys Rank reads; any other is told back to the caller as ignored
RANK_KEYS = frozenset({"device", "locale"})


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The device and locale a request may carry into cache keys, cohorts and impressions: values
    from a client are unbounded (a 3 MB ``device`` would sit in every queued impression), so any
    value outside the configured vocabulary becomes ``other``, and a missing one ``unknown``."""

    devices: frozenset[str]
    locale: re.Pattern[str]
    max_len: int = 64  # checked first, so a huge value is never hashed or scanned

    @classmethod
    def of(cls, devices: Iterable[str], locale_pattern: str) -> Vocabulary:
        return cls(frozenset(devices), re.compile(locale_pattern))

    def context(self, context: Mapping[str, str]) -> tuple[str, str]:
        """``(device, locale)`` of a request's context, each bounded."""
        return self.device(context.get("device")), self.locale_of(context.get("locale"))

    @staticmethod
    def ignored(context: Mapping[str, str]) -> tuple[str, ...]:
        """The keys of a Rank's context that nothing reads, sorted."""
        return tuple(sorted(k for k in context if k not in RANK_KEYS))

    def device(self, value: str | None) -> str:
        device = value or UNKNOWN
        return OTHER if len(device) > self.max_len or device not in self.devices else device

    def locale_of(self, value: str | None) -> str:
        locale = value or UNKNOWN
        if locale != UNKNOWN and (len(locale) > self.max_len or not self.locale.fullmatch(locale)):
            return OTHER
        return locale
