"""What every ``python -m <stage>`` shares: one mapping from ``SetlistError`` to exit code and message,
and loading a provider named by a ``module:function`` setting.

Commands raise ``setlist.errors`` exceptions and never print their own errors or pick exit codes:
``App`` wraps each command so a ``SetlistError`` becomes ``error: <message>`` on stderr and the
class's ``exit_code``, with no traceback. Anything else is a bug and keeps its traceback, but for a full
disk and a file the command may not write (a read-only mount, another user's file), which are no bugs and are
said in one line too.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import os
import re
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape

from setlist.errors import DiskFull, InputMissing, NoAccess, SetlistError, StoreDown, UsageError

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: SetlistError) -> NoReturn:
    """Print ``error: <message>`` to stderr and exit with the error's code."""
    # soft_wrap: a path or command in the message stays on one line, copyable
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(exc.exit_code)


class Stopped(KeyboardInterrupt):
    """SIGTERM (a scheduler's or Kubernetes' stop, or ``kill``), raised as Ctrl-C's KeyboardInterrupt is so
    the same clean-up runs: a job's ``finally`` blocks, its status file and ledger lines, its temporaries.
    Without it SIGTERM ends the process at once, as SIGKILL would, wasting the grace a scheduler gives."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stopped_on_sigterm() -> Iterator[None]:
    """SIGTERM raises ``Stopped`` while the block runs, in the main thread, unless someone else handles it."""
    # None: a handler not installed from Python, which cannot be put back: left alone
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        # a second SIGTERM (make forwards one to its child as a process-group kill also delivers it) must
        # not cut the clean-up the first one started
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(exc: KeyboardInterrupt, reads_only: bool = False) -> NoReturn:
    """One line for a run stopped part-way, and the shell's code for the signal (130 Ctrl-C, 143 SIGTERM).
    A command that ``reads_only`` cut nothing short, so it says so instead of pointing at ``make status``."""
    signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
    how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    said = (
        "the command only reads, so nothing was changed; run it again for its answer"
        if reads_only
        else "the command stopped part-way and nothing it finished is lost; run it again to finish (make status "
        "shows what was cut short)"
    )
    Console(stderr=True, soft_wrap=True).print(f"[bold red]{how}:[/] {said}", highlight=False)
    raise typer.Exit(128 + signum)


def exits_on_error(command: F, reads_only: bool = False) -> F:
    """Wrap a command so a ``SetlistError`` ends it through ``fail``, and Ctrl-C or SIGTERM through
    ``interrupted`` (told whether the command ``reads_only``). ``functools.wraps`` keeps the signature and
    annotations Typer reads the options from."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with _stopped_on_sigterm():
                return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            interrupted(exc, reads_only)
        except SetlistError as exc:
            fail(exc)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # a command's own ends (Exit is a RuntimeError), whatever they were handling
        except Exception as exc:
            said = disk_full(exc) or no_access(exc) or store_down(exc) or sqlite_locked(exc)
            if said is None:
                raise
            fail(said)

    return run  # type: ignore[return-value]  # wraps keeps the signature, which the type of run cannot say


#: errno values of a full disk or quota, and the words of the libraries that report one without an errno
#: (Arrow's and SQLite's messages, also inside SQLAlchemy's and MLflow's wrappers; NumPy's short write)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_WRITERS = frozenset({"sqlite3", "sqlalchemy", "mlflow", "pyarrow", "xgboost"})
_FULL_WORDS = re.compile(
    r"no space left on device|disk quota exceeded|database or disk is full|\d+ requested and \d+ written", re.I
)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not c for c in chain):
        chain.append(current)
        # an error raised "from None" while handling one says that one is not its cause
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return chain


def _named(chain: list[BaseException]) -> Path | None:
    """The file that could not be written, from whichever error in the chain names one (a wrapper often does not)."""
    named = [getattr(e, name, None) for e in chain for name in ("filename", "filename2") if isinstance(e, OSError)]
    return next((Path(os.fsdecode(n)) for n in named if n), None)


