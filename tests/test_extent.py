"""A step when extent is unknown (issue 20, section 2): where one unknown fact is all
that separates two steps, both are shown (text, JSON `conditional`, CDS card), and no
branch ever shows a step that a safety rule excludes for that branch's patient."""
from __future__ import annotations

import copy
import json

import jsonschema
from hypothesis import event, given, settings, strategies as st

from cledecide import evaluate_patient, load_ruleset, to_json, to_text
from cledecide.engine.branches import OpenFact, branching
from cledecide.engine.compile import compile_rules
from cledecide.engine.decide import decide
from cledecide.engine.evaluate import evaluate
from cledecide.engine.load import parse
from cledecide.engine.models import Patient, enumerated_values, with_value
from cledecide.engine.ruleset import check_folder
from cledecide.engine.validate import validate_patient
from cledecide.fhir_r4.codemap import load_codemap
from cledecide.reviewer.strategies import patients, refractory_patients
from cledecide.schemas import schema
from cledecide.service.cards import patient_view_cards

from conftest import RULES, examples

RULESET = load_ruleset(RULES)
RESULT_SCHEMA = jsonschema.Draft202012Validator(schema("result"))
INITIATING = ("start", "add", "switch", "reintroduce", "increase")

# A new subacute CLE: no treatment yet, moderately active, weighed, pregnancy ruled out.
NEW_SCLE = {
    "id": "new-scle", "as_of": "2026-11-20",
    "demographics": {"age": 44, "sex": "female", "weight_kg": 70},
    "reproductive": {"childbearing_potential": True, "pregnant": False,
                     "breastfeeding": False, "contraception": "one_method"},
    "smoker": False,
    "diagnosis": {"subtype": "SCLE", "extent": "unknown", "systemic_lupus": False},
    "activity": [{"date": "2026-11-20", "clasi_activity": 14, "clasi_damage": 0}],
    "labs": {"egfr": {"value": 96, "date": "2026-11-10"}},
}


def model(record: dict) -> Patient:
    return validate_patient(parse(json.dumps(record).encode(), "p.json"))


def result(record: dict) -> dict:
    return json.loads(to_json(evaluate_patient(model(record), RULESET, "x")))


def with_extent(record: dict, extent: str) -> dict:
    twin = copy.deepcopy(record)
    twin["diagnosis"]["extent"] = extent
    return twin


def test_widespread_twin_starts_hydroxychloroquine_without_branches() -> None:
    res = result(with_extent(NEW_SCLE, "widespread"))
    assert (res["recommendation"]["action"], res["recommendation"]["drug"]) == \
        ("start", "hydroxychloroquine")
    assert "conditional" not in res  # only there when the step waits for the fact


def test_unknown_extent_gathers_it_and_shows_both_branches() -> None:
    res = result(NEW_SCLE)
    rec = res["recommendation"]
    assert (rec["action"], rec["rule"]) == ("gather_data", "general.extent-unknown")
    c = res["conditional"]
    assert (c["fact"], c["rule"]) == ("diagnosis.extent", "general.extent-unknown")
    got = {b["value"]: (b["recommendation"]["action"], b["recommendation"]["drug"],
                        b["recommendation"]["rule"]) for b in c["branches"]}
    assert got == {
        "localized": ("start", "topical_corticosteroid", "topical.corticosteroid.localized"),
        "widespread": ("start", "hydroxychloroquine", "antimalarial.hydroxychloroquine.start")}
    # each branch is exactly what the twin with the fact recorded is told
    for b in c["branches"]:
        twin = result(with_extent(NEW_SCLE, b["value"]))
        assert b["recommendation"] == twin["recommendation"]
    RESULT_SCHEMA.validate(res)


def test_text_view_says_if_localized_and_if_widespread() -> None:
    text = to_text(evaluate_patient(model(NEW_SCLE), RULESET, "x"))
    head = text.split("\nWhy\n")[0]
    assert "NEXT STEP (general): Record whether the disease is localized or widespread" \
        in head
    assert "depends on the extent (diagnosis.extent), which is not recorded" in head
    flat = " ".join(head.split())
    assert "- if localized: Start topical corticosteroid" in flat
    assert "[topical.corticosteroid.localized]" in flat
    assert "- if widespread: Start hydroxychloroquine" in flat
    assert "[antimalarial.hydroxychloroquine.start]" in flat
    assert "why: Antimalarials are the first-line systemic therapy of CLE" in flat
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "depends on" not in to_text(evaluate_patient(
        model(with_extent(NEW_SCLE, "widespread")), RULESET, "x"))


