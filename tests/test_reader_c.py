"""Reader C's findings (a prescribing dermatologist, 2026-11-29), each as the principle of
its class, over the combined-risk patients of test_combined_risks and small generators
of their own. The reader's patients are scenarios (scenarios/reader-c.yaml)."""
from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conftest import REFRACTORY_HISTORY, patient, run
from test_combined_risks import (RULESET, course, current_drugs, risky_patients, step_stops,
                                 women_with_oestrogen_and_apl)


def taken_away(result: dict[str, Any]) -> set[str]:
    """What the step stops for good: a hold until a requirement is met keeps the drug
    it holds, unless its 'Then' is another step."""
    rec = result["recommendation"]
    then = rec["summary"].split(" Then: ", 1)[1] if " Then: " in rec["summary"] else ""
    held = "until the requirement is met" in rec["summary"]
    return {d for d in step_stops(result)
            if not (held and d == rec["drug"] and (not then or (
                then.startswith(("continue", "increase", "reintroduce"))
                and RULESET.drugs[d].label.lower() in then.lower())))}


# ------------------------------------------------------------------ F8 (a)
@given(risky_patients())
def test_a_drug_that_goes_on_keeps_its_monitoring(record) -> None:
    """Every always-shown item of a fired monitoring rule about a drug taken now that the
    step does not take away is in the list (p06: lenalidomide held until condoms, then
    continued, with neutrophils 1.3, had no blood count and no VTE signs)."""
    result = run(record, RULESET)
    gone = taken_away(result)
    shown = {(m["what"], m["rule"]) for m in result["monitoring"]}
    for rule_id in {t["rule"] for t in result["trace"]}:
        rule = RULESET.by_id.get(rule_id)
        if rule is None or rule.spec.then.recommend:
            continue
        for spec in rule.spec.then.monitor or []:
            if (spec.drug in current_drugs(record) and spec.drug not in gone
                    and spec.shown_from_day is None and spec.shown_until_day is None
                    and spec.counted_from_stop_of is None):
                assert (spec.what, rule_id) in shown, (spec.what, rule_id,
                                                       result["recommendation"]["summary"])


# ------------------------------------------------------------------ F8 (b)
def window_open(record: dict[str, Any], drug: str) -> dt.date | None:
    """The end of a stopped teratogen's after-the-last-dose interval, if it still runs
    (worked out here from the catalogue)."""
    woman = RULESET.drugs[drug].reproductive.woman
    days = dt.timedelta(days=RULESET.days(woman.after_last_dose))
    as_of = dt.date.fromisoformat(record["as_of"])
    stops = [dt.date.fromisoformat(c["stop"]) for c in record["treatments"]
             if c["drug"] == drug and "stop" in c]
    if drug in current_drugs(record) or not stops:
        return None
    end = max(stops) + days
    return end if end > as_of else None


@given(risky_patients())
def test_a_stopped_teratogen_states_its_contraception_until_its_window_ends(record) -> None:
    """For a woman who may conceive, a teratogen the step stops, and one stopped before
    whose interval still runs, has a contraception item until the interval's end, whether
    or not a deficit is recorded (p15: thalidomide stopped, two methods on record)."""
    rep = record.get("reproductive") or {}
    if record["demographics"]["sex"] != "female" or rep.get("childbearing_potential") is False \
            or rep.get("pregnant") is True:
        return
    result = run(record, RULESET)
    as_of = dt.date.fromisoformat(record["as_of"])
    items = [m["when"] for m in result["monitoring"] if m["what"] == "contraception"]
    for drug in sorted(RULESET.teratogens):
        woman = RULESET.drugs[drug].reproductive.woman
        if not woman.after_last_dose:
            continue
        if drug in taken_away(result) and drug in current_drugs(record):
            end: dt.date | None = as_of + dt.timedelta(days=RULESET.days(woman.after_last_dose))
        else:
            end = window_open(record, drug)
        if end is None:
            continue
        label = RULESET.drugs[drug].label
        assert any(f"until {end}" in w and label in w for w in items), (drug, end, items)


