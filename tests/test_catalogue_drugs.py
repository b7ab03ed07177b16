"""A drug is data (issue 24, "A new drug needs Python"): an entry added to a copy of
drugs.yaml is a drug of that rule set -- its record validates and evaluates, the JSON
Schema lists it, rules check accepts it -- with no code change.

apremilast below is a TEST PLACEHOLDER: its profile is conservative and unverified
(no dose steps, a label that says so); it is not in the shipped rules."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cledecide.engine.errors import InputError
from cledecide.engine.load import parse
from cledecide.engine.rulecache import load_ruleset
from cledecide.engine.ruleset import check_folder
from cledecide.engine.validate import catalogue_drugs, validate_patient
from cledecide.engine.pipeline import evaluate_patient
from cledecide.engine.render import to_json
from cledecide.schemas import schema

from conftest import RULES, patient

PLACEHOLDER = """
  apremilast:
    # TEST PLACEHOLDER (tests/test_catalogue_drugs.py): not a verified profile.
    label: apremilast (test placeholder)
    class: pde4_inhibitor
    stage: refractory
    teratogenic: false
    usual_dose: test placeholder, no dose is given
    course:
      trial: immunosuppressant_trial_months
    evidence: [kuhn-2017]
"""


def _folder(tmp_path: Path, entry: str = PLACEHOLDER) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    drugs = folder / "drugs.yaml"
    drugs.write_text(drugs.read_text().rstrip("\n") + "\n" + entry)
    return folder


def _record(drug: str = "apremilast") -> bytes:
    data = patient(treatments=[{"drug": drug, "start": "2026-01-05", "response": "none"}])
    return yaml.safe_dump(data, sort_keys=False).encode()


def test_an_entry_in_drugs_yaml_is_a_drug_of_that_rule_set(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    ruleset, findings = check_folder(folder)
    assert ruleset is not None, [str(f) for f in findings if f.severity == "error"]
    assert "apremilast" in ruleset.drugs and "apremilast_status" in ruleset.facts
    assert "on_pde4_inhibitor" in ruleset.facts  # its class, too
    assert "apremilast" not in catalogue_drugs()  # not shipped
    p = validate_patient(parse(_record(), "p.yaml"), ruleset.drugs)
    result = json.loads(to_json(evaluate_patient(p, ruleset)))
    assert result["recommendation"]["action"]
    courses = {c["drug"]: c for c in result["courses"]}
    assert "apremilast" in courses
    # The schema of this rule set lists it; the shipped one does not.
    drug = schema("patient", catalogue_drugs(folder))["$defs"]["Course"]["properties"]["drug"]
    assert "apremilast" in drug["enum"]
    shipped = schema("patient")["$defs"]["Course"]["properties"]["drug"]
    assert "apremilast" not in shipped["enum"] and "hydroxychloroquine" in shipped["enum"]


def test_a_drug_the_catalogue_lacks_is_refused_with_its_line() -> None:
    with pytest.raises(InputError) as info:
        validate_patient(parse(_record(), "p.yaml"))  # the shipped catalogue
    assert info.value.field == "treatments[0].drug" and info.value.line
    assert "apremilast" in info.value.message and "hydroxychloroquine" in info.value.message


def test_a_record_validated_without_the_catalogue_is_refused_before_evaluation() -> None:
    from cledecide.engine.models import Patient
    record = yaml.safe_load(_record())
    p = Patient.model_validate(record)  # no catalogue: any well-formed name passes here
    with pytest.raises(InputError) as info:
        evaluate_patient(p, load_ruleset(RULES))
    assert info.value.field == "treatments[0].drug"


def test_a_rule_naming_a_drug_not_in_the_catalogue_is_an_error_with_its_line(
        tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    path = folder / "safety.yaml"
    path.write_text(path.read_text().replace("exclude: [dapsone]", "exclude: [apremilast]", 1))
    ruleset, findings = check_folder(folder)
    errors = [f for f in findings if f.severity == "error"]
    assert ruleset is None and errors
    assert errors[0].file.endswith("safety.yaml") and errors[0].line
    assert "apremilast" in errors[0].message