def disk_full(exc: BaseException) -> DiskFull | None:
    """A full disk anywhere in ``exc``'s chain of causes, as one line that says where and what to do;
    None for any other failure (which keeps its traceback)."""
    chain = _causes(exc)
    if not any(_says_full(e) for e in chain):
        return None
    return DiskFull(_full_message(_named(chain)))


#: a write refused by the file system (a read-only mount) or by permissions; SQLite says the first in words
_READ_ONLY_WORDS = re.compile(r"read-only file system|attempt to write a readonly database", re.I)


def no_access(exc: BaseException) -> NoAccess | None:
    """A file the command may not open or write, anywhere in ``exc``'s chain of causes, as one line that says
    which and why; None for any other failure. A permission error counts only when it names a file: one
    that names none (signalling another user's process) is no file's access and keeps its traceback."""
    chain = _causes(exc)
    erofs = any(isinstance(e, OSError) and e.errno == errno.EROFS for e in chain)
    sqlite_says = any(
        (isinstance(e, OSError) or type(e).__module__.split(".")[0] in _WRITERS) and _READ_ONLY_WORDS.search(str(e))
        for e in chain
    )
    denied = next(
        (e for e in chain if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM) and e.filename), None
    )
    if erofs or sqlite_says:
        where = _named(chain) or _data_dir()
        if not erofs and not _on_read_only_mount(where):  # SQLite says so of an unwritable directory too
            return NoAccess(
                f"cannot write {where}: SQLite calls its database read-only (its file or directory may not be "
                f"written by {_user(os.geteuid())}; {_owner(where)}): run as the user that owns the data directory"
            )
        return NoAccess(
            f"cannot write {where}: the file system holding it is read-only. This command writes to the data "
            "directory: run it against a writable one (SETLIST_DATA_DIR); a read-only copy serves make status "
            "and make lineage"
        )
    if denied is None:
        return None
    where = Path(os.fsdecode(denied.filename))
    return NoAccess(
        f"permission denied on {where} ({_owner(where)}; this command runs as {_user(os.geteuid())}): run it as "
        "the user that owns the data directory, or give this user access there"
    )


def sqlite_locked(exc: BaseException) -> StoreDown | None:
    """A SQLite file of the data directory that another process kept locked past SQLite's wait (a long
    write, or a process stuck holding it), as one line; None for any other failure."""
    chain = _causes(exc)
    if not any(type(e).__module__.split(".")[0] in _WRITERS and "database is locked" in str(e) for e in chain):
        return None
    where = _named(chain) or _data_dir()
    return StoreDown(
        f"a SQLite file under {where} stayed locked by another write (a materialize, a server's push, or a process "
        "stuck holding it): run this again once it ends (`fuser <file>` names the processes that have it open)"
    )


def store_down(exc: BaseException) -> StoreDown | None:
    """A store's server that refused, dropped or never answered the connection, anywhere in ``exc``'s chain
    (what SQLAlchemy and MLflow wrap it in says less), as one line; None for any other failure. PostgreSQL's
    own refusals of a statement (a constraint, a bad query) are no connection failure and keep their
    traceback, as do SQLite's, which has no server."""
    # only the errors raised "from" one another (SQLAlchemy's and MLflow's wrappers): a bug raised while
    # handling a connection error (a fallback's) is no store down and keeps its traceback
    chain = [exc]
    while chain[-1].__cause__ is not None and all(chain[-1].__cause__ is not c for c in chain):
        chain.append(chain[-1].__cause__)
    down = next((e for e in chain if _connection_failed(e)), None)
    if down is None:
        return None
    return StoreDown(
        f"cannot reach a store ({type(down).__name__}): {first_line(down)}; is it running (`make services` "
        "starts PostgreSQL and Redis for the production profile)?"
    )


