"""pouchdb-server (npm, CouchDB protocol) as the demo's and the tests' CouchDB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests

from cht_assets.servers.process import free_port, spawn, stop_pid, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POUCHDB_SERVER = PROJECT_ROOT / "node_modules" / ".bin" / "pouchdb-server"


@dataclass
class PouchDBServer:
    data_dir: Path
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_pid(self.pid)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def start_pouchdb_server(
    data_dir: Path, port: int | None = None, *, in_memory: bool = False
) -> PouchDBServer:
    if not POUCHDB_SERVER.exists():
        raise FileNotFoundError(f"{POUCHDB_SERVER} is missing: run `npm install` in {PROJECT_ROOT}")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = [str(POUCHDB_SERVER), "-p", str(port), "-o", "127.0.0.1"]
    command += ["--in-memory"] if in_memory else ["-d", str(data_dir)]
    # pouchdb-server writes config.json and log.txt into its working directory.
    process = spawn(command, log=data_dir / "pouchdb-server.out", cwd=data_dir)
    server = PouchDBServer(data_dir, port, process.pid)
    try:
        wait_until(
            lambda: answers(server.url),
            timeout=60,
            what="pouchdb-server",
            log=data_dir / "pouchdb-server.out",
        )
    except TimeoutError:
        server.stop()
        raise
    return server
