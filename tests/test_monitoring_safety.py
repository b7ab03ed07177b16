"""Monitoring and safety behaviour (issue 3): each rule shown to act, through the JSON
contract, on small patients built from the baseline."""
from __future__ import annotations

import pytest

from conftest import REFRACTORY_HISTORY, excluded, monitoring, offered, patient, run

TERATOGENS = {"thalidomide", "lenalidomide", "methotrexate", "mycophenolate", "acitretin",
              "isotretinoin"}
LEN_STOPPED = [*REFRACTORY_HISTORY,
               {"drug": "lenalidomide", "dose_mg_per_day": 5, "start": "2026-03-01",
                "stop": "2026-10-30", "stop_reason": "remission", "response": "complete"}]


def rules_fired(result) -> set[str]:
    return {t["rule"] for t in result["trace"]}


# ------------------------------------------------------------------- relapse

def test_relapse_watch_dates_every_two_weeks_until_week_8() -> None:
    r = run(patient(treatments=LEN_STOPPED, activity=[
        {"date": "2026-11-20", "clasi_activity": 0}, {"date": "2026-10-30", "clasi_activity": 0}]))
    assert r["recommendation"]["action"] == "continue"
    watch = [m for m in r["monitoring"] if m["what"] == "relapse_watch"][0]
    assert "2026-11-27" in watch["when"] and "2026-12-25" in watch["when"]
    assert "2026-11-13" not in watch["when"]  # past dates are not listed
    assert {"relapse_watch", "clasi_review"} <= monitoring(r)
    assert not {"lenalidomide", "thalidomide"} & offered(r)


def test_relapse_after_stop_reintroduces_at_last_effective_dose() -> None:
    r = run(patient(treatments=LEN_STOPPED, activity=[
        {"date": "2026-11-20", "clasi_activity": 6}, {"date": "2026-10-30", "clasi_activity": 0}]))
    rec = r["recommendation"]
    assert (rec["action"], rec["drug"]) == ("reintroduce", "lenalidomide")
    assert rec["dose"].startswith("5 mg/day")
    assert "cbc" in monitoring(r)


def test_relapse_after_reduction_increases_to_previous_dose() -> None:
    treatments = [*REFRACTORY_HISTORY,
                  {"drug": "lenalidomide", "dose_mg_per_day": 10, "start": "2026-03-01",
                   "stop": "2026-10-23", "stop_reason": "dose_reduced", "response": "complete"},
                  {"drug": "lenalidomide", "dose_mg_per_day": 5, "start": "2026-10-23",
                   "response": "unknown"}]
    r = run(patient(treatments=treatments, activity=[
        {"date": "2026-11-20", "clasi_activity": 8}, {"date": "2026-10-23", "clasi_activity": 0}]))
    rec = r["recommendation"]
    assert (rec["action"], rec["drug"]) == ("increase", "lenalidomide")
    assert rec["dose"].startswith("10 mg/day")


def test_reduction_without_relapse_is_watched() -> None:
    treatments = [*REFRACTORY_HISTORY,
                  {"drug": "lenalidomide", "dose_mg_per_day": 10, "start": "2026-03-01",
                   "stop": "2026-11-01", "stop_reason": "dose_reduced", "response": "complete"},
                  {"drug": "lenalidomide", "dose_mg_per_day": 5, "start": "2026-11-01"}]
    r = run(patient(treatments=treatments, activity=[
        {"date": "2026-11-20", "clasi_activity": 0}, {"date": "2026-11-01", "clasi_activity": 0}]))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == \
        ("continue", "lenalidomide")
    assert "relapse_watch" in monitoring(r)


def test_outside_window_sustained_remission_continues() -> None:
    treatments = [*REFRACTORY_HISTORY,
                  {"drug": "lenalidomide", "dose_mg_per_day": 5, "start": "2025-01-01",
                   "stop": "2026-01-10", "stop_reason": "remission", "response": "complete"}]
    r = run(patient(treatments=treatments, activity=[
        {"date": "2026-11-20", "clasi_activity": 0}, {"date": "2026-08-01", "clasi_activity": 0}]))
    assert r["recommendation"]["action"] == "continue"
    assert r["recommendation"]["rule"] == "monitoring.remission.sustained"
    assert "relapse_watch" not in monitoring(r)