# ------------------------------------------------------------------ F8 (c)
@given(risky_patients())
def test_a_first_weeks_schedule_says_what_follows(record) -> None:
    """An item for the first weeks of a course also gives the schedule after them
    (p22: 'weekly in the first 4 weeks' without 'then every 4 weeks')."""
    result = run(record, RULESET)
    for m in result["monitoring"]:
        rule = RULESET.by_id.get(m["rule"])
        specs = rule.spec.then.monitor or [] if rule else []
        found = [(m["when"].find(x.when.strip()), i) for i, x in enumerate(specs)
                 if x.when.strip() in m["when"]]
        if not found:
            continue
        spec = specs[min(found)[1]]  # the item's own schedule comes first
        if spec.shown_until_day is not None:
            for later in specs:
                if later.what == spec.what and later.drug == spec.drug \
                        and later.shown_from_day == spec.shown_until_day:
                    assert f"then {later.when.strip()}" in m["when"], m


# ------------------------------------------------------------------ F8 (d)
CHECKS = {"blood count": "cbc", "liver function": "liver_function",
          "renal function": "renal_function", "pregnancy test": "pregnancy_test",
          "methaemoglobin": "methaemoglobin", "nerve conduction": "nerve_conduction"}


def ordered_now(summary: str) -> set[str]:
    """The checks a step's text orders now or today."""
    out = set()
    for sentence in re.split(r"(?<=[.;])\s+", summary):
        if not re.search(r"\b(now|today)\b", sentence):
            continue
        low = sentence.lower()
        out |= {word for phrase, word in CHECKS.items()
                if phrase in low or (phrase == "liver function" and "liver and renal" in low)}
    return out


@given(risky_patients())
def test_the_checks_a_step_orders_now_are_in_the_monitoring_list(record) -> None:
    """p16: 'Check the blood count, liver and renal function now' under a monitoring
    list with the retinal exam alone."""
    result = run(record, RULESET)
    rec = result["recommendation"]
    if rec["action"] == "gather_data":
        return  # its checks are the missing data it asks for
    missing = ordered_now(rec["summary"]) - {m["what"] for m in result["monitoring"]}
    assert not missing, (missing, rec["summary"])


def test_every_rule_that_orders_a_check_now_lists_it() -> None:
    """The rule-file side of the same principle: a stop's 'also now' text and a step's
    summary name no check that the same rule does not monitor."""
    for rule in RULESET.rules:
        then = rule.spec.then
        if then.recommend and then.recommend.action == "gather_data":
            continue
        texts = [then.if_taken_also or ""] + ([then.recommend.summary or ""]
                                              if then.recommend else [])
        wanted = set().union(*(ordered_now(t) for t in texts))
        have = {m.what for m in then.monitor or []}
        assert wanted <= have, (rule.id, wanted - have)


# ------------------------------------------------------------------ F9
@st.composite
def men_on_paternal_drugs(draw) -> dict[str, Any]:
    drug = draw(st.sampled_from(["methotrexate", "mycophenolate"]))
    record = patient(treatments=copy.deepcopy(REFRACTORY_HISTORY[:2]) + [course(drug, 300)])
    record["demographics"].update(sex="male", age=draw(st.sampled_from([30, 61])))
    rep: dict[str, Any] = {}
    for key in ("partner_may_conceive", "partner_pregnant", "planning_to_father", "condom_use"):
        value = draw(st.sampled_from([True, False, "unknown", None]))
        if value is not None:
            rep[key] = value
    record["reproductive"] = rep
    if draw(st.booleans()):
        record["conditions"] = [draw(st.sampled_from(["alcohol_misuse", "liver_disease"]))]
    return record


FATHER = "not stopped to father a child"


@given(men_on_paternal_drugs())
def test_the_fathering_warning_needs_a_recorded_plan_and_never_contradicts_the_step(
        record) -> None:
    """p08: a 61-year-old man with no reproductive data, methotrexate stopped, was told
    'it is not stopped to father a child'."""
    result = run(record, RULESET)
    said = [w["message"] for w in result["warnings"] if FATHER in w["message"]]
    if not said:
        return
    rep = record["reproductive"]
    assert any(rep.get(k) is True for k in
               ("partner_may_conceive", "partner_pregnant", "planning_to_father")), said
    for drug in taken_away(result):
        assert not any(f"on {RULESET.drugs[drug].label}:" in s for s in said), said


