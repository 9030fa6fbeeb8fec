"""The MLflow side of a canary: aliases, version tags and a run per rollback.

Uses MlflowClient only (no fluent ``mlflow.start_run``): the fluent API keeps a process-global
active run, which a server thread must not touch.
"""

from __future__ import annotations

import time

from serving.rollout.canary import Pair
from setlist import registry
from setlist.registry import CHAMPION, TAG_ROLLOUT_STABLE, TAG_ROLLOUT_STATUS, parse_pair_tag
from setlist.settings import Settings


class MlflowRolloutRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self):
        return registry.connect(self.settings)

    def status(self, pair: Pair) -> tuple[str, Pair | None]:
        """The candidate's ``rollout.status`` tag and the stable pair it was rolled out against."""
        tags = registry.ranker_tags(self._client(), self.settings, pair[1])
        return tags.get(TAG_ROLLOUT_STATUS, ""), parse_pair_tag(tags.get(TAG_ROLLOUT_STABLE, ""))

    def mark(self, pair: Pair, tags: dict[str, str]) -> None:
        registry.tag_pair(self._client(), self.settings, pair, tags)

    def set_champion(self, pair: Pair) -> None:
        registry.set_alias(self._client(), self.settings, pair, CHAMPION)

    def log_run(self, name: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        client = self._client()
        run = client.create_run(registry.ensure_experiment(client, self.settings), run_name=name, tags=tags)
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value == value:  # NaN is not a metric
                client.log_metric(run.info.run_id, key, float(value), timestamp=now)
        client.set_terminated(run.info.run_id)