def test_cds_card_shows_both_branches() -> None:
    explanation = evaluate_patient(model(NEW_SCLE), RULESET, "x")
    [card] = patient_view_cards(explanation, load_codemap(RULES))
    assert card["summary"] == ("CLE next step depends on the extent (record it): localized: "
                               "start topical corticosteroid; widespread: start "
                               "hydroxychloroquine")
    assert len(card["summary"]) <= 140
    assert "**If localized:** Start topical corticosteroid" in card["detail"]
    assert "(`topical.corticosteroid.localized`)" in card["detail"]
    assert "**If widespread:** Start hydroxychloroquine" in card["detail"]
    assert "(`antimalarial.hydroxychloroquine.start`)" in card["detail"]
    assert "suggestions" not in card  # the step is to record the extent: nothing to order
    assert card["indicator"] == "warning"


def test_safety_exclusion_shapes_the_branch() -> None:
    """Retinopathy excludes the antimalarials: the widespread branch is not
    'start hydroxychloroquine' but what that patient is told instead."""
    record = copy.deepcopy(NEW_SCLE)
    record["conditions"] = ["retinopathy"]
    res = result(record)
    widespread = {b["value"]: b for b in res["conditional"]["branches"]}["widespread"]
    assert widespread["recommendation"]["drug"] not in ("hydroxychloroquine", "chloroquine")
    assert widespread["recommendation"] == \
        result(with_extent(record, "widespread"))["recommendation"]


def test_no_branches_when_every_value_leads_to_the_same_step() -> None:
    patient = model(NEW_SCLE)
    compiled = compile_rules(RULESET)
    decision = decide(RULESET, evaluate(patient, compiled))
    fact = OpenFact("diagnosis.extent", ("localized", "widespread"), "why", "r")
    assert branching(fact, [("localized", decision), ("widespread", decision)]) is None


def test_enumerated_values_of_record_fields() -> None:
    assert enumerated_values("diagnosis.extent") == ("localized", "widespread")
    assert enumerated_values("reproductive.pregnant") == (True, False)
    assert enumerated_values("demographics.age") is None
    assert enumerated_values("treatments") is None
    assert enumerated_values("no.such.field") is None
    patient = model(NEW_SCLE)
    twin = with_value(patient, "diagnosis.extent", "localized")
    assert twin.diagnosis.extent == "localized" and patient.diagnosis.extent == "unknown"


def test_branch_on_a_field_without_fixed_values_is_a_rule_error(tmp_path) -> None:
    import shutil
    shutil.copytree(RULES, tmp_path / "rules")
    path = tmp_path / "rules" / "general.yaml"
    text = path.read_text()
    assert "- field: diagnosis.extent\n          branch: true" in text
    path.write_text(text.replace("- field: diagnosis.extent\n          branch: true",
                                 "- field: demographics.age\n          branch: true"))
    ruleset, findings = check_folder(tmp_path / "rules")
    errors = [f for f in findings if f.severity == "error"]
    assert ruleset is None and errors
    assert errors[0].code == "branch-fact" and "demographics.age" in errors[0].message
    assert errors[0].line is not None


# Conditions that exclude or hold an antimalarial or a topical (the first steps).
FIRST_STEP_SAFETY = ["retinopathy", "porphyria", "psoriasis", "g6pd_deficiency",
                     "renal_impairment", "liver_disease"]


@st.composite
def unknown_extent(draw) -> dict:
    """Any record with extent unknown; most of them new to treatment (where the extent
    decides the first step)."""
    record = draw(st.one_of(patients(), refractory_patients()))
    record["diagnosis"]["extent"] = "unknown"
    if draw(st.integers(0, 3)):
        # new to treatment, with a safety condition or two that bear on a first step
        record["treatments"] = []
        record["diagnosis"].pop("suspected_drug_trigger", None)
        record["conditions"] = draw(st.lists(st.sampled_from(FIRST_STEP_SAFETY),
                                             min_size=1, max_size=2, unique=True))
    return record


@settings(max_examples=examples(300))
@given(unknown_extent())
def test_no_branch_shows_a_step_a_safety_rule_excludes_for_its_patient(record) -> None:
    res = result(record)
    RESULT_SCHEMA.validate(res)
    c = res.get("conditional")
    event(f"branches: {c is not None}")
    if c is None:
        return
    assert res["recommendation"]["action"] == "gather_data"
    assert len({(b["recommendation"]["action"], b["recommendation"]["drug"],
                 b["recommendation"]["rule"]) for b in c["branches"]}) >= 2
    for b in c["branches"]:
        twin = result(with_extent(record, b["value"]))
        assert b["recommendation"] == twin["recommendation"]
        step = b["recommendation"]
        excluded = {e["drug"] for e in twin["excluded"]}
        if step["drug"] in excluded:
            assert step["action"] in ("stop", "reduce"), (b["value"], step)
        if step["drug"] in RULESET.teratogens and step["action"] in INITIATING:
            assert twin_pregnancy_ruled_out(with_extent(record, b["value"])), step


def twin_pregnancy_ruled_out(record: dict) -> bool:
    rep = record.get("reproductive")
    return record["demographics"]["sex"] == "male" or (rep is not None and
                                                     rep.get("pregnant") is False)
