"""What a statement refers to: relations (tables/views) and function calls, found by sqlglot.

Model files are parsed whole. Function files are opaque (plpgsql bodies are not SQL sqlglot
knows): only the tokenizer looks at them, to find the declared name and, for LANGUAGE sql,
the body to parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.tokens import Token, TokenType

from cht_assets.sqlgraph.errors import SqlGraphError

DIALECT = "postgres"


@dataclass(frozen=True)
class RelationRef:
    """A table or view named in FROM/JOIN, as PostgreSQL sees it (unquoted parts folded to
    lower case)."""

    parts: tuple[str, ...]  # (name,), (schema, name) or (catalog, schema, name)
    line: int | None  # file line where sqlglot saw it, when it tracked one
    node: exp.Table | None = None  # in the model's tree, to qualify it once resolved

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class FunctionCall:
    names: tuple[str, ...]  # sqlglot turns builtins into typed nodes: any of their SQL names
    schema: str | None  # `public` in `public.cht_to_date(x)`


@dataclass(frozen=True)
class References:
    relations: tuple[RelationRef, ...] = ()
    functions: tuple[FunctionCall, ...] = ()


@dataclass(frozen=True)
class FunctionDeclaration:
    name: str
    schema: str | None
    line: int


def parse_model(body: str, path: Path, line_offset: int) -> exp.Query:
    """The one SELECT of a model file, identifiers case-folded the way PostgreSQL does."""
    first_line = line_offset + 1
    if not body.strip():
        raise SqlGraphError(path, max(line_offset, 1), "no SQL statement after the header comments")
    try:
        tree = sqlglot.parse_one(body, read=DIALECT)
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        line = detail.get("line")
        description = detail.get("description") or str(error)
        raise SqlGraphError(
            path, line_offset + line if line else first_line, f"cannot parse: {description}"
        ) from error
    except TokenError as error:  # unterminated string or quoted name: sqlglot gives no line
        raise SqlGraphError(path, first_line, f"cannot tokenize: {error}") from error
    if tree.key == "block":  # sqlglot >= 29 wraps `stmt; stmt` in a Block
        raise SqlGraphError(path, first_line, "a model file holds one statement; found several")
    if not isinstance(tree, exp.Query):
        what = tree.key.upper() if not isinstance(tree, exp.Command) else f"{tree.this} (unparsed)"
        raise SqlGraphError(
            path,
            first_line,
            f"a model file holds one SELECT, not {what}; the `-- materialized:` header "
            "says whether it becomes a view or a table",
        )
    return normalize_identifiers(tree, dialect=DIALECT)


def _identifier_name(node: exp.Expr | str) -> str:
    if isinstance(node, exp.Identifier):
        return node.this if node.quoted else node.this.lower()
    return str(node).lower()


def _is_relation(table: exp.Table) -> bool:
    # `FROM jsonb_array_elements(x) WITH ORDINALITY`, `ROWS FROM (...)`, `generate_series(...)`:
    # sqlglot makes a Table whose `this` is a function, or nothing; they name no relation.
    return isinstance(table.this, exp.Identifier)


def relation_refs(tree: exp.Expr, line_offset: int = 0) -> tuple[RelationRef, ...]:
    """Tables and views the query reads, without CTE references; a CTE shadowing a real name
    shadows it only where PostgreSQL would (sqlglot's scopes know)."""
    real: set[int] = set()
    try:
        for scope in traverse_scope(tree):
            real.update(
                id(source)
                for source in scope.sources.values()
                if isinstance(source, exp.Table) and _is_relation(source)
            )
    except SqlglotError:
        pass
    # Safety net for tables the scope walk did not reach: any table not named like a CTE.
    cte_names = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    refs = []
    for table in tree.find_all(exp.Table, bfs=False):
        if not _is_relation(table) or (id(table) not in real and table.name in cte_names):
            continue
        parts = tuple(
            _identifier_name(part) for part in (table.args.get("catalog"), table.args.get("db")) if part
        )
        line = table.this.meta.get("line")
        refs.append(RelationRef((*parts, table.name), line_offset + line if line else None, table))
    return tuple(refs)


def function_calls(tree: exp.Expr) -> tuple[FunctionCall, ...]:
    calls = []
    for node in tree.find_all(exp.Func, bfs=False):
        if isinstance(node, exp.Anonymous):
            names: tuple[str, ...] = (_identifier_name(node.this),)
        else:
            names = tuple(name.lower() for name in node.sql_names())
        parent = node.parent
        schema = None
        if isinstance(parent, exp.Dot) and parent.expression is node:
            schema = _identifier_name(parent.this)
        calls.append(FunctionCall(names, schema))
    return tuple(calls)


def model_references(tree: exp.Expr, line_offset: int) -> References:
    return References(relation_refs(tree, line_offset), function_calls(tree))


# --- function files -----------------------------------------------------------------------


def _tokens(text: str) -> list[Token] | None:
    try:
        return Dialect.get_or_raise(DIALECT).tokenize(text)
    except SqlglotError:
        return None


def _create_function_at(tokens: list[Token], i: int) -> int | None:
    """Index of the FUNCTION token if `CREATE [OR REPLACE] FUNCTION` starts at `i`."""
    if tokens[i].token_type != TokenType.CREATE:
        return None
    j = i + 1
    if (
        j + 1 < len(tokens)
        and tokens[j].token_type == TokenType.OR
        and tokens[j + 1].text.upper() == "REPLACE"
    ):
        j += 2
    return j if j < len(tokens) and tokens[j].token_type == TokenType.FUNCTION else None


def starts_with_create_function(text: str) -> bool:
    tokens = _tokens(text)
    return tokens is not None and bool(tokens) and _create_function_at(tokens, 0) is not None


def function_declarations(text: str) -> tuple[FunctionDeclaration, ...] | None:
    """Every `CREATE [OR REPLACE] FUNCTION [schema.]name(` in the file; None when the file
    cannot even be tokenized."""
    tokens = _tokens(text)
    if tokens is None:
        return None
    found = []
    for i in range(len(tokens)):
        j = _create_function_at(tokens, i)
        if j is None:
            continue
        parts: list[Token] = []
        for token in tokens[j + 1 :]:
            if token.token_type == TokenType.L_PAREN:
                break
            if token.token_type != TokenType.DOT:
                parts.append(token)
        if parts:
            names = [t.text if t.token_type == TokenType.IDENTIFIER else t.text.lower() for t in parts]
            found.append(
                FunctionDeclaration(names[-1], names[-2] if len(names) > 1 else None, parts[-1].line)
            )
    return tuple(found)


def _sql_bodies(text: str, tokens: list[Token]) -> list[str]:
    """Bodies of LANGUAGE sql functions: `AS '...'` / `AS $$...$$`, or `BEGIN ATOMIC ... END`."""
    is_sql = any(
        token.text.upper() == "LANGUAGE" and nxt.text.lower() == "sql"
        for token, nxt in zip(tokens, tokens[1:], strict=False)
    )
    bodies = []
    for i, token in enumerate(tokens):
        if (
            is_sql
            and token.token_type in (TokenType.STRING, TokenType.HEREDOC_STRING)
            and i > 0
            and tokens[i - 1].token_type == TokenType.ALIAS
        ):
            bodies.append(token.text)
        if (
            token.token_type == TokenType.BEGIN
            and i + 1 < len(tokens)
            and tokens[i + 1].text.upper() == "ATOMIC"
        ):
            # BEGIN ATOMIC is SQL-standard, hence LANGUAGE sql, whether it says so or not
            ends = [t for t in tokens[i + 2 :] if t.token_type == TokenType.END]
            if ends:
                bodies.append(text[tokens[i + 1].end + 1 : ends[-1].start])
    return bodies


def function_references(text: str) -> References:
    """What a LANGUAGE sql function body reads and calls (PostgreSQL checks these when it
    creates the function); nothing for other languages or bodies sqlglot cannot parse."""
    tokens = _tokens(text)
    if not tokens:
        return References()
    relations: list[RelationRef] = []
    calls: list[FunctionCall] = []
    for body in _sql_bodies(text, tokens):
        try:
            statements = sqlglot.parse(body, read=DIALECT)
        except SqlglotError:
            continue
        for statement in statements:
            if statement is None:
                continue
            statement = normalize_identifiers(statement, dialect=DIALECT)
            # Line numbers inside a string body are not file lines: the graph searches the file.
            relations.extend(RelationRef(ref.parts, None) for ref in relation_refs(statement))
            calls.extend(function_calls(statement))
    return References(tuple(relations), tuple(calls))
