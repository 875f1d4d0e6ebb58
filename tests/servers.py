"""Real throwaway servers for the tests: PostgreSQL and Azurite on 127.0.0.1, free ports.

Each is started once per test session (``postgres_server``, ``azurite``) in its own process
group and stopped (group killed) at the end. The helpers (``start_postgres``,
``start_azurite``) also work outside pytest, e.g. in benchmarks. ``registry_url`` runs a
test on both registry backends: a SQLite file and a fresh PostgreSQL database.

Load with ``pytest_plugins = ["tests.servers"]`` (done in ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_OS_USER = "stream0d-pg"
PG_SUPERUSER = "postgres"
AZURITE_ACCOUNT = "devstoreaccount1"
# The published key of Azurite's well-known development account (not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class ServerUnavailable(RuntimeError):
    """The server cannot be started on this machine (binaries missing...); tests skip."""


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (retry on the rare clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def stop_process_group(proc: subprocess.Popen[Any], sig: int, timeout: float = 15.0) -> None:
    """Send ``sig`` to the process group of ``proc``; SIGKILL the group if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    # Children that outlived the leader (same group) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ----------------------------------------------------------------------------- PostgreSQL


def find_pg_bin(name: str) -> Path | None:
    """``name`` (initdb, postgres...) from PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")

    def version(p: str) -> tuple[int, ...]:
        part = Path(p).parts[-3]
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    return Path(max(candidates, key=version)) if candidates else None


def _os_user_ids(name: str) -> tuple[int, int]:
    """uid/gid of ``name``, creating it as a system user when missing (needs root)."""
    with contextlib.suppress(KeyError):
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    args = ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    result = subprocess.run([useradd, *args, name], capture_output=True, text=True, check=False)
    if result.returncode not in (0, 9):  # 9: created meanwhile by another process
        raise ServerUnavailable(f"cannot create OS user {name!r}: {result.stderr.strip()}")
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster (trust auth, superuser ``postgres``)."""

    host: str
    port: int
    base_dir: Path
    process: subprocess.Popen[Any]
    user: str = PG_SUPERUSER

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (random name by default); return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even if connections are still open."""
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then remove the cluster's files."""
        stop_process_group(self.process, signal.SIGINT)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_postgres(timeout: float = 60.0, attempts: int = 3) -> PostgresServer:
    """initdb a cluster in a temp folder and start ``postgres`` on a free 127.0.0.1 port.

    As root, initdb and postgres run as the unprivileged OS user ``stream0d-pg`` (PostgreSQL
    refuses root); the data and socket folders live in a temp folder that user owns.
    Raises ``ServerUnavailable`` when the binaries are missing.
    """
    initdb, postgres = find_pg_bin("initdb"), find_pg_bin("postgres")
    if initdb is None or postgres is None:
        raise ServerUnavailable(
            "PostgreSQL binaries (initdb, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install them with `make setup-test` (apt: postgresql)"
        )
    as_user: dict[str, Any] = {}
    base = Path(tempfile.mkdtemp(prefix="stream0d-pg-"))
    if os.geteuid() == 0:
        uid, gid = _os_user_ids(PG_OS_USER)
        os.chown(base, uid, gid)
        as_user = {"user": uid, "group": gid, "extra_groups": []}
    data, sockets, log = base / "data", base / "sock", base / "postgres.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
    env.pop("PGDATA", None)
    try:
        sockets.mkdir()
        if as_user:
            os.chown(sockets, as_user["user"], as_user["group"])
        result = subprocess.run(
            [str(initdb), "-D", str(data), "-U", PG_SUPERUSER, "-A", "trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            capture_output=True, text=True, env=env, cwd=base, check=False, **as_user,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServerUnavailable(f"initdb failed: {result.stderr.strip()[-2000:]}")
        for _ in range(attempts):
            port = free_port()
            with open(log, "ab") as log_file:
                proc = subprocess.Popen(
                    [str(postgres), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                     "-k", str(sockets), "-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off", "-c", "max_connections=200",
                     "-c", "timezone=UTC"],
                    stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, cwd=base, start_new_session=True, **as_user,
                )  # fmt: skip
            server = PostgresServer("127.0.0.1", port, base, proc)
            if _wait_postgres(server, timeout):
                return server
            stop_process_group(proc, signal.SIGKILL)
        raise ServerUnavailable(f"postgres did not start; log:\n{_tail(log)}")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _wait_postgres(server: PostgresServer, timeout: float) -> bool:
    """True once the server accepts a query; False if it died (e.g. port taken)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with server._admin() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- Azurite


@dataclass
class AzuriteServer:
    """A running in-memory Azurite blob service with the well-known dev account."""

    port: int
    process: subprocess.Popen[Any]
    workdir: Path
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY
    endpoint: str = field(init=False)

    def __post_init__(self) -> None:
        self.endpoint = f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        """An azure-storage connection string for this instance."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.endpoint};"
        )

    def blob_service(self) -> Any:
        """A ``BlobServiceClient`` on this instance."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def container(self, name: str) -> str:
        """Create blob container ``name`` (fine if it exists); return its name."""
        from azure.core.exceptions import ResourceExistsError

        with self.blob_service() as service, contextlib.suppress(ResourceExistsError):
            service.create_container(name)
        return name

    def env(self) -> dict[str, str]:
        """``STREAM0D_AZURE_*`` settings that point the platform at this instance."""
        return {
            "STREAM0D_AZURE_ACCOUNT": self.account,
            "STREAM0D_AZURE_KEY": self.key,
            "STREAM0D_AZURE_ENDPOINT": self.endpoint,
        }

    def stop(self) -> None:
        """Kill the Azurite process group and remove its folder."""
        stop_process_group(self.process, signal.SIGTERM, timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_azurite(timeout: float = 30.0, attempts: int = 3) -> AzuriteServer:
    """Start ``azurite-blob`` from node_modules, in memory, on a free 127.0.0.1 port."""
    exe = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        raise ServerUnavailable(f"{exe} not found; run `npm ci` (or `make setup`)")
    if shutil.which("node") is None:
        raise ServerUnavailable("node is not on PATH; Azurite needs Node.js")
    workdir = Path(tempfile.mkdtemp(prefix="stream0d-azurite-"))
    log = workdir / "azurite.log"
    try:
        for _ in range(attempts):
            port = free_port()
            with open(log, "ab") as log_file:
                proc = subprocess.Popen(
                    [str(exe), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                     "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
                     "--silent"],
                    stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=workdir, start_new_session=True,
                )  # fmt: skip
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                if port_open(port):
                    return AzuriteServer(port=port, process=proc, workdir=workdir)
                time.sleep(0.1)
            stop_process_group(proc, signal.SIGKILL)
        raise ServerUnavailable(f"azurite-blob did not start; log:\n{_tail(log)}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (skips when it cannot start)."""
    try:
        server = start_postgres()
    except ServerUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """One fresh in-memory Azurite for the whole session (skips when it cannot start)."""
    try:
        server = start_azurite()
    except ServerUnavailable as exc:
        pytest.skip(f"Azurite unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A registry URL on each backend: a SQLite file in tmp_path, a fresh PostgreSQL DB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url.rsplit("/", 1)[1])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so ``-m "not postgres"`` etc. just work."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"postgres_server", "postgres_url"}:
            item.add_marker(pytest.mark.postgres)
        if "azurite" in names:
            item.add_marker(pytest.mark.azure)
