"""Decide stage: one step, never an excluded drug, data-blocked steps become gather_data."""
from __future__ import annotations


import yaml

from cledecide.engine.compile import compile_rules
from cledecide.engine.decide import decide, weight_dose
from cledecide.engine.evaluate import evaluate
from cledecide.engine.load import parse
from cledecide.engine.validate import validate_patient

from conftest import REFRACTORY_HISTORY, patient


def decision(ruleset, data):
    p = validate_patient(parse(yaml.safe_dump(data).encode(), "t.yaml"))
    ev = evaluate(p, compile_rules(ruleset))
    return decide(ruleset, ev)


def test_best_priority_wins_and_the_rest_are_alternatives(ruleset) -> None:
    d = decision(ruleset, patient(treatments=REFRACTORY_HISTORY))
    assert (d.recommendation.action, d.recommendation.drug) == ("add", "thalidomide")
    alts = [(a.action, a.drug) for a in d.alternatives]
    assert ("add", "lenalidomide") in alts
    priorities = [d.recommendation.priority] + [a.priority for a in d.alternatives]
    assert priorities == sorted(priorities, reverse=True)


def test_data_only_exclusion_of_the_best_step_gives_gather_data(ruleset) -> None:
    d = decision(ruleset, patient(treatments=REFRACTORY_HISTORY, reproductive={
        "childbearing_potential": True, "pregnant": "unknown", "breastfeeding": False,
        "contraception": "two_methods"}))
    assert d.recommendation.action == "gather_data"
    assert d.on_hold is not None and d.on_hold.drug == "thalidomide"
    assert "pregnancy test" in d.recommendation.summary
    assert all(a.drug not in ("thalidomide", "lenalidomide") for a in d.alternatives)


def test_hard_exclusion_moves_to_the_next_step(ruleset) -> None:
    d = decision(ruleset, patient(treatments=REFRACTORY_HISTORY,
                                  conditions=["peripheral_neuropathy"],
                                  **{"labs.neutrophils.value": 0.8}))
    # neuropathy excludes thalidomide, neutropenia excludes lenalidomide
    assert d.recommendation.drug not in ("thalidomide", "lenalidomide")
    assert {"thalidomide", "lenalidomide"} <= {e.drug for e in d.excluded}


def test_exclusion_never_blocks_stopping(ruleset) -> None:
    course = {"drug": "thalidomide", "dose_mg_per_day": 100, "start": "2026-06-01"}
    d = decision(ruleset, patient(treatments=REFRACTORY_HISTORY + [course], symptoms=["numbness"]))
    assert (d.recommendation.action, d.recommendation.drug) == ("stop", "thalidomide")
    assert "thalidomide" in {e.drug for e in d.excluded}


def test_start_becomes_add_on_top_of_systemic_therapy(ruleset) -> None:
    d = decision(ruleset, patient(treatments=REFRACTORY_HISTORY[:2]))
    assert (d.recommendation.action, d.recommendation.drug) == ("add", "methotrexate")


def test_weight_dose_is_a_dispensable_regimen_within_the_limit(ruleset) -> None:
    """Whole 200 mg tablets: 59 kg (limit 295) gets 200 mg daily; 70 kg (350) gets
    400/200 on alternate days (mean 300); 100 kg is capped at 400 mg/day."""
    text, maximum = weight_dose(ruleset, "hydroxychloroquine", 59)
    assert maximum == 295 and text.startswith("200 mg once daily")
    text, maximum = weight_dose(ruleset, "hydroxychloroquine", 70)
    assert maximum == 350 and text.startswith("400 mg and 200 mg on alternate days")
    assert "mean 300 mg/day" in text and "4.3 mg/kg/day" in text
    text, maximum = weight_dose(ruleset, "hydroxychloroquine", 100)
    assert maximum == 400 and text.startswith("400 mg once daily")
    text, maximum = weight_dose(ruleset, "hydroxychloroquine", None)
    assert maximum is None and "weigh the patient" in text


def test_chloroquine_dose_names_salt_and_base(ruleset) -> None:
    """The 2.3 mg/kg limit is applied to the phosphate salt (conservative) and the base
    is always stated: 70 kg -> 161 mg/day of phosphate -> 250 mg every other day."""
    text, maximum = weight_dose(ruleset, "chloroquine", 70)
    assert maximum == 161
    assert text.startswith("250 mg phosphate (= 150 mg base) every other day")
    text, _ = weight_dose(ruleset, "chloroquine", 110)
    assert text.startswith("250 mg phosphate (= 150 mg base) once daily")
    text, _ = weight_dose(ruleset, "chloroquine", 30)
    assert "no dispensable regimen" in text


def test_why_not_covers_current_and_next_stage(ruleset) -> None:
    d = decision(ruleset, patient(treatments=[{"drug": "hydroxychloroquine",
                                              "dose_mg_per_day": 300, "start": "2026-01-01",
                                              "response": "none"}]))
    why = {w.drug: w for w in d.why_not}
    assert why["chloroquine"].status == "outranked"
    assert "methotrexate" in why and why["methotrexate"].status == "not_indicated"
    assert "antimalarial refractory (not the case)" in why["methotrexate"].reason  # in words
