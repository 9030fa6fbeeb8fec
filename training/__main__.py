"""``python -m training``: train, evaluate, register and gate the two-stage model."""

from __future__ import annotations

import time
import warnings

import typer
from rich.table import Table

from setlist import jobmetrics, registry
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.errors import Refused
from setlist.registry import CHALLENGER, CHAMPION
from setlist.settings import Settings, get_settings
from training.promotion import REQUIRED_BASELINES
from training.ranker import MARGIN_ALONE
from training.run import COLD_EVENTS, TrainingRefused, train

# ibis (under Feast's DuckDB store) and Feast's on-demand views warn on every call; not actionable here
warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")

app = App(add_completion=False, help="Train and register the candidate and ranking models.")
console = cli_console()

SHOWN = (
    "ndcg_at_10",
    "recall_at_10",
    "recall_at_100",
    "auc",
    "candidate_recall_at_100",
    "candidate_recall_at_500",
    "cold_start_ndcg_at_10",
    "warm_ndcg_at_10",
)
BASELINE_LABELS = {"popularity": "popularity", "als": "ALS", "ease": "EASE"}


def fmt(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v:.4f}"


@app.command()
@jobmetrics.reports("train")
def main(trees: int = typer.Option(None, min=1, help="ranker trees (default: SETLIST_RANKER_TREES)")) -> None:
    settings = get_settings()
    if trees is not None:
        settings = settings.model_copy(update={"ranker_trees": trees})
    try:
        r = train(settings)
    except TrainingRefused as exc:  # a Refused already; the message gains which stage refused
        raise Refused(f"training refused: {exc}") from exc
    table = Table(title=f"training run {r.run_id[:8]} — ranker objective {r.objective}")
    columns = [CHALLENGER, *(BASELINE_LABELS[b] for b in r.baselines), CHAMPION]
    table.add_column("metric")
    for col in columns:
        table.add_column(col, justify="right")
    for m in SHOWN:
        row = [
            fmt(r.metrics.get(m)),
            *(fmt(b.get(m)) for b in r.baselines.values()),
            fmt(r.champion.get(m) if r.champion else None),
        ]
        table.add_row(m, *row)
    console.print(table)
    if r.objective.endswith(MARGIN_ALONE):
        console.print(
            "no tree added to EASE's own scores on the validation split, so the ranker is EASE's scores alone: the "
            "features gave the trees nothing to add (as when every user has a single visit, and so no history)"
        )
    pop = r.metrics["baseline_popularity_ndcg_at_10"]
    # below the table's last shown digit a ratio means nothing (a popularity that never hits gives 10⁷×)
    against = f"{r.metrics['ndcg_at_10'] / pop:.2f}× popularity" if pop >= 5e-5 else "popularity scores 0.0000"
    console.print(
        f"hold-out queries: {int(r.metrics['queries']):,} ({int(r.metrics['cold_start_queries']):,} cold-start: users "
        f"with fewer than {COLD_EVENTS} training events); "
        f"ndcg_at_10 is {fmt(r.metrics['ndcg_at_10'])}, {against}"
    )
    _report_models(settings)
    verdict = "[green]promoted to champion[/]" if r.promoted else "[yellow]kept as challenger[/]"
    console.print(f"setlist-candidates v{r.versions[0]}, setlist-ranker v{r.versions[1]}: {verdict} — {r.reason}")
    if not r.promoted and registry.find_pair(registry.reader(settings), settings, CHAMPION) is None:
        console.print(
            "[yellow]no model is champion yet, so `make serve` stays not ready.[/] The gate wants the model to "
            f"beat {' and '.join(REQUIRED_BASELINES)} on the hold-out (the reason above); to serve this one anyway: "
            "python -m training.promote --reason '…' (recorded with the versions and in the lineage)"
        )


def _report_models(settings: Settings) -> None:
    """Each alias's model ages and the champion's offline metrics, for the job's metrics."""
    metrics = jobmetrics.current()
    client = registry.reader(settings)
    now = time.time()
    for alias in (CHAMPION, CHALLENGER):
        for facts in registry.alias_facts(client, settings, alias):
            metrics.set("setlist_model_age_seconds", max(0.0, now - facts.created), model=facts.model, alias=alias)
            if alias == CHAMPION:
                for name, value in facts.metrics.items():
                    metrics.set("setlist_model_metric", value, model=facts.model, metric=name)


if __name__ == "__main__":
    app()