# ----------------------------------------------------------- response review

def test_lenalidomide_start_has_two_week_review() -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY, conditions=["peripheral_neuropathy"]))
    assert r["recommendation"]["drug"] == "lenalidomide"
    review = [m for m in r["monitoring"] if m["what"] == "clasi_review"]
    assert review and "2 weeks" in review[0]["when"]


def test_antimalarial_efficacy_judged_at_three_months() -> None:
    r = run(patient(treatments=[{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                                 "start": "2026-10-01"}]))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == \
        ("continue", "hydroxychloroquine")
    review = [m for m in r["monitoring"] if m["what"] == "clasi_review"][0]
    assert "2026-12-31" in review["when"]


def test_sustained_complete_response_on_thalidomide_tapers() -> None:
    treatments = [*REFRACTORY_HISTORY,
                  {"drug": "thalidomide", "dose_mg_per_day": 100, "start": "2026-01-01",
                   "response": "complete"}]
    r = run(patient(treatments=treatments, activity=[
        {"date": "2026-11-20", "clasi_activity": 0}, {"date": "2026-09-01", "clasi_activity": 0}]))
    rec = r["recommendation"]
    assert (rec["action"], rec["drug"]) == ("reduce", "thalidomide")
    assert "maintenance" in rec["dose"] and "71%" in rec["rationale"]


# ------------------------------------------------------------- side effects

def on(drug: str, **course):
    return [*REFRACTORY_HISTORY, {"drug": drug, "dose_mg_per_day": 5 if drug == "lenalidomide"
                                  else 100, "start": "2026-09-01", **course}]


def test_thalidomide_paresthesia_stops_it() -> None:
    r = run(patient(treatments=on("thalidomide"), symptoms=["paresthesia"]))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == ("stop", "thalidomide")
    assert "nerve_conduction" in monitoring(r)
    assert "thalidomide" in excluded(r)


def test_lenalidomide_cytopenia_holds_it() -> None:
    r = run(patient(treatments=on("lenalidomide"), **{"labs.neutrophils.value": 0.8}))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == ("stop", "lenalidomide")
    assert "critical" in {w["severity"] for w in r["warnings"]}
    assert "cbc" in monitoring(r)


@pytest.mark.parametrize("drug", ["thalidomide", "lenalidomide"])
@pytest.mark.parametrize("symptom", ["leg_swelling", "chest_pain", "dyspnoea"])
def test_suspected_thromboembolism_stops_drug(drug, symptom) -> None:
    r = run(patient(treatments=on(drug), symptoms=[symptom]))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == ("stop", drug)
    assert any(w["severity"] == "critical" and "thromboembolism" in w["message"]
               for w in r["warnings"])


def test_lenalidomide_gastrointestinal_symptoms_warn() -> None:
    r = run(patient(treatments=on("lenalidomide"), symptoms=["gastrointestinal"]))
    assert "monitoring.lenalidomide.gastrointestinal" in {w["rule"] for w in r["warnings"]}


def test_retinal_toxicity_stops_hydroxychloroquine_and_excludes_chloroquine() -> None:
    r = run(patient(treatments=[{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                                 "start": "2020-01-01", "response": "complete"}],
                    eye_exams=[{"date": "2026-11-01", "result": "toxicity"}]))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == \
        ("stop", "hydroxychloroquine")
    assert {"hydroxychloroquine", "chloroquine"} <= excluded(r)
    assert "chloroquine" not in offered(r)


def test_hydroxychloroquine_above_weight_limit_is_reduced_with_computed_maximum() -> None:
    r = run(patient(**{"demographics.weight_kg": 55}, activity=[
        {"date": "2026-11-20", "clasi_activity": 3}],
        treatments=[{"drug": "hydroxychloroquine", "dose_mg_per_day": 400,
                     "start": "2024-01-01", "response": "complete"}]))
    rec = r["recommendation"]
    assert (rec["action"], rec["drug"]) == ("reduce", "hydroxychloroquine")
    assert "275 mg/day" in rec["dose"] and rec["dose"].startswith("reduce to 200 mg")


