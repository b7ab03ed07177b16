"""FHIR R4 in (issue 10): the examples' FHIR twins give the same advice, any record
survives record -> bundle -> import unchanged, EHR-style bundles import, nothing is
dropped silently, and a malformed bundle is one line naming the JSON path, exit 2."""
from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cledecide import CledecideError, NoAdviceResult, evaluate_file, load_ruleset, patients_of
from cledecide.fhir_r4.codemap import check_file, load_codemap
from cledecide.engine.load import parse
from cledecide.engine.models import Patient, Reproductive
from cledecide.engine.ruleset import default_rules_dir
from cledecide.fhir_r4.export import to_bundle
from cledecide.reviewer.strategies import days_ago, patients

from conftest import EXAMPLES, examples
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
            # the FHIR twin adds one info note: the values read, each with its date
            "warnings": sorted((w.severity, w.rule) for w in r.warnings
                               if (w.severity, w.rule) != ("info", "import.fhir")),
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


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
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
    null_prefetch = {"patient": base["entry"][0]["resource"], "medications": None}
    return [
        ("wrong resourceType", {"resourceType": "Patient", "id": "x"},
         "resourceType", "wrong resourceType 'Patient'"),
        ("entry without resource", no_resource, "entry[3]", "Bundle.entry without resource"),
        ("missing reference", dangling, "entry[5].resource.subject",
         "reference to a missing resource: Patient/nobody"),
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


@settings(max_examples=int(os.environ.get("CLEDECIDE_FUZZ_EXAMPLES", examples(100))),
          deadline=None)
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
    from cledecide import NoAdvice, evaluate_patient
    for patient, report in found:
        if isinstance(patient, NoAdvice):  # the CLE Condition or the Patient was damaged
            assert patient.reason in ("no_cle", "deceased") and patient.message
            continue
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


# ------------------------------------------------------------------ real EHR exports (issue 23)

from synthea_like import Variant, synthea_like  # noqa: E402

LOINC_URI, SNOMED_URI, RXNORM_URI = ("http://loinc.org", "http://snomed.info/sct",
                                     "http://www.nlm.nih.gov/research/umls/rxnorm")


def evaluate_bundle(tmp_path: Path, bundle: dict[str, Any], as_of: Any = None) -> Any:
    """The library's view of one FHIR input: an Explanation or a NoAdviceResult."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return evaluate_file(path, None, as_of)


def add(bundle: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    resource.setdefault("subject", {"reference": patient["fullUrl"]})
    bundle["entry"].append({"fullUrl": f"urn:uuid:added-{len(bundle['entry'])}",
                            "resource": resource})
    return resource


def condition(code: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "code": code, **extra,
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": VERIFY, "code": "confirmed"}]}}


from cledecide.fhir_r4.export import CLINICAL, VERIFY  # noqa: E402


def _medication(bundle: dict[str, Any], drug_text: str = "hydroxychloroquine") -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "MedicationStatement"
                and drug_text in json.dumps(e["resource"]))


@pytest.mark.parametrize("field,value", [("deceasedDateTime", "1993-05-01T00:00:00Z"),
                                         ("deceasedBoolean", True)])
def test_the_dead_get_no_advice_exit_0(tmp_path: Path, field: str, value: Any) -> None:
    bundle = bundle_of("widespread-scle-new")
    bundle["entry"][0]["resource"][field] = value
    proc = run_json(tmp_path, bundle, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["format"] == "cledecide/no-advice@1" and "recommendation" not in result
    assert result["no_advice"]["reason"] == "deceased" and "deceased" in \
        result["no_advice"]["message"]
    assert result["ruleset"]["sha256"] and result["input_sha256"] and result["engine"]
    import jsonschema
    from cledecide.schemas import schema
    jsonschema.Draft202012Validator(schema("no-advice")).validate(result)
    text = run_json(tmp_path, bundle).stdout
    assert text.startswith("NO ADVICE: Deceased") and "NEXT STEP" not in text


def test_death_after_as_of_is_alive_on_as_of(tmp_path: Path) -> None:
    bundle = bundle_of("widespread-scle-new")
    bundle["entry"][0]["resource"]["deceasedDateTime"] = "2027-01-01"
    assert evaluate_bundle(tmp_path, bundle).result.recommendation.drug == \
        "hydroxychloroquine"


def test_a_patient_without_cle_is_a_result_counted_apart(tmp_path: Path) -> None:
    bundle = bundle_of("widespread-scle-new")
    bundle["entry"] = [e for e in bundle["entry"] if "cle-subtype" not in json.dumps(e)]
    proc = run_json(tmp_path, bundle, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["no_advice"]["reason"] == "no_cle"
    assert "No active cutaneous lupus" in result["no_advice"]["message"]
    cohort = tmp_path / "clinic"
    cohort.mkdir()
    (cohort / "a.json").write_text(json.dumps(bundle))
    (cohort / "b.json").write_text(json.dumps(bundle_of("widespread-scle-new")))
    (cohort / "c.json").write_text("{not json")
    for fmt in ("jsonl", "csv"):
        proc = subprocess.run([CLI, "evaluate", str(cohort), "--format", fmt],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2  # c.json failed
        assert "3 patients: 1 evaluated, 1 no advice (1 no CLE on record), 1 failed" \
            in proc.stderr, proc.stderr
    assert ",no_cle\n" in proc.stdout
    shown_ = subprocess.run([CLI, "import", "fhir", str(cohort / "a.json")],
                            capture_output=True, text=True, timeout=60)
    assert shown_.returncode == 0 and "NO ADVICE (no_cle)" in shown_.stdout
    assert "demographics:" in shown_.stdout


def test_a_stale_weight_is_not_used_and_every_value_shows_its_date(tmp_path: Path) -> None:
    made = synthea_like(11, Variant(weight_age_days=400, hcq="ingredient"))
    result = evaluate_bundle(tmp_path, made.bundle).result
    missing = [m.why for m in result.missing_data if m.field == "demographics.weight_kg"]
    assert any("days old" in w and "weight_recent_days" in w for w in missing), missing
    fresh = synthea_like(11, Variant(weight="lb_text", hcq="ingredient"))
    result = evaluate_bundle(tmp_path, fresh.bundle).result
    notes = [w.message for w in result.warnings if w.rule == "import.fhir"
             and w.message.startswith("Read from the FHIR record")]
    import re
    weight = re.search(r"weight ([0-9.]+) kg \(([0-9-]+)\)", notes[0])
    assert weight and weight.group(2) == fresh.truth["weight_date"].isoformat()
    assert abs(float(weight.group(1)) - fresh.truth["weight_kg"]) < 0.01  # from pounds


def test_a_child_needs_a_weight_from_the_last_month(tmp_path: Path) -> None:
    made = synthea_like(12, Variant(weight_age_days=45))
    made.bundle["entry"][0]["resource"]["birthDate"] = "2016-01-01"
    result = evaluate_bundle(tmp_path, made.bundle).result
    assert any("weight_recent_days_child" in m.why for m in result.missing_data)


def test_the_problem_list_is_read_for_contraindications(tmp_path: Path) -> None:
    """Diabetic retinopathy (SNOMED 422034002) excludes hydroxychloroquine (it was
    'start hydroxychloroquine 400 mg'); an unmapped active condition is named."""
    bundle = bundle_of("widespread-scle-new")
    add(bundle, condition({"coding": [{"system": SNOMED_URI, "code": "422034002",
                                       "display": "Retinopathy due to type 2 diabetes "
                                                  "mellitus (disorder)"}]}))
    add(bundle, condition({"coding": [{"system": SNOMED_URI, "code": "38341003",
                                       "display": "Hypertension"}]}))
    result = evaluate_bundle(tmp_path, bundle).result
    assert result.recommendation.drug != "hydroxychloroquine"
    assert "hydroxychloroquine" in {e.drug for e in result.excluded}
    warning = next(w.message for w in result.warnings if "not in the code map" in w.message)
    assert "Hypertension" in warning


@pytest.mark.parametrize("code,display", [("L930", None), ("L93.0", "Discoid lupus")])
def test_an_icd10cm_code_without_its_dot_is_the_same_code(tmp_path: Path, code: str,
                                                          display: Any) -> None:
    made = synthea_like(13, Variant(cle_coding="undotted" if "." not in code else "icd"))
    assert not isinstance(evaluate_bundle(tmp_path, made.bundle), NoAdviceResult)


def test_a_who_coded_cle_is_read_as_its_subtype(tmp_path: Path) -> None:
    """WHO ICD-10 (issue 23): the CLE codes shared with ICD-10-CM, verified in the WHO
    family, read as the subtype they name, with or without the dot."""
    made = synthea_like(14, Variant(cle_coding="who"))
    out = evaluate_bundle(tmp_path, made.bundle)
    assert not isinstance(out, NoAdviceResult)
    assert out.result.patient_id


def test_an_unmapped_who_code_is_never_misread(tmp_path: Path) -> None:
    """A WHO ICD-10 code the map does not verify is never read as 'no CLE' silently: the
    result names the code to check."""
    made = synthea_like(14, Variant(cle_coding="who"))
    for entry in made.bundle["entry"]:
        for coding in entry["resource"].get("code", {}).get("coding", []):
            if coding.get("system") == "http://hl7.org/fhir/sid/icd-10":
                coding["code"] = "L93.9"
    out = evaluate_bundle(tmp_path, made.bundle)
    assert isinstance(out, NoAdviceResult)
    assert "http://hl7.org/fhir/sid/icd-10|L93.9" in out.data["no_advice"]["message"]


@pytest.mark.parametrize("coding", [
    {"system": RXNORM_URI, "code": "979092",
     "display": "hydroxychloroquine sulfate 200 MG Oral Tablet"},
    {"system": RXNORM_URI, "code": "979094"},
    {"system": "urn:oid:2.16.840.1.113883.6.88", "code": "x", "display": "Plaquenil 200mg"},
])
def test_a_product_or_a_named_medication_is_never_started_again(tmp_path: Path,
                                                                 coding: dict) -> None:
    """hcq-inadequate: hydroxychloroquine taken since May, partial response. Coded as its
    tablet (what EHRs send) or named only in words, it is the same course."""
    bundle = bundle_of("hcq-inadequate")
    statement = _medication(bundle)
    statement["medicationCodeableConcept"] = {"coding": [coding]}
    statement["dosage"] = [{"timing": {"repeat": {"frequency": 2, "period": 1,
                                                  "periodUnit": "d"}},
                            "doseAndRate": [{"doseQuantity": {
                                "value": 1, "unit": "TAB", "code": "TAB",
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                          "v3-orderableDrugForm"}}]}]
    result = evaluate_bundle(tmp_path, bundle).result
    assert not (result.recommendation.action in ("start", "add")
                and result.recommendation.drug == "hydroxychloroquine")
    course = next(c for c in result.courses if c.drug == "hydroxychloroquine")
    if coding["code"] == "x":  # by name: for safety, never for advice (dose not read)
        assert course.dose is None
        assert any("recognised by name" in w.message for w in result.warnings)
    else:  # 2 x 200 mg tablets a day
        assert course.dose == "400 mg/day"
        assert result.recommendation.drug == "quinacrine"


def test_as_of_is_the_record_as_it_stood_then(tmp_path: Path) -> None:
    """Everything after as_of is out of the record, and what ended after it was going
    on then: a later Condition, a course started later, a course stopped later."""
    bundle = bundle_of("hcq-inadequate")
    add(bundle, condition({"coding": [{"system": SNOMED_URI, "code": "422034002",
                                       "display": "retinopathy"}]},
                          onsetDateTime="2026-11-25"))
    add(bundle, {"resourceType": "MedicationStatement", "status": "active",
                 "effectivePeriod": {"start": "2026-11-26"},
                 "medicationCodeableConcept": {"coding": [
                     {"system": RXNORM_URI, "code": "6851", "display": "methotrexate"}]}})
    statement = _medication(bundle)
    statement["status"] = "stopped"
    statement["effectivePeriod"]["end"] = "2026-11-27"
    result = evaluate_bundle(tmp_path, bundle).result  # as_of: Bundle.timestamp 11-20
    assert result.as_of == "2026-11-20"
    assert "hydroxychloroquine" not in {e.drug for e in result.excluded}
    assert {c.drug: c.stop for c in result.courses}["hydroxychloroquine"] is None
    assert "methotrexate" not in {c.drug for c in result.courses}
    later = evaluate_bundle(tmp_path, bundle, dt.date(2026, 11, 28)).result
    assert later.as_of == "2026-11-28"
    assert {c.drug: c.stop for c in later.courses}["hydroxychloroquine"] == "2026-11-27"
    assert "methotrexate" in {c.drug for c in later.courses}


def test_evaluate_takes_as_of_for_fhir_and_refuses_it_for_our_record(tmp_path: Path) -> None:
    proc = run_json(tmp_path, bundle_of("hcq-inadequate"), "--format", "json",
                    "--as-of", "2026-11-25")
    assert proc.returncode == 0 and json.loads(proc.stdout)["as_of"] == "2026-11-25"
    proc = subprocess.run([CLI, "evaluate", str(EXAMPLES / "hcq-inadequate.yaml"),
                           "--as-of", "2026-11-25"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "carries its own date" in proc.stderr


def test_what_real_exports_carry_is_read(tmp_path: Path) -> None:
    """eGFR 33914-3, creatinine 38483-4, height 8302-2 (read, not used), smoking status
    72166-2, LOINC answer codes for pregnancy status and test results, hCG as text."""
    bundle = bundle_of("widespread-scle-new")
    for code, value in (("33914-3", {"valueQuantity": {"value": 55, "unit": "mL/min/{1.73_m2}",
                                                       "system": "http://unitsofmeasure.org",
                                                       "code": "mL/min/{1.73_m2}"}}),
                        ("38483-4", {"valueQuantity": {"value": 1.1, "unit": "mg/dL",
                                                       "system": "http://unitsofmeasure.org",
                                                       "code": "mg/dL"}}),
                        ("8302-2", {"valueQuantity": {"value": 170, "unit": "cm"}}),
                        ("72166-2", {"valueCodeableConcept": {"coding": [
                            {"system": SNOMED_URI, "code": "449868002"}]}}),
                        ("82810-3", {"valueCodeableConcept": {"coding": [
                            {"system": LOINC_URI, "code": "LA26683-5"}]}}),
                        ("2106-3", {"valueString": " Negative "})):
        add(bundle, {"resourceType": "Observation", "status": "final",
                     "code": {"coding": [{"system": LOINC_URI, "code": code}]},
                     "effectiveDateTime": "2026-11-20", **value})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    (patient, report), = patients_of(parse(path.read_bytes(), "b.json"), default_rules_dir())
    assert patient.labs.egfr.value == 55 and patient.labs.creatinine.value == 97.24
    assert patient.smoker is True and patient.reproductive.pregnant is False
    assert dt.date(2026, 11, 20) in patient.reproductive.negative_tests()
    assert any("Body height: read, not used" in line for line in report.ignored)


def test_an_hcg_text_that_is_not_clear_stays_unknown(tmp_path: Path) -> None:
    made = synthea_like(5, Variant(hcg_text="equivocal"))
    (patient, report), = patients_of(parse(json.dumps(made.bundle).encode(), "b.json"),
                                     default_rules_dir(), made.as_of)
    assert "text 'equivocal'" in " ".join(w for _, w in report.missing)


@pytest.mark.parametrize("kind,oestrogen", [("combined_pill", True), ("lng_ius", False),
                                            ("implant", False)])
def test_contraception_recorded_as_medication_is_the_method(tmp_path: Path, kind: str,
                                                            oestrogen: bool) -> None:
    made = synthea_like(5, Variant(contraception=kind))  # seed 5 is a woman
    assert made.bundle["entry"][0]["resource"]["gender"] == "female"
    (patient, _), = patients_of(parse(json.dumps(made.bundle).encode(), "b.json"),
                                default_rules_dir(), made.as_of)
    r = patient.reproductive
    assert r.contraception == "one_method" and r.oestrogen_contraception is oestrogen
    assert r.contraception_since == made.truth["contraception_since"]


@pytest.mark.parametrize("variant,check", [
    (Variant(cle_verification=None), lambda p, r: p.diagnosis.subtype == "DLE"),
    (Variant(cle_status="remission"), lambda p, r: p.diagnosis.subtype == "DLE"),
    (Variant(hcq="contained", hcq_dose="tab"),
     lambda p, r: p.treatments[0].dose_mg_per_day == 400),
    (Variant(hcq="product", hcq_dose="bid"),
     lambda p, r: p.treatments[0].dose_mg_per_day == 400),
    (Variant(hcq="ingredient", hcq_status="completed_no_end"),
     lambda p, r: p.treatments[0].stop == p.as_of
     and any("no end date" in w for _, w in r.missing)),
    (Variant(hcq="ingredient", hcq_status="proposal"), lambda p, r: not p.treatments),
    (Variant(hcq="product", hcq_dose="unitless"),
     lambda p, r: p.treatments[0].dose_mg_per_day is None
     and any("without a unit" in w for _, w in r.missing)),
], ids=["no verificationStatus", "remission", "contained 2 TAB", "BID", "completed no end",
        "intent proposal", "a dose of 2 without unit"])
def test_what_was_refused_outright_is_read_where_clear(variant: Variant, check: Any) -> None:
    made = synthea_like(21, variant)
    (patient, report), = patients_of(parse(json.dumps(made.bundle).encode(), "b.json"),
                                     default_rules_dir(), made.as_of)
    assert check(patient, report)


def test_a_partial_birth_date_is_read_when_the_age_is_clear(tmp_path: Path) -> None:
    made = synthea_like(22, Variant())
    made.bundle["entry"][0]["resource"]["birthDate"] = "1980-10"
    (patient, _), = patients_of(parse(json.dumps(made.bundle).encode(), "b.json"),
                                default_rules_dir(), dt.date(2026, 11, 20))
    assert patient.demographics.age == 46
    with pytest.raises(CledecideError, match="gives age 45 or 46"):
        patients_of(parse(json.dumps(made.bundle).encode(), "b.json"), default_rules_dir(),
                    dt.date(2026, 10, 15))


def test_mycophenolic_acid_is_read_with_its_dose_conversion(tmp_path: Path) -> None:
    bundle = bundle_of("hcq-inadequate")
    add(bundle, {"resourceType": "MedicationStatement", "status": "active",
                 "effectivePeriod": {"start": "2026-06-01"},
                 "medicationCodeableConcept": {"coding": [{"system": RXNORM_URI,
                                                           "code": "485023"}]},
                 "dosage": [{"timing": {"repeat": {"frequency": 2, "period": 1,
                                                   "periodUnit": "d"}},
                             "doseAndRate": [{"doseQuantity": {"value": 720, "unit": "mg",
                                              "system": "http://unitsofmeasure.org",
                                              "code": "mg"}}]}]})
    (patient, _), = patients_of(parse(json.dumps(bundle).encode(), "b.json"),
                                default_rules_dir())
    course = next(c for c in patient.treatments if c.drug == "mycophenolate")
    assert course.dose_mg_per_day == 2000  # 1440 mg mycophenolic acid ~ 2000 mg mofetil


VARIANTS = st.builds(
    Variant,
    cle=st.sampled_from(["DLE", "SCLE", None]),
    cle_coding=st.sampled_from(["snomed+icd", "icd", "who", "undotted", "snomed"]),
    cle_status=st.sampled_from(["active", "remission", "resolved"]),
    cle_verification=st.sampled_from(["confirmed", None, "provisional"]),
    deceased=st.sampled_from([None, None, "boolean", "datetime", "after_as_of"]),
    birth=st.sampled_from(["full", "full", "month", "year"]),
    weight=st.sampled_from(["kg", "lb_ucum", "lb_text", "stone", "none"]),
    weight_age_days=st.sampled_from([0, 10, 45, 89, 91, 400]),
    retinopathy=st.booleans(),
    hcq=st.sampled_from([None, "ingredient", "product", "text", "contained"]),
    hcq_dose=st.sampled_from(["mg", "tab", "unitless", "bid"]),
    hcq_status=st.sampled_from(["active", "completed_no_end", "proposal"]),
    contraception=st.sampled_from([None, "lng_ius", "combined_pill", "implant"]),
    pregnancy_answer=st.sampled_from([None, "loinc_not_pregnant", "snomed_not_pregnant"]),
    hcg_text=st.sampled_from([None, "Negative", "positive", "equivocal"]),
    smoking=st.sampled_from([None, "daily", "never", "former"]),
    egfr_code=st.sampled_from(["33914-3", "62238-1", "98979-8"]),
    encounters=st.integers(1, 3), note_bytes=st.just(200))

RULESET = load_ruleset(default_rules_dir())


def misreadings(made: Any, patient: Any) -> list[str]:
    """How a record read from a Synthea-like bundle differs from the truth it encodes."""
    v, t, p = made.variant, made.truth, patient
    out = []
    if v.birth != "year" and p.demographics.age != t["age"]:
        out.append(f"age {p.demographics.age} != {t['age']}")
    days = 30 if t["age"] < 18 else 90
    fresh = v.weight in ("kg", "lb_ucum", "lb_text") and v.weight_age_days <= days
    if fresh and (p.demographics.weight_kg is None
                  or abs(p.demographics.weight_kg - t["weight_kg"]) > 0.01):
        out.append(f"weight {p.demographics.weight_kg} != {t['weight_kg']}")
    if not fresh and p.demographics.weight_kg is not None:
        out.append(f"weight {p.demographics.weight_kg} used (stale or not convertible)")
    if v.retinopathy != ("retinopathy" in p.conditions):
        out.append("retinopathy misread")
    if v.smoking and p.smoker is not t["smoker"]:
        out.append(f"smoker {p.smoker}")
    hcq = [c for c in p.treatments if c.drug == "hydroxychloroquine"]
    if t.get("hcq_taken") != bool(hcq) and v.hcq:
        out.append(f"hydroxychloroquine courses {hcq}")
    if hcq and t.get("hcq_current") and hcq[-1].stop is not None:
        out.append("current hydroxychloroquine read as stopped")
    r = p.reproductive
    if "contraception_oestrogen" in t and (r is None or r.oestrogen_contraception
                                           is not t["contraception_oestrogen"]):
        out.append("oestrogen contraception misread")
    if t.get("hcg") == "positive" and r is not None and r.pregnant is False:
        out.append("a positive pregnancy test read as not pregnant")
    return out


@settings(max_examples=int(os.environ.get("CLEDECIDE_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), VARIANTS)
def test_any_real_shaped_bundle_is_read_or_refused_in_one_line_never_misread(
        seed: int, variant: Variant) -> None:
    """Synthea-shaped exports with the variations real EHRs send (issue 23): each is read
    as the truth it encodes, or is a patient with no advice for the right reason, or is
    refused in one line naming the file; never a silent misreading, never a start of a
    drug already taken or one the problem list excludes."""
    from cledecide import NoAdvice, evaluate_patient
    made = synthea_like(seed, variant)
    raw = json.dumps(made.bundle).encode()
    try:
        (patient, report), = patients_of(parse(raw, "synthea.json"), default_rules_dir(),
                                         made.as_of)
    except CledecideError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("synthea.json")
        assert variant.birth in ("year", "month") and "birthDate" in str(exc), str(exc)
        return
    t = made.truth
    if isinstance(patient, NoAdvice):
        expected = "deceased" if t["deceased"] else "no_cle"
        assert patient.reason == expected, patient
        if expected == "no_cle":
            assert not t["cle"] or variant.cle_status == "resolved" \
                or variant.cle_verification == "provisional"
        return
    assert not t["deceased"] and t["cle"]
    assert variant.cle_status != "resolved" and variant.cle_verification != "provisional"
    assert misreadings(made, patient) == []
    rec = evaluate_patient(patient, RULESET, "x", report).result.recommendation
    if rec.action in ("start", "add", "switch", "reintroduce"):
        assert rec.drug != "hydroxychloroquine" or not (t.get("hcq_taken")
                                                        or variant.retinopathy)


# ------------------------------------------------------------------ codes EHRs send (issue 20)

def _excluding_patients() -> dict[str, Patient]:
    """For each catalogue drug, a patient whom a safety rule excludes from it (the first
    of a few risks that does), found by evaluating, not assumed."""
    from conftest import patient as record, run
    risks = [
        record(**{"demographics.sex": "female", "demographics.age": 30,
                  "reproductive.childbearing_potential": True, "reproductive.pregnant": True}),
        record(conditions=["retinopathy"]),
        record(**{"labs.g6pd": {"value": "deficient", "date": "2026-01-01"}}),
        record(conditions=["liver_disease", "alcohol_misuse"]),
        record(conditions=["peripheral_neuropathy"]),
        record(**{"labs.neutrophils": {"value": 0.8, "date": "2026-11-10"}}),
        record(conditions=["venous_thromboembolism"]),
    ]
    found: dict[str, Patient] = {}
    for data in risks:
        excluded_here = {e["drug"] for e in run(data)["excluded"]}
        for drug in excluded_here:
            if drug not in found:
                doc = parse(json.dumps(data, default=str).encode(), "risk.json")
                from cledecide.engine.validate import validate_patient
                found[drug] = validate_patient(doc)
    return found


EXCLUDING = _excluding_patients()


def _drug_codes() -> list[tuple[str, dict[str, Any]]]:
    """Every mapped code of every catalogue drug (ingredients, products, our own), and
    each brand or generic name in words only (the name fallback)."""
    spec = CODEMAP.spec
    out = []
    for drug, entries in list(spec.medications.items()) + list(
            spec.medication_products.items()):
        for e in entries:
            out.append((drug, {"coding": [CODEMAP.coding(e)]}))
    for drug, names in spec.drug_names.items():
        for name in names:
            out.append((drug, {"text": f"{name.capitalize()} as directed"}))
    return out


def test_every_catalogue_drug_with_a_verified_code_or_a_name_is_excluded_somewhere() -> None:
    """The property below has a patient for each drug a safety rule can exclude; the
    drugs no risk here excludes are named (not silently skipped)."""
    assert {"hydroxychloroquine", "chloroquine", "methotrexate", "mycophenolate",
            "thalidomide", "lenalidomide", "acitretin", "isotretinoin",
            "dapsone"} <= set(EXCLUDING)


@pytest.mark.parametrize("drug,concept", [c for c in _drug_codes() if c[0] in EXCLUDING],
                         ids=lambda v: v if isinstance(v, str) else
                         (v.get("text") or v["coding"][0]["code"]))
def test_an_order_for_an_excluded_drug_by_any_of_its_codes_is_critical(
        drug: str, concept: dict[str, Any]) -> None:
    """Issue 20: for every catalogue drug and each of its mapped codes (and names), an
    order-sign for a patient whom a safety rule excludes from that drug is a critical
    card, never 'not in the code map'."""
    from cledecide.fhir_r4.medications import read_draft_order
    from cledecide.fhir_r4.reading import Report
    from cledecide.service.cards import order_sign_cards
    order = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/x"}, "medicationCodeableConcept": concept}
    o = read_draft_order(order, CODEMAP, ("context", "draftOrders", 0), Report())
    assert o.drug == drug and o.by_name == ("text" in concept)
    cards, _ = order_sign_cards(EXCLUDING[drug], [(o.drug, o.label, o.dose)],
                                load_ruleset(default_rules_dir()), CODEMAP, "x")
    assert cards[0]["indicator"] == "critical", cards[0]["summary"]


@pytest.mark.parametrize("text", ["Aczone 7.5% gel", "prednisolone eye drops 1%",
                                  "tacrolimus 1 mg capsule"])
def test_a_name_in_a_topical_or_ambiguous_form_is_not_taken_for_the_drug(text: str) -> None:
    from cledecide.fhir_r4.medications import read_draft_order
    from cledecide.fhir_r4.reading import Report
    order = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/x"},
             "medicationCodeableConcept": {"text": text}}
    assert read_draft_order(order, CODEMAP, ("o",), Report()).drug is None


# ------------------------------------------------------------------ extent (issue 20)

# Body sites as an EHR sends them. The importer counts distinct codes and never reads
# what a site code means, so these are test data, not codes the map ships.
SITES = [("39937001", "Skin structure of face"), ("41695006", "Scalp structure"),
         ("302551006", "Entire thorax")]


def _site(code: str | None, display: str) -> dict[str, Any]:
    if code is None:
        return {"text": display}
    return {"coding": [{"system": SNOMED_URI, "code": code, "display": display}]}


def _scle_with_sites(sites: list[dict[str, Any]], extent_observation: bool = False,
                     severity: str | None = None) -> dict[str, Any]:
    """The new widespread SCLE, untreated (its past topical course removed: a failed
    topical starts hydroxychloroquine whatever the extent), with its extent Observation
    removed (or kept) and the given body sites (and severity) on its CLE Condition."""
    bundle = bundle_of("widespread-scle-new")
    gone = ("course-response",) + (() if extent_observation else ('"extent"',))
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"]["resourceType"] != "MedicationStatement"
                       and not any(g in json.dumps(e["resource"].get("code", {}))
                                   for g in gone)]
    cle = next(e["resource"] for e in bundle["entry"] if "cle-subtype" in json.dumps(e))
    if sites:
        cle["bodySite"] = sites
    if severity is not None:
        cle["severity"] = {"coding": [{"system": SNOMED_URI, "code": severity}]}
    return bundle


def _import_report(tmp_path: Path, bundle: dict[str, Any]) -> str:
    path = tmp_path / "sites.json"
    path.write_text(json.dumps(bundle))
    proc = subprocess.run([CLI, "import", "fhir", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_three_distinct_body_sites_read_as_widespread(tmp_path: Path) -> None:
    # the face twice (a SNOMED CT and a local coding of one site, then the same code
    # again) is one site; the thorax given as text only is a site of its own
    face = {"coding": [{"system": SNOMED_URI, "code": "39937001"},
                       {"system": "urn:site:local", "code": "F1"}]}
    bundle = _scle_with_sites([face, _site(*SITES[0]), _site(*SITES[1]),
                               _site(None, "Upper back")])
    explanation = evaluate_bundle(tmp_path, bundle)
    rec = explanation.result.recommendation
    assert (rec.action, rec.drug) == ("start", "hydroxychloroquine")
    assert explanation.result.conditional is None
    assert "diagnosis.extent" not in {m.field for m in explanation.result.missing_data}
    assert any("read as widespread from 3 distinct body sites" in w.message
               for w in explanation.result.warnings)
    shown_ = _import_report(tmp_path, bundle)
    assert "extent: widespread" in shown_
    assert "diagnosis.extent = widespread from 3 distinct body site(s)" in shown_
    assert "condition_extent in fhir-map.yaml" in shown_


def test_two_body_sites_are_not_yet_widespread_and_one_is_never_localized(tmp_path: Path) -> None:
    for sites in (SITES[:1], SITES[:2]):
        bundle = _scle_with_sites([_site(*s) for s in sites])
        res = evaluate_bundle(tmp_path, bundle).result
        assert res.recommendation.action == "gather_data"
        assert res.conditional is not None and res.conditional.fact == "diagnosis.extent"
        assert {b.value for b in res.conditional.branches} == {"localized", "widespread"}
        why = [m.why for m in res.missing_data if m.field == "diagnosis.extent"]
        assert any(f"lists {len(sites)} body site(s)" in w and "never read as localized"
                   in w for w in why), why
        assert "extent: unknown" in _import_report(tmp_path, bundle)


def test_no_body_site_leaves_extent_unknown_with_both_steps_shown(tmp_path: Path) -> None:
    res = evaluate_bundle(tmp_path, _scle_with_sites([])).result
    assert res.recommendation.action == "gather_data"
    got = {b.value: b.recommendation.drug for b in res.conditional.branches}
    assert got == {"localized": "topical_corticosteroid", "widespread": "hydroxychloroquine"}
    why = [m.why for m in res.missing_data if m.field == "diagnosis.extent"]
    assert any("no body site" in w for w in why), why


def test_an_extent_observation_wins_over_body_sites(tmp_path: Path) -> None:
    bundle = _scle_with_sites([_site(*s) for s in SITES], extent_observation=True)
    obs = next(e["resource"] for e in bundle["entry"]
               if '"extent"' in json.dumps(e["resource"].get("code", {})))
    obs["valueCodeableConcept"] = {"coding": [{"system": "urn:cledecide:answer",
                                               "code": "localized"}]}
    res = evaluate_bundle(tmp_path, bundle).result
    assert res.recommendation.drug == "topical_corticosteroid"
    assert any("recorded as localized" in w.message and "3 body site(s)" in w.message
               for w in res.warnings)
    assert "the extent Observation (localized" in _import_report(tmp_path, bundle)


@pytest.mark.parametrize("code,word", [("24484000", "severe"), ("6736007", "moderate"),
                                       ("255604002", "mild")])
def test_severity_is_reported_never_read_as_extent(tmp_path: Path, code: str,
                                                   word: str) -> None:
    bundle = _scle_with_sites([], severity=code)
    res = evaluate_bundle(tmp_path, bundle).result
    assert res.recommendation.action == "gather_data" and res.conditional is not None
    assert f"severity {word}: reported, not read as extent" in _import_report(tmp_path, bundle)


def test_the_body_site_rule_is_checked_in_the_code_map(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    import shutil
    shutil.copytree(default_rules_dir(), folder)
    path = folder / "fhir-map.yaml"
    path.write_text(path.read_text().replace("  widespread_from_sites: 3\n",
                                             "  widespread_from_sites: 3\n"
                                             "  localized_up_to_sites: 3\n"))
    problems = check_file(folder)
    assert any("localized_up_to_sites must be below" in p[0] for p in problems), problems
