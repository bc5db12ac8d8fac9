"""Superset's assets bundle: what every provisioning step imports, and how objects are found again.

An assets bundle is a zip of YAML files (`metadata.yaml`, `databases/`, `datasets/`, `charts/`,
`dashboards/`) that Superset imports with `POST /api/v1/assets/import/`, overwriting by UUID.
Every UUID here is a uuid5 of a stable name, so a rerun updates the same objects in place (on
this Superset and on any other) and never creates a duplicate. The bundle never holds integer
ids: the importer resolves `dataset_uuid`, `datasetUuid` and the layout's `meta.uuid` itself.

Each step imports only its own objects (`sparse`, the rest referred to by UUID), which matches
the asset graph: the database connection (database.py), then one dataset per view
(datasets.py), then one dashboard each (dashboards.py).
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from cht_assets.bi.client import JsonObject, SupersetClient

NAMESPACE = uuid.UUID("5d0f1c3e-7c0b-5b53-9c1e-2f6b9a1c4e71")  # never change: it keys every object
BUNDLE_VERSION = "1.0.0"


class BundleError(ValueError):
    """A dashboard definition or a dataset cannot be turned into Superset assets."""


def stable_uuid(kind: str, *names: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join([kind, *names])))


def zip_bundle(documents: Mapping[str, JsonObject]) -> bytes:
    """The zip Superset imports: `<root>/metadata.yaml` plus the documents, deterministic bytes."""
    files = {"metadata.yaml": {"version": BUNDLE_VERSION, "type": "assets"}, **documents}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"cht_assets/{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, yaml.safe_dump(files[name], sort_keys=True, allow_unicode=True))
    return buffer.getvalue()


@dataclass(frozen=True)
class Provisioned:
    """What one provisioning step left in Superset."""

    kind: str
    name: str
    id: int
    uuid: str
    details: Mapping[str, Any] = field(default_factory=dict)


def find_one(client: SupersetClient, collection: str, uuid_: str) -> JsonObject | None:
    found = client.find(collection, uuid=uuid_)
    return found[0] if found else None


def require_one(client: SupersetClient, collection: str, uuid_: str, what: str) -> JsonObject:
    item = find_one(client, collection, uuid_)
    if item is None:
        raise BundleError(f"{what} is not in Superset (uuid {uuid_}); provision it first")
    return item
