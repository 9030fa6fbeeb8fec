"""Where settings come from: the environment, then the settings file, then the defaults. A settings
file that does not read, or names something that is no setting, is an error naming the file; a
``SETLIST_`` variable that is no setting is warned of; ``python -m ops settings`` shows what is in force."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.__main__ import app as ops_app
from ops.settings_report import rows, shown
from setlist.errors import BadInput, InputMissing, UsageError
from setlist.settings import (
    OTHER_VARIABLES,
    Settings,
    get_settings,
    setting_variables,
    settings_file_values,
    unknown_variables,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    """Write the settings file (YAML text) and point SETLIST_SETTINGS_FILE at it."""
    path = tmp_path / "settings.yaml"
    monkeypatch.setenv("SETLIST_SETTINGS_FILE", str(path))
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))

    def write(text: str) -> Path:
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- the file's keys -------------------------------------------------------------------------------
def test_a_key_is_the_variable_name_without_the_prefix_even_where_the_field_is_named_otherwise(settings_file):
    # README documents SETLIST_WAL_DIR; its field is wal_dir_override, and the file's `wal_dir:` was ignored
    settings_file("wal_dir: /srv/wal\ncandidate_pool: 321\n")
    settings = get_settings()
    assert settings.wal_dir == Path("/srv/wal")
    assert settings.candidate_pool == 321


@pytest.mark.parametrize("key", ["SETLIST_WAL_DIR", "Wal_Dir", "setlist_wal_dir"])
def test_the_whole_variable_name_and_any_case_read_alike(settings_file, key):
    settings_file(f"{key}: /srv/wal\n")
    assert get_settings().wal_dir == Path("/srv/wal")


def test_the_environment_wins_over_the_file(settings_file, monkeypatch):
    settings_file("candidate_pool: 321\nwal_dir: /from/file\n")
    monkeypatch.setenv("SETLIST_CANDIDATE_POOL", "123")
    monkeypatch.setenv("SETLIST_WAL_DIR", "/from/env")
    settings = get_settings()
    assert (settings.candidate_pool, settings.wal_dir) == (123, Path("/from/env"))


def test_secrets_in_the_file_are_expanded_from_the_environment(settings_file, monkeypatch):
    monkeypatch.setenv("MY_KEY", "s3cret")
    settings_file("hmac_key: ${MY_KEY}\n")
    assert get_settings().secret_hmac_key() == b"s3cret"


def test_keys_that_name_no_setting_are_one_error_listing_each_with_a_suggestion(settings_file):
    path = settings_file("candidate_pol: 7\nflibble: 1\ncandidate_pool: 9\n")
    with pytest.raises(UsageError) as err:
        get_settings()
    message = str(err.value)
    assert str(path) in message
    assert "'candidate_pol' (did you mean candidate_pool?)" in message
    assert "'flibble'" in message and "'flibble' (did you mean" not in message
    assert "'candidate_pool'" not in message


def test_one_setting_twice_is_an_error(settings_file):
    settings_file("wal_dir: /a\nSETLIST_WAL_DIR: /b\n")
    with pytest.raises(UsageError, match="sets SETLIST_WAL_DIR twice: as 'wal_dir' and as 'SETLIST_WAL_DIR'"):
        get_settings()


def test_a_variable_read_elsewhere_is_no_key_of_the_file(settings_file):
    # the settings file cannot name itself, nor the client's token
    settings_file("settings_file: other.yaml\n")
    with pytest.raises(UsageError, match="'settings_file'"):
        get_settings()


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        (None, InputMissing, "no settings file (SETLIST_SETTINGS_FILE) at"),
        ("a: [1\n", BadInput, "is not valid YAML at line 2"),
        ("- 1\n- 2\n", BadInput, "holds a list, not a mapping of settings to values"),
        ("just words\n", BadInput, "holds a str, not a mapping"),
    ],
)
def test_a_file_that_does_not_read_is_an_error_naming_it(settings_file, text, error, words):
    path = settings_file(text) if text is not None else None
    with pytest.raises(error) as err:
        get_settings()
    assert words in str(err.value)
    if path is not None:
        assert str(path) in str(err.value)


def test_without_a_file_there_is_nothing_from_a_file():
    assert settings_file_values({}) == {}


def test_an_empty_file_is_the_defaults(settings_file):
    settings_file("# nothing set yet\n")
    assert get_settings().candidate_pool == Settings.model_fields["candidate_pool"].default


def test_a_value_that_does_not_read_names_the_variable_once_prefixed(settings_file):
    settings_file("wal_dir: {not: a path}\ncandidate_pool: many\n")
    with pytest.raises(UsageError) as err:
        get_settings()
    message = str(err.value)
    assert "SETLIST_CANDIDATE_POOL (got 'many')" in message
    assert "SETLIST_WAL_DIR" in message and "SETLIST_SETLIST_" not in message


# --- variables that are no setting ----------------------------------------------------------------
def test_a_misspelled_variable_is_warned_of_with_the_setting_it_resembles():
    environ = {"SETLIST_CANDIDATE_POL": "7", "SETLIST_CANDIDATE_POOL": "9", "PATH": "/bin", "setlist_wal_dri": "x"}
    assert unknown_variables(environ) == [
        "SETLIST_CANDIDATE_POL is not a setting and is ignored (did you mean SETLIST_CANDIDATE_POOL?)",
        "setlist_wal_dri is not a setting and is ignored (did you mean SETLIST_WAL_DIR?)",
    ]


def test_settings_in_any_case_and_variables_read_elsewhere_are_not_warned_of():
    environ = {"setlist_data_dir": "x", "SETLIST_WAL_DIR": "/w", **{name: "1" for name in OTHER_VARIABLES}}
    assert unknown_variables(environ) == []


def test_get_settings_logs_each_unknown_variable(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SETLIST_PROFLE", "production")
    with caplog.at_level(logging.WARNING, logger="setlist.settings"):
        settings = get_settings()
    assert settings.profile == "local"  # ignored, as the warning says
    assert "SETLIST_PROFLE is not a setting and is ignored (did you mean SETLIST_PROFILE?)" in caplog.messages


def test_variables_read_elsewhere_are_read_somewhere_and_are_no_setting():
    variables = setting_variables()
    sources = [
        p
        for pattern in ("**/*.py", "**/*.sh", "**/*.yaml", "Makefile", ".ci/run", "**/Dockerfile*")
        for p in ROOT.glob(pattern)
        if ".venv" not in p.parts and "var" not in p.parts and p.name != "settings.py"
    ]
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sources)
    for name in OTHER_VARIABLES:
        assert name not in variables, name
        assert re.search(rf"\b{name}\b", text), f"{name} is read nowhere: drop it from OTHER_VARIABLES"


def test_every_variable_the_docs_name_is_a_setting_or_read_elsewhere():
    known = set(setting_variables()) | OTHER_VARIABLES
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    seen, unknown = set(), set()
    for doc in docs:
        # SETLIST_QUOTA_* names a family of settings, SETLIST_* all of them
        for name in re.findall(r"\bSETLIST_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_]*\*)", doc.read_text(encoding="utf-8")):
            seen.add(name)
            if name not in known:
                unknown.add(f"{doc.relative_to(ROOT)}: {name}")
    assert unknown == set()
    assert {"SETLIST_PROFILE", "SETLIST_WAL_DIR", "SETLIST_SETTINGS_FILE"} <= seen


# --- python -m ops settings -------------------------------------------------------------------------
def test_each_row_says_where_its_value_came_from_and_hides_secrets(settings_file, monkeypatch):
    settings_file("candidate_pool: 321\n")
    monkeypatch.setenv("SETLIST_DATABASE_URL", "postgresql://setlist:hunter2@db:5432/setlist")
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k3y-never-shown")
    found = {r.variable: r for r in rows(get_settings())}
    assert set(found) == set(setting_variables())
    assert (found["SETLIST_CANDIDATE_POOL"].value, found["SETLIST_CANDIDATE_POOL"].source) == ("321", "file")
    assert found["SETLIST_DATABASE_URL"].value == "postgresql://setlist:****@db:5432/setlist"
    assert found["SETLIST_DATABASE_URL"].source == "environment"
    assert found["SETLIST_HMAC_KEY"].value == "(set)"
    assert found["SETLIST_PROFILE"].source == "default"
    assert all("hunter2" not in r.value and "k3y-never-shown" not in r.value for r in found.values())
    # unset, the cache backend is the profile's: said as what is in force
    assert found["SETLIST_CACHE_BACKEND"].value == "(not set: memory, the local profile's)"
    monkeypatch.setenv("SETLIST_PROFILE", "production")
    get_settings.cache_clear()
    assert {r.variable: r for r in rows(get_settings())}["SETLIST_CACHE_BACKEND"].value == (
        "(not set: redis, the production profile's)"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (["a", "b"], "a,b"),
        (None, "(not set)"),
        (True, "true"),
        ("redis://:pw@cache:6379/0", "redis://:****@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ({"spark.x": "1"}, '{"spark.x": "1"}'),
        # libpq's several hosts, a port that is no number, IPv6: masked all the same, never an error
        ("postgresql://u:pw@h1:5432,h2:5432/db", "postgresql://u:****@h1:5432,h2:5432/db"),
        ("redis://:pw@h:notaport/0", "redis://:****@h:notaport/0"),
        ("redis://:pw@[::1]:6379/0", "redis://:****@[::1]:6379/0"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=****&sslmode=require"),
        ("redis://h?token=t", "redis://h?token=****"),
        ("postgresql://u:p/w?x@h:5432/db", "postgresql://u:****@h:5432/db"),  # an unencoded "/" and "?"
        ("https://acct.blob/c?sv=1&sig=abc", "https://acct.blob/c?sv=1&sig=****"),
        ({"fs.azure.account.key.a": "K"}, '{"fs.azure.account.key.a": "****"}'),
        (
            {"spark.hadoop.fs.s3a.secret.key": "AKIA", "spark.hadoop.fs.s3a.access.key": "AK", "spark.master": "x"},
            '{"spark.hadoop.fs.s3a.access.key": "****", "spark.hadoop.fs.s3a.secret.key": "****", "spark.master": "x"}',
        ),
    ],
)
def test_values_are_shown_as_an_operator_would_write_them(value, text):
    assert shown(value) == text


def test_the_command_prints_json_of_the_changed_settings_and_the_unknown_variables(settings_file, monkeypatch):
    path = settings_file("candidate_pool: 321\n")
    monkeypatch.setenv("SETLIST_CANDIDATE_POL", "1")
    result = CliRunner().invoke(ops_app, ["settings", "--changed", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings_file"] == str(path)
    assert {r["variable"]: r["source"] for r in report["settings"]} == {
        "SETLIST_CANDIDATE_POOL": "file",
        "SETLIST_DATA_DIR": "environment",
    }
    assert report["not_settings"] == [
        "SETLIST_CANDIDATE_POL is not a setting and is ignored (did you mean SETLIST_CANDIDATE_POOL?)"
    ]


def test_the_server_says_a_bad_settings_file_in_one_line(tmp_path):
    # the server's command had no error mapping: a bad settings file was a traceback
    bad = tmp_path / "settings.yaml"
    bad.write_text("candidate_pol: 7\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SETLIST_SETTINGS_FILE": str(bad)}
    env["SETLIST_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "serving"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: the settings file {bad} has keys that are no setting: 'candidate_pol'")


# --- the Makefile and scripts, which cannot read the file themselves -------------------------------------
def _make_sees(env: dict[str, str], *args: str, stderr: list[str] | None = None) -> dict[str, str]:
    """The SETLIST_ variables a make recipe's commands get (``stderr``: make's own warnings, appended)."""
    names = ("SETLIST_DATA_DIR", "SETLIST_INSECURE", "SETLIST_HOST", "SETLIST_HMAC_KEY_FILE")
    recipe = "show: ; @" + "; ".join(f'echo "{n}=$${n}"' for n in names)
    done = subprocess.run(
        ["make", "-s", *args, "--eval", recipe, "show"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    if stderr is not None:
        stderr.append(done.stderr)
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def _clean_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SETLIST_")}
    return {**env, "SETLIST_SETTINGS_FILE": str(tmp_path / "settings.yaml")}


def test_the_makefile_takes_the_profile_from_the_file_and_exports_no_default_over_its_values(tmp_path):
    env = _clean_env(tmp_path)
    (tmp_path / "settings.yaml").write_text("profile: production\n")
    seen = _make_sees(env)  # the one-machine production defaults, as with SETLIST_PROFILE=production
    assert seen["SETLIST_DATA_DIR"] == f"{ROOT}/var/production" and seen["SETLIST_INSECURE"] == "true"
    assert seen["SETLIST_HMAC_KEY_FILE"].endswith("/hmac.key")
    (tmp_path / "settings.yaml").write_text("profile: production\ndata_dir: /srv/setlist\nhost: 0.0.0.0\nhmac_key: k\n")
    # an exported default would win over the file: the file's values are left to it
    seen = _make_sees(env)
    assert (seen["SETLIST_DATA_DIR"], seen["SETLIST_HOST"], seen["SETLIST_HMAC_KEY_FILE"]) == ("", "", "")
    assert seen["SETLIST_INSECURE"] == "true"
    (tmp_path / "settings.yaml").write_text("data_dir: /srv/setlist\n")
    assert _make_sees({**env, "SETLIST_PROFILE": "production"})["SETLIST_DATA_DIR"] == ""
    assert _make_sees({**env, "SETLIST_PROFILE": "local"})["SETLIST_INSECURE"] == ""  # local: no defaults
    # before .venv exists the file cannot be read: no default is exported over it, and make says so
    said: list[str] = []
    seen = _make_sees({**env, "SETLIST_PROFILE": "production"}, f"PY={tmp_path}/no-venv/python", stderr=said)
    assert (seen["SETLIST_DATA_DIR"], seen["SETLIST_INSECURE"]) == ("", "")
    assert "SETLIST_SETTINGS_FILE could not be read yet" in said[0]


def test_scripts_read_settings_in_force_through_python(tmp_path):
    env = _clean_env(tmp_path)
    (tmp_path / "settings.yaml").write_text("redis_url: redis://:pw@127.0.0.1:7777/0\nwal_dir: /srv/w al\n")
    env["SETLIST_DATABASE_URL"] = "postgresql://a:b@127.0.0.1:5999/x"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "setlist.settings", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    done = run("SETLIST_REDIS_URL", "SETLIST_WAL_DIR", "SETLIST_DATABASE_URL", "SETLIST_PROFILE")
    assert done.stdout.splitlines() == [
        "export SETLIST_REDIS_URL=redis://:pw@127.0.0.1:7777/0",  # in clear: these lines are for eval
        "export SETLIST_WAL_DIR='/srv/w al'",
        "export SETLIST_DATABASE_URL=postgresql://a:b@127.0.0.1:5999/x",
        "export SETLIST_PROFILE=local",
    ]
    assert run("--in-file").stdout.split() == ["SETLIST_REDIS_URL", "SETLIST_WAL_DIR"]
    wrong = run("SETLIST_REDIS_UR")
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "error: SETLIST_REDIS_UR is not a setting (did you mean SETLIST_REDIS_URL?)"
    )


# --- found by a review ------------------------------------------------------------------------------------
def test_kubernetes_service_links_are_no_misspelling_but_a_misspelled_port_is():
    links = {
        "SETLIST_SERVING_SERVICE_HOST": "10.0.0.1",
        "SETLIST_SERVING_SERVICE_PORT_GRPC": "50051",
        "SETLIST_SERVING_PORT": "tcp://10.0.0.1:50051",
        "SETLIST_SERVING_PORT_50051_TCP_ADDR": "10.0.0.1",
    }
    assert unknown_variables(links) == []
    assert unknown_variables({"SETLIST_METRIC_PORT": "9464"}) == [
        "SETLIST_METRIC_PORT is not a setting and is ignored (did you mean SETLIST_METRICS_PORT?)"
    ]


def test_every_pod_that_runs_setlist_keeps_service_links_out():
    import yaml

    pods = []
    manifests = [
        *sorted((ROOT / "deploy" / "k8s").glob("*.yaml")),
        *sorted((ROOT / "deploy" / "k8s-spark").glob("*.yaml")),
    ]
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc or {}).get("spec", {})
            template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
            containers = (template or {}).get("spec", {}).get("containers", [])
            # Setlist's images read SETLIST_* (Redis' own jobs do not; a patch names no image)
            if any(str(c.get("image", "")).startswith("setlist") for c in containers):
                pods.append((f"{path.name}:{doc['metadata']['name']}", template["spec"]))
    # and the Spark executors' pod template, which a ConfigMap holds as text
    for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s-spark" / "spark-config.yaml").read_text()):
        if (doc or {}).get("kind") == "ConfigMap" and "executor-pod-template.yaml" in doc.get("data", {}):
            pods.append(("executor-pod-template", yaml.safe_load(doc["data"]["executor-pod-template.yaml"])["spec"]))
    assert len(pods) >= 8
    assert [name for name, pod in pods if pod.get("enableServiceLinks") is not False] == []


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("SETLIST_CANARY_STEPS", "0.1,1.0", "SETLIST_CANARY_STEPS does not read"),
        ("SETLIST_SPARK_CONF", "notjson", "a list or mapping in the environment is JSON"),
        (
            "SETLIST_RETENTION_EVENTS_DAYS",
            "-1",
            "SETLIST_RETENTION_EVENTS_DAYS (got '-1'): Input should be greater than 0",
        ),
        ("SETLIST_IMPORT_CHUNK_ROWS", "0", "SETLIST_IMPORT_CHUNK_ROWS (got '0')"),
        ("SETLIST_HOLDOUT_SHARE", "1", "Input should be less than 1"),
        ("SETLIST_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_a_value_out_of_its_range_or_shape_is_one_line_naming_the_variable(
    monkeypatch, tmp_path, variable, value, words
):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as err:
        get_settings()
    assert words in str(err.value)


def test_a_key_written_twice_is_an_error_not_the_last_one_winning(settings_file):
    settings_file("candidate_pool: 1\ncandidate_pool: 2\n")
    with pytest.raises(BadInput, match="at line 2: found 'candidate_pool' twice"):
        get_settings()


def test_a_reference_to_an_unset_variable_is_an_error_not_an_empty_value(settings_file, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    path = settings_file("hmac_key: ${NO_SUCH_KEY_VAR}\n")
    with pytest.raises(UsageError, match=rf"{path} refers to \$\{{NO_SUCH_KEY_VAR\}}, which is not set"):
        get_settings()


def test_a_field_name_for_a_variable_named_otherwise_points_at_its_key(settings_file):
    settings_file("wal_dir_override: /w\n")
    with pytest.raises(UsageError, match=r"'wal_dir_override' \(did you mean wal_dir\?\)"):
        get_settings()


def test_spark_conf_in_yaml_may_hold_numbers_and_booleans(settings_file):
    settings_file("spark_conf:\n  spark.executor.instances: 4\n  spark.dynamicAllocation.enabled: true\n")
    assert get_settings().spark_conf == {"spark.executor.instances": "4", "spark.dynamicAllocation.enabled": "true"}


def test_the_prediction_cache_is_shared_on_the_server_profiles_unless_set(tmp_path: Path) -> None:
    def backend(**over: object) -> str:
        return Settings(data_dir=tmp_path / "data", hmac_key="k", **over).cache_store

    assert backend() == "memory"
    assert backend(profile="production") == "redis" and backend(profile="cluster") == "redis"
    assert backend(profile="production", cache_backend="memory") == "memory"
    assert backend(cache_backend="redis") == "redis"
    local = Settings(data_dir=tmp_path / "data", hmac_key="k")
    assert local.model_copy(update={"profile": "production"}).cache_store == "redis"  # the copy's profile decides
    assert local.model_copy(update={"profile": "production", "cache_backend": "memory"}).cache_store == "memory"
