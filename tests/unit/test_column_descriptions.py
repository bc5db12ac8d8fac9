"""Column descriptions of hand-written objects (`<name>.columns.yaml`) and the COMMENT
statements they make: pure, no database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from cht_assets.bi.datasets import Column, field_label
from cht_assets.sqlgraph import SqlObject
from cht_assets.sqlgraph.columns import make_schema, output_columns
from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.warehouse.catalog import SQL_ROOT, build_catalog
from cht_assets.warehouse.comments import (
    ColumnComment,
    RelationComments,
    comment_statements,
    read_column_descriptions,
)
from cht_assets.warehouse.hierarchy import hierarchy_descriptions, hierarchy_select
from cht_assets.warehouse.refresh import Buildable


def obj_at(tmp_path: Path, yaml_text: str | None) -> SqlObject:
    path = tmp_path / "useview_x.sql"
    path.write_text("SELECT 1 AS a, 2 AS b")
    if yaml_text is not None:
        path.with_name("useview_x.columns.yaml").write_text(yaml_text)
    return SqlObject.from_sql("useview_x", path.read_text(), layer="useviews", path=path, columns=("a", "b"))


def test_a_columns_file_describes_the_columns_it_names(tmp_path: Path) -> None:
    assert read_column_descriptions(obj_at(tmp_path, None)) == {}
    assert read_column_descriptions(obj_at(tmp_path, "a: The  first\n  column.\n")) == {
        "a": "The first column."
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1\n", "not YAML"),
        ("- a\n", "mapping"),
        ("a: 3\n", "must be text"),
        ("c: No such.\n", "no column c"),
    ],
)
def test_a_bad_columns_file_fails_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SqlGraphError, match=message) as error:
        read_column_descriptions(obj_at(tmp_path, text))
    assert "useview_x.columns.yaml" in str(error.value)


def test_every_shipped_hand_written_column_is_described() -> None:
    """Every column of every SQL file's object (a formview's come from its XForm)."""
    catalog = build_catalog([], sql_root=SQL_ROOT)
    for entry in catalog:
        obj = entry.obj
        if obj.kind == "function" or obj.path.suffix != ".sql" or obj.path.parent.parent != SQL_ROOT:
            continue
        assert obj.columns, obj.name
        missing = set(obj.columns) - set(read_column_descriptions(obj))
        assert not missing, f"{obj.name}: {sorted(missing)}"


def test_hierarchy_and_inputs_describe_every_column() -> None:
    catalog = build_catalog([], sql_root=SQL_ROOT)
    types = ("district_hospital", "health_center", "clinic", "chw area")
    hierarchy = hierarchy_descriptions(types)
    tree = sqlglot.parse_one(hierarchy_select(types), dialect="postgres")
    assert list(hierarchy) == list(output_columns(tree, make_schema({})))
    assert "chw_area_uuid" in hierarchy and "chw area" in hierarchy["chw_area_name"]
    for entry in catalog:
        if entry.name.startswith("useinput_"):
            built = entry.build_for(None)  # type: ignore[arg-type]  # static: never reads
            assert set(built.column_descriptions) == set(entry.obj.columns), entry.name
            assert "NULL: form" in built.column_descriptions[entry.obj.columns[-1]]  # no forms here


def test_comments_are_set_only_where_they_differ() -> None:
    built = Buildable("v", "useviews", "view", "SELECT 1", "x", description="A view.",
                      column_descriptions={"a": "It's a.", "b": "B."})  # fmt: skip
    held = RelationComments("v", "A view.", (ColumnComment("a", "text", "It's a."), ColumnComment("b", "text", None),
                                            ColumnComment("c", "text", "kept")))  # fmt: skip
    statements = comment_statements(built, held)
    assert len(statements) == 1 and "COMMENT ON COLUMN" in repr(statements[0])
    same = RelationComments(
        "v", "A view.", (ColumnComment("a", "text", "It's a."), ColumnComment("b", "text", "B."))
    )
    assert comment_statements(built, same) == []


def test_superset_verbose_name_is_the_question_label_else_the_column_label() -> None:
    assert field_label("Lmp method (select1, field gestational_age/lmp). Choices: a = A") == "Lmp method"
    assert field_label("The report's doc id (`_id`).") is None
    assert Column("chw_name", "TEXT", False, "The CHW's name.").verbose_name == "CHW name"
    assert Column("lmp", "DATE", False, "LMP date (date, field lmp_date)").verbose_name == "LMP date"
