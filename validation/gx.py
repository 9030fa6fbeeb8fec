"""The one place that talks to a Great Expectations data context.

A file-backed context lives under ``<data_dir>/validation/gx`` so suites and validation results
persist between runs, and its Data Docs site is pointed at ``<data_dir>/validation/data_docs`` so
the HTML is at a known path. Every gate runs through a checkpoint with ``UpdateDataDocsAction``, so
custom and built-in expectations show up in the same pages.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from setlist.settings import Settings

log = logging.getLogger(__name__)

DATASOURCE = "setlist"
SITE = "local_site"
#: validation results kept per suite; older ones (and their pages) are pruned so the store and
#: the Data Docs index do not grow without bound on a long-running deployment
KEEP_RUNS = 20


@dataclass
class Workspace:
    """Paths of the validation area plus a lazily opened GE context (opening imports GE: ~3 s)."""

    root: Path
    keep_runs: int = KEEP_RUNS
    _ready: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Workspace:
        return cls(Path(settings.data_dir) / "validation")

    @property
    def gx_dir(self) -> Path:
        return self.root / "gx"

    @property
    def docs_dir(self) -> Path:
        return self.root / "data_docs"

    @property
    def docs_index(self) -> Path:
        return self.docs_dir / "index.html"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @cached_property
    def context(self) -> Any:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        import validation.expectations  # noqa: F401  (registers the custom expectations first)

        self.root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(self.root))
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(self.docs_dir.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        # Re-applied on every open: data_dir may have moved since the YAML was written.
        ctx.variables.data_docs_sites = {SITE: site}
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.config.analytics_enabled = False
        ctx.variables.save()
        return ctx

    def run(self, name: str, suite: Any, frame: pd.DataFrame, docs: bool = True) -> Any:
        """Validate ``frame`` against ``suite`` through a checkpoint named ``name``.

        Returns the ``ExpectationSuiteValidationResult``. The suite is saved (replacing the previous
        version), so the stored suite is always the one the latest result was checked against.
        """
        import great_expectations as gx

        ctx = self.context
        suite.name = name
        self._prune(name)
        stored = ctx.suites.add_or_update(suite)
        source = ctx.data_sources.add_or_update_pandas(DATASOURCE)
        asset = _get_or_add(source.assets, name, lambda: source.add_dataframe_asset(name))
        batch = _get_or_add(
            asset.batch_definitions, "whole", lambda: asset.add_batch_definition_whole_dataframe("whole")
        )
        vd = ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=stored))
        actions: list = [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE])] if docs else []
        checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(name=name, validation_definitions=[vd], actions=actions, result_format="BASIC")
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        return next(iter(result.run_results.values()))

    def _prune(self, suite_name: str) -> None:
        """Drop all but the newest ``keep_runs - 1`` stored results (the run about to happen is the last)."""
        for base, suffix in (
            (self.gx_dir / "uncommitted" / "validations", ".json"),
            (self.docs_dir / "validations", ".html"),
        ):
            runs = sorted((base / suite_name).glob(f"*/*/*{suffix}"), key=lambda p: p.parent.name)
            for old in runs[: max(0, len(runs) - (self.keep_runs - 1))]:
                shutil.rmtree(old.parent, ignore_errors=True)


def _get_or_add(existing: Any, name: str, add: Any) -> Any:
    for item in existing:
        if item.name == name:
            return item
    return add()
