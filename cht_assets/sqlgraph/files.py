"""Reading the SQL folder: one file per object, named after it, in the layer of its top folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.headers import Header, parse_header
from cht_assets.sqlgraph.model import code_version

MAX_NAME_BYTES = 63  # PostgreSQL truncates longer identifiers, silently merging names


@dataclass(frozen=True)
class SqlFile:
    path: Path
    name: str  # the file name without `.sql`: the object's name
    layer: str  # the top folder under the root ("" for a file directly in it)
    text: str
    header: Header

    @property
    def code_version(self) -> str:
        return code_version(self.text)


def read_sql_file(path: Path, root: Path) -> SqlFile:
    relative = path.relative_to(root)
    name = path.stem
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise SqlGraphError(path, None, f"object name {name!r} must be 1 to {MAX_NAME_BYTES} bytes")
    # read_text() turns CRLF into LF, so the code version does not depend on the checkout.
    text = path.read_text(encoding="utf-8")
    layer = relative.parts[0] if len(relative.parts) > 1 else ""
    return SqlFile(path, name, layer, text, parse_header(text, path))


def read_sql_dir(root: Path) -> list[SqlFile]:
    """Every `*.sql` below `root`, in path order; hidden folders (editor/tool caches) skipped."""
    paths = sorted(
        path
        for path in root.rglob("*.sql")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )
    return [read_sql_file(path, root) for path in paths]
