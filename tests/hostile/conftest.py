"""The hostile-conditions suite: faults, bad input, hostile names, secrets and access.

Every test here carries the `hostile` marker (`pytest -m hostile` runs just this suite,
`-m 'not hostile'` everything else). Servers are real, on free 127.0.0.1 ports, stopped by PID.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hostile: the hostile-conditions suite (faults, bad input, hostile names, secrets, access)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.hostile)


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
