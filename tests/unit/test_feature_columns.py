"""A declaration that reads a column the events, the catalogue or its table do not have is named by
``plan``, ``apply`` and ``materialize`` before any build (``feature_repo.source_columns``), not found half-way
through one; the built-in pack passes on generated and on imported data, and on no data at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from feature_repo.declarations import load
from feature_repo.incremental import BUILD_COLUMNS, read_events
from feature_repo.source_columns import BUILT_EVENT_COLUMNS, check
from setlist.eventlog import Erased, EventLog
from setlist.feature_sources import CONTEXT_COLUMNS
from setlist.settings import Settings, get_settings

runner = CliRunner()

WRONG = """
from setlist.featureset import Column, Events, Feature, Table

TABLES = [Table("people", "user", key="user_id", path={people!r})]
FEATURES = [
    Feature("user_top_mood", "user", Events("top", column="mood", windows=(7, 30)), "string", missing="",
            ranker_input=False, since=2),
    Feature("user_top_arm", "user", Events("top", column="arm", windows=(30,)), "string", missing="",
            ranker_input=False, since=2),
    Feature("user_top_device", "user", Events("top", column="device", windows=(30,)), "string", missing="",
            ranker_input=False, since=2),
    Feature("item_tempo", "item", Column("items", "tempo"), since=2),
    Feature("user_age", "user", Column("people", "agee"), since=2),
    Feature("user_sessions", "user", Events("distinct", column="session_id", windows=(30,)), "int64", since=2),
]
"""


def _declare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> Path:
    """A declaration file in a directory of its own, and a fresh data directory, as the CLI's settings."""
    mine = tmp_path / "declarations"
    mine.mkdir()
    (mine / "mine.py").write_text(source)
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_FEATURE_DIRS", str(mine))
    get_settings.cache_clear()
    return mine / "mine.py"


def test_plan_and_apply_name_every_declaration_reading_a_column_the_data_does_not_have(tmp_path, monkeypatch):
    from feature_repo.__main__ import app

    people = tmp_path / "people.csv"
    people.write_text("user_id,age\nu1,30\n")
    declared = _declare(tmp_path, monkeypatch, WRONG.format(people=str(people)))
    for command in ("plan", "apply"):
        result = runner.invoke(app, [command])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        err = result.stderr
        assert err.startswith("error: the feature declarations read 4 columns the data does not have"), err
        lines = {line.split("'")[1]: line for line in err.splitlines()[1:]}
        assert set(lines) == {"user_top_mood", "user_top_arm", "item_tempo", "user_age"}  # a window once; device read
        assert all(f"(declared in {declared})" in line for line in lines.values())
        assert "reads column 'mood', which neither the events nor the catalogue have" in lines["user_top_mood"]
        assert "events: user_id, session_id, item_id, type, timestamp, value" in lines["user_top_mood"]
        assert "catalogue: item_id, artist, genre, duration_s, release_date, genres, title" in lines["user_top_mood"]
        assert "'arm', which the event log stores but the feature build does not read" in lines["user_top_arm"]
        assert "reads column 'tempo' of the catalogue (table 'items')" in lines["item_tempo"]
        assert "'agee' of table 'people', which has no such column; its columns: user_id, age" in lines["user_age"]


def test_a_registered_tables_missing_key_is_named_and_an_absent_file_is_not_an_error(tmp_path):
    from setlist.feature_sources import Column, Table
    from setlist.featureset import Feature, FeatureSet

    (tmp_path / "people.csv").write_text("uid,age\nu1,30\n")
    tables = [
        Table("people", "user", key="user_id", path=str(tmp_path / "people.csv")),
        Table("later", "item", key="item_id", path=str(tmp_path / "not_yet.parquet")),
    ]
    fs = FeatureSet.of(
        [Feature("user_age", "user", Column("people", "age")), Feature("item_x", "item", Column("later", "x"))],
        tables,
        {"user_age": "mine.py", "item_x": "mine.py"},
    )
    found = check(Settings(data_dir=tmp_path / "data"), fs)
    assert found.missing == [
        "table 'people' has no column 'user_id', which it is registered to join by; its columns: uid, age"
    ]
    assert len(found.unchecked) == 1 and "not_yet.parquet does not exist; its columns are checked" in found.unchecked[0]


