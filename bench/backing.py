"""Real Redis, PostgreSQL and a Pushgateway from the OS packages, run as child processes, for tests and drills.

Each server runs on a free loopback port with its data in its own directory, so neither the tests nor
``make chaos`` touch the servers that ``make services`` runs. Readiness is polled against the server
itself with a bounded deadline; nothing sleeps for a fixed time. ``kill``/``stop`` then ``start``
bring a server back on the same port with the same data, which is what fault drills need.

PostgreSQL refuses to run as root: as root, its directory is handed to the unprivileged ``postgres``
user (created by the Debian package) and its commands run through ``runuser``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = "apt-get install -y redis-server postgresql"
PG_OS_USER = os.environ.get("SETLIST_PG_OS_USER", "postgres")


class MissingServer(RuntimeError):
    """A server binary (or, as root, the unprivileged user PostgreSQL needs) is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until it holds; fail at once if ``alive`` turns false, or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not check():
        if not alive():
            raise RuntimeError(f"{what} exited during start-up{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a child and wait for it; SIGKILL it if it outlives ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    return "; log tail:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if not path:
        raise MissingServer(f"redis-server not found; install it with: {INSTALL_HINT}")
    return path


def find_postgres_bin() -> Path:
    """The directory holding initdb/pg_ctl/postgres, also when it is not on PATH (Debian)."""
    candidates = [os.environ.get("SETLIST_PG_BIN", "")]
    if shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("pg_ctl") or "").resolve().parent))
    versioned = [*Path("/usr/lib/postgresql").glob("*/bin"), *Path("/usr").glob("pgsql-*/bin")]
    versioned.sort(key=lambda p: int("".join(c for c in p.parent.name if c.isdigit()) or 0), reverse=True)
    candidates += [str(p) for p in versioned]
    for c in filter(None, candidates):
        if all((Path(c) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    raise MissingServer(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
        f"/usr/lib/postgresql/*/bin; install them with: {INSTALL_HINT}"
    )


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_pg_user(cmd: list[str]) -> list[str]:
    if not _is_root():
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_OS_USER, "--", *cmd]
    return ["su", "-s", "/bin/sh", PG_OS_USER, "-c", shlex.join(cmd)]


class RedisServer:
    """A redis-server child process. ``stop``/``kill`` then ``start`` keep the port and data dir,
    so fault tests can take Redis away and bring it back."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = find_redis_server()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.directory / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __str__(self) -> str:
        return self.url

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, timeout: float = 1.0):
        """A client that fails at once instead of redis-py's default retries with backoff."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def ping(self) -> bool:
        try:
            with self.client(timeout=0.5) as c:
                return bool(c.ping())
        except Exception:
            return False

    def start(self, timeout: float = 15.0) -> RedisServer:
        if self.running:
            return self
        # AOF keeps the data across stop()/start(), as a real deployment would; no RDB snapshots.
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.log),
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        wait_for(self.ping, timeout, f"redis-server on port {self.port}", alive=lambda: self.running, log=self.log)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (SIGTERM: Redis flushes the AOF and exits)."""
        terminate(self._proc, timeout)
        self._proc = None

    def kill(self) -> None:
        """Abrupt death (SIGKILL), as on an OOM kill or a lost node."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._proc = None

    @contextmanager
    def hung(self) -> Iterator[None]:
        """Alive but silent (SIGSTOP, then SIGCONT on leaving): the kernel still accepts connections
        and takes requests in, and no reply comes, as with a Redis stuck on a slow disk or a paused VM."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("redis-server is not running")
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def flush(self) -> None:
        with self.client() as c:
            c.flushall()


class PostgresServer:
    """A PostgreSQL cluster of our own (initdb, then the postmaster as a child process), with the
    application role and database created; stopped with pg_ctl."""

    SUPERUSER = "postgres"

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        user: str = "setlist",
        password: str = "setlist",
        database: str = "setlist",
    ) -> None:
        self.bin = find_postgres_bin()
        if _is_root():
            try:
                import pwd

                self._owner = pwd.getpwnam(PG_OS_USER)
            except KeyError:
                raise MissingServer(
                    f"running as root, PostgreSQL needs the unprivileged user '{PG_OS_USER}'; "
                    f"the package creates it: {INSTALL_HINT}"
                ) from None
        # A short path of our own: pytest's tmp dirs are 0700 to root, and socket paths are capped at ~100 bytes.
        self.directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="setlist-pg-", dir="/tmp"))
        self.data = self.directory / "data"
        self.run_dir = self.directory / "run"
        self.log = self.directory / "postgres.log"
        self.port = port or free_port()
        self.user, self.password, self.database = user, password, database
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def __str__(self) -> str:
        return self.url

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_pg_user([str(self.bin / args[0]), *args[1:]]), check=check, capture_output=True, text=True, timeout=120
        )

    def _admin(self):
        import psycopg

        return psycopg.connect(
            host=str(self.run_dir),
            port=self.port,
            user=self.SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=2,
        )

    def _admin_ready(self) -> bool:
        try:
            with self._admin():
                return True
        except Exception:
            return False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _init(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700, exist_ok=True)
        if _is_root():
            for p in (self.directory, self.data, self.run_dir):
                os.chown(p, self._owner.pw_uid, self._owner.pw_gid)
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.SUPERUSER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        # Test-only durability trade-offs: speed over crash safety.
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.run_dir}'\nunix_socket_permissions = 0700\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def start(self, timeout: float = 30.0) -> PostgresServer:
        if self.running:
            return self
        if not (self.data / "PG_VERSION").exists():
            self._init()
        # The postmaster runs in the foreground as our child (through runuser as root), so its
        # death is seen at once; readiness is polled against the server itself.
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                _as_pg_user([str(self.bin / "postgres"), "-D", str(self.data)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(
            self._admin_ready, timeout, f"PostgreSQL on port {self.port}", alive=lambda: self.running, log=self.log
        )
        self._bootstrap()
        return self

    def _bootstrap(self) -> None:
        from psycopg import sql

        with self._admin() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(self.user), sql.Literal(self.password)
                    )
                )
        self.create_database(self.database)

    def create_database(self, name: str | None = None) -> str:
        """Create (if missing) a database owned by the application role; returns its URL."""
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user))
                )
        return self.url_for(name)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown: open sessions are disconnected, data is kept."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._pg("pg_ctl", "-D", str(self.data), "stop", "-m", "fast", "-w", "-t", str(int(timeout)), check=False)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the postmaster, as on a crash (its backends exit when they notice)."""
        if self._proc is None:
            return
        try:
            os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            self._proc.kill()
        self._proc.wait()
        self._proc = None

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def find_pushgateway() -> str:
    for name in ("prometheus-pushgateway", "pushgateway"):  # Debian's name, then upstream's
        found = shutil.which(name)
        if found:
            return found
    raise MissingServer("the Prometheus Pushgateway is not installed: apt-get install -y prometheus-pushgateway")


class PushgatewayServer:
    """A Prometheus Pushgateway child process on a free loopback port, without persistence."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = find_pushgateway()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.directory / "pushgateway.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=0.5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        """The gateway's own /metrics page: every group pushed to it, with its grouping labels."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            return str(response.read().decode("utf-8"))

    def start(self, timeout: float = 15.0) -> PushgatewayServer:
        if self.running:
            return self
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        wait_for(self.ready, timeout, f"pushgateway on port {self.port}", alive=lambda: self.running, log=self.log)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        terminate(self._proc, timeout)
        self._proc = None
