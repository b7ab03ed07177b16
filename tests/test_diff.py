"""`rules diff` (issue 24, "The diff misses doses"): the cohort and scenario diff
compares the whole step (action, drug, dose and regimen), the critical warnings and the
monitoring, and lists every patient whose advice changes, old -> new; data files such as
the drug catalogue are listed field by field."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cledecide.cli.main import app
from cledecide.reviewer import diff as D

from conftest import BASE, EXAMPLES, ROOT, RULES

runner = CliRunner()
SCENARIOS = ROOT / "scenarios"
HCQ_70KG = EXAMPLES / "cases" / "hydroxychloroquine-70kg-new.yaml"


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    return copy


def edit_drug(rules: Path, drug: str, old: str, new: str) -> None:
    """Change the first `old` inside one drug's entry of drugs.yaml."""
    path = rules / "drugs.yaml"
    text = path.read_text()
    start = text.index(f"\n  {drug}:\n")
    following = re.compile(r"\n  [a-z_]+:\n").search(text, start + 1)
    at = text.index(old, start)
    assert following is None or at < following.start(), f"{old} is not in {drug}'s entry"
    path.write_text(text[:at] + new + text[at + len(old):])


def test_the_reported_case_a_70_kg_patients_hydroxychloroquine_dose(rules: Path,
                                                                     tmp_path: Path) -> None:
    """The reviewer's report: 5 -> 6 mg/kg took a 70 kg patient from a mean of 300 mg/day
    (400 and 200 mg on alternate days) to 400 mg daily, and the diff said nothing but
    'drug hydroxychloroquine changed in drugs.yaml'."""
    edit_drug(rules, "hydroxychloroquine", "mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: 6.0")
    clinic = tmp_path / "clinic"
    clinic.mkdir()
    shutil.copy(HCQ_70KG, clinic / HCQ_70KG.name)
    r = cli("rules", "diff", RULES, rules, "--scenarios", SCENARIOS, "--patients", clinic)
    assert r.exit_code == 0, r.output
    out = r.output
    assert re.search(r"^~ drugs\.yaml:\d+: hydroxychloroquine\.dose_limit\.mg_per_kg_per_day: "
                     r"5\.0 -> 6\.0$", out, re.M), out
    assert "changed in drugs.yaml" not in out
    assert "cohort: 1 of 1 patients get different advice (step 0, dose 1 (the regimen 1)" \
        in out
    listing = out[out.index("every patient whose advice changes"):]
    assert f"  {clinic / HCQ_70KG.name}\n" in listing
    dose = next(x for x in listing.splitlines() if x.startswith("    dose: "))
    old, new = dose.removeprefix("    dose: ").split(" -> ")
    assert old.startswith("400 mg and 200 mg on alternate days (mean 300 mg/day);")
    assert "at most 5 mg/kg" in old
    assert new.startswith("400 mg once daily;") and "at most 6 mg/kg" in new
    # the scenario written for this patient is listed too, with its dose old -> new
    name = "widespread disease starts hydroxychloroquine within the weight limit " \
        "[demographics.weight_kg=70]"
    at = out.index(f"  ladder.yaml: {name}\n")
    assert out[at:].splitlines()[1].startswith(
        "    dose: 400 mg and 200 mg on alternate days (mean 300 mg/day)")


def test_the_library_reports_the_dose_change_as_data(rules: Path) -> None:
    edit_drug(rules, "hydroxychloroquine", "mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: 6.0")
    d = D.diff(RULES, rules, SCENARIOS, None, [str(HCQ_70KG)])
    (patient,) = d.cohort_patients
    assert patient.name == str(HCQ_70KG)
    assert patient.old_step == patient.new_step == "start hydroxychloroquine"
    assert [c.aspect for c in patient.changes] == ["dose"]
    assert patient.changes[0].regimen_changed
    assert d.cohort_changes == {}  # the step table counts action and drug changes only


def test_a_critical_warning_that_is_no_longer_critical_is_listed(rules: Path) -> None:
    path = rules / "safety.yaml"
    text = path.read_text()
    at = text.index("id: safety.oestrogen-contraception.apl")
    at = text.index("severity: critical", at)
    path.write_text(text[:at] + "severity: warning" + text[at + len("severity: critical"):])
    example = EXAMPLES / "cases" / "panniculitis-antiphospholipid-combined-pill.yaml"
    r = cli("rules", "diff", RULES, rules, "--scenarios", SCENARIOS, "--patients", example)
    assert r.exit_code == 0, r.output
    assert "~ changed safety.oestrogen-contraception.apl: then.warn.severity: critical -> " \
        "warning" in r.output
    lines = r.output[r.output.index("every patient whose advice changes"):].splitlines()
    assert lines[1] == f"  {example}"
    warned = [x for x in lines if x.startswith(
        "    critical warning [safety.oestrogen-contraception.apl]: ")]
    assert len(warned) == 1 and warned[0].endswith(" -> (none)")
    assert "critical warnings 1" in r.output