def test_the_check_sees_what_the_engine_reads_a_column_an_aggregate_ignores_and_a_parquet_index(tmp_path):
    import pandas as pd

    from feature_repo.engine import read_table
    from setlist.feature_sources import Column, Events, Table
    from setlist.featureset import DeclarationError, Feature, FeatureSet

    # pandas keeps an index it wrote as the index, not a column: read_table then has no key column
    pd.DataFrame({"user_id": ["u1"], "age": [30]}).set_index("user_id").to_parquet(tmp_path / "people.parquet")
    people = Table("people", "user", key="user_id", path=str(tmp_path / "people.parquet"))
    with pytest.raises(DeclarationError, match="no column 'user_id'"):
        read_table(people)
    fs = FeatureSet.of(
        [
            Feature("user_age", "user", Column("people", "age")),
            # count, rate and days_since never read a column given to them (the engine ignores it)
            Feature("user_n", "user", Events("count", column="plays", windows=(7,)), "int64"),
            Feature("user_since", "user", Events("days_since_last", column="plays"), "float64"),
        ],
        [people],
        {"user_age": "mine.py", "user_n": "mine.py", "user_since": "mine.py"},
    )
    assert check(Settings(data_dir=tmp_path / "data"), fs).missing == [
        "table 'people' has no column 'user_id', which it is registered to join by; its columns: age"
    ]


def test_a_table_no_build_can_read_as_declared_is_an_error_not_a_later_check(tmp_path, monkeypatch):
    from feature_repo.__main__ import app

    _declare(
        tmp_path,
        monkeypatch,
        "from setlist.featureset import Column, Feature, Table\n"
        "TABLES = [Table('sql', 'user', key='user_id', sql='select 1')]\n"  # a query, but no url
        "FEATURES = [Feature('user_x', 'user', Column('sql', 'x'), since=2)]\n",
    )
    result = runner.invoke(app, ["plan"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: 1 registered table cannot be read as declared")
    assert "has a SQL query but no url" in result.stderr and "Traceback" not in result.output


def test_a_compressed_table_cut_short_is_an_error_naming_it(tmp_path):
    import gzip

    from setlist.feature_sources import Column, Table
    from setlist.featureset import Feature, FeatureSet

    whole = gzip.compress(b'{"user_id": "u1", "age": 30}\n' * 50)
    (tmp_path / "people.json.gz").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    table = Table("people", "user", key="user_id", path=str(tmp_path / "people.json.gz"))
    fs = FeatureSet.of([Feature("user_age", "user", Column("people", "age"))], [table], {"user_age": "mine.py"})
    found = check(Settings(data_dir=tmp_path / "data"), fs)
    assert found.unchecked == [] and len(found.broken) == 1
    assert found.broken[0].startswith("table 'people': cannot read people.json.gz")


def test_a_fresh_data_dir_plans_without_a_word_about_columns(tmp_path, monkeypatch):
    from feature_repo.__main__ import app

    # a table whose file a later import writes: said on a "!" line, never an error
    _declare(
        tmp_path,
        monkeypatch,
        "from setlist.featureset import Column, Feature, Table\n"
        f"TABLES = [Table('people', 'user', key='user_id', path={str(tmp_path / 'people.csv')!r})]\n"
        "FEATURES = [Feature('user_age', 'user', Column('people', 'age'), since=2)]\n",
    )
    assert not (tmp_path / "data" / "events").exists()
    result = runner.invoke(app, ["plan"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())  # as one line, however wide the console wrapped it
    assert (
        "! table 'people':" in said and "people.csv does not exist; its columns are checked once it can be read" in said
    )
    assert "+ user_profile.user_age" in said
    applied = runner.invoke(app, ["apply"])  # registers, and says what it could not check
    assert applied.exit_code == 0, applied.output
    assert "people.csv does not exist; its columns are checked once it can be read" in " ".join(applied.stdout.split())
    assert check(Settings(data_dir=tmp_path / "data"), load()).missing == []


def _import_movielens_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    from ingest.__main__ import app as ingest_app
    from ingest.sparse import write_fixture

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "imported"))
    get_settings.cache_clear()
    write_fixture(tmp_path / "fx", users=30, items=100, ratings=900, seed=2)
    args = ["import", str(tmp_path / "fx" / "ratings.csv"), "--user-col", "userId", "--item-col", "movieId"]
    items = ["--items", str(tmp_path / "fx" / "movies.csv"), "--item-id-col", "movieId"]
    done = runner.invoke(ingest_app, [*args, *items, "--time-unit", "s", "--rating-col", "rating"])
    assert done.exit_code == 0, done.output
    return get_settings()


def _generate_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    from ingest.__main__ import app as ingest_app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "generated"))
    get_settings.cache_clear()
    done = runner.invoke(ingest_app, ["generate", "--scale", "tiny"])
    assert done.exit_code == 0, done.output
    return get_settings()


