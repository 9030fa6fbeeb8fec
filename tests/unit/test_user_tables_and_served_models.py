"""A registered user table's ids are taken as every other boundary takes an app id
(``setlist.pseudonym.app_id``), and asking the model registry which versions are served creates no MLflow
database in a directory that has none."""

from __future__ import annotations

from pathlib import Path

from feature_repo.declared import Declared
from feature_repo.inventory import model_uses
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings

KEY = "k" * 32
DECLARATION = """
from setlist.featureset import Column, Feature, Table

TABLES = [Table("people", "user", key="user_id", path={people!r})]
FEATURES = [Feature("user_age", "user", Column("people", "age"), since=2)]
"""


def _settings(tmp_path: Path, **update: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key=KEY, **update)


def test_a_user_tables_padded_id_joins_the_events_of_that_id(tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("user_id,age\n alice ,30\nbob,40\n")  # a padded cell, as Rank, Track and imports trim
    mine = tmp_path / "declarations"
    mine.mkdir()
    (mine / "mine.py").write_text(DECLARATION.format(people=str(people)))
    s = _settings(tmp_path, feature_dirs=[mine])
    key = s.secret_hmac_key()
    table = Declared.load(s).user_tables["people"]
    assert sorted(table["user_id"]) == sorted([pseudonymize("alice", key), pseudonymize("bob", key)])


def test_looking_for_served_models_creates_no_mlflow_database(tmp_path):
    s = _settings(tmp_path)
    s.data_dir.mkdir(parents=True)
    assert model_uses(s, newest=0) == []
    assert not (s.data_dir / "mlflow.db").exists()


def test_status_and_lineage_on_a_directory_never_trained_in_create_no_mlflow_database(tmp_path):
    import pytest

    from ops.status import model_lines
    from setlist.errors import InputMissing
    from training.lineage import trace

    s = _settings(tmp_path)
    s.data_dir.mkdir(parents=True)
    lines = {line.name: line for line in model_lines(s, 0.0)}
    assert lines["champion"].mark == "fail" and lines["champion"].value == "not set: run make train"
    assert lines["challenger"].mark == "none"
    with pytest.raises(InputMissing, match="run make train first"):
        trace(s, None)
    assert not (s.data_dir / "mlflow.db").exists()
