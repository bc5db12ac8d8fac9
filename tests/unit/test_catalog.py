"""The view catalog from explicit inputs (the sql/ folder and a list of forms), no servers."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cht_assets.replica.forms import FormDoc
from cht_assets.settings import load_settings
from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.warehouse.catalog import SQL_ROOT, ViewCatalog, build_catalog, layer_schemas
from cht_assets.warehouse.useinputs import InputsError, input_select, read_inputs_file

DEMO_FORMS = Path(__file__).resolve().parents[2] / "cht_assets" / "demo" / "forms"


def demo_forms(*, without: tuple[str, ...] = ()) -> list[FormDoc]:
    return [
        FormDoc("medic", f"form:{path.stem}", path.read_text())
        for path in sorted(DEMO_FORMS.glob("*.xml"))
        if path.stem not in without
    ]


# The forms the maternal use views cannot do without (visits, danger signs, undo are optional).
MATERNAL_REQUIRED_FORMS = {"pregnancy", "delivery", "death_report"}
MATERNAL_VIEWS = {"useview_pregnancy", "useview_delivery", "useview_death"}


def default_config_forms(shared_dir: Path, *, without: tuple[str, ...] = ()) -> list[FormDoc]:
    app = shared_dir / "cht-sample-docs" / "xforms" / "default" / "app"
    return [
        FormDoc("medic", f"form:{path.stem}", path.read_text())
        for path in sorted(app.glob("*.xml"))
        if path.stem not in without
    ]


def waited_forms(catalog: ViewCatalog) -> set[str]:
    return {form for entry in catalog.waiting() for form in entry.waiting_for_forms}


def test_demo_forms_make_a_formview_each_and_wait_only_for_what_the_demo_lacks() -> None:
    catalog = build_catalog(demo_forms())
    names = set(catalog.entries)
    assert {f"formview_{path.stem}" for path in DEMO_FORMS.glob("*.xml")} <= names
    assert waited_forms(catalog) == MATERNAL_REQUIRED_FORMS - {path.stem for path in DEMO_FORMS.glob("*.xml")}
    assert catalog.forms_version == catalog.version_for(demo_forms())
    # Build order: every object after what it reads.
    order = list(catalog.entries)
    for entry in catalog:
        assert all(order.index(dep) < order.index(entry.name) for dep in entry.obj.depends_on if dep in names)


def test_default_config_forms_build_every_maternal_view(shared_dir: Path) -> None:
    catalog = build_catalog(default_config_forms(shared_dir))
    assert catalog.waiting() == []
    assert set(catalog.entries) >= MATERNAL_VIEWS
    # Every mapped field was found: no description says otherwise.
    assert not [entry.name for entry in catalog if "not found" in entry.obj.description]
    registration = catalog["useinput_pregnancy_registration"].obj
    assert "formview_pregnancy" in registration.depends_on
    assert 'public.cht_to_date(CAST("lmp_date_8601" AS text)) AS "lmp_date"' in registration.sql
    assert '"gestational_age_register_method_lmp_method" AS "lmp_method"' in registration.sql
    assert {"useinput_pregnancy_registration", "useinput_delivery_report"} <= set(
        catalog["useview_pregnancy"].obj.depends_on
    )


def test_without_a_form_what_reads_it_waits_and_nothing_else(shared_dir: Path) -> None:
    catalog = build_catalog(default_config_forms(shared_dir, without=("pregnancy", "delivery")))
    waiting = {entry.name: entry.waiting_for_forms for entry in catalog.waiting()}
    assert waiting == {
        "useinput_pregnancy_registration": ("pregnancy",),
        "useinput_delivery_report": ("delivery",),
        "useview_pregnancy": ("delivery", "pregnancy"),
        "useview_delivery": ("delivery",),
    }
    assert "formview_pregnancy_home_visit" in catalog.entries and "formview_pregnancy" not in catalog.entries
    assert catalog["useview_death"].waiting_for == ()


def test_an_optional_input_without_its_form_has_no_rows_and_says_so(shared_dir: Path) -> None:
    catalog = build_catalog(
        default_config_forms(shared_dir, without=("pregnancy_home_visit", "undo_death_report"))
    )
    assert catalog.waiting() == []
    visit = catalog["useinput_pregnancy_visit"].obj
    assert visit.sql.rstrip().endswith("WHERE false") and visit.depends_on == ()
    assert "'pregnancy_home_visit' of input 'pregnancy_visit' is not in this deployment" in (
        catalog["useview_pregnancy"].obj.description
    )
    assert "'undo_death_report'" in catalog["useview_death"].obj.description


def test_a_field_the_form_lacks_is_null_of_its_type_and_the_view_says_which(
    shared_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL_ROOT, root)
    inputs = root / "useviews" / "useview_delivery.inputs.yaml"
    inputs.write_text(inputs.read_text().replace("/data/condition/woman_outcome", "/data/condition/nowhere"))
    catalog = build_catalog(default_config_forms(shared_dir), sql_root=root)
    assert 'CAST(NULL AS text) AS "woman_outcome"' in catalog["useinput_delivery_report"].obj.sql
    assert (
        "not found in form 'delivery' (NULL): woman_outcome." in catalog["useview_delivery"].obj.description
    )
    assert catalog.waiting() == []


def test_a_renamed_form_is_followed_by_editing_the_mapping(shared_dir: Path, tmp_path: Path) -> None:
    forms = [
        FormDoc(form.source, "form:birth", form.xml.replace('id="delivery"', 'id="birth"'))
        if form.doc_id == "form:delivery"
        else form
        for form in default_config_forms(shared_dir)
    ]
    assert "formview_birth" in build_catalog(forms).entries
    assert waited_forms(build_catalog(forms)) == {"delivery"}
    root = tmp_path / "sql"
    shutil.copytree(SQL_ROOT, root)
    inputs = root / "useviews" / "useview_delivery.inputs.yaml"
    inputs.write_text(inputs.read_text().replace("form: delivery", "form: birth"))
    catalog = build_catalog(forms, sql_root=root)
    assert catalog.waiting() == []
    assert "formview_birth" in catalog["useinput_delivery_report"].obj.depends_on


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- a list", "expected a mapping"),
        ("x: {form: [}", "not YAML"),
        ("x: {fields: {}}", "needs a form"),
        ("x: {form: f, fields: {a: {type: date}}}", "needs a path"),
        ("x: {form: f, fields: {a: {path: /data/a, type: jsonb}}}", "has type 'jsonb'"),
        ("x: {form: f, fields: {a: {path: a}}}", "is not /<root>/<field>"),
        ("x: {form: f, fields: {uuid: {path: /data/a}}}", "uuid are common columns"),
        ("x: {form: f, optional: maybe}", "optional must be true or false"),
    ],
)
def test_a_malformed_inputs_file_names_itself(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "useview_x.inputs.yaml"
    path.write_text(text)
    with pytest.raises(InputsError, match=re.escape(error)) as raised:
        read_inputs_file(path, "useviews")
    assert str(path) in str(raised.value)


def test_hostile_names_in_a_mapping_are_quoted(tmp_path: Path) -> None:
    path = tmp_path / "useview_x.inputs.yaml"
    hostile = {"x": {"form": 'a"; DROP TABLE t; --', "fields": {'b" x': {"path": "/data/c"}}}}
    path.write_text(json.dumps(hostile))  # JSON is YAML
    [use_input] = read_inputs_file(path, "useviews")
    sql, missing = input_select(use_input, ())
    assert missing == ['b" x']
    assert 'AS "b"" x"' in sql and sql.endswith('FROM "formview_a_drop_table_t"')
    assert '"; DROP' not in sql


def test_waiting_passes_down_to_what_reads_a_waiting_object(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL_ROOT, root)
    (root / "useviews" / "useview_births.sql").write_text(
        "-- materialized: view\n-- unique_key: uuid\nSELECT uuid FROM useview_pregnancy\n"
    )
    catalog = build_catalog([], sql_root=root)
    assert catalog["useview_births"].waiting_for == ("formview_delivery", "formview_pregnancy")
    assert catalog["useview_chw_activity"].waiting_for == ()


def test_a_new_field_or_a_new_form_changes_the_forms_version() -> None:
    forms = demo_forms()
    catalog = build_catalog(forms)
    before = catalog.forms_version
    assert build_catalog(forms).forms_version == before  # deterministic
    pnc = next(form for form in forms if form.doc_id == "form:pnc")
    assert "</inputs>" in pnc.xml
    with_field = pnc.xml.replace("</inputs>", "</inputs><extra_note/>", 1)
    changed = [FormDoc(f.source, f.doc_id, with_field if f is pnc else f.xml) for f in forms]
    assert catalog.version_for(changed) != before
    assert catalog.version_for(forms[:-1]) == build_catalog(forms[:-1]).forms_version != before


def test_a_hand_written_formview_overrides_the_generated_one(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL_ROOT, root)
    path = root / "formviews" / "formview_pnc.sql"
    path.write_text("-- materialized: view\n-- unique_key: uuid\nSELECT _id AS uuid FROM raw.couchdb_docs\n")
    catalog = build_catalog(demo_forms(), sql_root=root)
    assert catalog["formview_pnc"].obj.path == path


def test_unreadable_and_hostile_forms_build_nothing() -> None:
    forms = [
        FormDoc("medic", "form:broken", "<h:html><not closed"),
        FormDoc("medic", "form:bomb", '<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'),
    ]
    catalog = build_catalog(forms)
    assert not [name for name in catalog.entries if name.startswith("formview_")]


def test_broken_sql_names_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL_ROOT, root)
    (root / "useviews" / "useview_broken.sql").write_text(
        "-- materialized: view\nSELECT uuid\nFROM nowhere\n"
    )
    with pytest.raises(SqlGraphError, match=r"useview_broken\.sql:3"):
        build_catalog([], sql_root=root)


def test_real_cht_forms_make_formviews(shared_dir: Path) -> None:
    """CHT's default config (the reference app): every report form gets its formview."""
    forms = default_config_forms(shared_dir)
    catalog = build_catalog(forms)
    assert {f"formview_{form.doc_id.removeprefix('form:')}" for form in forms} <= set(catalog.entries)


