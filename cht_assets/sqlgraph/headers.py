"""`-- key: value` header comments on top of a SQL file: the object's configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cht_assets.sqlgraph.errors import SqlGraphError

# Lower-case keys only, so that a comment such as `-- TODO: ...` or `-- NB: ...` above the
# query stays a comment.
HEADER_LINE = re.compile(r"^\s*--\s*([a-z][a-z0-9_]*)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Header:
    config: dict[str, str]
    key_lines: dict[str, int]  # 1-based file line of each key, for error messages
    line_count: int  # lines before the statement: add to the statement's line numbers
    body: str  # the text after the header block


def parse_header(text: str, path: Path) -> Header:
    """The leading block of blank and `--` lines; its `-- key: value` lines form the config."""
    lines = text.splitlines(keepends=True)
    config: dict[str, str] = {}
    key_lines: dict[str, int] = {}
    count = 0
    for count, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        match = HEADER_LINE.match(line)
        if match:
            key, value = match.groups()
            if key in config:
                raise SqlGraphError(
                    path, count + 1, f"header `{key}` repeated (first on line {key_lines[key]})"
                )
            config[key] = value
            key_lines[key] = count + 1
    else:
        count = len(lines)  # nothing but header: the statement is empty
    return Header(config, key_lines, count, "".join(lines[count:]))
