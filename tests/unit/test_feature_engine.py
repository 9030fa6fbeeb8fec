"""The declaration engine against a brute-force computation, row by row, on a small random log;
and declarations that cannot work are refused in one sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo import engine
from feature_repo.build import prepare
from feature_repo.declarations import load
from setlist.consent import personalizable
from setlist.feature_sources import INTERACTIONS, Column, Events, Table
from setlist.feature_transforms import engaged
from setlist.featureset import DeclarationError, Feature, FeatureSet

DAY_NS = 86_400 * 10**9
TYPES = np.array(["play", "skip", "like", "add_to_playlist", "not_interested", "impression"])


def _log(seed: int = 3, n: int = 900, users: int = 10, items: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2019-03-01", tz="UTC").value
    ts = start + np.sort(rng.integers(0, 200 * DAY_NS, n))
    events = pd.DataFrame(
        {
            "event_id": [f"e{i:05d}" for i in range(n)],
            "user_id": rng.choice([f"u{i}" for i in range(users)], n),
            "session_id": "",
            "item_id": rng.choice([f"i{i:03d}" for i in range(items)], n),
            "type": rng.choice(TYPES, n, p=[0.4, 0.15, 0.1, 0.05, 0.05, 0.25]),
            "timestamp": pd.to_datetime(ts, utc=True),
            "value": rng.uniform(0, 1, n).round(3),
            "consent_personalization": True,
            "consent_analytics": True,
        }
    )
    genres = np.array(["rock", "jazz", "pop"])
    catalog = pd.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in range(items)],
            "artist": "a",
            "genre": genres[np.arange(items) % 3],
            "genres": ["|".join(genres[[i % 3, (i + 1) % 3]]) for i in range(items)],
            "duration_s": np.where(np.arange(items) % 5 == 0, np.nan, 200.0 + np.arange(items)),
            "release_date": pd.to_datetime(
                np.where(np.arange(items) % 4 == 0, None, [f"{1990 + i}-06-01" for i in range(items)]), utc=True
            ),
        }
    )
    return prepare(events), catalog


def _brute(ev: pd.DataFrame, key: str, entity: str, day: int, f: Feature, catalog: pd.DataFrame):
    """One feature at one (entity, day) snapshot, straight from the definition."""
    s = f.source
    assert isinstance(s, Events)
    mine = ev[ev[key] == entity]
    days = mine["timestamp"].astype("int64") // DAY_NS
    upto = mine[(days <= day) & ((days > day - f.window) if f.window else True)]
    sel = upto if s.types is None else upto[upto["type"].isin(s.types)]
    if s.where is not None:
        cols = engine.EventColumns(
            sel["type"].to_numpy(),
            sel["value"].to_numpy(),
            sel["item_id"].to_numpy(),
            sel["user_id"].to_numpy(),
            sel["timestamp"].astype("int64").to_numpy(),
        )
        sel = sel[np.asarray(s.where(cols), dtype=bool)]
    snap = (day + 1) * DAY_NS
    if s.function == "count":
        return len(sel)
    if s.function == "sum":
        return sel[s.column].sum()
    if s.function == "mean":
        return sel[s.column].mean() if len(sel) else 0.0
    if s.function == "rate":
        den = len(upto[upto["type"].isin(s.over)])
        return min(len(sel) / den, 1.0) if den else 0.0
    if s.function == "distinct":
        col = sel["timestamp"].astype("int64") // DAY_NS if s.column == "day" else sel[s.column]
        return col.nunique()
    if s.function == "days_since_last":
        return (snap - sel["timestamp"].astype("int64").max()) / DAY_NS if len(sel) else np.nan
    if s.function == "last":
        return sel[s.column].iloc[-1] if len(sel) else None
    if s.function in ("share", "top"):
        g = sel["item_id"].map(catalog.set_index("item_id")["genre"]).value_counts()
        vocab = sorted(set(catalog["genre"]) | {"unknown"})
        if s.function == "top":
            return "" if g.empty else max(vocab, key=lambda x: (g.get(x, 0), -vocab.index(x)))
        return np.array([g.get(x, 0) / g.sum() if len(g) else 0.0 for x in vocab], dtype=np.float32)
    raise AssertionError(s.function)


DECLARED = [
    Feature("plays", "user", Events("count", types=("play",), windows=(3, 30)), "int64"),
    Feature("listen", "user", Events("sum", column="value", types=("play",), windows=(14,))),
    Feature("completion", "user", Events("mean", column="value", types=("play",))),
    Feature(
        "skip_rate", "user", Events("rate", types=("skip", "not_interested"), over=("play", "skip"), windows=(30,))
    ),
    Feature("like_rate", "user", Events("rate", types=("like",), over=("play",), windows=(7,))),
    Feature("active_days", "user", Events("distinct", column="day", types=INTERACTIONS, windows=(10,)), "int64"),
    Feature("distinct_items", "user", Events("distinct", column="item_id", types=("play",), windows=(20,)), "int64"),
    Feature("distinct_items_ever", "user", Events("distinct", column="item_id", types=("play", "like")), "int64"),
    Feature("since_last_like", "user", Events("days_since_last", types=("like",)), missing=-1.0),
    Feature("last_item", "user", Events("last", column="item_id", types=("play",)), "string", missing=""),
    Feature(
        "affinity",
        "user",
        Events("share", column="genre", where=engaged, windows=(30,)),
        "float_list",
        missing=None,
        window_suffix=False,
    ),
    Feature(
        "top_genre",
        "user",
        Events("top", column="genre", where=engaged, windows=(30,)),
        "string",
        missing="",
        window_suffix=False,
    ),
]


def test_every_aggregation_equals_the_brute_force_definition_at_every_snapshot():
    ev, catalog = _log()
    fs = FeatureSet.of(DECLARED)
    frame = engine.compute("user", ev, fs.features, catalog)
    assert len(frame) == len(ev.assign(d=ev["timestamp"].astype("int64") // DAY_NS)[["user_id", "d"]].drop_duplicates())
    checked = 0
    for row in frame.itertuples(index=False):
        day = pd.Timestamp(row.event_timestamp).value // DAY_NS - 1
        for f in fs.features:
            want = _brute(ev, "user_id", row.user_id, day, f, catalog)
            got = getattr(row, f.name)
            if f.dtype == "float_list":
                assert np.allclose(got, want), (f.name, row.user_id, day)
            elif f.dtype == "string":
                assert got == (f.missing if want is None else want), (f.name, row.user_id, day, got, want)
            else:
                want = f.missing if (want is None or (isinstance(want, float) and np.isnan(want))) else want
                assert np.isclose(float(got), float(want), atol=1e-9), (f.name, row.user_id, day, got, want)
            checked += 1
    assert checked == len(frame) * len(fs.features)


def test_table_columns_transforms_and_a_point_in_time_join():
    ev, catalog = _log()
    attrs = pd.DataFrame(
        {
            "item_id": ["i001", "i001", "i002"],
            "label_score": [1.0, 5.0, 2.0],
            "updated": pd.to_datetime(["2019-01-01", "2019-05-01", "2030-01-01"], utc=True),
        }
    )
    attrs.attrs.update(key="item_id", timestamp="updated")
    table = Table("item_scores", "item", key="item_id", path="unused.parquet", timestamp="updated")
    fs = FeatureSet.of(
        [
            Feature("year", "item", Column("items", "release_date", "year"), missing=0.0),
            Feature("age", "item", Column("items", "release_date", "days_since", fallback=Events("days_since_first"))),
            Feature("is_jazz", "item", Column("items", "genres", "contains", argument="Jazz")),
            Feature("duration", "item", Column("items", "duration_s"), missing=-1.0),
            Feature("score", "item", Column("item_scores", "label_score"), missing=0.0),
        ],
        tables=[table],
    )
    frame = engine.compute("item", ev, fs.features, catalog, {"item_scores": attrs})
    meta = catalog.set_index("item_id")
    for row in frame.itertuples(index=False):
        m = meta.loc[row.item_id]
        snap = pd.Timestamp(row.event_timestamp)
        assert row.year == (0.0 if pd.isna(m.release_date) else m.release_date.year)
        assert row.is_jazz == float("jazz" in m.genres.split("|"))
        assert row.duration == (-1.0 if np.isnan(m.duration_s) else m.duration_s)
        if pd.isna(m.release_date):  # no date: days since the item's first event, never negative
            first = ev.loc[ev["item_id"] == row.item_id, "timestamp"].min()
            assert np.isclose(row.age, (snap - first) / pd.Timedelta(days=1))
        else:
            assert np.isclose(row.age, max((snap - m.release_date) / pd.Timedelta(days=1), 0.0))
        # as of the snapshot: never a value stamped later
        known = attrs[(attrs["item_id"] == row.item_id) & (attrs["updated"] <= snap)]
        assert row.score == (known["label_score"].iloc[-1] if len(known) else 0.0)


def test_personal_user_attributes_never_reach_users_without_consent():
    ev, catalog = _log()
    out = ev["user_id"] == "u3"
    ev.loc[out, "consent_personalization"] = False
    attrs = pd.DataFrame({"user_id": sorted(ev["user_id"].unique()), "age_band": 3.0})
    attrs.attrs.update(key="user_id", timestamp=None)
    fs = FeatureSet.of(
        [Feature("age_band", "user", Column("people", "age_band"), missing=0.0)],
        tables=[Table("people", "user", key="user_id", path="unused.csv")],
    )
    frame = engine.compute(
        "user", personalizable(ev, True).reset_index(drop=True), fs.features, catalog, {"people": attrs}
    )
    assert "u3" not in set(frame["user_id"]) and set(frame["age_band"]) == {3.0}


def test_user_tables_are_keyed_by_pseudonym_before_any_join(tmp_path):
    path = tmp_path / "people.csv"
    pd.DataFrame({"person": ["alice", "bob"], "tier": [1, 2]}).to_csv(path, index=False)
    fs = FeatureSet.of(
        [Feature("tier", "user", Column("people", "tier"))],
        tables=[Table("people", "user", key="person", path=str(path))],
    )
    tables = engine.load_tables(fs, "user", pseudonym=lambda u: f"p-{u}")
    assert list(tables["people"]["person"]) == ["p-alice", "p-bob"]
    with pytest.raises(DeclarationError, match="pseudonymization"):
        engine.load_tables(fs, "user")


@pytest.mark.parametrize(
    "name",
    [
        "profile.tsv",
        "profile.txt",
        "profile.dat",
        "profile.tsv.gz",
        "profile.jsonl",
        "profile.json.gz",
        "profile.json.zip",
    ],
)
def test_a_table_is_read_by_its_kind_of_file(tmp_path, name):
    # Flixster's profile.txt: tab-separated, "N/A" for an unknown age
    frame = pd.DataFrame({"userid": ["u1", "u2"], "gender": ["f", "m"], "age": ["31", "N/A"]})
    path = tmp_path / name
    if ".jsonl" in name:  # JSON writes its missing values as null
        frame.assign(age=[31, None]).to_json(path, orient="records", lines=True)
    elif ".json" in name:  # an array, compressed
        frame.assign(age=[31, None]).to_json(path, orient="records")
    else:
        frame.to_csv(path, sep="\t", index=False)
    t = Table("profile", "user", key="userid", path=str(path))
    read = engine.read_table(t)
    assert read["userid"].tolist() == ["u1", "u2"] and read["age"].isna().tolist() == [False, True]


def test_a_table_file_that_cannot_be_read_is_refused_in_one_sentence(tmp_path):
    bad = tmp_path / "profile.parquet"
    bad.write_text("userid,age\nu1,3\n")
    with pytest.raises(DeclarationError, match="table 'profile': cannot read profile.parquet"):
        engine.read_table(Table("profile", "user", key="userid", path=str(bad)))
    odd = tmp_path / "profile.xlsx"
    odd.write_text("")
    with pytest.raises(DeclarationError, match="cannot read profile.xlsx .*a table's file is parquet, .csv"):
        engine.read_table(Table("profile", "user", key="userid", path=str(odd)))
    import zipfile

    many = tmp_path / "profile.json.zip"  # which file is the table is not said: none is taken
    with zipfile.ZipFile(many, "w") as z:
        z.writestr("profile.json", "[]")
        z.writestr("readme.json", "[]")
    with pytest.raises(DeclarationError, match="profile.json.zip holds 2 files; a zip is read when it holds one"):
        engine.read_table(Table("profile", "user", key="userid", path=str(many)))
    bare = tmp_path / "profile"  # no extension: parquet, as before
    pd.DataFrame({"userid": ["u1"], "age": [3]}).to_parquet(bare)
    assert engine.read_table(Table("profile", "user", key="userid", path=str(bare)))["userid"].tolist() == ["u1"]


@pytest.mark.parametrize(
    "feature,message",
    [
        (Feature("Bad-Name", "user", Events("count")), "lower_snake_case"),
        (Feature("x", "user", Events("median")), "unknown function 'median'"),
        (Feature("x", "user", Events("count", types=("listen",))), "unknown event type 'listen'"),
        (Feature("x", "user", Events("sum")), "sum needs a column"),
        (Feature("x", "item", Column("nowhere", "c")), "table 'nowhere' is not registered"),
        (Feature("x", "user", Column("items", "genre")), "items table feeds item features only"),
        (Feature("x", "user", Events("count"), "string", ranker_input=True), "a ranker input must be numeric"),
        (Feature("x", "item", Events("count", windows=(0,))), "whole days > 0"),
        (Feature("x", "item", Events("count"), since=0), "not a version range"),
        (
            Feature("x", "user", Events("count", windows=7)),
            r"windows must be a tuple of whole days, e\.g\. windows=\(7, 30\)",
        ),  # type: ignore[arg-type]
        (Feature("x", "user", Events("count", windows=("7d",))), "windows are whole days .numbers, not text"),  # type: ignore[arg-type]
        (
            Feature("x", "user", Events("count", types="skip")),
            r"types must be a tuple of event types, e\.g\. types=\('skip',\)",
        ),  # type: ignore[arg-type]
        (Feature("x", "user", Events("rate", types=("skip",), over="play")), "over must be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_a_declaration_that_cannot_work_is_refused_in_one_sentence(feature, message):
    with pytest.raises(DeclarationError, match=message):
        FeatureSet.of([feature])


def test_a_column_the_data_lacks_is_refused_naming_the_feature():
    ev, catalog = _log()
    fs = FeatureSet.of([Feature("my_mean", "user", Events("mean", column="valeu", windows=(7,)))])
    with pytest.raises(DeclarationError, match=r"^feature 'my_mean_7d': no event or catalogue column 'valeu'"):
        engine.compute("user", ev, fs.features, catalog)
    # a share or top takes its categories first: the same sentence, not a KeyError from pandas
    for function in ("top", "share"):
        dtype, missing = ("string", "") if function == "top" else ("float_list", None)
        top = FeatureSet.of([Feature("my_mood", "user", Events(function, column="mood"), dtype, missing=missing)])
        with pytest.raises(DeclarationError, match=r"^feature 'my_mood': no event or catalogue column 'mood'"):
            engine.compute("user", ev, top.features, catalog)


def test_a_feature_with_no_value_anywhere_is_published_as_its_missing_value_with_a_warning(caplog):
    ev, catalog = _log()
    catalog = catalog.assign(title=None)  # an empty catalogue column
    fs = FeatureSet.of(
        [
            Feature("item_title_len", "item", Column("items", "title"), missing=0.0),
            Feature("item_year", "item", Column("items", "release_date", "year"), missing=0.0),
        ]
    )
    engine._warned.discard("item_title_len")
    with caplog.at_level("WARNING", logger="setlist.features"):
        frame = engine.compute("item", ev, fs.features, catalog)
    assert (frame["item_title_len"] == 0.0).all()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "'item_title_len' has no value in any of" in warning and "missing=None" in warning


def test_a_declaration_file_that_fails_to_import_is_named_in_one_line(tmp_path, monkeypatch):
    import feature_repo.declarations as declarations

    broken = tmp_path / "my_features.py"
    broken.write_text("FEATURES = [\n")
    # as if saved in the package: listed among its modules and importable as one of them
    monkeypatch.setattr(declarations, "PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(declarations, "__path__", [*declarations.__path__, str(tmp_path)])
    with pytest.raises(DeclarationError, match=r"feature_repo/declarations/my_features.py failed to load: SyntaxError"):
        declarations.modules()


def test_a_name_declared_twice_in_one_file_says_so(tmp_path):
    from feature_repo.declarations import _load

    twice = tmp_path / "twice.py"
    twice.write_text(
        "from setlist.featureset import Events, Feature\n"
        "FEATURES = [Feature('my_skips', 'user', Events('count', types=('skip',))),\n"
        "            Feature('my_skips', 'user', Events('count', types=('skip',)))]\n"
    )
    with pytest.raises(DeclarationError, match=rf"'my_skips' is declared twice in {twice}"):
        _load((str(tmp_path),))


def test_the_built_in_pack_gives_ranker_v1_in_the_order_models_were_trained_on():
    fs = load()
    v1 = fs.service("ranker_v1")
    assert v1.inputs[:2] == ("user_plays_7d", "user_plays_30d") and v1.inputs[-1] == "x_embedding_rank"
    assert len(v1.inputs) == len(set(v1.inputs)) == sum(f.is_input for f in fs.features if f.in_version(1))
    with pytest.raises(DeclarationError, match="ranker_v9 is not declared"):
        fs.service("ranker_v9")


def test_a_feature_from_a_later_version_joins_only_that_service_and_keeps_v1_intact(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from setlist.featureset import Events, Feature\n"
        "FEATURES = [Feature('user_sessions', 'user', Events('distinct', column='session_id', windows=(7,)),"
        " 'int64', owner='me', since=2)]\n"
    )
    from setlist.settings import Settings

    fs = load(Settings(feature_dirs=[tmp_path]))
    assert fs.origin["user_sessions"] == str(tmp_path / "mine.py")
    v1, v2 = fs.service(1), fs.service(2)
    assert "user_sessions_7d" in v2.inputs and "user_sessions_7d" not in v1.inputs
    assert v1.inputs == load().service(1).inputs
