"""Generated report docs for replication tests: small, numbered, with a nested group."""

from __future__ import annotations

from typing import Any


def make_docs(count: int, start: int = 0) -> list[dict[str, Any]]:
    """`doc-000000` ... reports of form `pregnancy`, `reported_date` increasing with the number."""
    return [
        {
            "_id": f"doc-{i:06d}",
            "type": "data_record",
            "form": "pregnancy",
            "reported_date": 1_700_000_000_000 + i,
            "fields": {"lmp": "2024-01-01", "n": str(i), "group": {"deep": [i, {"x": "é"}]}},
        }
        for i in range(start, start + count)
    ]
