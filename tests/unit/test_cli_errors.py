"""One mapping from ``SetlistError`` to exit code and message, shared by every ``python -m <stage>``:
each kind exits with its code and says ``error: <message>`` on stderr, on one line, with no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from setlist.cli import App, load_provider
from setlist.errors import BadInput, InputMissing, Refused, SetlistError, UsageError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _invoke(app: typer.Typer, *args: str):
    return runner.invoke(app, list(args))


def _one_line_error(result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.strip() == f"error: {message}", result.stderr
    assert "Traceback" not in result.output and not isinstance(result.exception, SetlistError)


# --- the mapping itself -------------------------------------------------------------------------
toy = App(add_completion=False)
KINDS = {"usage": UsageError, "bad": BadInput, "missing": InputMissing, "refused": Refused, "base": SetlistError}


@toy.command()
def boom(kind: str = typer.Argument(...), times: int = typer.Option(1, help="options survive the wrapping")) -> None:
    if kind == "bug":
        raise RuntimeError("a bug keeps its traceback")
    raise KINDS[kind](f"{kind} x{times} at [b]/some/path[/b]")


@toy.command()
def fine() -> None:
    print("ok")


@toy.command()
def fill(how: str = typer.Argument(...)) -> None:
    """Fails as a full disk makes each kind of writer fail."""
    import errno
    import sqlite3

    import sqlalchemy.exc

    if how == "device":  # the kernel's own: /dev/full answers every write with ENOSPC
        with open("/dev/full", "wb") as fh:
            fh.write(b"x")
            fh.flush()
    if how == "named":
        raise OSError(errno.ENOSPC, "No space left on device", "/nowhere/at/all/events.parquet")
    if how == "quota":
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    if how == "arrow":  # Arrow's IO errors carry the words, not the errno
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    if how == "sqlite":
        raise sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    if how == "wrapped":
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("the model could not be logged") from exc
    if how == "short":  # NumPy's words for a write the disk cut short
        raise OSError("1492500 requested and 1419200 written")
    if how == "copied":  # shutil's copy names the file; the error a library wraps it in does not
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/nowhere/at/all/model.ubj")
        except OSError as exc:
            raise OSError("could not log the model") from exc
    if how == "exit":  # a command that ends itself while handling one keeps its own exit
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            print("the server said its disk is full")
            raise typer.Exit(3) from None
    if how == "from-none":  # a bug raised while handling one, its context cut: no disk-full line
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise KeyError("a bug") from None
    if how == "quoted":  # the words in a message of no writer
        raise ValueError("the log says: No space left on device")
    if how == "signal":  # a permission error that names no file: not about the data directory
        raise PermissionError(errno.EPERM, "Operation not permitted")
    raise OSError(errno.EACCES, "Permission denied", "/root")


@toy.command()
def write(how: str = typer.Argument(...), where: str = typer.Argument("/nowhere")) -> None:
    """Fails as a read-only mount or another user's file makes each kind of writer fail."""
    import errno
    import sqlite3

    import sqlalchemy.exc

    if how == "read-only":
        raise OSError(errno.EROFS, "Read-only file system", f"{where}/events/.swaps/lock")
    if how == "sqlite":  # SQLite names no file: the data directory is said
        raise sqlalchemy.exc.OperationalError(
            "INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database")
        )
    if how == "denied":  # what open() raises for a user who may not write there (root may: tests run as root)
        raise PermissionError(errno.EACCES, "Permission denied", f"{where}/lineage/gates.jsonl")


@pytest.mark.parametrize("kind,code", [("usage", 2), ("bad", 2), ("missing", 2), ("refused", 1), ("base", 1)])
def test_each_kind_exits_with_its_code_and_one_line(kind, code):
    # the message is printed as is: no rich markup is read into a path
    _one_line_error(_invoke(toy, "boom", kind, "--times", "3"), code, f"{kind} x3 at [b]/some/path[/b]")


def test_other_errors_are_bugs_and_not_swallowed():
    result = _invoke(toy, "boom", "bug")
    assert isinstance(result.exception, RuntimeError)


@pytest.mark.parametrize("how", ["device", "named", "quota", "arrow", "sqlite", "wrapped", "short", "copied"])
def test_a_full_disk_is_one_line_that_says_where_and_what_to_do(how, tmp_path, monkeypatch):
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        result = _invoke(toy, "fill", how)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in result.output
    named = {"named": "/nowhere/at/all/events.parquet", "copied": "/nowhere/at/all/model.ubj"}
    where = named.get(how, str(tmp_path / "data"))
    assert line.startswith(f"error: no space left on the disk holding {where} (") and "MB free now" in line
    assert line.endswith("then run the same command again")


