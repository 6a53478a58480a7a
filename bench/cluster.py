"""A private PostgreSQL cluster for the bench: initdb into a temporary folder, started on a
free loopback port with the libraries the bench needs preloaded, stopped and deleted at the
end. The bench never reconfigures or restarts a server it did not start: when the server
it was pointed at lacks what a figure needs, it runs one of these instead, or says plainly
what is missing (`Cluster.start` returns the reason).

Binaries come from `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin, else
PATH. initdb refuses to run as root: as root the cluster runs as the `postgres` user
(runuser), in a folder that user owns.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.env import free_port

# Durability is the default (fsync on) unless a caller asks otherwise: figures of writes
# must be those of a server that keeps its data.
DEFAULT_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "256MB",
}


def find_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    """One throwaway cluster. `start()` returns "" when it is up, else why it is not."""

    preload: tuple[str, ...] = ("pg_stat_statements",)
    settings: dict[str, str] = field(default_factory=dict)
    port: int = 0
    root: Path | None = None
    bindir: Path | None = None
    _user: str | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", self._user, "--", *args] if self._user else args
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def start(self) -> str:
        self.bindir = find_bindir()
        if self.bindir is None:
            return "no PostgreSQL server binaries (initdb) on this machine"
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no `postgres` user to run initdb as"
            if not shutil.which("runuser"):
                return "running as root without runuser to start PostgreSQL as `postgres`"
            self._user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        if self._user:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        init = self._run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"]
        )  # fmt: skip
        if init.returncode != 0:
            self.cleanup()
            return f"initdb failed: {init.stderr.strip() or init.stdout.strip()}"
        # BENCH_CLUSTER_PORT: a fixed port (a shared machine's allotted range), else any free one
        self.port = int(os.environ.get("BENCH_CLUSTER_PORT") or 0) or free_port()
        settings = {
            **DEFAULT_SETTINGS,
            **self.settings,
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "shared_preload_libraries": ",".join(self.preload),
        }
        options = " ".join(f"-c {k}={v}" for k, v in settings.items())
        started = self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_file),
             "-o", options, "-w", "-t", "60", "start"]
        )  # fmt: skip
        if started.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            self.cleanup()
            return f"the private cluster did not start: {started.stderr.strip()} {log[-500:]}"
        atexit.register(self.stop)  # a run that dies half-way still leaves nothing behind
        return ""

    def keep(self) -> None:
        """Leave it running when this process exits (BENCH_SCALE_KEEP): stop it with
        `pg_ctl -D <root>/data stop` and delete the folder by hand."""
        atexit.unregister(self.stop)

    def version(self) -> str:
        assert self.bindir is not None
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True
        )
        return out.stdout.strip()

    def stop(self) -> None:
        if self.root is not None and (self.data / "postmaster.pid").exists():
            assert self.bindir is not None
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                       "-w", "stop"])  # fmt: skip
        self.cleanup()

    def cleanup(self) -> None:
        if self.root is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.root)
            self.root = None
