"""The view catalog from explicit inputs (the sql/ folder and a list of forms), no servers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cht_assets.replica.forms import FormDoc
from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.warehouse.catalog import SQL_ROOT, build_catalog

DEMO_FORMS = Path(__file__).resolve().parents[2] / "cht_assets" / "demo" / "forms"


def demo_forms(*, without: tuple[str, ...] = ()) -> list[FormDoc]:
    return [
        FormDoc("medic", f"form:{path.stem}", path.read_text())
        for path in sorted(DEMO_FORMS.glob("*.xml"))
        if path.stem not in without
    ]


def test_demo_forms_make_a_formview_each_and_nothing_waits() -> None:
    catalog = build_catalog(demo_forms())
    names = set(catalog.entries)
    assert {f"formview_{path.stem}" for path in DEMO_FORMS.glob("*.xml")} <= names
    assert catalog.waiting() == []
    assert catalog.forms_version == catalog.version_for(demo_forms())
    # Build order: every object after what it reads.
    order = list(catalog.entries)
    for entry in catalog:
        assert all(order.index(dep) < order.index(entry.name) for dep in entry.obj.depends_on if dep in names)


def test_without_a_form_what_reads_it_waits_and_nothing_else() -> None:
    catalog = build_catalog(demo_forms(without=("pregnancy", "delivery")))
    waiting = {entry.name: entry.waiting_for for entry in catalog.waiting()}
    assert waiting == {"useview_pregnancy": ("formview_delivery", "formview_pregnancy")}
    assert catalog["useview_pregnancy"].waiting_for_forms == ("delivery", "pregnancy")
    assert "formview_pnc" in catalog.entries and "formview_pregnancy" not in catalog.entries


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
    app = shared_dir / "cht-sample-docs" / "xforms" / "default" / "app"
    forms = [FormDoc("medic", f"form:{path.stem}", path.read_text()) for path in sorted(app.glob("*.xml"))]
    catalog = build_catalog(forms)
    assert {f"formview_{path.stem}" for path in app.glob("*.xml")} <= set(catalog.entries)
