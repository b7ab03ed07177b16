"""Reproductive safety, derived from the drug catalogue (issue 9, item 4).

For every drug with a reproductive profile in drugs.yaml, hypothesis generates women,
men and unknowns around each requirement's boundary (contraception and how long it has
been used, the pre-start pregnancy tests, the window after the last dose, planning,
breastfeeding, condoms) and checks the behaviour the catalogue promises. The oracle
reads the catalogue itself, so a drug added next year is covered without a new test.

To make sure every drug is actually in play, the rules run with one extra probe file
that suggests starting each of them for every patient: then no drug is offered only
because the shipped ladder happened not to reach it. Each property's docstring names
a mutation it catches, and `test_*_catches_*` applies it.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import Any

import pytest
from hypothesis import given, strategies as st

from cledecide import evaluate_patient, load_ruleset, to_json
from cledecide.engine.load import parse
from cledecide.engine.validate import validate_patient

from conftest import RULES

AS_OF = dt.date(2026, 11, 20)
SHIPPED = load_ruleset(RULES)
PROFILED = [d for d, e in SHIPPED.drugs.items() if e.reproductive]
STARTING = ("start", "add", "switch", "reintroduce")


def day(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


def probe_rules(folder) -> None:
    """Add a rule file that suggests starting every profiled drug, for everyone."""
    lines = ["stage: general", "rules:"]
    for i, d in enumerate(PROFILED):
        lines += [f"  - id: probe.start.{d}", f"    title: Probe {d}",
                  f"    priority: {90 - i}", f"    when: {d}_status != current",
                  f"    then: {{recommend: {{action: start, drug: {d}}}}}",
                  "    because: Test probe that puts the drug in play.",
                  "    evidence: [kuhn-2017]"]
    (folder / "probe.yaml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probed") / "rules"
    shutil.copytree(RULES, folder)
    probe_rules(folder)
    return load_ruleset(folder)


def run(record: dict[str, Any], ruleset) -> dict[str, Any]:
    model = validate_patient(parse(json.dumps(record).encode(), "p.json"))
    return json.loads(to_json(evaluate_patient(model, ruleset, "x")))


def days_of(ruleset, name: str | None) -> int | None:
    return ruleset.days(name) if name else None


# ------------------------------------------------------------------ the oracle

def unmet(ruleset, drug: str, record: dict[str, Any]) -> list[str]:
    """The requirements of starting `drug` (drugs.yaml) this record does not meet;
    unknown counts as not met (fail safe)."""
    profile = ruleset.drugs[drug].reproductive
    r = record.get("reproductive") or {}
    out: list[str] = []
    if record["demographics"]["sex"] == "male":
        man = profile.man
        if man is None:
            return out
        partner = r.get("partner_may_conceive", "unknown")
        # Condoms the programme requires (thalidomide, lenalidomide); where the label only
        # advises them and guidelines consider paternal use compatible, a warning says so.
        if man.condoms == "required" and partner in (True, "unknown") and \
                r.get("condom_use") is not True:
            out.append("condoms")
        if man.stop_before_conception and r.get("planning_to_father") is True:
            out.append("planning to father")
        return out
    w = profile.woman
    cbp = r.get("childbearing_potential", "unknown")
    pregnant = r.get("pregnant", "unknown")
    if w.pregnancy != "compatible" and pregnant in (True, "unknown"):
        out.append("pregnancy")
    bf = r.get("breastfeeding", "unknown")
    if w.breastfeeding == "avoid" and (bf is True or (bf == "unknown" and cbp is not False)):
        out.append("breastfeeding")
    if w.stop_before_conception and r.get("planning_pregnancy") is True and cbp is not False:
        out.append("planning")
    if cbp is False:
        return out
    ok = {"none": {"none", "one_method", "two_methods", "abstinence"},
          "one_method": {"one_method", "two_methods", "abstinence"},
          "two_methods": {"two_methods", "abstinence"}}[w.contraception]
    method = r.get("contraception", "unknown")
    if method not in ok:
        out.append("contraception")
    if w.before_start and method in ("one_method", "two_methods", "abstinence"):
        since = r.get("contraception_since")
        need = days_of(ruleset, w.before_start) / 7
        if since is None or (AS_OF - dt.date.fromisoformat(since)).days / 7 < need - 1e-9:
            out.append("contraception since")
    if w.tests_before_start:
        tests = sorted(set(r.get("negative_pregnancy_tests") or []))
        within = days_of(ruleset, w.last_test_within)
        if not tests or (within is not None and
                         (AS_OF - dt.date.fromisoformat(tests[-1])).days > within):
            out.append("recent test")
        if w.tests_before_start >= 2:
            if len(tests) < 2:
                out.append("second test")
            else:
                gap = (dt.date.fromisoformat(tests[-1]) - dt.date.fromisoformat(tests[-2])).days
                if (w.tests_apart_days_min is not None and gap < w.tests_apart_days_min) or \
                        (w.tests_apart_days_max is not None and gap > w.tests_apart_days_max):
                    out.append("test gap")
    if w.after_last_dose and days_of(ruleset, w.after_last_dose) >= 364 and \
            r.get("planning_pregnancy", "unknown") == "unknown":
        out.append("pregnancy plans")
    return out


# ------------------------------------------------------------------ generators

def _near(n: int | None) -> list[int]:
    return [] if n is None else [max(0, n - 1), n, n + 1]


@st.composite
def women(draw, ruleset=SHIPPED) -> tuple[str, dict[str, Any]]:
    """A woman around each boundary of one profiled drug, which she has never taken."""
    drug = draw(st.sampled_from(PROFILED))
    w = ruleset.drugs[drug].reproductive.woman
    tri = st.sampled_from([True, False, "unknown"])
    rep: dict[str, Any] = {
        "childbearing_potential": draw(st.sampled_from([True, True, False, "unknown"])),
        "pregnant": draw(st.sampled_from([False, False, False, True, "unknown"])),
        "breastfeeding": draw(st.sampled_from([False, False, True, "unknown"])),
        "contraception": draw(st.sampled_from(["none", "one_method", "two_methods",
                                               "abstinence", "unknown"])),
        "planning_pregnancy": draw(st.sampled_from([False, False, True, "unknown"])),
    }
    before = days_of(ruleset, w.before_start)
    since = draw(st.sampled_from(_near(before) + [400, None]))
    if since is not None:
        rep["contraception_since"] = day(since)
    within = days_of(ruleset, w.last_test_within) or 7
    latest = draw(st.sampled_from(_near(within) + [0]))
    gaps = _near(w.tests_apart_days_min) + _near(w.tests_apart_days_max) + [12]
    shape = draw(st.sampled_from(["none", "one", "two"]))
    if shape == "one":
        rep["negative_pregnancy_tests"] = [day(latest)]
    elif shape == "two":
        rep["negative_pregnancy_tests"] = [day(latest), day(latest + draw(st.sampled_from(gaps)))]
    if draw(tri) is True:
        rep["oestrogen_contraception"] = True
    if rep["childbearing_potential"] is False:  # contradictions are invalid input
        rep["pregnant"] = False if rep["pregnant"] is True else rep["pregnant"]
        rep["planning_pregnancy"] = False
    record = _record("female", draw(st.integers(18, 45)), rep)
    return drug, record


@st.composite
def men(draw) -> tuple[str, dict[str, Any]]:
    drug = draw(st.sampled_from([d for d in PROFILED if SHIPPED.drugs[d].reproductive.man]))
    tri = st.sampled_from([True, False, "unknown"])
    rep = {"partner_may_conceive": draw(tri), "condom_use": draw(tri),
           "planning_to_father": draw(tri)}
    return drug, _record("male", draw(st.integers(18, 70)), rep)


def _record(sex: str, age: int, rep: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "repro", "as_of": AS_OF.isoformat(),
        "demographics": {"age": age, "sex": sex, "weight_kg": 65},
        "reproductive": rep, "smoker": False,
        "diagnosis": {"subtype": "DLE", "extent": "widespread", "systemic_lupus": False},
        "activity": [{"date": day(0), "clasi_activity": 16}],
        "treatments": [{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                        "start": day(900), "response": "partial"}],
        "conditions": [], "symptoms": [],
        "labs": {k: {"value": v, "date": day(3)} for k, v in
                 (("egfr", 95), ("creatinine", 65), ("neutrophils", 4), ("platelets", 260),
                  ("alt", 18))} | {"g6pd": {"value": "normal", "date": day(900)}},
        "eye_exams": [{"date": day(800), "result": "normal"}],
    }


# ------------------------------------------------------------------ properties

def offered_starts(result: dict[str, Any]) -> set[str]:
    steps = [result["recommendation"]] + result["alternatives"]
    return {s["drug"] for s in steps if s["action"] in STARTING + ("increase",) and s["drug"]}


def violations_requirements(ruleset, drug: str, record: dict[str, Any],
                            result: dict[str, Any]) -> list[str]:
    """No start, add, switch, increase or reintroduction of a drug whose requirements
    the patient does not meet (or that are unknown). Mutation caught: the generated
    `catalogue.contraception-since.*` rules dropped (a woman with contraception begun
    last week is then offered thalidomide)."""
    missing = unmet(ruleset, drug, record)
    if missing and drug in offered_starts(result):
        return [f"{drug} offered; unmet: {missing}"]
    return []


@given(case=st.one_of(women(), men()))
def test_no_drug_offered_whose_requirements_are_not_met(probed, case) -> None:
    drug, record = case
    assert violations_requirements(probed, drug, record, run(record, probed)) == []


@given(case=women())
def test_met_requirements_let_the_drug_through(probed, case) -> None:
    """The converse, so the rules are not simply refusing everything: when every
    requirement of the drug is met (and nothing else excludes it), the probe's start
    stays on offer. Mutation caught: an exclusion that ignores its condition (e.g.
    `catalogue.pregnancy-tests.*` firing for any woman)."""
    drug, record = case
    if unmet(probed, drug, record):
        return
    result = run(record, probed)
    others = {e["drug"]: e["rule"] for e in result["excluded"] if e["drug"] == drug}
    assert drug in offered_starts(result) or others, (drug, others)
    assert not any(rule.startswith("catalogue.") and not rule.startswith(
        ("catalogue.breastfeeding", "catalogue.combination")) for rule in others.values()), others


@st.composite
def stopped_in_window(draw) -> tuple[str, dict[str, Any], int]:
    drug = draw(st.sampled_from([d for d in PROFILED
                                 if SHIPPED.drugs[d].reproductive.woman.after_last_dose]))
    w = SHIPPED.drugs[drug].reproductive.woman
    window = days_of(SHIPPED, w.after_last_dose)
    since = draw(st.sampled_from([1, 7, window // 2, window - 8, window + 8]))
    rep = {"childbearing_potential": True, "pregnant": True, "breastfeeding": False,
           "contraception": "none"}
    record = _record("female", 30, rep)
    dose = ({"dose_mg_per_week": 15} if SHIPPED.drugs[drug].dosing and
            SHIPPED.drugs[drug].dosing.unit == "mg_per_week" else {"dose_mg_per_day": 10})
    record["treatments"].append({"drug": drug, **dose, "start": day(since + 120),
                                 "stop": day(since), "stop_reason": "remission",
                                 "response": "complete"})
    return drug, record, since


@given(case=stopped_in_window())
def test_pregnant_inside_the_window_is_critical(case) -> None:
    """Pregnant within a drug's after-the-last-dose window: a critical warning naming
    the drug, its stop date and the window, with teratology counselling; outside the
    window none. Mutation caught: `catalogue.washout.*` built with the window in days
    read as weeks (7x too long) or dropped."""
    drug, record, since = case
    result = run(record, SHIPPED)
    window = days_of(SHIPPED, SHIPPED.drugs[drug].reproductive.woman.after_last_dose)
    label = SHIPPED.drugs[drug].label
    hits = [w for w in result["warnings"] if w["severity"] == "critical"
            and w["rule"] == f"catalogue.washout.{drug}"]
    if since * 7 / 7 < window - 7:  # clearly inside (weeks are rounded to 0.01)
        assert hits and label in hits[0]["message"] and day(since) in hits[0]["message"]
        assert "teratology" in hits[0]["message"]
    elif since > window + 7:
        assert not hits


@given(drug=st.sampled_from(PROFILED), situation=st.sampled_from(["breastfeeding", "planning"]))
def test_current_drug_is_stopped_when_breastfeeding_or_planning(drug, situation) -> None:
    """Breastfeeding while taking an incompatible drug: the step stops it (critical);
    planning a pregnancy: a stop that names it and the conception date, hydroxy-
    chloroquine kept. Mutation caught: `catalogue.breastfeeding.stop` or
    `catalogue.planning.stop` given a priority below the ladder."""
    rep = {"childbearing_potential": True, "pregnant": False, "breastfeeding":
           situation == "breastfeeding", "contraception": "two_methods",
           "contraception_since": day(300), "planning_pregnancy": situation == "planning"}
    record = _record("female", 30, rep)
    record["activity"] = [{"date": day(0), "clasi_activity": 3}]
    dose = ({"dose_mg_per_week": 15} if SHIPPED.drugs[drug].dosing.unit == "mg_per_week"
            else {"dose_mg_per_day": SHIPPED.drugs[drug].dosing.steps_mg[0]
                  if SHIPPED.drugs[drug].dosing.steps_mg else 20})
    record["treatments"].append({"drug": drug, **dose, "start": day(200),
                                 "response": "complete"})
    result = run(record, SHIPPED)
    rec = result["recommendation"]
    label = SHIPPED.drugs[drug].label
    assert rec["action"] == "stop" and label in rec["summary"], rec
    if situation == "breastfeeding":
        assert any(w["severity"] == "critical" and label in w["message"]
                   for w in result["warnings"])
    else:
        summary = rec["summary"]
        assert "keep hydroxychloroquine" in summary.lower() and "conception from" in summary
    assert "hydroxychloroquine" not in (rec.get("stops") or [])


@given(clasi=st.sampled_from([10, 15, 30]), sle=st.booleans(),
       reason=st.sampled_from(["pregnancy", "patient_choice", "other"]))
def test_pregnant_and_off_hydroxychloroquine_with_active_disease_gets_it_back(
        clasi, sle, reason) -> None:
    """Never 'no drug' for a pregnant woman with active disease off hydroxychloroquine.
    Mutation caught: `safety.pregnancy.hydroxychloroquine` removed (the answer falls
    back to 'continue the current plan (no drug)')."""
    rep = {"childbearing_potential": True, "pregnant": True, "breastfeeding": False,
           "contraception": "none"}
    record = _record("female", 30, rep)
    record["diagnosis"]["systemic_lupus"] = sle
    record["activity"] = [{"date": day(0), "clasi_activity": clasi}]
    record["treatments"] = [{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                             "start": day(900), "stop": day(100), "stop_reason": reason,
                             "response": "complete"}]
    result = run(record, SHIPPED)
    rec = result["recommendation"]
    assert rec["drug"] == "hydroxychloroquine" and rec["action"] in ("start", "reintroduce")


# ------------------------------------------------------ the mutations they catch

def test_requirements_property_catches_dropped_contraception_since_rules(tmp_path,
                                                                          monkeypatch) -> None:
    from cledecide.engine import catalogue
    real = catalogue.generated_rules
    monkeypatch.setattr(catalogue, "generated_rules", lambda *a: [
        r for r in real(*a) if not r["id"].startswith("catalogue.contraception-since.")])
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    probe_rules(folder)
    (folder / "ruleset.yaml").write_text((folder / "ruleset.yaml").read_text()
                                         .replace("version: 0.1.0", "version: 0.1.0-mutant"))
    mutated = load_ruleset(folder)
    rep = {"childbearing_potential": True, "pregnant": False, "breastfeeding": False,
           "contraception": "two_methods", "contraception_since": day(6),
           "planning_pregnancy": False, "negative_pregnancy_tests": [day(0), day(12)],
           "oestrogen_contraception": False}
    record = _record("female", 30, rep)
    assert unmet(mutated, "thalidomide", record) == ["contraception since"]
    assert violations_requirements(mutated, "thalidomide", record, run(record, mutated))
