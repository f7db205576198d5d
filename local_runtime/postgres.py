"""A throwaway PostgreSQL cluster on 127.0.0.1, made with the system's ``initdb``/``pg_ctl``.

The cluster lives in a git-ignored folder (``.local/pg``) and is kept across
restarts; it listens on 127.0.0.1 only, with its Unix socket inside the data
folder. ``initdb`` refuses to run as root, so when the runtime runs as root
every PostgreSQL command runs as the ``postgres`` user, who owns the folder.
Durability is traded for speed (``fsync=off``): the data is for development.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from local_runtime import config

log = logging.getLogger("local_runtime.postgres")

DATABASE = "lwm"
USER = "app"
_SERVER_USER = "postgres"  # runs the server when the runtime runs as root


class PostgresError(RuntimeError):
    """The local cluster could not be created, started or stopped."""


def find_bin_dir() -> Path:
    """The folder of ``initdb``/``pg_ctl``: ``$LWM_PG_BIN``, ``$PATH``, or the newest Debian one."""
    configured = os.environ.get(config.ENV_PG_BIN)
    if configured:
        return Path(configured)
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if versions:
        return Path(versions[-1]).parent
    raise PostgresError(
        "PostgreSQL server binaries not found: install PostgreSQL, set "
        f"{config.ENV_PG_BIN}, or set {config.ENV_DATABASE_URL} to use another server"
    )


def database_url(port: int) -> str:
    """The SQLAlchemy URL of the local database."""
    return f"postgresql+psycopg://{USER}@{config.HOST}:{port}/{DATABASE}"


class LocalPostgres:
    """One cluster in ``data_dir``, served on ``port``."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self._bin = find_bin_dir()
        self._as_server_user = os.geteuid() == 0
        self._started = False

    async def start(self) -> str:
        """Create the cluster if needed, start it and the database; returns ``DATABASE_URL``."""
        if not (self.data_dir / "PG_VERSION").exists():
            await self._init()
        if await self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False) == 0:
            log.warning("PostgreSQL in %s was left running; restarting it", self.data_dir)
            await self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        options = (
            f"-c listen_addresses={config.HOST} -p {self.port} -k '{self.data_dir}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        await self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        self._started = True
        await asyncio.to_thread(self._create_database)
        return database_url(self.port)

    async def stop(self) -> None:
        """Stop the server (the data stays)."""
        if self._started:
            self._started = False
            await self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    async def _init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise PostgresError(f"{self.data_dir} is not empty and holds no cluster: remove it")
        if self._as_server_user:
            server = pwd.getpwnam(_SERVER_USER)
            os.chown(self.data_dir, server.pw_uid, server.pw_gid)
        self.data_dir.chmod(0o700)
        log.info("creating a PostgreSQL cluster in %s", self.data_dir)
        await self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )

    def _create_database(self) -> None:
        dsn = f"host={config.HOST} port={self.port} user={USER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    async def _run(self, program: str, *args: str, check: bool = True) -> int:
        # subprocess.run in a thread: uvloop's subprocesses cannot switch user.
        done = await asyncio.to_thread(
            subprocess.run,
            [str(self._bin / program), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir.parent,
            env={"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"},
            user=_SERVER_USER if self._as_server_user else None,
            start_new_session=True,  # Ctrl-C must not reach the server: the runtime stops it
            check=False,
        )
        if check and done.returncode != 0:
            raise PostgresError(f"{program} {' '.join(args)} failed:\n{done.stdout.decode()}")
        return done.returncode