def _connection_failed(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    bases = type(exc).__mro__
    if module == "redis":  # redis-py's ConnectionError and TimeoutError (and their kin) are no OSErrors
        if type(exc).__name__ in ("AuthenticationError", "AuthorizationError"):  # it answered: a setting's fault
            return False
        return any(
            b.__module__.startswith("redis") and b.__name__ in ("ConnectionError", "TimeoutError") for b in bases
        )
    if module == "psycopg":
        state = getattr(exc, "sqlstate", None)
        # no SQLSTATE: the client's own (refused, timed out, lost); class 08 connection exceptions;
        # 57P01-03 the server shutting down or starting up. A server that answered "FATAL" (a password, a
        # database that does not exist, pg_hba) is running: that is a setting's fault, with its traceback
        operational = any(b.__name__ == "OperationalError" for b in bases)
        if not operational or "FATAL:" in str(exc):
            return False
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    # a broken pipe is a reader gone (stdout piped to head), no store
    return isinstance(exc, (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError))


def first_line(exc: BaseException) -> str:
    """An error's message in one line: a driver's runs to several (the SQL, a link to its docs)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _on_read_only_mount(path: Path) -> bool:
    for here in (path, *path.parents):
        try:
            return bool(os.statvfs(here).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def _data_dir() -> Path:
    try:
        from setlist.settings import get_settings

        return get_settings().data_dir
    except Exception:  # the settings themselves may be what cannot be read: say less rather than fail
        return Path.cwd()


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _owner(path: Path) -> str:
    """Who owns ``path``, or its nearest parent that exists, and its mode: what the operator checks first."""
    for here in (path, *path.parents):
        try:
            st = here.stat()
        except OSError:
            continue
        what = "owned by" if here == path else f"{here} is owned by"
        return f"{what} {_user(st.st_uid)}, mode {stat.filemode(st.st_mode)}"
    return "its owner unknown"


def _says_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    # the words count only from the writers that use them (Arrow's errors are OSErrors), not from any message
    writer = isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _WRITERS
    return writer and _FULL_WORDS.search(str(exc)) is not None


def _full_message(where: Path | None) -> str:
    if where is None:
        where = _data_dir()
    probe = next((p for p in [where, *where.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    return (
        f"no space left on the disk holding {where} ({free / 2**20:,.0f} MB free now): free some there (old "
        "reports, or data past its retention period: make retention), then run the same command again"
    )


def require_data_dir(data_dir: Path, advice: str) -> None:
    """An unmounted volume or a misspelt SETLIST_DATA_DIR is said before a command reads nothing there as
    "nothing yet" (a gate that passes, a status that holds) or creates files in its place."""
    if not data_dir.exists():
        raise UsageError(f"the data directory {data_dir} does not exist (SETLIST_DATA_DIR): {advice}")


class App(typer.Typer):
    """A ``typer.Typer`` whose every command maps ``SetlistError`` the same way. The mapping sits on
    the commands rather than around ``app()`` so it also holds when a test invokes the app."""

    def command(self, *args: Any, reads_only: bool = False, **kwargs: Any) -> Callable[[F], F]:
        """Typer's ``command``; ``reads_only``: the command changes nothing (its Ctrl-C line says so)."""
        register = super().command(*args, **kwargs)

        def decorator(f: F) -> F:
            register(exits_on_error(f, reads_only))
            return f  # the plain function stays importable and callable

        return decorator


def load_provider(spec: str, what: str, origin: str) -> Callable[..., Any]:
    """The callable ``spec`` (``package.module:function``) names. ``what`` says what it provides and
    ``origin`` which option or setting named it, for the message. A module or function that does not
    exist raises ``InputMissing`` (nothing to run yet); a malformed spec or a module that fails to
    import raises ``UsageError``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{what}: {spec!r} ({origin}) is not of the form package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):  # the module itself, not one it imports
            raise InputMissing(f"no {what}: module {module_name} does not exist ({origin})") from None
        raise UsageError(f"cannot load the {what} {spec} ({origin}): {exc}") from None
    except Exception as exc:  # someone else's module: report it in one line, whatever broke
        raise UsageError(f"cannot load the {what} {spec} ({origin}): {type(exc).__name__}: {exc}") from None
    provider = getattr(module, attr, None)
    if provider is None:
        raise InputMissing(f"no {what}: {module_name} has no {attr} ({origin})")
    if not callable(provider):
        raise UsageError(f"{what}: {spec} ({origin}) is not callable")
    return provider


def console() -> Console:
    """The CLIs' console. In a log or CI (no terminal) rich would assume 80 columns and squeeze the
    tables into one letter per cell; a wider page keeps a row on one line. COLUMNS, when set, wins."""
    if Console().is_terminal or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=140)
