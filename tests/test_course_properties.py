"""Properties of treatment courses (issue 8): over generated records with courses in
every phase (in trial, responding, partial, failed, unjudged; at and below the top dose
step), the decide step keeps the catalogue's course invariants for every rule file.

Each property is a `violations_*` function (a list of what is wrong for one result) so
that the mutation it catches can be shown: the `test_*_catches_*` tests apply the
mutation named in the property's docstring and check that a known patient then
violates it. A property that cannot fail would prove nothing.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from cledecide import evaluate_patient, load_ruleset, to_json
from cledecide.engine import decide as D
from cledecide.engine.dosing import daily_amounts
from cledecide.engine.load import parse
from cledecide.engine.validate import validate_patient

from conftest import RULES

RULESET = load_ruleset(RULES)
DRUGS = RULESET.drugs
AS_OF = dt.date(2026, 11, 20)
STARTING = ("start", "add", "switch", "reintroduce")
SYSTEMIC = [d for d, e in DRUGS.items() if not e.course.adjunct and e.stage != "specialist"]


def day(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


def run(record: dict[str, Any]) -> dict[str, Any]:
    model = validate_patient(parse(json.dumps(record).encode(), "p.json"))
    return json.loads(to_json(evaluate_patient(model, RULESET, "x")))


BASE: dict[str, Any] = {
    "id": "course", "as_of": AS_OF.isoformat(),
    "demographics": {"age": 58, "sex": "female", "weight_kg": 70},
    "reproductive": {"childbearing_potential": False, "pregnant": False,
                     "breastfeeding": False, "contraception": "none"},
    "smoker": False,
    "diagnosis": {"subtype": "DLE", "extent": "widespread", "systemic_lupus": False},
    "activity": [], "treatments": [], "conditions": [], "symptoms": [],
    "labs": {"egfr": {"value": 90, "date": day(5)}, "creatinine": {"value": 70, "date": day(5)},
             "neutrophils": {"value": 3.5, "date": day(5)},
             "platelets": {"value": 250, "date": day(5)},
             "alt": {"value": 20, "date": day(5)},
             "g6pd": {"value": "normal", "date": day(900)}},
    "eye_exams": [{"date": day(300), "result": "normal"}],
}
HISTORY = [  # antimalarial- and immunosuppressant-refractory, as the refractory stage needs
    {"drug": "hydroxychloroquine", "dose_mg_per_day": 300, "start": day(1500),
     "response": "partial"},
    {"drug": "quinacrine", "dose_mg_per_day": 100, "start": day(1300), "stop": day(1100),
     "stop_reason": "inefficacy", "response": "none"},
]


def _dose(drug: str, draw) -> dict[str, float]:
    dosing = DRUGS[drug].dosing
    steps = dosing.steps_mg if dosing and dosing.steps_mg else [
        t.mg for t in (dosing.tablets if dosing else [])] or [100]
    value = draw(st.sampled_from(steps))
    if dosing is not None and dosing.unit == "mg_per_week":
        return {"dose_mg_per_week": value}
    return {"dose_mg_per_day": value}


@st.composite
def course_records(draw) -> dict[str, Any]:
    """A refractory history plus one or two current courses in any phase: started just
    inside or outside the trial period, with any response, at any dose step."""
    record = copy.deepcopy(BASE)
    record["treatments"] = copy.deepcopy(HISTORY)
    if draw(st.booleans()):
        record["treatments"].append({"drug": "methotrexate", "dose_mg_per_week": 20,
                                     "start": day(1000), "stop": day(700),
                                     "stop_reason": "inefficacy", "response": "none"})
    for drug in draw(st.lists(st.sampled_from([d for d in SYSTEMIC if d not in (
            "hydroxychloroquine", "quinacrine")]), min_size=1, max_size=2, unique=True)):
        trial = RULESET.days(DRUGS[drug].course.trial) or 90
        start = draw(st.sampled_from([14, trial - 1, trial, trial + 1, 200, 400]))
        course = {"drug": drug, "start": day(start),
                  "response": draw(st.sampled_from(["none", "partial", "complete", "unknown"]))}
        course.update(_dose(drug, draw))
        record["treatments"].append(course)
    before = draw(st.sampled_from([10, 14, 18, 25]))
    now = draw(st.sampled_from([0, 9, 10, 14, 30]))
    record["activity"] = [{"date": day(0), "clasi_activity": now},
                          {"date": day(1600), "clasi_activity": before}]
    record["conditions"] = draw(st.sampled_from([[], ["peripheral_neuropathy"]]))
    return record


# ------------------------------------------------------------------ properties

def _current(record: dict[str, Any]) -> set[str]:
    return {c["drug"] for c in record["treatments"] if not c.get("stop")}


def _phases(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["drug"]: c for c in result["courses"]}


def _steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    rec = result["recommendation"]
    return [rec] + result["alternatives"]


def violations_trial(record: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """No second drug (start, add, switch, reintroduce) while a current drug is in its
    trial period, unless a safety rule excludes that drug. Mutation caught: `_in_trial` in
    decide returning [] (the engine hold gone) with the shipped in-trial rules lowered below
    the ladder."""
    courses = _phases(result)
    excluded = {e["drug"] for e in result["excluded"]}
    # A course a safety rule excludes is not waited for (it should not go on at all).
    trials = [d for d, c in courses.items() if c["stop"] is None and c["phase"] == "in_trial"
              and not DRUGS[d].course.adjunct and d not in excluded]
    out = []
    for step in _steps(result):
        if step["action"] in STARTING and step["drug"] and step["drug"] not in trials and \
                not DRUGS[step["drug"]].course.adjunct and trials:
            out.append(f"{step['action']} {step['drug']} while {trials} in trial")
    return out


def violations_combination(record: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """A step never puts a new drug beside a current one that the catalogue does not
    combine with it, nor beside its never_with partner; two such drugs already taken
    together are flagged (critical for a never_with pair). Mutation caught: `_conflicts`
    returning () (an add on top of a drug that should stop)."""
    rec = result["recommendation"]
    after = _current(record) - set(rec.get("stops") or [])
    out = []
    if rec["action"] in STARTING and rec["drug"]:
        new = rec["drug"]
        for other in sorted(after - {new}):
            if not D.combinable(RULESET, new, other) or other in DRUGS[new].never_with:
                out.append(f"{rec['action']} {new} beside {other}")
    flagged = {w["rule"] for w in result["warnings"]}
    current = sorted(_current(record))
    for a in current:
        for b in current:
            if a < b and not D.combinable(RULESET, a, b) and \
                    f"catalogue.combination.{min(a, b, key=list(DRUGS).index)}." \
                    f"{max(a, b, key=list(DRUGS).index)}" not in flagged and \
                    "specialist" not in (DRUGS[a].stage, DRUGS[b].stage):
                out.append(f"{a} and {b} taken together without a warning")
    return out


def violations_escalation(record: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """A switch never stops a drug with a partial response below its top dose step,
    unless a safety rule excludes it or it caused an adverse event. Mutation caught:
    the `_escalation` call removed from decide."""
    rec = result["recommendation"]
    courses = _phases(result)
    excluded = {e["drug"] for e in result["excluded"]}
    out = []
    for d in rec.get("stops") or []:
        c = courses.get(d)
        if c and c["phase"] == "partial" and c["at_max_dose"] is False and d not in excluded:
            out.append(f"switch stops {d} at {c['dose']} (partial, below the top step)")
    return out


def violations_switch_names(record: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """A switch names what stops, and only drugs being taken. Mutation caught: a switch
    built without `stops` (the contract's 'switch from a current drug to another')."""
    rec = result["recommendation"]
    if rec["action"] != "switch":
        return []
    stops = rec.get("stops") or []
    if not stops:
        return ["switch without stops"]
    return [f"stops {d}, not current" for d in stops if d not in _current(record)]


def violations_dose(record: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """An increase is to a catalogue dose step (or a tablet regimen within the weight
    limit), never above the catalogue maximum. Mutation caught: `next_step` returning
    the current dose plus 5 mg (a dose no step lists)."""
    out = []
    for step in _steps(result):
        if step["action"] != "increase" or not step.get("dose") or step["drug"] is None:
            continue
        dosing = DRUGS[step["drug"]].dosing
        if dosing is None or not dosing.steps_mg or "previous effective" in step["dose"]:
            continue
        amount = float(step["dose"].split(" mg")[0])
        if amount not in dosing.steps_mg or (dosing.max_mg and amount > dosing.max_mg):
            out.append(f"increase {step['drug']} to {amount} (steps {dosing.steps_mg})")
    return out


PROPERTIES = [violations_trial, violations_combination, violations_escalation,
              violations_switch_names, violations_dose]


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.__name__)
@given(record=course_records())
def test_course_invariants(prop, record) -> None:
    assert prop(record, run(record)) == []


@given(record=course_records(), unit=st.sampled_from(["wrong_unit", "above_max"]))
def test_wrong_unit_or_above_maximum_is_always_critical(record, unit) -> None:
    """Mutation caught: the catalogue's generated dose rules (`_dose_rules`) dropped;
    both then give no critical warning."""
    drug, course = next(((c["drug"], c) for c in record["treatments"] if not c.get("stop")
                         and DRUGS[c["drug"]].dosing and DRUGS[c["drug"]].dosing.max_mg),
                        (None, None))
    if drug is None:
        return
    dosing = DRUGS[drug].dosing
    course.pop("dose_mg_per_day", None)
    course.pop("dose_mg_per_week", None)
    if unit == "wrong_unit" and dosing.unit == "mg_per_week":
        course["dose_mg_per_day"] = 15
    else:
        key = "dose_mg_per_week" if dosing.unit == "mg_per_week" else "dose_mg_per_day"
        course[key] = dosing.max_mg * 1.5
    result = run(record)
    critical = [w for w in result["warnings"] if w["severity"] == "critical"
                and w["rule"].startswith("catalogue.")]
    assert critical and any(DRUGS[drug].label.lower() in w["message"].lower() for w in critical)


def test_every_weight_limited_regimen_is_dispensable_for_every_weight() -> None:
    """Weights 20-200 kg: the regimen is made of the catalogue's tablets, its mean is
    within the limit, and it is the highest such mean. Mutation caught: rounding the
    limit up (`best_regimen` allowing a mean above the cap)."""
    from cledecide.engine.courses import weight_regimen
    for entry in DRUGS.values():
        if entry.dose_limit is None:
            continue
        made = daily_amounts(tuple(t.mg for t in entry.dosing.tablets))
        for weight in range(20, 201, 3):
            regimen, cap = weight_regimen(entry, weight)
            if regimen is None:
                assert min(made) / 2 > cap
                continue
            assert all(a in made or a == 0 for a in regimen.amounts)
            assert regimen.mean <= cap + 1e-9
            best = max([a for a in made if a <= cap] +
                       [(a + b) / 2 for a in made for b in made + [0] if (a + b) / 2 <= cap])
            assert regimen.mean == pytest.approx(best)


# ------------------------------------------------------ the mutations they catch

def _case(*courses: dict[str, Any], activity=(14, 20)) -> dict[str, Any]:
    record = copy.deepcopy(BASE)
    record["treatments"] = copy.deepcopy(HISTORY) + [
        {"drug": "methotrexate", "dose_mg_per_week": 20, "start": day(1000),
         "stop": day(700), "stop_reason": "inefficacy", "response": "none"}] + list(courses)
    record["activity"] = [{"date": day(0), "clasi_activity": activity[0]},
                          {"date": day(1600), "clasi_activity": activity[1]}]
    return record


THAL_IN_TRIAL = _case({"drug": "thalidomide", "dose_mg_per_day": 100, "start": day(28),
                       "response": "partial"})
ACITRETIN_PARTIAL = _case({"drug": "acitretin", "dose_mg_per_day": 25, "start": day(240),
                           "response": "partial"})
ACITRETIN_FAILED = _case({"drug": "acitretin", "dose_mg_per_day": 50, "start": day(240),
                          "response": "none"})
LENALIDOMIDE_PARTIAL = _case({"drug": "lenalidomide", "dose_mg_per_day": 5,
                              "start": day(130), "response": "partial"})


def test_the_cases_hold_on_the_shipped_build() -> None:
    for record in (THAL_IN_TRIAL, ACITRETIN_PARTIAL, ACITRETIN_FAILED, LENALIDOMIDE_PARTIAL):
        result = run(record)
        assert all(prop(record, result) == [] for prop in PROPERTIES)


def test_trial_property_catches_a_missing_trial_hold(monkeypatch, tmp_path) -> None:
    import shutil
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    text = (folder / "refractory.yaml").read_text()
    (folder / "refractory.yaml").write_text(text.replace(
        "  - id: refractory.in-trial\n    title: Thalidomide or lenalidomide within its trial "
        "period\n    priority: 76", "  - id: refractory.in-trial\n    title: Thalidomide or "
        "lenalidomide within its trial period\n    priority: 1"))
    monkeypatch.setattr(D, "_in_trial", lambda ruleset, ev, drug: [])
    mutated = load_ruleset(folder)
    model = validate_patient(parse(json.dumps(THAL_IN_TRIAL).encode(), "p.json"))
    result = json.loads(to_json(evaluate_patient(model, mutated, "x")))
    assert violations_trial(THAL_IN_TRIAL, result)


def test_combination_property_catches_adds_that_should_be_switches(monkeypatch) -> None:
    monkeypatch.setattr(D, "_conflicts", lambda ruleset, ev, drug: ())
    assert violations_combination(ACITRETIN_FAILED, run(ACITRETIN_FAILED))


def test_escalation_property_catches_a_switch_below_the_top_step(monkeypatch) -> None:
    monkeypatch.setattr(D, "_escalation", lambda ruleset, ev, c, excluded: None)
    assert violations_escalation(ACITRETIN_PARTIAL, run(ACITRETIN_PARTIAL))


def test_switch_property_catches_a_switch_without_stops(monkeypatch) -> None:
    import dataclasses
    real = D._candidates

    def forgetful(ruleset, ev, ctx):  # a switch that forgets what it stops
        return [dataclasses.replace(c, stops=()) if c.action == "switch" else c
                for c in real(ruleset, ev, ctx)]
    monkeypatch.setattr(D, "_candidates", forgetful)
    assert violations_switch_names(ACITRETIN_FAILED, run(ACITRETIN_FAILED))


def test_dose_property_catches_an_increase_off_the_steps(monkeypatch) -> None:
    monkeypatch.setattr(D, "next_step", lambda entry, dose: (dose or 0) + 2)
    assert violations_dose(LENALIDOMIDE_PARTIAL, run(LENALIDOMIDE_PARTIAL))
