"""FHIR R4 in (issue 10): the examples' FHIR twins give the same advice, any record
survives record -> bundle -> import unchanged, EHR-style bundles import, nothing is
dropped silently, and a malformed bundle is one line naming the JSON path, exit 2."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cledecide import evaluate_file, load_ruleset, patients_of
from cledecide.fhir_r4.codemap import check_file, load_codemap
from cledecide.engine.load import parse
from cledecide.engine.models import Patient, Reproductive
from cledecide.engine.ruleset import default_rules_dir
from cledecide.fhir_r4.export import to_bundle
from cledecide.reviewer.strategies import days_ago, patients

from conftest import EXAMPLES
from test_examples import CLI

FHIR = EXAMPLES / "fhir"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "expected")
CODEMAP = load_codemap(default_rules_dir())


def summary(explanation: Any) -> dict[str, Any]:
    r = explanation.result
    return {"recommendation": r.recommendation.model_dump(),
            "excluded": sorted((e.drug, e.rule) for e in r.excluded),
            "monitoring": sorted((m.what, m.rule) for m in r.monitoring),
            "alternatives": sorted((a.action, str(a.drug)) for a in r.alternatives),
            "warnings": sorted((w.severity, w.rule) for w in r.warnings),
            "courses": [c.model_dump() for c in r.courses]}


@pytest.mark.parametrize("name", NAMES)
def test_fhir_twin_gives_the_same_advice(name: str) -> None:
    yaml_result = summary(evaluate_file(EXAMPLES / f"{name}.yaml"))
    fhir_result = summary(evaluate_file(FHIR / f"{name}.json"))
    assert fhir_result == yaml_result


def test_ehr_style_bundle_gives_the_same_advice_and_reports_extras() -> None:
    yaml_result = summary(evaluate_file(EXAMPLES / "refractory-neuropathy.yaml"))
    explanation = evaluate_file(FHIR / "refractory-neuropathy-ehr-style.json")
    assert summary(explanation) == yaml_result
    proc = subprocess.run([CLI, "import", "fhir",
                           str(FHIR / "refractory-neuropathy-ehr-style.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Encounter is not read" in proc.stdout
    assert "8867-4 'Heart rate'" in proc.stdout
    assert "id: example-refractory-neuropathy" in proc.stdout


def test_twins_are_current() -> None:
    """examples/fhir is generated (cledecide export fhir); it must match the examples."""
    from cledecide.engine.validate import validate_patient
    for name in NAMES:
        patient = validate_patient(parse((EXAMPLES / f"{name}.yaml").read_bytes(), name))
        assert json.loads((FHIR / f"{name}.json").read_text()) == to_bundle(patient, CODEMAP)


def _normal(p: Patient) -> dict[str, Any]:
    """The record's meaning: the negative-test shorthand folded into the list, lists in
    a fixed order, an all-unknown reproductive block the same as none."""
    d = p.model_dump(mode="json")
    rep = p.reproductive or Reproductive()
    d["reproductive"] = rep.model_dump(mode="json", exclude={"last_negative_pregnancy_test",
                                                             "negative_pregnancy_tests"})
    d["reproductive"]["tests"] = [t.isoformat() for t in rep.negative_tests()]
    for c in d["treatments"]:
        c["adverse_events"] = sorted(c["adverse_events"])
    for key in ("treatments", "eye_exams", "activity"):
        d[key] = sorted(d[key], key=lambda x: json.dumps(x, sort_keys=True))
    d["conditions"], d["symptoms"] = sorted(d["conditions"]), sorted(d["symptoms"])
    return d


@st.composite
def fuller_patients(draw) -> dict[str, Any]:
    """The property strategy, plus the fields it leaves out (men's reproductive
    facts, contraception dates, creatinine, several negative tests)."""
    record = draw(patients())
    if draw(st.booleans()):
        record["labs"]["creatinine"] = {"value": draw(st.sampled_from([45, 88.4, 130])),
                                        "date": days_ago(draw(st.integers(0, 90)))}
    tri = st.sampled_from([True, False, "unknown"])
    if record["demographics"]["sex"] == "male" and draw(st.booleans()):
        record["reproductive"] = {"partner_may_conceive": draw(tri),
                                  "condom_use": draw(tri), "planning_to_father": draw(tri)}
    elif "reproductive" in record and draw(st.booleans()):
        rep = record["reproductive"]
        rep["contraception_since"] = days_ago(draw(st.integers(0, 400)))
        rep["oestrogen_contraception"] = draw(tri)
        rep["negative_pregnancy_tests"] = [days_ago(n) for n in draw(
            st.lists(st.integers(0, 60), max_size=3, unique=True))]
        if rep["childbearing_potential"] is not False:
            rep["planning_pregnancy"] = draw(tri)
    return record


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuller_patients(), st.booleans())
def test_round_trip_record_bundle_record(record: dict[str, Any], ehr: bool) -> None:
    """Any valid record -> FHIR bundle -> import gives back the same Patient, so the
    two inputs can never drift."""
    original = Patient.model_validate(record)
    bundle = json.dumps(to_bundle(original, CODEMAP, ehr)).encode()
    found = patients_of(parse(bundle, "bundle.json"), default_rules_dir())
    assert len(found) == 1
    assert _normal(found[0][0]) == _normal(original)


# ------------------------------------------------------------------ real-world shapes

def bundle_of(name: str = "refractory-neuropathy", ehr: bool = False) -> dict[str, Any]:
    path = FHIR / (f"{name}-ehr-style.json" if ehr else f"{name}.json")
    return json.loads(path.read_text())


def run_json(tmp_path: Path, data: Any, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data, indent=1))
    return subprocess.run([CLI, "evaluate", str(path), *extra], capture_output=True,
                          text=True, timeout=60)


def test_cds_hooks_prefetch_object_is_read_like_a_bundle(tmp_path: Path) -> None:
    bundle = bundle_of()
    # a prefetch's Patient has no fullUrl: references to it are Patient/id, as EHRs send
    text = json.dumps(bundle).replace(bundle["entry"][0]["fullUrl"],
                                      "Patient/example-refractory-neuropathy")
    bundle = json.loads(text)
    patient = bundle["entry"][0]["resource"]
    prefetch = {"patient": patient,
                "everything": {"resourceType": "Bundle", "type": "searchset",
                               "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"]}
                                         for e in bundle["entry"][1:]]}}
    proc = run_json(tmp_path, prefetch, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["recommendation"]["drug"] == "lenalidomide"
    # no Bundle.timestamp in a prefetch: today's date is the evaluation date
    import datetime as dt
    assert result["as_of"] == dt.date.today().isoformat()


def test_units_are_converted_by_ucum_code(tmp_path: Path) -> None:
    bundle = bundle_of()
    for e in bundle["entry"]:
        r = e["resource"]
        code = r.get("code", {}).get("coding", [{}])[0].get("code")
        if code == "751-8":  # neutrophils 3.4 x 10^9/L written as cells/uL
            r["valueQuantity"] = {"value": 3400, "system": "http://unitsofmeasure.org",
                                  "code": "/uL", "unit": "cells/uL"}
    bundle["entry"].append({"fullUrl": "urn:uuid:creat", "resource": {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "subject": {"reference": "Patient/example-refractory-neuropathy"},
        "effectiveDateTime": "2026-11-12",
        "valueQuantity": {"value": 1.0, "system": "http://unitsofmeasure.org",
                          "code": "mg/dL"}}})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    (patient, report), = patients_of(parse(path.read_bytes(), str(path)))
    assert patient.labs.neutrophils is not None and patient.labs.neutrophils.value == 3.4
    assert patient.labs.creatinine is not None and patient.labs.creatinine.value == 88.4


def test_unknown_unit_is_never_taken_as_is(tmp_path: Path) -> None:
    bundle = bundle_of()
    for e in bundle["entry"]:
        r = e["resource"]
        if r.get("code", {}).get("coding", [{}])[0].get("code") == "777-3":
            r["valueQuantity"] = {"value": 231, "system": "http://unitsofmeasure.org",
                                  "code": "10*6/mL"}
    proc = run_json(tmp_path, bundle, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert any(m["field"] == "labs.platelets" and "10*6/mL" in m["why"]
               for m in result["missing_data"])
    assert not any(t["matched"].get("platelets") == 231 for t in result["trace"])


def test_positive_pregnancy_test_after_not_pregnant_blocks_teratogens(tmp_path: Path) -> None:
    """'Not pregnant' recorded in the summer, a positive test last week: pregnancy is
    unknown (never 'not pregnant'), teratogens stay blocked, a critical warning says why."""
    bundle = bundle_of("refractory-neuropathy")
    for e in bundle["entry"]:
        r = e["resource"]
        text = json.dumps(r.get("code", {}))
        if "82810-3" in text:
            r["effectiveDateTime"] = "2026-07-01"
        if "childbearing" in text:
            r["valueBoolean"] = True
    bundle["entry"].append({"fullUrl": "urn:uuid:hcg", "resource": {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2106-3"}]},
        "subject": {"reference": "Patient/example-refractory-neuropathy"},
        "effectiveDateTime": "2026-11-13",
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                             "code": "10828004"}]}}})
    proc = run_json(tmp_path, bundle, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["recommendation"]["drug"] not in ("lenalidomide", "thalidomide")
    assert any(w["severity"] == "critical" and "positive" in w["message"]
               and w["rule"] == "import.fhir" for w in result["warnings"])
    assert "reproductive.pregnant" in {m["field"] for m in result["missing_data"]}


def test_a_bound_is_not_a_result(tmp_path: Path) -> None:
    """'<0.5 x 10^9/L' says the count is below 0.5, not what it is: not used as 0.5."""
    bundle = bundle_of()
    for e in bundle["entry"]:
        r = e["resource"]
        if r.get("code", {}).get("coding", [{}])[0].get("code") == "751-8":
            r["valueQuantity"] = {"value": 0.5, "comparator": "<", "code": "10*9/L",
                                  "system": "http://unitsofmeasure.org"}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    (patient, report), = patients_of(parse(path.read_bytes(), str(path)))
    assert patient.labs.neutrophils is None
    assert any(f == "labs.neutrophils" and "'<0.5'" in why for f, why in report.missing)


def test_unmapped_medication_and_unconfirmed_condition_are_not_silent(tmp_path: Path) -> None:
    bundle = bundle_of()
    bundle["entry"].append({"fullUrl": "urn:uuid:m", "resource": {
        "resourceType": "MedicationStatement", "status": "active",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "999999",
            "display": "something new"}]},
        "subject": {"reference": "Patient/example-refractory-neuropathy"},
        "effectivePeriod": {"start": "2026-10-01"}}})
    bundle["entry"].append({"fullUrl": "urn:uuid:c", "resource": {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/"
                                           "CodeSystem/condition-ver-status",
                                           "code": "provisional"}]},
        "code": {"coding": [{"system": "urn:cledecide:condition", "code": "cytopenia"}]},
        "subject": {"reference": "Patient/example-refractory-neuropathy"}}})
    bundle["entry"].append({"fullUrl": "urn:uuid:htn", "resource": {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
        "subject": {"reference": "Patient/example-refractory-neuropathy"}}})
    proc = run_json(tmp_path, bundle, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    messages = [w["message"] for w in result["warnings"] if w["rule"] == "import.fhir"]
    assert any("999999" in m and "not take it into account" in m for m in messages)
    assert any("1 active condition(s) are not in the code map" in m and "I10" in m
               for m in messages)
    assert any("Cytopenia" in m and "provisional" in m for m in messages)
    assert any(m["field"] == "treatments" for m in result["missing_data"])


def test_no_extent_observation_asks_for_it(tmp_path: Path) -> None:
    """Mild DLE without an extent Observation: no first step is guessed. (A patient
    whose topicals failed still starts hydroxychloroquine: that does not need it.)"""
    bundle = bundle_of("mild-localized-dle")
    bundle["entry"] = [e for e in bundle["entry"]
                       if "extent" not in json.dumps(e["resource"].get("code", {}))]
    proc = run_json(tmp_path, bundle, "--format", "json")
    result = json.loads(proc.stdout)
    assert result["recommendation"]["action"] == "gather_data"
    assert "diagnosis.extent" in {m["field"] for m in result["missing_data"]}


def test_no_pregnancy_status_stays_unknown_and_blocks_teratogens(tmp_path: Path) -> None:
    bundle = bundle_of()
    bundle["entry"] = [e for e in bundle["entry"]
                       if "82810-3" not in json.dumps(e["resource"].get("code", {}))
                       and "childbearing" not in json.dumps(e["resource"].get("code", {}))]
    proc = run_json(tmp_path, bundle, "--format", "json")
    result = json.loads(proc.stdout)
    assert result["recommendation"]["drug"] not in ("lenalidomide", "thalidomide")
    assert result["recommendation"]["action"] == "gather_data"


def _malformed() -> list[tuple[str, Any, str, str]]:
    base = bundle_of()
    no_resource = copy.deepcopy(base)
    no_resource["entry"][3] = {"fullUrl": "urn:uuid:x"}
    dangling = copy.deepcopy(base)
    dangling["entry"][5]["resource"]["subject"] = {"reference": "Patient/nobody"}
    stopped = copy.deepcopy(base)
    for e in stopped["entry"]:
        if e["resource"]["resourceType"] == "MedicationStatement" \
                and e["resource"]["status"] == "stopped":
            del e["resource"]["effectivePeriod"]["end"]
            break
    null_prefetch = {"patient": base["entry"][0]["resource"], "medications": None}
    return [
        ("wrong resourceType", {"resourceType": "Patient", "id": "x"},
         "resourceType", "wrong resourceType 'Patient'"),
        ("entry without resource", no_resource, "entry[3]", "Bundle.entry without resource"),
        ("missing reference", dangling, "entry[5].resource.subject",
         "reference to a missing resource: Patient/nobody"),
        ("stopped without end", stopped, ".status", "has no end date"),
        ("null prefetch", null_prefetch, "medications", "prefetch is null"),
        ("unknown resourceType", {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Nonsense"}}]}, "entry[0].resource.resourceType",
            "unknown resourceType 'Nonsense'"),
        ("entry not an object", {"resourceType": "Bundle", "type": "collection",
                                 "entry": [5]}, "entry[0]", "not valid FHIR R4"),
        ("one page of a search", {**copy.deepcopy(base), "type": "searchset",
                                  "link": [{"relation": "next", "url": "http://x/p2"}]},
         "link[0]", "one page of a search"),
        ("invalid FHIR", {"resourceType": "Bundle", "type": "collection",
                          "entry": [{"resource": {"resourceType": "Observation"}}]},
         "entry[0].resource", "not valid FHIR R4"),
    ]


@pytest.mark.parametrize("label,data,path,message", _malformed(),
                         ids=[m[0] for m in _malformed()])
def test_malformed_fhir_is_one_line_exit_2(tmp_path: Path, label: str, data: Any,
                                           path: str, message: str) -> None:
    proc = run_json(tmp_path, data)
    assert proc.returncode == 2, (label, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "input.json:" in err and path in err and message in err, err
    assert "Traceback" not in err


def test_yaml_evaluation_never_imports_the_fhir_models() -> None:
    code = ("import sys; from cledecide import evaluate_file; "
            f"evaluate_file({str(EXAMPLES / 'mild-localized-dle.yaml')!r}); "
            "print(any(m.startswith('fhir.resources') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_code_map_check_catches_an_unverified_standard_code(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    text = (default_rules_dir() / "fhir-map.yaml").read_text()
    broken = text.replace('checked: "CPIC drug.sql RxNorm:6851 methotrexate"', 'display: x2')
    broken = broken.replace("display: methotrexate, display: x2", "display: methotrexate")
    (folder / "fhir-map.yaml").write_text(broken)
    problems = check_file(folder)
    assert any("rxnorm#6851" in m and "verified" in m for m, *_ in problems), problems


def test_code_map_is_part_of_the_rule_set_hash(tmp_path: Path) -> None:
    import shutil
    folder = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), folder)
    before = load_ruleset(folder).sha256
    path = folder / "fhir-map.yaml"
    text = path.read_text()
    assert '"mg/dL": 88.4}' in text
    path.write_text(text.replace('"mg/dL": 88.4}', '"mg/dL": 88.42}'))
    assert load_ruleset(folder).sha256 != before


def test_bundle_of_several_patients_is_a_cohort(tmp_path: Path) -> None:
    a, b = bundle_of(), bundle_of("widespread-scle-new")
    two = {"resourceType": "Bundle", "type": "collection", "timestamp": a["timestamp"],
           "entry": a["entry"] + b["entry"]}
    proc = run_json(tmp_path, two)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["patient_id"], r["recommendation"]["drug"]) for r in rows] == [
        ("example-refractory-neuropathy", "lenalidomide"),
        ("example-widespread-scle-new", "hydroxychloroquine")]
    assert rows[0]["source"].endswith("input.json#example-refractory-neuropathy")


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, path + (i,))
    return out


EHR_BUNDLE = bundle_of(ehr=True)
EHR_PATHS = [p for p in _paths(EHR_BUNDLE) if p]
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6)
                       | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
                       lambda kids: st.lists(kids, max_size=3)
                       | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=6)


@settings(max_examples=int(os.environ.get("CLEDECIDE_FUZZ_EXAMPLES", "100")), deadline=None)
@given(st.sampled_from(EHR_PATHS), JSONISH, st.booleans())
def test_any_damaged_bundle_is_read_or_refused_never_a_crash(path: tuple, value: Any,
                                                             delete: bool) -> None:
    """A bundle with any one field replaced or deleted is either read (and evaluated)
    or refused with a clear error; never an internal error."""
    from cledecide.engine.errors import CledecideError
    bundle = copy.deepcopy(EHR_BUNDLE)
    parent = bundle
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    raw = json.dumps(bundle).encode()
    try:
        found = patients_of(parse(raw, "damaged.json"), default_rules_dir())
    except CledecideError as exc:
        assert "damaged.json" in str(exc)
        return
    ruleset = load_ruleset(default_rules_dir())
    from cledecide import evaluate_patient
    for patient, report in found:
        evaluate_patient(patient, ruleset, "x", report)


def test_one_bad_patient_in_a_clinic_bundle_is_one_error_row(tmp_path: Path) -> None:
    """A clinic's export with one unreadable patient: that patient is an error row, the
    others are evaluated (exit 2 says something failed)."""
    a, b = bundle_of(), bundle_of("widespread-scle-new")
    for e in b["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["gender"] = "unknown"
    two = {"resourceType": "Bundle", "type": "collection", "timestamp": a["timestamp"],
           "entry": a["entry"] + b["entry"]}
    proc = run_json(tmp_path, two)
    assert proc.returncode == 2
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[0]["recommendation"]["drug"] == "lenalidomide"
    assert rows[1]["source"].endswith("#example-widespread-scle-new")
    assert "gender" in rows[1]["error"]


@pytest.mark.parametrize("authored, same_advice", [
    ("2026-04-28", True),    # the original order, days before the start
    ("2026-11-01", False),   # a renewal last month: read as a new start (trial)
])
def test_an_order_and_a_statement_of_one_course_are_flagged(tmp_path: Path, authored: str,
                                                            same_advice: bool) -> None:
    """A MedicationRequest beside the MedicationStatement of the same course: the advice
    is never riskier than the statement alone, and the clinician is told which records
    overlap."""
    bundle = bundle_of("hcq-inadequate")
    statement = next(e["resource"] for e in bundle["entry"]
                     if e["resource"]["resourceType"] == "MedicationStatement"
                     and "hydroxychloroquine" in json.dumps(e["resource"]))
    order = {"resourceType": "MedicationRequest", "id": "order-hcq", "status": "active",
             "intent": "order", "medicationCodeableConcept":
             statement["medicationCodeableConcept"], "subject": statement["subject"],
             "authoredOn": authored, "dosageInstruction": statement["dosage"]}
    alone = json.loads(run_json(tmp_path, bundle, "--format", "json").stdout)
    assert alone["recommendation"]["drug"] == "quinacrine"
    assert not [w for w in alone["warnings"] if "records overlap" in w["message"]]
    bundle["entry"].append({"fullUrl": "urn:uuid:order-hcq", "resource": order})
    proc = run_json(tmp_path, bundle, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    flagged = [w["message"] for w in result["warnings"]
               if w["rule"] == "import.fhir" and "records overlap" in w["message"]]
    assert len(flagged) == 1 and "hydroxychloroquine: 2 records" in flagged[0]
    assert "MedicationRequest" in flagged[0] and "MedicationStatement" in flagged[0]
    if same_advice:
        assert result["recommendation"] == alone["recommendation"]
    else:  # no second drug while the (apparently new) course is judged
        assert result["recommendation"]["action"] == "continue"
        assert result["recommendation"]["drug"] == "hydroxychloroquine"


def test_consecutive_courses_of_one_drug_are_not_flagged(tmp_path: Path) -> None:
    bundle = bundle_of("refractory-neuropathy")
    proc = run_json(tmp_path, bundle, "--format", "json")
    result = json.loads(proc.stdout)
    assert not [w for w in result["warnings"] if "records overlap" in w["message"]]


# ------------------------------------------------------------------ size and cost (issue 23)

def test_a_synthea_sized_export_is_read_not_refused_for_its_bytes(tmp_path: Path) -> None:
    """A 3 MB Synthea-shaped export (pretty-printed, as Synthea writes it) is evaluated:
    FHIR input is bounded by entries and nesting, not by the 1 MB of a YAML record."""
    from synthea_like import sized
    made = sized(3_000_000, hcq="ingredient")
    path = tmp_path / "synthea.json"
    path.write_text(json.dumps(made.bundle, indent=2))
    assert path.stat().st_size > 2_000_000
    proc = subprocess.run([CLI, "evaluate", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["patient_id"] == made.bundle["entry"][0]["resource"]["id"]


def _limited_rules(tmp_path: Path, entries: int, nesting: int = 3) -> Path:
    import shutil
    folder = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), folder)
    path = folder / "fhir-map.yaml"
    text = path.read_text()
    assert "  max_entries: 50000\n  max_nesting: 3\n" in text
    path.write_text(text.replace("  max_entries: 50000\n  max_nesting: 3\n",
                                 f"  max_entries: {entries}\n  max_nesting: {nesting}\n"))
    return folder


def test_entries_and_nesting_limits_come_from_the_code_map(tmp_path: Path) -> None:
    bundle = bundle_of()
    rules = _limited_rules(tmp_path, entries=len(bundle["entry"]) - 1)
    proc = run_json(tmp_path, bundle, "--rules", str(rules))
    assert proc.returncode == 2
    assert "more than" in proc.stderr and "limits.max_entries" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert run_json(tmp_path, bundle, "--rules", str(_limited_rules(
        tmp_path / "b", entries=len(bundle["entry"])))).returncode == 0
    nested: dict[str, Any] = bundle
    for _ in range(3):  # the record inside three more Bundles: four deep
        nested = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": nested}]}
    proc = run_json(tmp_path, nested)
    assert proc.returncode == 2 and "limits.max_nesting" in proc.stderr, proc.stderr


def test_unread_resources_are_not_validated_read_ones_are(tmp_path: Path) -> None:
    """Only the elements the code map reads are validated: a malformed Encounter (never
    read) is skipped; a malformed element of an Observation that is read is refused."""
    bundle = bundle_of()
    bundle["entry"].append({"resource": {"resourceType": "Encounter", "status": 5,
                                         "period": {"start": "yesterday"}}})
    proc = run_json(tmp_path, bundle)
    assert proc.returncode == 0, proc.stderr
    obs = next(i for i, e in enumerate(bundle["entry"])
               if e["resource"]["resourceType"] == "Observation")
    bundle["entry"][obs]["resource"]["effectiveDateTime"] = "2026-02-30"
    proc = run_json(tmp_path, bundle)
    assert proc.returncode == 2
    assert f"entry[{obs}].resource.effectiveDateTime" in proc.stderr
    assert "not a calendar date" in proc.stderr


def test_a_yaml_record_keeps_its_byte_limit(tmp_path: Path) -> None:
    from cledecide.engine.load import MAX_FILE_BYTES
    path = tmp_path / "big.json"
    record = {"id": "x", "padding": "x" * MAX_FILE_BYTES}
    path.write_text(json.dumps(record))
    proc = subprocess.run([CLI, "evaluate", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "only FHIR input may be larger" in proc.stderr
