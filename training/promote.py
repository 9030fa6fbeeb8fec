"""``python -m training.promote --reason "…"``: move ``champion`` onto the current challenger by hand.

The promotion gate keeps a model that does not beat popularity (or the champion) on the hold-out as
``challenger``. On a first run that leaves nothing to serve: the server stays not ready until some
pair is champion. This is the deliberate way past the gate: the reason is recorded on both versions
(``promotion.manual``) and in the lineage's gate log, so the decision stays visible to whoever looks
at the model later (``make lineage``).

``python -m training.promote --complete``: a promotion by hand killed after the champion moved and
before its ledger line (``make status`` says so) gets its line; nothing else changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from setlist import registry
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.errors import InputMissing, UsageError
from setlist.lineage import record_gate
from setlist.registry import CHALLENGER, CHAMPION
from setlist.settings import Settings, get_settings
from training.lineage import MANUAL_TAG, SERVED_TAG, manual_promotion

if TYPE_CHECKING:
    from mlflow import MlflowClient

app = App(add_completion=False, help="Promote the current challenger to champion by hand, with a reason.")
console = cli_console()


@app.command()
def main(
    reason: str | None = typer.Option(None, help="why this pair is served despite the gate (recorded)"),
    complete: bool = typer.Option(
        False, "--complete", help="record the ledger line of the champion's promotion by hand, killed before it"
    ),
) -> None:
    settings = get_settings()
    client = registry.connect(settings)
    if complete:
        if reason is not None:
            raise UsageError("--complete records the reason the champion was promoted for: drop --reason")
        _complete(client, settings)
        return
    if reason is None or not reason.strip():
        raise UsageError("--reason must say why: it is recorded with the promotion")
    found = registry.find_pair(client, settings, CHALLENGER)
    if found is None:
        raise InputMissing("no challenger to promote: `make train` registers one")
    pair = found.pair
    before = registry.find_pair(client, settings, CHAMPION)
    subject, why = f"ranker:{pair[1]}", reason.strip()[:500]
    if before is not None and before.pair == pair:
        done = manual_promotion(client, settings, str(pair[1]))
        if done is not None and done.state == "unrecorded":  # a promotion killed after its alias moved
            record_gate(settings.lineage_dir, "promotion", True, subject, manual=True, reason=done.reason)
            console.print(f"v{pair[0]}+v{pair[1]} became champion by a promotion cut short: its record is complete now")
            return
        console.print(f"setlist-candidates v{pair[0]}, setlist-ranker v{pair[1]} is champion already: nothing changed")
        return
    # the reason first, then the alias, then the mark that it moved, then the ledger: a promotion killed
    # anywhere leaves either no champion moved, or one whose reason is on it and whose ledger line
    # `--complete` (or the same command) records
    registry.tag_pair(client, settings, pair, {MANUAL_TAG: why})
    registry.set_alias(client, settings, pair, CHAMPION)
    registry.tag_pair(client, settings, pair, {SERVED_TAG: why})
    record_gate(settings.lineage_dir, "promotion", True, subject, manual=True, reason=why)
    was = f"v{before.candidates}+v{before.ranker}" if before else "none"
    console.print(
        f"champion: setlist-candidates v{pair[0]}, setlist-ranker v{pair[1]} (was {was}); "
        "a running server picks it up at its next refresh"
    )


def _complete(client: MlflowClient, settings: Settings) -> None:
    """The champion's missing ledger line, when its promotion by hand was killed before writing it;
    no alias moves."""
    champion = registry.find_pair(client, settings, CHAMPION)
    if champion is None:
        raise InputMissing("no champion: nothing to complete")
    done = manual_promotion(client, settings, str(champion.ranker))
    if done is None or done.state != "unrecorded":
        console.print(f"v{champion.candidates}+v{champion.ranker}'s promotion is on record: nothing to complete")
        return
    subject = f"ranker:{champion.ranker}"
    record_gate(settings.lineage_dir, "promotion", True, subject, manual=True, reason=done.reason)
    console.print(f"v{champion.candidates}+v{champion.ranker} became champion by hand ({done.reason}): recorded now")


if __name__ == "__main__":
    app()