def test_chloroquine_above_weight_limit_is_reduced() -> None:
    r = run(patient(**{"demographics.weight_kg": 60}, activity=[
        {"date": "2026-11-20", "clasi_activity": 3}],
        treatments=[{"drug": "chloroquine", "dose_mg_per_day": 250, "start": "2024-01-01",
                     "response": "complete"}]))
    rec = r["recommendation"]
    assert (rec["action"], rec["drug"]) == ("reduce", "chloroquine")
    assert "138 mg/day" in rec["dose"]


# --------------------------------------------------------- screening schedules

@pytest.mark.parametrize("history, drug, words", [
    (REFRACTORY_HISTORY, "lenalidomide", {"cbc", "vte_signs"}),
    ([], "hydroxychloroquine", {"retinal_exam"}),
])
def test_screening_follows_the_suggested_drug(history, drug, words) -> None:
    extra = {"conditions": ["peripheral_neuropathy"]} if drug == "lenalidomide" else {}
    r = run(patient(treatments=history, **extra))
    assert r["recommendation"]["drug"] == drug
    assert words <= monitoring(r)


def test_methotrexate_screening() -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY[:2]))
    assert r["recommendation"]["drug"] == "methotrexate"
    assert {"cbc", "liver_function", "renal_function"} <= monitoring(r)


def test_thalidomide_screening_and_pregnancy_tests() -> None:
    """Two methods (without oestrogen) for 4 weeks or more, and two negative tests 10-14
    days apart with the second within a day (REMS): thalidomide may start."""
    r = run(patient(treatments=REFRACTORY_HISTORY, reproductive={
        "childbearing_potential": True, "pregnant": False, "breastfeeding": False,
        "planning_pregnancy": False, "contraception": "two_methods",
        "contraception_since": "2026-09-01", "oestrogen_contraception": False,
        "negative_pregnancy_tests": ["2026-11-07", "2026-11-19"]}))
    assert r["recommendation"]["drug"] == "thalidomide"
    assert {"nerve_conduction", "neuropathy_symptoms", "pregnancy_test", "vte_signs"} <= \
        monitoring(r)


def test_retinal_screening_yearly_after_five_years() -> None:
    r = run(patient(activity=[{"date": "2026-11-20", "clasi_activity": 2}],
                    treatments=[{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                                 "start": "2019-01-01", "response": "complete"}]))
    assert any("yearly" in m["when"] for m in r["monitoring"] if m["what"] == "retinal_exam")


# ------------------------------------------------------------ safety exclusions

def test_pregnancy_excludes_all_teratogens_and_stops_current_one() -> None:
    r = run(patient(treatments=on("methotrexate"), reproductive={
        "childbearing_potential": True, "pregnant": True, "breastfeeding": False,
        "contraception": "none"}))
    assert r["recommendation"]["action"] == "stop"
    assert "methotrexate" in r["recommendation"]["summary"]
    assert TERATOGENS <= excluded(r)
    assert not TERATOGENS & offered(r)


def test_unknown_pregnancy_asks_for_test_but_not_for_hydroxychloroquine() -> None:
    unknown = {"childbearing_potential": True, "pregnant": "unknown",
               "breastfeeding": False, "contraception": "unknown"}
    r = run(patient(reproductive=unknown))
    assert (r["recommendation"]["action"], r["recommendation"]["drug"]) == \
        ("start", "hydroxychloroquine")
    r = run(patient(reproductive=unknown, treatments=REFRACTORY_HISTORY))
    assert r["recommendation"]["action"] == "gather_data"
    assert {"reproductive.pregnant", "reproductive.contraception"} <= \
        {m["field"] for m in r["missing_data"]}
    assert not TERATOGENS & offered(r)


def test_missing_reproductive_block_in_woman_of_childbearing_age_is_unknown() -> None:
    data = patient(treatments=REFRACTORY_HISTORY, **{"demographics.age": 30})
    del data["reproductive"]
    r = run(data)
    assert r["recommendation"]["action"] == "gather_data"
    assert not TERATOGENS & offered(r)


@pytest.mark.parametrize("contraception", ["none", "one_method"])
def test_thalidomide_lenalidomide_need_two_methods(contraception) -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY, reproductive={
        "childbearing_potential": True, "pregnant": False, "breastfeeding": False,
        "contraception": contraception}))
    assert {"thalidomide", "lenalidomide"} <= excluded(r)
    assert not {"thalidomide", "lenalidomide"} & offered(r)