def test_base_schema_puts_the_base_layer_alone_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE_SCHEMA", "v1")
    catalog = build_catalog([], schemas=layer_schemas(load_settings()))
    schemas = {entry.name: entry.schema for entry in catalog}
    assert {name for name, schema in schemas.items() if schema == "v1"} == {
        path.stem for path in (SQL_ROOT / "base").glob("*.sql")
    }
    assert set(schemas.values()) == {"public", "v1"}
    assert catalog.search_path == '"$user", public, "v1"'
    assert build_catalog([]).search_path is None


@pytest.mark.parametrize("value", ["raw", "cht_meta", "pg_temp", "V1", "v1; drop", "a" * 64])
def test_base_schema_refuses_names_it_must_not_take(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BASE_SCHEMA", value)
    with pytest.raises(ValueError, match="BASE_SCHEMA"):
        load_settings()


def test_dashboard_language_reaches_sql_as_a_quoted_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    """DASHBOARD_LANGUAGE becomes `dashboard_language()`, which the label views call; unset, the
    function reads the deployment's locale (then `en`) when called."""
    monkeypatch.setenv("DASHBOARD_LANGUAGE", "fr")
    settings = load_settings()
    assert settings.dashboard_language == "fr"
    chosen = build_catalog([], language=settings.dashboard_language)["dashboard_language"]
    assert chosen.obj.is_function and "CAST('fr' AS text)" in chosen.build_for(None).sql  # type: ignore[arg-type]
    default = build_catalog([])["dashboard_language"]
    assert "CAST(NULL AS text)" in default.build_for(None).sql  # type: ignore[arg-type]
    assert default.obj.code_version != chosen.obj.code_version  # a new setting rebuilds it
    catalog = build_catalog([])
    for name in ("useview_label", "useview_form_label", "useview_choice_label"):
        assert "dashboard_language" in catalog[name].obj.depends_on, name
    assert "form_choices" in catalog["useview_choice_label"].obj.depends_on


@pytest.mark.parametrize("value", ["fr'; drop table x; --", "en us", "1"])
def test_dashboard_language_refuses_what_is_no_language_code(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DASHBOARD_LANGUAGE", value)
    with pytest.raises(ValueError, match="DASHBOARD_LANGUAGE"):
        load_settings()


def test_choices_add_a_label_column_over_the_choice_labels(tmp_path: Path) -> None:
    path = tmp_path / "useview_x.inputs.yaml"
    path.write_text(
        "x:\n  form: delivery\n  fields:\n"
        "    place: {path: /data/delivery_outcome/delivery_place, type: text, choices: true}\n"
    )
    (use_input,) = read_inputs_file(path, "useviews")
    sql, missing = input_select(use_input, [])
    assert missing == ["place"] and '"place_label"' in sql  # the form lacks it: NULL, still there
    path.write_text("x:\n  form: f\n  fields:\n    n: {path: /data/n, type: integer, choices: true}\n")
    with pytest.raises(InputsError, match="choices"):
        read_inputs_file(path, "useviews")


def test_lineage_is_traced_in_hand_written_sql_not_in_generated_formviews() -> None:
    catalog = build_catalog(demo_forms())
    traced = {entry.obj.name for entry in catalog if catalog.traces_lineage(entry)}
    assert {"form_metadata", "contactview_metadata", "person", "useview_pregnancy"} <= traced
    assert "formview_pregnancy" in catalog.entries and "formview_pregnancy" not in traced
    assert not any(catalog[name].obj.is_function for name in traced)
    assert "cht_to_date" in catalog.entries