def test_a_commands_own_exit_is_kept_while_it_handles_a_full_disk():
    result = _invoke(toy, "fill", "exit")
    assert result.exit_code == 3 and "error:" not in result.output


def test_a_read_only_file_system_is_one_line_that_names_the_file(tmp_path):
    result = _invoke(toy, "write", "read-only", str(tmp_path))
    _one_line_error(
        result,
        1,
        f"cannot write {tmp_path}/events/.swaps/lock: the file system holding it is read-only. This command "
        "writes to the data directory: run it against a writable one (SETLIST_DATA_DIR); a read-only copy "
        "serves make status and make lineage",
    )


def test_a_read_only_database_names_the_data_directory(tmp_path, monkeypatch):
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        result = _invoke(toy, "write", "sqlite")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "Traceback" not in result.output
    # the directory is writable, so it is not called a read-only file system: SQLite says so of permissions too
    assert result.stderr.startswith(f"error: cannot write {tmp_path / 'data'}: SQLite calls its database read-only")


def test_a_permission_denied_names_the_file_its_owner_and_the_user(tmp_path):
    import pwd

    (tmp_path / "lineage").mkdir(mode=0o555)
    result = _invoke(toy, "write", "denied", str(tmp_path))
    me = pwd.getpwuid(os.geteuid()).pw_name
    _one_line_error(
        result,
        1,
        f"permission denied on {tmp_path}/lineage/gates.jsonl ({tmp_path}/lineage is owned by {me}, mode "
        f"dr-xr-xr-x; this command runs as {me}): run it as the user that owns the data directory, or give this "
        "user access there",
    )


@toy.command()
def connect(how: str = typer.Argument(...)) -> None:
    """Fails as a store's server that is down makes each client fail."""
    import socket

    import redis
    import sqlalchemy

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if how == "postgres":  # SQLAlchemy's OperationalError, caused by psycopg's
        engine = sqlalchemy.create_engine(f"postgresql+psycopg://u@127.0.0.1:{port}/db")
        engine.connect()
    if how == "wrapped":  # as MLflow reports it: its own exception, the driver's as the cause
        try:
            sqlalchemy.create_engine(f"postgresql+psycopg://u@127.0.0.1:{port}/db").connect()
        except Exception as exc:
            raise RuntimeError("the model registry could not be read") from exc
    if how == "redis":
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    if how == "redis-timeout":
        raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379")
    if how == "statement":  # PostgreSQL answered and refused the statement: no connection failure
        import psycopg

        raise psycopg.errors.UndefinedTable('relation "x" does not exist')
    if how == "cancelled":  # a statement timeout: an OperationalError with a SQLSTATE of its own
        import psycopg

        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    if how == "password":  # the server answered: a setting is wrong, it is not down
        import psycopg

        raise psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "setlist"')
    if how == "fallback-bug":  # a bug while handling a refused connection is a bug
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError:
            raise KeyError("a bug in the fallback")  # noqa: B904  (its context kept, as a careless handler's is)
    if how == "pipe":
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("how", ["postgres", "wrapped", "redis", "redis-timeout"])
def test_a_store_that_is_down_is_one_line_naming_the_failure(how):
    result = _invoke(toy, "connect", how)
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in result.output
    assert line.startswith("error: cannot reach a store (") and line.endswith(
        "is it running (`make services` starts PostgreSQL and Redis for the production profile)?"
    )
    kind = {"postgres": "OperationalError", "wrapped": "OperationalError", "redis": "ConnectionError"}
    assert line.startswith(f"error: cannot reach a store ({kind.get(how, 'TimeoutError')}): ")


@pytest.mark.parametrize("how", ["statement", "cancelled", "password", "fallback-bug"])
def test_a_store_that_answered_or_a_bug_keeps_its_traceback(how):
    import psycopg

    kind = {"statement": psycopg.errors.UndefinedTable, "cancelled": psycopg.errors.QueryCanceled}
    result = _invoke(toy, "connect", how)
    expected = kind.get(how, KeyError if how == "fallback-bug" else psycopg.OperationalError)
    assert isinstance(result.exception, expected) and "cannot reach" not in result.output


@toy.command()
def locked(path: str) -> None:
    import sqlite3

    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # as a stuck writer holds it
    sqlite3.connect(path, timeout=0.05).execute("INSERT INTO t VALUES (1)")


def test_a_sqlite_file_left_locked_by_another_process_is_one_line(tmp_path):
    result = _invoke(toy, "locked", str(tmp_path / "online.db"))
    line = result.stderr.strip()
    assert result.exit_code == 1 and "\n" not in line and "Traceback" not in result.output
    assert "stayed locked by another write" in line and "run this again once it ends" in line