def test_g6pd_deficiency_excludes_dapsone() -> None:
    r = run(patient(**{"labs.g6pd.value": "deficient"}))
    assert "dapsone" in excluded(r)


def test_retinopathy_excludes_antimalarials() -> None:
    r = run(patient(conditions=["retinopathy"]))
    assert {"hydroxychloroquine", "chloroquine"} <= excluded(r)
    assert r["recommendation"]["drug"] != "hydroxychloroquine"


def test_neuropathy_excludes_thalidomide_cytopenia_excludes_lenalidomide() -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY, conditions=["cytopenia"]))
    assert r["recommendation"]["drug"] == "thalidomide"
    assert "lenalidomide" in excluded(r)


@pytest.mark.parametrize("changes", [
    {"conditions": ["liver_disease"]}, {"conditions": ["alcohol_misuse"]},
    {"labs.egfr.value": 25},
])
def test_methotrexate_contraindications(changes) -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY[:2], **changes))
    assert "methotrexate" in excluded(r)
    assert r["recommendation"]["drug"] != "methotrexate"


def test_breastfeeding_excludes_teratogens() -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY[:2], reproductive={
        "childbearing_potential": True, "pregnant": False, "breastfeeding": True,
        "contraception": "two_methods"}))
    assert TERATOGENS <= excluded(r)


def test_vte_history_warns_with_thalidomide() -> None:
    r = run(patient(treatments=REFRACTORY_HISTORY, conditions=["venous_thromboembolism"]))
    assert "safety.vte-risk" in {w["rule"] for w in r["warnings"]}


# ---------------------------------------------------- fail safe on stale data

@pytest.mark.parametrize("labs_change, field", [
    ({"labs.neutrophils.date": "2026-08-01"}, "labs.neutrophils"),
    ({"labs.platelets": None}, "labs.platelets"),
])
def test_stale_or_missing_cbc_before_lenalidomide_gathers_data(labs_change, field) -> None:
    data = patient(treatments=REFRACTORY_HISTORY, conditions=["peripheral_neuropathy"],
                   **labs_change)
    if data["labs"].get("platelets") is None:
        data["labs"].pop("platelets", None)
    r = run(data)
    assert r["recommendation"]["action"] == "gather_data"
    assert field in {m["field"] for m in r["missing_data"]}


def test_missing_g6pd_blocks_dapsone_only_when_considered() -> None:
    data = patient()
    del data["labs"]["g6pd"]
    r = run(data)
    assert "dapsone" not in excluded(r)  # not a candidate: no noise
    history = REFRACTORY_HISTORY[:2] + [
        {"drug": d, "start": "2024-01-01", "stop": "2024-08-01", "stop_reason": "inefficacy"}
        for d in ("methotrexate", "mycophenolate", "acitretin", "isotretinoin")]
    data = patient(treatments=history, **{"diagnosis.subtype": "SCLE"})
    del data["labs"]["g6pd"]
    r = run(data)
    assert "dapsone" in excluded(r)
    assert "labs.g6pd" in {m["field"] for m in r["missing_data"]}


def test_missing_liver_function_before_methotrexate_gathers_data() -> None:
    data = patient(treatments=REFRACTORY_HISTORY[:2])
    del data["labs"]["alt"]
    r = run(data)
    assert r["recommendation"]["action"] == "gather_data"
    assert "labs.alt" in {m["field"] for m in r["missing_data"]}


# -------------------------------------------------------- drug-induced SCLE

def test_suspected_drug_trigger_is_stopped_first() -> None:
    r = run(patient(**{"diagnosis.suspected_drug_trigger": "terbinafine",
                       "diagnosis.subtype": "SCLE"}))
    rec = r["recommendation"]
    assert rec["action"] == "stop" and rec["drug"] is None
    assert "terbinafine" in rec["summary"]


def test_hydroxychloroquine_never_combined_with_chloroquine() -> None:
    r = run(patient(treatments=[{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                                 "start": "2026-01-01", "response": "none"}]))
    actions = {(a["action"], a["drug"]) for a in r["alternatives"]}
    assert ("switch", "chloroquine") in actions
    assert ("add", "chloroquine") not in actions and ("start", "chloroquine") not in actions
