"""What a Rank request reads at once (``Live``) and the ports the ranking service reports to.

``Live`` is replaced as a whole by serving.bootstrap, so a request sees one consistent set of
variants, item tables and router.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from serving.item_table import ItemTable
from serving.rollout.models import ModelBundle
from serving.rollout.routing import CHAMPION, Router
from setlist.impressions import Impression


@dataclass(frozen=True)
class Variant:
    """One served model pair and the item table aligned with its candidate index."""

    bundle: ModelBundle
    items: ItemTable


@dataclass(frozen=True)
class Live:
    """Everything a request needs that changes together: the variants (``champion`` always; a
    ``canary`` during a rollout; other aliases an experiment serves) and the router over them."""

    variants: Mapping[str, Variant]
    router: Router = field(default_factory=Router)

    @classmethod
    def single(cls, bundle: ModelBundle, items: ItemTable) -> Live:
        return cls({CHAMPION: Variant(bundle, items)})

    @property
    def bundle(self) -> ModelBundle:
        return self.variants[CHAMPION].bundle

    @property
    def items(self) -> ItemTable:
        return self.variants[CHAMPION].items

    def variant(self, name: str) -> Variant:
        # an alias that is not loaded (unset, or refused) is served by the champion; the impression
        # records the versions actually used, so analysis sees it
        return self.variants.get(name) or self.variants[CHAMPION]


@dataclass
class Hooks:
    """Optional observers (metrics); the service works without them."""

    on_cache: Callable[[bool, float], None] = lambda hit, seconds: None
    on_candidates: Callable[[int], None] = lambda n: None
    on_degraded: Callable[[], None] = lambda: None
    on_arm: Callable[[str], None] = lambda arm: None
    on_cpu: Callable[[str, float], None] = lambda rpc, seconds: None  # a call's handler CPU (make cost)


class Observer(Protocol):
    """Per-variant health for a canary rollout (serving.rollout.Rollout); no-op by default."""

    @property
    def active(self) -> bool: ...  # Track attributes feedback only while a canary runs

    def on_served(self, variant: str, seconds: float, error: bool) -> None: ...

    def on_feedback(self, variant: str, event_type: str) -> None: ...


class NoObserver:
    active = False

    def on_served(self, variant: str, seconds: float, error: bool) -> None:
        return None

    def on_feedback(self, variant: str, event_type: str) -> None:
        return None


class ImpressionSink(Protocol):
    def submit(self, record: Impression) -> bool: ...

    def close(self) -> None: ...
