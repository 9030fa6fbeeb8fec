"""A model version traced back to its data: training set and its gate, the feature publish and its
gate, the event-log snapshot and the gates that judged it, and the imports before the run."""

from __future__ import annotations

import io
import time

from rich.console import Console
from typer.testing import CliRunner


def _text(tree) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(tree)
    return out.getvalue()


def test_lineage_walks_from_a_model_version_to_its_imports_and_gates(tiny_copy, monkeypatch, tmp_path) -> None:
    from feature_repo.materialize import publish
    from ingest.__main__ import app as ingest_app
    from setlist.lineage import record_import_start, record_import_writing
    from setlist.settings import get_settings
    from training.lineage import app as lineage_app
    from training.lineage import trace
    from training.run import train
    from validation.cli import app as validation_app

    s = tiny_copy.settings
    monkeypatch.setenv("SETLIST_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("SETLIST_HMAC_KEY", s.hmac_key.get_secret_value())
    monkeypatch.setenv("SETLIST_SCALE", s.scale)  # the CLIs' settings are the world's
    monkeypatch.setenv("SETLIST_SEED", str(s.seed))
    get_settings.cache_clear()
    src = tmp_path / "extra.csv"
    src.write_text("user,item,t\nlisten-1,track_000001,1793000000\nlisten-2,track_000002,1793000100\n")
    runner = CliRunner()
    done = runner.invoke(
        ingest_app,
        [
            "import",
            str(src),
            "--user-col",
            "user",
            "--item-col",
            "item",
            "--time-col",
            "t",
            "--time-unit",
            "s",
            "--assume-consent",
            "--mix-with-generated",  # extra rows for the generated world's lineage, on purpose
        ],
    )
    assert done.exit_code == 0, done.output
    # an import killed before it recorded its end: its rows may be in the log, so its file is named
    record_import_start(s.lineage_dir, "cut-short", source="killed.csv", sha256="ab" * 32, options={})
    record_import_writing(s.lineage_dir, "cut-short")
    record_import_start(s.lineage_dir, "no-rows", source="early.csv", sha256="cd" * 32, options={})  # none written
    publish(s)
    assert runner.invoke(validation_app, ["events"]).exit_code == 0
    result = train(s, progress=False)
    text = _text(trace(s, result.versions[1]))
    assert f"{s.ranker_model} v{result.versions[1]}" in text
    assert "gate training-set: passed" in text
    assert "feature publish v" in text and "gate features: passed" in text
    assert "gate events: passed" in text and "the log still matches it" in text
    assert "extra.csv" in text and "--assume-consent" in text
    assert "killed.csv sha256 abababab" in text and "started, never finished (no end recorded" in text
    assert "early.csv" not in text  # killed before its first write: no rows of it can be in the log
    assert "training set sha256" in text and "the file still matches it" in text
    assert "erased since this run" not in text
    from setlist.eventlog import EventLog

    EventLog(s.events_dir).tombstone("u_" + "0f" * 16)  # an erasure's first write, after the run
    assert "1 user erased since this run" in _text(trace(s, result.versions[1]))
    cli = runner.invoke(lineage_app, [result.versions[1]])
    assert cli.exit_code == 0 and "training set sha256" in cli.output
    missing = runner.invoke(lineage_app, ["999"])
    assert missing.exit_code != 0 and "no version '999'" in missing.output and "Traceback" not in missing.output


def test_promoting_the_challenger_by_hand_needs_a_reason_and_is_recorded(tiny_copy, monkeypatch) -> None:
    from setlist import registry
    from setlist.lineage import gates
    from setlist.settings import get_settings
    from training.lineage import MANUAL_TAG, SERVED_TAG, trace
    from training.promote import app as promote_app

    s = tiny_copy.settings
    monkeypatch.setenv("SETLIST_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("SETLIST_SCALE", s.scale)
    get_settings.cache_clear()
    client = registry.connect(s)
    challenger = registry.lookup_pair(client, s, registry.CHALLENGER)
    names = registry.model_names(s)
    for name in (names.candidates, names.ranker):  # as after a first run the gate kept as challenger
        client.delete_registered_model_alias(name, registry.CHAMPION)
    assert registry.find_pair(client, s, registry.CHAMPION) is None
    runner = CliRunner()
    refused = runner.invoke(promote_app, ["--reason", "  "])
    assert refused.exit_code == 2 and "--reason must say why" in refused.output
    assert registry.find_pair(client, s, registry.CHAMPION) is None
    done = runner.invoke(promote_app, ["--reason", "popularity is hard to beat on this log"])
    assert done.exit_code == 0, done.output
    assert registry.lookup_pair(client, s, registry.CHAMPION) == challenger
    (gate,) = [g for g in gates(s.lineage_dir) if g["gate"] == "promotion"]
    assert gate["manual"] is True and gate["reason"] == "popularity is hard to beat on this log"
    text = _text(trace(s, challenger.ranker))
    assert "promoted to champion by hand, past the promotion gate: popularity is hard to beat on this log" in text
    again = runner.invoke(promote_app, ["--reason", "once more"])  # the champion already: nothing recorded twice
    assert again.exit_code == 0 and "is champion already: nothing changed" in again.output
    assert [g["reason"] for g in gates(s.lineage_dir) if g["gate"] == "promotion"] == [gate["reason"]]
    # a promotion killed after its alias moved, before its ledger line: the same command completes it
    (s.lineage_dir / "gates.jsonl").write_text(
        "".join(
            line + "\n"
            for line in (s.lineage_dir / "gates.jsonl").read_text().splitlines()
            if '"promotion"' not in line
        )
    )
    completed = runner.invoke(promote_app, ["--reason", "once more"])
    assert completed.exit_code == 0 and "its record is complete now" in completed.output
    assert [g["reason"] for g in gates(s.lineage_dir) if g["gate"] == "promotion"] == [gate["reason"]]
    # a second promotion of the same pair by hand, killed after its reason went on: its own line is added
    registry.tag_pair(client, s, challenger.pair, {MANUAL_TAG: "a second look"})
    second = runner.invoke(promote_app, ["--reason", "a second look"])
    assert second.exit_code == 0 and "its record is complete now" in second.output
    assert [g["reason"] for g in gates(s.lineage_dir) if g["gate"] == "promotion"] == [gate["reason"], "a second look"]
    # a promotion killed after its reason went on and before the alias moved: lineage and status say so
    for name in (names.candidates, names.ranker):
        client.delete_registered_model_alias(name, registry.CHAMPION)
    registry.tag_pair(client, s, challenger.pair, {MANUAL_TAG: "a third look"})
    text = _text(trace(s, challenger.ranker))
    assert "a promotion by hand was killed before the champion moved (a third look): not served" in text
    assert "`python -m training.promote --reason 'a third look'` runs it again" in text
    assert "promoted to champion by hand" not in text
    from ops.status import model_lines

    warned = {line.name: line for line in model_lines(s, time.time())}["challenger promotion"]
    assert warned.mark == "warn" and "killed before the champion moved (a third look)" in warned.value
    third = runner.invoke(promote_app, ["--reason", "a third look"])  # run again, as both say
    assert third.exit_code == 0, third.output
    assert "promoted to champion by hand, past the promotion gate: a third look" in _text(trace(s, challenger.ranker))
    assert "challenger promotion" not in {line.name for line in model_lines(s, time.time())}
    # killed after the alias moved, before its line; then replaced as champion: served, and `--complete`
    # records it while it is champion
    registry.tag_pair(client, s, challenger.pair, {MANUAL_TAG: "a fourth look"})
    registry.tag_pair(client, s, challenger.pair, {SERVED_TAG: "a fourth look"})
    warned = {line.name: line for line in model_lines(s, time.time())}
    assert "champion promotion" in warned and "challenger promotion" not in warned  # one pair, said once
    assert "`python -m training.promote --complete` records it" in warned["champion promotion"].value
    for name in (names.candidates, names.ranker):
        client.delete_registered_model_alias(name, registry.CHAMPION)
    text = _text(trace(s, challenger.ranker))
    assert "promoted to champion by hand, past the promotion gate: a fourth look (killed before its ledger" in text
    assert "replaced since" in text and "--complete" not in text  # it is no champion to complete now
    assert runner.invoke(promote_app, ["--complete"]).output.strip() == "error: no champion: nothing to complete"
    both = runner.invoke(promote_app, ["--complete", "--reason", "x"])
    assert both.exit_code == 2 and "drop --reason" in both.output
    registry.set_alias(client, s, challenger.pair, registry.CHAMPION)
    completed = runner.invoke(promote_app, ["--complete"])
    assert completed.exit_code == 0 and "recorded now" in completed.output, completed.output
    assert [g["reason"] for g in gates(s.lineage_dir) if g["gate"] == "promotion"][-1] == "a fourth look"
    assert "on record: nothing to complete" in runner.invoke(promote_app, ["--complete"]).output
