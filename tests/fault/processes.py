"""Real processes for the fault tests: gateway replicas (`colending-gateway serve`) that can be
killed with SIGKILL and started again on the same port, and a private PostgreSQL server that can
be stopped and started without touching the shared one other tests use."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.app import Gateway
from gateway.server import ServerConfig, open_gateway

PLATFORM = (("x-colending-caller", "platform"),)
ADMIN = (("x-colending-caller", "admin"),)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def health(target: str) -> int:
    """The overall health status of the gateway at ``target`` (UNKNOWN if it does not answer)."""
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return health_pb2.HealthCheckResponse.UNKNOWN
        return int(answer.status)


class Replica:
    """One `colending-gateway serve` process on a fixed port, so clients find it again after a
    restart. Its log (stdout and stderr, every incarnation) goes to ``log``."""

    def __init__(
        self,
        *,
        name: str,
        data_dir: Path,
        database_url: str | None,
        log: Path,
        delivery_workers: int = 2,
        delivery_lease: float = 6.0,
        processes: int = 1,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._command = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(self.port),
            "--delivery-workers",
            str(delivery_workers),
            "--delivery-lease",
            str(delivery_lease),
            "--database-pool-size",
            "4",
            "--database-pool-overflow",
            "4",
            "--database-pool-timeout",
            "5",
            "--database-connect-timeout",
            "2",
            "--processes",
            str(processes),
        ]
        # The URL by environment, as an operator would pass a secret (none: SQLite).
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COLENDING_")},
            "COLENDING_HEALTH_INTERVAL": "0.5",
            "COLENDING_LOG_FORMAT": "text",
            **({"COLENDING_DATABASE_URL": database_url} if database_url else {}),
        }

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers health checks with SERVING."""
        assert self._process is None or self._process.poll() is not None
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                self._command, stdout=out, stderr=subprocess.STDOUT, env=self._env
            )
        self.starts += 1
        deadline = time.monotonic() + 60
        while health(self.target) != health_pb2.HealthCheckResponse.SERVING:
            if self._process.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, in-flight calls and claimed tasks are abandoned."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


_PREFIX = "colending-pg-"


class PrivatePostgres:
    """A throwaway PostgreSQL server in a temporary directory on a free port, trust auth.

    initdb refuses to run as root, so as root it runs as the ``postgres`` user, in a directory
    that user owns.
    """

    def __init__(self, *, bindir: Path, directory: Path, run_as: str | None) -> None:
        self._bindir = bindir
        self._directory = directory
        self._data = directory / "data"
        self._run_as = run_as
        self.port = free_port()

    @classmethod
    def problem(cls) -> str | None:
        """Why one cannot be made here, or None."""
        bindir = _postgres_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run initdb as"
        return None

    @classmethod
    def create(cls) -> PrivatePostgres:
        bindir = _postgres_bindir()
        assert bindir is not None
        cls._stop_orphans(bindir)
        directory = Path(tempfile.mkdtemp(prefix=_PREFIX))
        # Whose server this is: a later run stops it if this process died without doing so.
        (directory / "owner.pid").write_text(str(os.getpid()))
        run_as = None
        if os.geteuid() == 0:
            run_as = "postgres"
            shutil.chown(directory, user="postgres", group="postgres")
        server = cls(bindir=bindir, directory=directory, run_as=run_as)
        try:
            server._run("initdb", "-D", str(server._data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync")  # fmt: skip
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    @classmethod
    def _stop_orphans(cls, bindir: Path) -> None:
        """Servers left by a test run that was killed (its teardown never ran)."""
        for directory in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
            try:
                owner = int((directory / "owner.pid").read_text())
                os.kill(owner, 0)
                continue  # its run is still going
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                continue  # not ours to judge
            run_as = "postgres" if os.geteuid() == 0 else None
            with contextlib.suppress(Exception):  # best effort: it may be half gone already
                cls(bindir=bindir, directory=directory, run_as=run_as).destroy()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self._directory} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._directory / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, *, mode: str = "immediate") -> None:
        """``immediate`` is a crash: no checkpoint, recovery from the WAL at the next start."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            if (self._data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bindir / program), *args]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self._directory, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")


@contextmanager
def replicas(
    data_dir: Path, database_url: str, count: int = 2, **options: float
) -> Iterator[tuple[Gateway, list[Replica]]]:
    """``count`` replicas sharing one data directory (the keys) and one database, started in
    turn, stopped at the end; also a Gateway over the same store, for the test's own reads.
    Their logs are printed at the end (pytest shows them when the test fails)."""
    # Keys and schema first, so the replicas start on a ready data directory.
    gateway = open_gateway(ServerConfig(data_dir=data_dir, database_url=database_url))
    started = [
        Replica(
            name=f"replica-{n}",
            data_dir=data_dir,
            database_url=database_url,
            log=data_dir.parent / f"replica-{n}.log",
            **options,  # type: ignore[arg-type]
        )
        for n in range(count)
    ]
    try:
        for replica in started:
            replica.start()
        yield gateway, started
    finally:
        for replica in started:
            replica.stop()
            print(f"--- {replica.name} ({replica.starts} starts) ---\n{replica.log_tail(60)}")
        gateway.database.dispose()
