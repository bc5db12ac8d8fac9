"""The hostile-conditions suite: faults, bad input, hostile names, secrets and access.

Every test here carries the `hostile` marker (`pytest -m hostile` runs just this suite,
`-m 'not hostile'` everything else). Servers are real, on free 127.0.0.1 ports, stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cht_assets.servers.postgres import EmbeddedPostgres, start_embedded_postgres
from cht_assets.servers.process import free_port
from tests.conftest import postgres_home

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hostile: the hostile-conditions suite (faults, bad input, hostile names, secrets, access)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.hostile)


@dataclass
class RestartablePostgres:
    """An embedded PostgreSQL of the test's own, restarted on the same data dir and port."""

    data_dir: Path
    port: int
    server: EmbeddedPostgres

    def url(self, database: str = "postgres") -> str:
        return self.server.url(database)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = start_embedded_postgres(self.data_dir, self.port)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def restartable_pg() -> Iterator[RestartablePostgres]:
    with postgres_home() as home:
        data_dir, port = home / "data", free_port()
        pg = RestartablePostgres(data_dir, port, start_embedded_postgres(data_dir, port))
        try:
            yield pg
        finally:
            pg.stop()


# Superset's session fixtures (a real Superset, the stand-in views, provisioning), reused by the
# hostile Superset tests; they skip where the Superset venv is missing. Imported, they are
# registered for this directory too: a run of both suites starts a second Superset.
from tests.superset.conftest import (  # noqa: E402, F401
    admin,
    analytics,
    manager_clients,
    provisioned,
    superset_env,
    superset_metadata_url,
    superset_server,
    superset_venv,
)