def test_a_reader_gone_is_no_store_down():
    result = _invoke(toy, "connect", "pipe")  # click ends a broken pipe on its own
    assert "cannot reach" not in result.output and not isinstance(result.exception, SetlistError)


@pytest.mark.parametrize("how,kind", [("signal", PermissionError), ("from-none", KeyError), ("quoted", ValueError)])
def test_other_errors_keep_their_traceback(how, kind):
    result = _invoke(toy, "fill", how)
    assert isinstance(result.exception, kind)


def test_a_command_that_succeeds_is_untouched():
    result = _invoke(toy, "fine")
    assert result.exit_code == 0 and result.output == "ok\n"


# --- providers named by a setting -----------------------------------------------------------------
@pytest.mark.parametrize(
    "spec,kind,message",
    [
        ("no_colon_here", UsageError, "is not of the form package.module:function"),
        ("no_such_module_xyz:load", InputMissing, "no feature declarations: module no_such_module_xyz does not exist"),
        ("setlist.errors:no_such_function", InputMissing, "setlist.errors has no no_such_function"),
        ("setlist.errors:__doc__", UsageError, "is not callable"),
    ],
)
def test_a_provider_that_cannot_be_loaded_says_why(spec, kind, message):
    with pytest.raises(kind, match=message):
        load_provider(spec, "feature declarations", "SETLIST_FEATURE_DECLARATIONS")


def test_a_provider_whose_module_fails_to_import_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / "broken_provider_xyz.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match="cannot load the parity adapter .*no_such_dependency_xyz"):
        load_provider("broken_provider_xyz:f", "parity adapter", "--adapter")


# --- every command line -------------------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_ingest_maps_its_errors(data_dir, tmp_path):
    from ingest.__main__ import app

    _one_line_error(_invoke(app, "generate", "--scale", "huge"), 2, "unknown scale 'huge': choose tiny, demo or bench")
    missing = tmp_path / "nope.csv"
    result = _invoke(app, "import", str(missing))
    _one_line_error(result, 2, f"cannot import {missing}: interactions file not found: {missing}")


def test_validation_maps_its_errors(data_dir, monkeypatch):
    from validation.cli import app

    monkeypatch.setenv("SETLIST_FEATURE_DECLARATIONS", "no_such_module_xyz:load")
    _one_line_error(
        _invoke(app, "features"),
        2,
        "features: no feature declarations: module no_such_module_xyz does not exist (SETLIST_FEATURE_DECLARATIONS)",
    )
    # an adapter that refuses is mapped like any other stage's refusal, named by its gate
    _one_line_error(
        _invoke(app, "parity", "--adapter", f"{__name__}:refusing_adapter"),
        1,
        "parity: the online store is being rebuilt",
    )


def refusing_adapter(settings) -> list:
    raise Refused("the online store is being rebuilt")


def test_feature_repo_maps_its_errors(data_dir, monkeypatch):
    import feature_repo.__main__ as cli
    from feature_repo.gate import FeatureBatchRejected
    from setlist.featureset import DeclarationError

    def rejected(*args, **kwargs):
        raise FeatureBatchRejected("the event log at /x is empty: generate or import events first")

    monkeypatch.setattr(cli, "publish", rejected)
    _one_line_error(_invoke(cli.app, "materialize"), 1, "the event log at /x is empty: generate or import events first")
    _one_line_error(_invoke(cli.app, "describe", "zzz"), 1, "no feature 'zzz'")

    def invalid(settings=None):
        raise DeclarationError("user_x: unknown source")

    monkeypatch.setattr("feature_repo.declarations.load", invalid)
    _one_line_error(_invoke(cli.app, "list"), 1, "invalid feature declaration: user_x: unknown source")


def test_training_maps_its_errors(data_dir, monkeypatch):
    import training.__main__ as cli
    from training.run import TrainingRefused

    def refused(settings):
        raise TrainingRefused("no query had a positive among its candidates: too little data to train a ranker")

    monkeypatch.setattr(cli, "train", refused)
    _one_line_error(
        _invoke(cli.app),
        1,
        "training refused: no query had a positive among its candidates: too little data to train a ranker",
    )


def test_experiments_maps_its_errors(data_dir, tmp_path):
    from experiments.__main__ import app

    _one_line_error(
        _invoke(app, "drill", "--mode", "sideways"), 2, "--mode must be shuffled or inverted, got 'sideways'"
    )
    config = tmp_path / "experiments.yaml"
    config.write_text("name: ab\narms:\n  - {name: control, strategy: popularity, share: 1.0}\n")
    result = _invoke(app, "report", "other", "--config", str(config), "--no-mlflow")
    assert result.exit_code in (1, 2) and result.stderr.startswith("error: "), result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, SetlistError)
    _one_line_error(
        _invoke(app, "simulate", "--config", str(tmp_path / "none.yaml")),
        2,
        f"no experiments file at {tmp_path / 'none.yaml'}: pass --config",
    )