def test_a_monitoring_schedule_change_is_listed(rules: Path) -> None:
    path = rules / "monitoring.yaml"
    text = path.read_text()
    at = text.index("id: monitoring.methotrexate.labs")
    old = "when: at baseline, then every 2-4 weeks at the start"
    at = text.index(old, at)
    path.write_text(text[:at] + "when: at baseline, then every 2 weeks at the start"
                    + text[at + len(old):])
    example = EXAMPLES / "cases" / "methotrexate-5-weeks.yaml"
    r = cli("rules", "diff", RULES, rules, "--scenarios", SCENARIOS, "--patients", example)
    assert r.exit_code == 0, r.output
    assert "~ changed monitoring.methotrexate.labs: then.monitor: [" in r.output
    listing = r.output[r.output.index("every patient whose advice changes"):].splitlines()
    assert listing[1:] == [
        f"  {example}",
        "    monitoring cbc [monitoring.methotrexate.labs]: at baseline, then every 2-4 weeks "
        "at the start (after the start on 2026-10-15), then every 8-12 weeks (verify) -> at "
        "baseline, then every 2 weeks at the start (after the start on 2026-10-15), then "
        "every 8-12 weeks (verify)"]
    assert "cohort: 1 of 1 patients get different advice (step 0, dose 0 (the regimen 0), " \
        "critical warnings 0, monitoring 1)" in r.output


def test_identical_rule_sets_change_nobody(rules: Path, tmp_path: Path) -> None:
    """Nothing in the compared advice depends on the run (a clock, an order, a folder
    name): a copy of the rules changes no scenario, example or cohort patient."""
    clinic = tmp_path / "clinic.jsonl"
    records = []
    for i, (weight, clasi) in enumerate([(43, 18), (70, 18), (90, 5), (55, 30)]):
        data = json.loads(json.dumps(BASE))
        data["id"] = f"p{i}"
        data["demographics"]["weight_kg"] = weight
        data["activity"] = [{"date": "2026-11-20", "clasi_activity": clasi}]
        records.append(json.dumps(data))
    clinic.write_text("\n".join(records) + "\n")
    d = D.diff(RULES, rules, SCENARIOS, EXAMPLES, [str(clinic), str(EXAMPLES / "cases")])
    assert (d.added, d.removed, d.changed, d.other) == ([], [], {}, [])
    assert d.outcomes == [] and d.cohort_patients == []
    assert d.cohort_total == 4 + len(list((EXAMPLES / "cases").glob("*.yaml")))
    assert d.cohort_failed == 0


def test_compare_lists_each_aspect_old_to_new() -> None:
    def result(dose: str, warnings: list, monitoring: list) -> dict:
        return {"recommendation": {"action": "start", "drug": "methotrexate", "dose": dose,
                                   "rule": "r.start", "stops": []},
                "warnings": warnings, "monitoring": monitoring}
    crit = {"severity": "critical", "message": "stop now", "rule": "s.stop"}
    info = {"severity": "info", "message": "sun", "rule": "g.sun"}
    labs = {"what": "cbc", "when": "every 4 weeks", "rule": "m.cbc", "reason": "x"}
    a = result("15 mg once weekly", [info], [labs])
    assert D.compare("p", a, a) is None
    b = result("20 mg once weekly", [info, crit], [dict(labs, when="every 2 weeks")])
    change = D.compare("p", a, b)
    assert change is not None
    assert [(c.aspect, c.old, c.new) for c in change.changes] == [
        ("dose", "15 mg once weekly", "20 mg once weekly"),
        ("monitoring cbc [m.cbc]", "every 4 weeks", "every 2 weeks"),
        ("critical warning [s.stop]", "(none)", "stop now"),
    ]
    assert change.kinds == {"dose", "monitoring", "critical warnings"}
    # an info warning is not compared: only critical ones
    assert D.compare("p", a, result("15 mg once weekly", [], [labs])) is None