def test_a_catalogue_that_cannot_be_read_is_a_one_line_error_naming_it(tmp_path, monkeypatch):
    from feature_repo.__main__ import app

    _declare(tmp_path, monkeypatch, "FEATURES = []\n")
    catalogue = Settings(data_dir=tmp_path / "data").catalog_path
    catalogue.parent.mkdir(parents=True)
    catalogue.write_bytes(b"cut short")  # not a parquet file
    result = runner.invoke(app, ["plan"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot read the catalogue's columns from {catalogue}")
    assert "make import with --items" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("world", [_generate_tiny, _import_movielens_shape])
def test_the_built_ins_read_only_columns_generated_and_imported_data_have(world, tmp_path, monkeypatch):
    settings = world(tmp_path, monkeypatch)
    assert check(settings, load(settings)).missing == []
    # the checked event columns are the ones the build's events have, whatever the log holds
    files = EventLog(settings.events_dir).files()
    assert files
    everything = [*BUILD_COLUMNS, *CONTEXT_COLUMNS]  # what build_columns gives when declarations name them all
    assert tuple(read_events(files, Erased(), columns=everything, prepared=True).columns) == BUILT_EVENT_COLUMNS
    assert set(read_events(files, Erased(), prepared=True).columns) == set(BUILT_EVENT_COLUMNS) - set(CONTEXT_COLUMNS)


def test_a_sql_tables_columns_are_read_without_fetching_its_rows(tmp_path):
    import sqlalchemy

    from feature_repo.engine import read_table, table_columns
    from setlist.feature_sources import Column, Table
    from setlist.featureset import Feature, FeatureSet

    url = f"sqlite:///{tmp_path / 'people.db'}"
    with sqlalchemy.create_engine(url).begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE people (user_id TEXT, n INTEGER)"))
        conn.execute(
            sqlalchemy.text("INSERT INTO people VALUES (:u, :n)"), [{"u": f"u{n}", "n": n} for n in range(500)]
        )
    # every row after the first fails as it is fetched (SQLite's abs of the smallest integer overflows)
    query = "SELECT user_id, CASE WHEN n > 0 THEN abs(-9223372036854775808) ELSE n END AS age FROM people"
    people = Table("people", "user", key="user_id", sql=query, url=url)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="integer overflow"):
        read_table(people)  # a build reads every row
    assert table_columns(people) == ["user_id", "age"]  # the check reads none
    fs = FeatureSet.of(
        [Feature("user_age", "user", Column("people", "age")), Feature("user_agee", "user", Column("people", "agee"))],
        [people],
        {"user_age": "mine.py", "user_agee": "mine.py"},
    )
    found = check(Settings(data_dir=tmp_path / "data"), fs)
    assert found.unchecked == [] and found.broken == []
    assert found.missing == [
        "feature 'user_agee' (declared in mine.py) reads column 'agee' of table 'people', which has no such column; "
        "its columns: user_id, age"
    ]
    # a query that does not run, or a database that cannot be reached, fails as a build's read does
    for bad in (
        Table("people", "user", key="user_id", sql="SELECT nope FROM people", url=url),
        Table("people", "user", key="user_id", sql=query, url=f"sqlite:///{tmp_path / 'no' / 'such.db'}"),
    ):
        with pytest.raises(sqlalchemy.exc.OperationalError) as built:
            read_table(bad)
        with pytest.raises(sqlalchemy.exc.OperationalError) as checked:
            table_columns(bad)
        assert str(checked.value) == str(built.value)


MOOD = (
    "from setlist.featureset import Events, Feature\n"
    "FEATURES = [Feature('user_top_mood', 'user', Events('top', column='mood', windows=(7,)), 'string', missing='',"
    " ranker_input=False, since=2)]\n"
)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_materialize_refuses_a_missing_column_before_building_and_the_last_features_keep_serving(tmp_path, monkeypatch):
    from feature_repo.__main__ import app
    from feature_repo.publish_record import latest_version

    settings = _generate_tiny(tmp_path, monkeypatch)
    built = runner.invoke(app, ["materialize"])
    assert built.exit_code == 0, built.output
    features, version = _files(settings.features_dir), latest_version(settings)
    online = {p.name: p.stat().st_mtime_ns for p in settings.data_dir.glob("*.db")}
    _declare(tmp_path, monkeypatch, MOOD)
    monkeypatch.setenv("SETLIST_DATA_DIR", str(settings.data_dir))  # the built world, with the new declaration
    get_settings.cache_clear()
    for args in (["materialize"], ["materialize", "--full"]):  # as an incremental run would start, and a full one
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and "building features" not in result.output
        assert result.stderr.startswith(
            "error: the feature declarations read 1 column the data does not have (a feature build would fail on it)"
        ), result.stderr
        assert "feature 'user_top_mood' (declared in " in result.stderr
        assert "reads column 'mood', which neither the events nor the catalogue have" in result.stderr
        assert result.stderr == runner.invoke(app, ["plan"]).stderr  # the same words as plan's
    assert _files(settings.features_dir) == features  # nothing built, nothing written
    assert latest_version(settings) == version
    assert {p.name: p.stat().st_mtime_ns for p in settings.data_dir.glob("*.db")} == online


@pytest.mark.parametrize("profile", ["local", "cluster"])
def test_materialize_says_an_unchecked_table_and_refuses_a_missing_column_on_any_profile(
    profile, tmp_path, monkeypatch
):
    from feature_repo.__main__ import app

    monkeypatch.setenv("SETLIST_PROFILE", profile)  # cluster: the build would run on Spark
    later = f"TABLES = [Table('people', 'user', key='user_id', path={str(tmp_path / 'people.csv')!r})]\n"
    _declare(tmp_path, monkeypatch, MOOD.replace("Feature\n", "Feature, Table\n" + later))
    result = runner.invoke(app, ["materialize"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: the feature declarations read 1 column the data does not have")
    assert "Traceback" not in result.output
    fixed = tmp_path / "fixed"  # a directory of its own: the declarations are loaded once per directory
    fixed.mkdir()
    (fixed / "mine.py").write_text("from setlist.featureset import Table\n" + later + "FEATURES = []\n")
    monkeypatch.setenv("SETLIST_FEATURE_DIRS", str(fixed))
    get_settings.cache_clear()
    result = runner.invoke(app, ["materialize"])  # a table not there yet: a "!" line, as in apply, then the build
    said = " ".join(result.stdout.split())
    assert "! table 'people':" in said and "people.csv does not exist; its columns are checked once" in said
    assert "error: the event log at" in result.stderr and "is empty" in result.stderr  # the build's own refusal