def test_a_real_process_prints_one_line_on_stderr(data_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SETLIST_DATA_DIR": str(data_dir), "COLUMNS": "60"}
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "import", "/no/such/file.csv", "--time-unit", "hours"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # one line even in a narrow terminal: a command or path in it stays copyable
    assert proc.stderr.strip() == (
        "error: --time-unit must be s, ms, us, ns, min, h or d, optionally a multiple (10min, 600s), not 'hours'"
    )
    assert proc.stdout == ""


WAITING_JOB = """
import signal
from setlist import jobmetrics
from setlist.cli import App

app = App(add_completion=False)

@app.command()
@jobmetrics.reports("validate")
def wait() -> None:
    print("ready", flush=True)
    while True:
        signal.pause()  # until a signal ends the run

app()
"""


@pytest.mark.parametrize(
    "signum,code,said",
    [(signal.SIGINT, 130, "interrupted (Ctrl-C):"), (signal.SIGTERM, 143, "stopped by SIGTERM:")],
)
def test_a_stopped_job_says_so_in_one_line_and_reports_the_run_as_stopped(data_dir, signum, code, said):
    from ops.status import job_lines
    from setlist import jobmetrics
    from setlist.settings import Settings

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SETLIST_DATA_DIR": str(data_dir), "COLUMNS": "60"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITING_JOB],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signum)  # as a terminal's Ctrl-C, or a scheduler's stop
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip() == (
        f"{said} the command stopped part-way and nothing it finished is lost; run it again to finish (make "
        "status shows what was cut short)"
    )
    settings = Settings(data_dir=data_dir)
    samples = jobmetrics.read_status(settings.status_dir)["validate"]  # the run's finally blocks ran
    assert samples[("setlist_job_failed", (("job", "validate"),))] == 1.0
    assert samples[("setlist_job_interrupted", (("job", "validate"),))] == 1.0
    assert jobmetrics.running(settings.status_dir) == []  # its mark went: no "killed" run
    (line,) = job_lines(settings, time.time())
    assert line.mark == "fail" and line.value.startswith("last run was stopped (Ctrl-C or SIGTERM); run it again")


def test_a_setting_that_does_not_read_is_one_line_naming_its_variable(data_dir):
    # an empty SETLIST_IMPORT_CHUNK_ROWS= in a shell: a usage error, not pydantic's traceback
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SETLIST_DATA_DIR": str(data_dir), "SETLIST_IMPORT_CHUNK_ROWS": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "summary"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: settings that do not read")
    assert "SETLIST_IMPORT_CHUNK_ROWS (got ''): Input should be a valid integer" in proc.stderr


def test_training_before_any_features_were_published_says_to_materialize(data_dir, tmp_path):
    # events imported, but a materialize whose gate failed (or that never ran) left no feature views
    import training.__main__ as cli
    from ingest.__main__ import app as ingest_app

    fx = tmp_path / "fx"
    made = _invoke(ingest_app, "fixture", "--out", str(fx), "--users", "40", "--items", "200", "--ratings", "2000")
    assert made.exit_code == 0, made.output
    args = ["import", str(fx / "ratings.csv"), "--user-col", "userId", "--item-col", "movieId"]
    imported = _invoke(ingest_app, *args, "--time-unit", "s", "--rating-col", "rating")
    assert imported.exit_code == 0, imported.output
    _one_line_error(
        _invoke(cli.app),
        1,
        "training refused: no features are published yet (user_profile, item_stats not in the feature registry): "
        "run `make materialize` first; if it failed, its message names the gate that stopped it",
    )


def test_a_command_that_only_reads_says_nothing_was_changed_when_interrupted():
    """`make status` or `make lineage` cut short by Ctrl-C changed nothing: no "make status shows what was
    cut short" for them, which a writing command's line says."""
    from typer.testing import CliRunner

    from setlist.cli import App

    app = App(add_completion=False)

    @app.command("look", reads_only=True)
    def look() -> None:
        raise KeyboardInterrupt

    @app.command("write")
    def write() -> None:
        raise KeyboardInterrupt

    runner = CliRunner()
    looked, wrote = runner.invoke(app, ["look"]), runner.invoke(app, ["write"])
    assert looked.exit_code == wrote.exit_code == 130
    assert "only reads, so nothing was changed" in looked.output and "cut short" not in looked.output
    assert "make status shows what was cut short" in wrote.output and "only reads" not in wrote.output
