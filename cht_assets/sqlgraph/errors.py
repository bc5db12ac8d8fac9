"""The one error type of the SQL graph: every message starts with `file:line:`."""

from __future__ import annotations

from pathlib import Path


class SqlGraphError(ValueError):
    """A SQL file that cannot become part of the graph (parse error, unknown relation,
    duplicate name, dependency cycle, bad header). `path` and `line` say where to look."""

    def __init__(self, path: Path | None, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.detail = message
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}" if path is not None else message)