# ------------------------------------------------------------------ F7
def every_text(result: dict[str, Any]) -> list[str]:
    steps = [result["recommendation"]] + result["alternatives"]
    return ([s.get("summary", "") for s in steps] + [w["message"] for w in result["warnings"]]
            + [e.get("reason", "") for e in result["excluded"]])


@given(women_with_oestrogen_and_apl())
def test_no_method_list_offers_the_depot_with_antiphospholipid_antibodies(record) -> None:
    """p03: the headline's list offered the medroxyprogesterone depot to a woman with
    antiphospholipid antibodies while the critical warning's list did not: every list
    on the page leaves it out, and says so where it names it."""
    result = run(record, RULESET)
    for text in every_text(result):
        for m in re.finditer(r"medroxyprogesterone depot", text):
            before = text[max(0, m.start() - 9):m.start()]
            after = text[m.end():m.end() + 12]
            assert before.endswith(("not the ", "less the ")) or after == " is left out", text


@given(risky_patients())
def test_several_preconditions_are_each_their_own_sentence(record) -> None:
    """p03: '...then the start follows. two negative pregnancy tests': every
    precondition before a step is its own numbered sentence, never a run-on tail."""
    summary = result_summary = run(record, RULESET)["recommendation"]["summary"]
    if not result_summary.startswith("Before the next step"):
        return
    assert not re.search(r"\. [a-z]", summary.split("): ", 1)[-1]), summary


# ------------------------------------------------------------------ F13
def text_view(record: dict[str, Any]) -> str:
    import yaml
    from cledecide import evaluate_patient, to_text
    from cledecide.engine.load import parse
    from cledecide.engine.validate import validate_patient
    doc = parse(yaml.safe_dump(record, sort_keys=False).encode(), "test.yaml")
    return to_text(evaluate_patient(validate_patient(doc), RULESET, doc.sha256))


RAW = re.compile(r"\b[a-z]+_(status|phase)\b|\b[a-z_]+=\S|\bfailed on\b| is never \(|"
                 r"this patient: (current|never|partial)\)")


@given(risky_patients())
def test_the_reasons_a_prescriber_reads_are_words_not_rule_conditions(record) -> None:
    """p01/p09: 'Hydroxychloroquine failed on: hydroxychloroquine_phase=partial' and
    'hydroxychloroquine status is never (this patient: current)': the text view names
    facts in words (the JSON trace keeps the raw names), and a partial response is
    never called a failure."""
    text = text_view(record)
    assert not RAW.search(text), RAW.search(text)
    partial = any(c.get("response") == "partial" and "stop" not in c
                  for c in record["treatments"])
    if partial:
        assert not re.search(r"(?i)\b(hydroxychloroquine|quinacrine|chloroquine) failed\b",
                             text), text


# ------------------------------------------------------------------ F11
@given(risky_patients(), st.sampled_from([60, 74, 75, 79, 80, 88]))
def test_age_at_the_named_threshold_counts_as_a_thrombosis_risk_factor(record, age) -> None:
    """p04/p20: 'age' was named as a factor to record but never counted from the age
    on record; it counts at the rule set's named threshold (vte_risk_age_years)."""
    record["demographics"]["age"] = age
    if record["demographics"]["sex"] == "female":
        rep = record["reproductive"]
        record["reproductive"] = {"childbearing_potential": False, "pregnant": False,
                                  "breastfeeding": False, "contraception": "none",
                                  "oestrogen_contraception": rep.get("oestrogen_contraception",
                                                                     False)}
    result = run(record, RULESET)
    vte = [w["message"] for w in result["warnings"]
           if w["rule"] in ("safety.vte-risk", "safety.vte-assessment")]
    counted = any(f"age {age}" in m for m in vte)
    if vte:
        assert counted == (age >= RULESET.thresholds["vte_risk_age_years"]), vte
