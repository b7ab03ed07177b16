"""A drug is data (issue 24, "A new drug needs Python"): an entry added to a copy of
drugs.yaml is a drug of that rule set -- its record validates and evaluates, the JSON
Schema lists it, rules check accepts it -- with no code change.

apremilast below is a TEST PLACEHOLDER: its profile is conservative and unverified
(no dose steps, a label that says so); it is not in the shipped rules."""
from __future__ import annotations

import json
import os
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
    monitoring:
      items:
        - what: clasi_review
          when: test placeholder, not a verified schedule
      because: test placeholder, not a verified monitoring plan
      evidence: [kuhn-2017]
    evidence: [kuhn-2017]
"""
NO_MONITORING = PLACEHOLDER.split("    monitoring:")[0] + "    evidence: [kuhn-2017]\n"


def _folder(tmp_path: Path, entry: str = PLACEHOLDER) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    drugs = folder / "drugs.yaml"
    drugs.write_text(drugs.read_text().rstrip("\n") + "\n" + entry)
    return folder


def _record(drug: str = "apremilast") -> bytes:
    # Started a month ago: in its trial, so it continues (and is monitored).
    data = patient(treatments=[{"drug": drug, "start": "2026-10-20"}])
    return yaml.safe_dump(data, sort_keys=False).encode()


def test_an_entry_in_drugs_yaml_is_a_drug_of_that_rule_set(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    ruleset, findings = check_folder(folder)
    assert ruleset is not None, [str(f) for f in findings if f.severity == "error"]
    assert "apremilast" in ruleset.drugs and "apremilast_status" in ruleset.facts
    assert "on_pde4_inhibitor" in ruleset.facts  # its class, too
    assert not [f for f in findings if f.code == "no-monitoring"]
    assert "apremilast" not in catalogue_drugs()  # not shipped
    p = validate_patient(parse(_record(), "p.yaml"), ruleset.drugs)
    result = json.loads(to_json(evaluate_patient(p, ruleset)))
    assert result["recommendation"]["action"]
    courses = {c["drug"]: c for c in result["courses"]}
    assert "apremilast" in courses
    # Its monitoring comes from its entry (catalogue.monitoring.apremilast).
    assert any(m["rule"] == "catalogue.monitoring.apremilast" and m["what"] == "clasi_review"
               for m in result["monitoring"])
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


def test_a_new_drug_without_monitoring_is_a_warning_naming_its_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, NO_MONITORING)
    ruleset, findings = check_folder(folder)
    assert ruleset is not None  # a warning, not an error
    found = [f for f in findings if f.code == "no-monitoring"]
    assert len(found) == 1 and found[0].severity == "warning"
    text = (folder / "drugs.yaml").read_text().splitlines()
    assert text[found[0].line - 1].strip() == "apremilast:"
    assert str(found[0]).startswith(f"{folder / 'drugs.yaml'}:{found[0].line}: "
                                    "drugs.apremilast: apremilast has no monitoring items")


def test_safety_lists_read_catalogue_properties() -> None:
    """The pregnancy, breastfeeding, teratogen and marrow lists of safety.yaml are
    catalogue selections; on the shipped catalogue they are the lists once written out."""
    rules = load_ruleset(RULES).by_id
    then = {rid: rules[rid].spec.then for rid in (
        "safety.pregnancy.not-established", "safety.pregnancy.unknown",
        "safety.breastfeeding", "safety.pregnancy.stop-teratogen",
        "safety.febrile-cytopenia")}
    not_established = ["chloroquine", "quinacrine", "dapsone", "belimumab", "anifrolumab"]
    assert then["safety.pregnancy.not-established"].exclude == not_established
    assert then["safety.pregnancy.unknown"].exclude == not_established
    assert then["safety.breastfeeding"].exclude == ["quinacrine", "belimumab", "anifrolumab"]
    assert then["safety.pregnancy.stop-teratogen"].recommend.among == [
        "methotrexate", "mycophenolate", "acitretin", "isotretinoin", "thalidomide",
        "lenalidomide"]
    assert then["safety.febrile-cytopenia"].recommend.among == [
        "methotrexate", "mycophenolate", "dapsone", "lenalidomide"]
    written = (RULES / "safety.yaml").read_text()
    assert "{drugs where: pregnancy == not_established}" in written


def test_a_new_drug_is_covered_by_the_property_rules(tmp_path: Path) -> None:
    """The placeholder states no pregnancy or breastfeeding property: the conservative
    value (not established) puts it in those exclusions without editing safety.yaml."""
    ruleset, _ = check_folder(_folder(tmp_path))
    assert ruleset is not None
    rules = ruleset.by_id
    assert "apremilast" in rules["safety.pregnancy.not-established"].spec.then.exclude
    assert "apremilast" in rules["safety.breastfeeding"].spec.then.exclude
    assert "apremilast" not in rules["safety.pregnancy.stop-teratogen"].spec.then.recommend.among
    data = patient(**{"reproductive.childbearing_potential": True,
                      "reproductive.pregnant": True})
    p = validate_patient(parse(yaml.safe_dump(data).encode(), "p.yaml"), ruleset.drugs)
    result = json.loads(to_json(evaluate_patient(p, ruleset)))
    assert any(e["drug"] == "apremilast" and e["rule"] == "safety.pregnancy.not-established"
               for e in result["excluded"])


@pytest.mark.parametrize("test, words", [
    ("pregnancy == not_established and potency", "'potency' in"),
    ("pregnancy ==", "not a test"),
    ("stage == nowhere", "selects no drug"),
])
def test_a_wrong_selection_is_an_error_with_its_line(tmp_path: Path, test: str,
                                                     words: str) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    path = folder / "safety.yaml"
    text = path.read_text()
    path.write_text(text.replace("exclude: {drugs where: breastfeeding == not_established}",
                                 f"exclude: {{drugs where: {test}}}"))
    ruleset, findings = check_folder(folder)
    errors = [f for f in findings if f.severity == "error"]
    assert ruleset is None and len(errors) == 1 and words in errors[0].message
    assert errors[0].file.endswith("safety.yaml") and errors[0].field.endswith("then.exclude")
    line = path.read_text().splitlines()[errors[0].line - 1]
    assert "drugs where" in line


def test_a_catalogue_with_monitoring_and_properties_is_cached(tmp_path: Path,
                                                              monkeypatch) -> None:
    """The rule-set cache rebuilds the new entry fields exactly (a forward reference
    left `monitoring` a plain mapping, and such a rule set was never cached)."""
    from cledecide.engine import rulecache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLEDECIDE_NO_CACHE", raising=False)
    folder = _folder(tmp_path)
    found = rulecache.probe(folder)
    ruleset, _ = check_folder(folder)
    assert found is not None and ruleset is not None
    rulecache.put(found, ruleset)
    again = rulecache.get(found, str(folder))
    assert again == ruleset
    # A fresh process reads it from the cache before any model is validated.
    import subprocess
    import sys
    code = ("from cledecide.engine import rulecache; import sys; f = sys.argv[1]; "
            "r = rulecache.get(rulecache.probe(f), f); "
            "print(r.drugs['apremilast'].monitoring.items[0].what)")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "clasi_review"


def test_a_code_map_drug_the_catalogue_lacks_is_an_error_with_its_line(tmp_path: Path) -> None:
    """The FHIR code map's drugs are the catalogue's too (a record it made would name a
    drug the rules do not know)."""
    from cledecide.engine.errors import RuleError
    from cledecide.fhir_r4.codemap import load_codemap
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    path = folder / "fhir-map.yaml"
    text = path.read_text()
    assert "\nmedications:\n  topical_corticosteroid:" in text
    path.write_text(text.replace("\nmedications:\n  topical_corticosteroid:",
                                 "\nmedications:\n  apremilast:", 1))
    with pytest.raises(RuleError) as info:
        load_codemap(folder)
    assert "apremilast" in info.value.message and info.value.line
    assert info.value.file.endswith("fhir-map.yaml")
    # With apremilast in drugs.yaml it is a drug of the map.
    good = _folder(tmp_path / "with-apremilast")
    path = good / "fhir-map.yaml"
    path.write_text(path.read_text().replace("\nmedications:\n  topical_corticosteroid:",
                                             "\nmedications:\n  apremilast:", 1))
    assert "apremilast" in load_codemap(good).spec.medications


def test_an_edited_catalogue_is_read_again_an_unchanged_one_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record validated asks for the catalogue: an unchanged drugs.yaml costs a
    stat, not a read (the service's per-request cost), and an edited one is read
    again (a long-running process sees the edit)."""
    import cledecide.engine.validate as validate
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    assert "apremilast" not in catalogue_drugs(folder)
    reads: list[Path] = []
    real = validate.read_bytes
    monkeypatch.setattr(validate, "read_bytes",
                        lambda path, *a: reads.append(path) or real(path, *a))
    assert catalogue_drugs(folder) == catalogue_drugs(folder)
    assert reads == []
    path = folder / "drugs.yaml"
    path.write_text(path.read_text().rstrip("\n") + "\n" + PLACEHOLDER)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert "apremilast" in catalogue_drugs(folder) and reads == [path]
    # the shipped folder is found once per process
    catalogue_drugs()
    monkeypatch.setattr("importlib.resources.files", lambda *_: 1 / 0)
    assert "hydroxychloroquine" in catalogue_drugs()