def test_field_changes_of_a_catalogue_entry() -> None:
    old = {"drugs": {"hydroxychloroquine": {"dosing": {"max_mg": 400,
                                                        "tablets": [{"mg": 200}]}}}}
    new = {"drugs": {"hydroxychloroquine": {"dosing": {"max_mg": 400,
                                                        "tablets": [{"mg": 200}, {"mg": 300}]}},
                     "apremilast": {"label": "apremilast"}}}
    assert D.field_changes(old, new) == [
        (("drugs", "hydroxychloroquine", "dosing", "tablets"), "[{mg: 200}]",
         "[{mg: 200}, {mg: 300}]"),
        (("drugs", "apremilast", "label"), "(none)", "apremilast")]
    assert D.field_changes(new, old)[1] == (("drugs", "apremilast", "label"), "apremilast",
                                            "(none)")


def test_a_rule_template_change_is_listed_by_template_id(rules: Path) -> None:
    path = rules / "reproductive-templates.yaml"
    text = path.read_text()
    at = text.index("  - id: catalogue.planning.washout.{{drug}}")
    at = text.index("priority: ", at)
    end = text.index("\n", at)
    old_priority = text[at + len("priority: "):end]
    path.write_text(text[:at] + f"priority: {int(old_priority) - 1}" + text[end:])
    lines = D.data_file_changes(RULES, rules)
    assert any(re.fullmatch(r"reproductive-templates\.yaml:\d+: woman\.catalogue\.planning\."
                            r"washout\.\{\{drug\}\}\.priority: " + old_priority + " -> "
                            + str(int(old_priority) - 1), x) for x in lines), lines


def test_the_regimen_is_the_first_clause_without_its_explanations() -> None:
    assert D.regimen("400 mg and 200 mg on alternate days (mean 300 mg/day); 4.3 mg/kg/day "
                     "(at most 5 mg/kg ...)") == "400 mg and 200 mg on alternate days"
    assert D.regimen("no dispensable regimen is within the limit (at most 5 mg/kg x 2 kg "
                     "= 10 mg/day): a specialist decides the dose") == \
        D.regimen("no dispensable regimen is within the limit (at most 6 mg/kg x 2 kg "
                  "= 12 mg/day): a specialist decides the dose")


def test_the_rulebook_changes_page_lists_each_patient_old_to_new(rules: Path,
                                                                 tmp_path: Path) -> None:
    from cledecide.rulebook.site import build
    edit_drug(rules, "hydroxychloroquine", "mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: 6.0")
    build(tmp_path / "site", rules, since=str(RULES), patients=[str(HCQ_70KG)])
    page = (tmp_path / "site" / "changes.html").read_text()
    assert "hydroxychloroquine.dose_limit.mg_per_kg_per_day: 5.0 -&gt; 6.0" in page
    assert "1 of 1 patients get different advice" in page
    row = re.search(r'<table id="cohort-patients">.*?<tbody>\s*<tr>(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells[:2] == [str(HCQ_70KG), "dose"]
    assert cells[2].startswith("400 mg and 200 mg on alternate days")
    assert cells[3].startswith("400 mg once daily")


def test_each_patients_advice_under_a_rule_set_is_kept_between_runs(
        rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The edit loop diffs against the same folder again and again: the second run
    reads every patient's advice from the cache and reports the same; without the cache
    (or with another rule set) the patients are evaluated again."""
    import cledecide.cohort.stream as stream
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLEDECIDE_NO_CACHE", raising=False)
    edit_drug(rules, "hydroxychloroquine", "mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: 6.0")
    first = D.format_diff(D.diff(RULES, rules, SCENARIOS, EXAMPLES, [str(HCQ_70KG)]))
    assert str(HCQ_70KG) in first

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated again")
    monkeypatch.setattr(stream, "evaluate_all", refuse)
    assert D.format_diff(D.diff(RULES, rules, SCENARIOS, EXAMPLES, [str(HCQ_70KG)])) == first
    edit_drug(rules, "hydroxychloroquine", "mg_per_kg_per_day: 6.0", "mg_per_kg_per_day: 5.5")
    with pytest.raises(AssertionError, match="evaluated again"):
        D.diff(RULES, rules, SCENARIOS, None, [str(HCQ_70KG)])
    monkeypatch.setenv("CLEDECIDE_NO_CACHE", "1")
    with pytest.raises(AssertionError, match="evaluated again"):
        D.diff(RULES, RULES, SCENARIOS, None, [str(HCQ_70KG)])
