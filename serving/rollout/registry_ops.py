"""The MLflow side of a canary: aliases, version tags and a run per rollback.

Uses MlflowClient only (no fluent ``mlflow.start_run``): the fluent API keeps a process-global
active run, which a server thread must not touch.
"""
from __future__ import annotations

import time

from setlist.settings import Settings

from serving.rollout.canary import Pair

CHAMPION = "champion"


class MlflowRolloutRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self):  # noqa: ANN202 - mlflow.MlflowClient, imported lazily
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.settings.tracking_uri)

    def status(self, pair: Pair) -> tuple[str, Pair | None]:
        """The candidate's ``rollout.status`` tag and the stable pair it was rolled out against."""
        tags = self._client().get_model_version(self.settings.ranker_model, pair[1]).tags or {}
        stable = tags.get("rollout.stable", "")
        parts = stable.split(":")
        return tags.get("rollout.status", ""), (parts[0], parts[1]) if len(parts) == 2 else None

    def mark(self, pair: Pair, tags: dict[str, str]) -> None:
        client = self._client()
        for model, version in ((self.settings.candidates_model, pair[0]), (self.settings.ranker_model, pair[1])):
            for key, value in tags.items():
                client.set_model_version_tag(model, version, key, value)

    def set_champion(self, pair: Pair) -> None:
        client = self._client()
        client.set_registered_model_alias(self.settings.candidates_model, CHAMPION, pair[0])
        client.set_registered_model_alias(self.settings.ranker_model, CHAMPION, pair[1])

    def log_run(self, name: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        client = self._client()
        exp = client.get_experiment_by_name(self.settings.experiment_name)
        if exp is None:
            self.settings.artifact_root.mkdir(parents=True, exist_ok=True)
            exp_id = client.create_experiment(self.settings.experiment_name,
                                              artifact_location=self.settings.artifact_root.as_uri())
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=name, tags=tags)
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value == value:  # NaN is not a metric
                client.log_metric(run.info.run_id, key, float(value), timestamp=now)
        client.set_terminated(run.info.run_id)
