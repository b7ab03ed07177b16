"""Combined risks (issue 18): generated patients with two to four risks at once, and the
invariants that must hold however the risks meet. Each invariant names a principle, not
a patient: a drug or a risk factor added later inherits it.

The layers below are drawn independently and applied on top of one another, so the
generator reaches combinations no one wrote a scenario for."""
from __future__ import annotations

import copy
import re
import datetime as dt
from typing import Any, Callable

from hypothesis import given
from hypothesis import strategies as st

from conftest import REFRACTORY_HISTORY, patient, run
from cledecide import load_ruleset
from conftest import RULES

RULESET = load_ruleset(RULES)
AS_OF = dt.date(2026, 11, 20)
TERATOGENS = ("methotrexate", "mycophenolate", "acitretin", "isotretinoin", "thalidomide",
              "lenalidomide")
MYELOSUPPRESSIVE = ("methotrexate", "mycophenolate", "dapsone", "lenalidomide")
IMIDS = ("thalidomide", "lenalidomide")


def ago(days: int) -> str:
    return (AS_OF - dt.timedelta(days=days)).isoformat()


def woman(record: dict[str, Any], **rep: Any) -> None:
    record["demographics"].update(sex="female", age=min(record["demographics"]["age"], 44))
    record["reproductive"] = {"childbearing_potential": True, "pregnant": False,
                              "breastfeeding": False, "contraception": "two_methods",
                              "contraception_since": ago(200),
                              "negative_pregnancy_tests": [ago(13), ago(1)], **rep}


def course(drug: str, start_days: int, stop_days: int | None = None,
           response: str = "partial", **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"drug": drug, "start": ago(start_days), "response": response}
    dose = {"methotrexate": ("dose_mg_per_week", 15), "mycophenolate": ("dose_mg_per_day", 2000),
            "acitretin": ("dose_mg_per_day", 25), "isotretinoin": ("dose_mg_per_day", 20),
            "thalidomide": ("dose_mg_per_day", 50), "lenalidomide": ("dose_mg_per_day", 5),
            "dapsone": ("dose_mg_per_day", 100), "hydroxychloroquine": ("dose_mg_per_day", 300)}
    if drug in dose:
        c[dose[drug][0]] = dose[drug][1]
    if stop_days is not None:
        c["stop"] = ago(stop_days)
        c["stop_reason"] = extra.pop("stop_reason", "remission")
    c.update(extra)
    return c


# ------------------------------------------------------------------ the risk layers
# Each layer is (name, a strategy of functions that change a record in place).

@st.composite
def past_teratogen(draw) -> Callable[[dict], None]:
    drug = draw(st.sampled_from(TERATOGENS))
    stopped = draw(st.sampled_from([20, 60, 200, 400, 800, 1200]))

    def apply(r: dict) -> None:
        r["treatments"].append(course(drug, stopped + 300, stopped, "partial",
                                      stop_reason="patient_choice"))
    return apply


@st.composite
def current_teratogen(draw) -> Callable[[dict], None]:
    drug = draw(st.sampled_from(TERATOGENS))
    started = draw(st.sampled_from([30, 120, 400]))

    def apply(r: dict) -> None:
        if not any(c["drug"] == drug and "stop" not in c for c in r["treatments"]):
            r["treatments"].append(course(drug, started))
    return apply


@st.composite
def planning(draw) -> Callable[[dict], None]:
    def apply(r: dict) -> None:
        if r["demographics"]["sex"] == "female":
            r["reproductive"]["planning_pregnancy"] = True
        else:
            r["reproductive"] = {**r.get("reproductive", {}), "planning_to_father": True,
                                 "partner_may_conceive": True}
    return apply


@st.composite
def vte_factors(draw) -> Callable[[dict], None]:
    factors = draw(st.sets(st.sampled_from(["oestrogen", "apl", "past_vte", "smoker", "sle"]),
                           min_size=1, max_size=4))
    antithrombotic = draw(st.sampled_from(["none", "aspirin", "anticoagulant", "unknown"]))

    def apply(r: dict) -> None:
        r["antithrombotic"] = antithrombotic
        if "oestrogen" in factors and r["demographics"]["sex"] == "female":
            r["reproductive"]["oestrogen_contraception"] = True
        if "apl" in factors:
            r["conditions"].append("antiphospholipid_antibodies")
        if "past_vte" in factors:
            r["conditions"].append("venous_thromboembolism")
        if "smoker" in factors:
            r["smoker"] = True
        if "sle" in factors:
            r["diagnosis"]["systemic_lupus"] = True
    return apply


@st.composite
def contraception_change(draw) -> Callable[[dict], None]:
    days = draw(st.sampled_from([3, 20, 27, 28, 40]))
    method = draw(st.sampled_from(["one_method", "two_methods"]))

    def apply(r: dict) -> None:
        if r["demographics"]["sex"] == "female":
            r["reproductive"].update(contraception=method, contraception_since=ago(days))
    return apply


@st.composite
def failing_requirement(draw) -> Callable[[dict], None]:
    kind = draw(st.sampled_from(["imid_one_method", "mtx_egfr", "mtx_liver", "dapsone_g6pd",
                                 "len_renal", "hcq_retinopathy", "hcq_tamoxifen",
                                 "hcq_toxicity_overdose"]))

    def apply(r: dict) -> None:
        if kind == "imid_one_method" and r["demographics"]["sex"] == "female":
            r["treatments"].append(course("lenalidomide", 100))
            r["reproductive"]["contraception"] = "one_method"
        elif kind == "mtx_egfr":
            r["treatments"].append(course("methotrexate", 300))
            r["labs"]["egfr"] = {"value": 25, "date": ago(5)}
        elif kind == "mtx_liver":
            r["treatments"].append(course("methotrexate", 300))
            r["conditions"].append("liver_disease")
        elif kind == "dapsone_g6pd":
            r["treatments"].append(course("dapsone", 300))
            r["labs"]["g6pd"] = {"value": "deficient", "date": ago(5)}
        elif kind == "len_renal":
            r["treatments"].append(course("lenalidomide", 100))
            r["labs"]["egfr"] = {"value": 20, "date": ago(5)}
        elif kind == "hcq_retinopathy":
            r["conditions"].append("retinopathy")
            r["eye_exams"] = [{"date": ago(100), "result": "normal"}]  # baseline done
        elif kind == "hcq_toxicity_overdose":  # a stop beside a dose reduction
            r["demographics"]["weight_kg"] = 50
            r["eye_exams"] = [{"date": ago(3), "result": "toxicity"}]
        elif kind == "hcq_tamoxifen":
            r["conditions"].append("tamoxifen")
            r["eye_exams"] = [{"date": ago(100), "result": "normal"}]
    return apply


@st.composite
def low_count_fever(draw) -> Callable[[dict], None]:
    drug = draw(st.sampled_from(MYELOSUPPRESSIVE))
    neutrophils = draw(st.sampled_from([0.4, 0.9, 1.1, 1.5]))
    symptom = draw(st.sampled_from(["fever", "infection"]))

    def apply(r: dict) -> None:
        if not any(c["drug"] == drug and "stop" not in c for c in r["treatments"]):
            r["treatments"].append(course(drug, 200))
        r["labs"]["neutrophils"] = {"value": neutrophils, "date": ago(0)}
        r["symptoms"].append(symptom)
    return apply


@st.composite
def responding_stop(draw) -> Callable[[dict], None]:
    drug = draw(st.sampled_from(IMIDS))
    reason = draw(st.sampled_from(["paresthesia", "leg_swelling", "pregnant", "breastfeeding"]))

    def apply(r: dict) -> None:
        if any(c["drug"] in IMIDS for c in r["treatments"]):
            return
        r["treatments"].append(course(drug, 200, response="complete"))
        if reason in ("paresthesia", "leg_swelling"):
            r["symptoms"].append(reason)
        elif r["demographics"]["sex"] == "female":
            r["reproductive"][reason] = True
    return apply


@st.composite
def methotrexate_daily(draw) -> Callable[[dict], None]:
    """A once-weekly drug recorded as daily (the commonest overdose), with a sign."""
    sign = draw(st.sampled_from(["fever", "low_count", "alt", "none"]))

    def apply(r: dict) -> None:
        r["treatments"] = [c for c in r["treatments"]
                           if not (c["drug"] == "methotrexate" and "stop" not in c)]
        daily = course("methotrexate", 60)
        del daily["dose_mg_per_week"]
        daily["dose_mg_per_day"] = 10
        r["treatments"].append(daily)
        if sign == "fever":
            r["symptoms"].append("fever")
        elif sign == "low_count":
            r["labs"]["neutrophils"] = {"value": 1.2, "date": ago(0)}
        elif sign == "alt":
            r["labs"]["alt"] = {"value": 150, "date": ago(0)}
    return apply


@st.composite
def lasting_contraindication(draw) -> Callable[[dict], None]:
    """A contraindication that arises during a course, beside a temporary hold."""
    kind = draw(st.sampled_from(["alcohol", "liver", "egfr"]))

    def apply(r: dict) -> None:
        if not any(c["drug"] == "methotrexate" and "stop" not in c for c in r["treatments"]):
            r["treatments"].append(course("methotrexate", 300))
        r["labs"]["alt"] = {"value": draw_alt, "date": ago(2)}
        if kind == "egfr":
            r["labs"]["egfr"] = {"value": 26, "date": ago(2)}
        else:
            r["conditions"].append({"alcohol": "alcohol_misuse", "liver": "liver_disease"}[kind])
    draw_alt = draw(st.sampled_from([30, 140]))
    return apply


@st.composite
def reproductive_state(draw) -> Callable[[dict], None]:
    """Pregnant, planning or breastfeeding, on hydroxychloroquine, with a flare."""
    state = draw(st.sampled_from(["pregnant", "planning_pregnancy", "breastfeeding"]))
    clasi = draw(st.sampled_from([12, 25]))

    def apply(r: dict) -> None:
        if r["demographics"]["sex"] == "female":
            r["reproductive"][state] = True
            r["activity"] = [{"date": ago(0), "clasi_activity": clasi},
                             {"date": ago(90), "clasi_activity": clasi - 4}]
    return apply


LAYERS = st.lists(st.one_of(past_teratogen(), current_teratogen(), planning(), vte_factors(),
                            contraception_change(), failing_requirement(), low_count_fever(),
                            responding_stop(), methotrexate_daily(),
                            lasting_contraindication(), reproductive_state()),
                  min_size=2, max_size=4)


@st.composite
def risky_patients(draw) -> dict[str, Any]:
    """A refractory patient (so every rung is in play) with two to four risks at once."""
    history = copy.deepcopy(REFRACTORY_HISTORY)
    if draw(st.booleans()):  # refractory to the immunosuppressants too: the IMiDs in play
        history.append(course("mycophenolate", 700, 400, "none", stop_reason="inefficacy"))
    record = patient(treatments=history)
    record["demographics"]["age"] = draw(st.sampled_from([17, 30, 42, 50, 67]))
    if draw(st.booleans()):
        woman(record)
    else:
        record["demographics"]["sex"] = "male"
        record["reproductive"] = {"partner_may_conceive": draw(st.booleans()),
                                  "condom_use": draw(st.sampled_from([True, False, "unknown"]))}
    for layer in draw(LAYERS):
        layer(record)
    record["conditions"] = sorted(set(record["conditions"]))
    record["symptoms"] = sorted(set(record["symptoms"]))
    return record


# ------------------------------------------------------------------ the invariants

def current_drugs(record: dict[str, Any]) -> set[str]:
    return {c["drug"] for c in record["treatments"] if "stop" not in c}


def step_stops(result: dict[str, Any]) -> set[str]:
    rec = result["recommendation"]
    out = set(rec.get("stops") or [])
    if rec["action"] == "stop" and rec["drug"]:
        out.add(rec["drug"])
    return out


def stated(result: dict[str, Any], drug: str) -> bool:
    """The output says what happens to a current drug: the step stops it or is about it,
    or a critical warning names it."""
    label = RULESET.drugs[drug].label.lower()
    rec = result["recommendation"]
    return (drug in step_stops(result) or rec["drug"] == drug
            or any(w["severity"] == "critical" and label in w["message"].lower()
                   for w in result["warnings"]))


@given(risky_patients())
def test_no_current_drug_is_excluded_without_a_stated_step(record) -> None:
    result = run(record, RULESET)
    for e in result["excluded"]:
        rule = RULESET.by_id.get(e["rule"])
        if e["drug"] not in current_drugs(record) or rule is None:
            continue
        if rule.spec.then.if_taken == "start_only":
            continue
        assert stated(result, e["drug"]), (e, result["recommendation"]["summary"])


@given(risky_patients())
def test_no_refer_because_of_a_requirement_that_can_be_met(record) -> None:
    result = run(record, RULESET)
    if result["recommendation"]["action"] != "refer":
        return
    def liftable(e: dict) -> bool:
        then = RULESET.by_id[e["rule"]].spec.then if e["rule"] in RULESET.by_id else None
        return bool(then and (then.fix or then.request))
    by_drug: dict[str, list[dict]] = {}
    for e in result["excluded"]:
        by_drug.setdefault(e["drug"], []).append(e)
    # A drug held only by requirements that can be met (a method, a date, a test): its
    # step is to meet them, never a referral for want of options.
    only_fixable = {d for d, es in by_drug.items() if all(liftable(e) for e in es)
                    and any(RULESET.by_id[e["rule"]].spec.then.fix for e in es)}
    offered_by_ladder = {r.spec.then.recommend.drug for r in RULESET.rules
                         if r.spec.then.recommend and r.id in
                         {t["rule"] for t in result["trace"]}}
    assert not only_fixable & offered_by_ladder, (only_fixable, result["recommendation"]["summary"])


@given(risky_patients())
def test_every_stop_of_a_responding_relapse_prone_drug_has_a_relapse_watch(record) -> None:
    result = run(record, RULESET)
    rec = result["recommendation"]
    stopped = step_stops(result) | ({rec["drug"]} if rec["action"] == "reduce" else set())
    for drug in stopped:
        entry = RULESET.drugs.get(drug)
        responded = any(c["drug"] == drug and c["response"] in ("partial", "complete")
                        for c in record["treatments"])
        if entry is None or entry.course.relapse is None or not responded:
            continue
        assert any(m["what"] == "relapse_watch" for m in result["monitoring"]), \
            (drug, rec["summary"])


CONCEPTION = re.compile(r"conception from (\d{4}-\d{2}-\d{2})")


def window_ends(record: dict[str, Any]) -> dict[str, dt.date]:
    """Each drug's earliest allowed conception, worked out here from the catalogue (not
    by the engine's own plan): the last dose plus the drug's interval, or today plus the
    interval for a drug taken now."""
    who = "man" if record["demographics"]["sex"] == "male" else "woman"
    as_of = dt.date.fromisoformat(record["as_of"])
    out: dict[str, dt.date] = {}
    for c in record["treatments"]:
        entry = RULESET.drugs.get(c["drug"])
        profile = getattr(entry.reproductive, who, None) if entry and entry.reproductive else None
        name = getattr(profile, "stop_before_conception", None) or (
            getattr(profile, "after_last_dose", None) if who == "woman" else None)
        if not name:
            continue
        days = dt.timedelta(days=RULESET.days(name))
        end = (dt.date.fromisoformat(c["stop"]) if "stop" in c else as_of) + days
        out[c["drug"]] = max(out.get(c["drug"], end), end)
    return out


@given(risky_patients())
def test_the_conception_date_is_at_least_every_windows_end(record) -> None:
    result = run(record, RULESET)
    texts = [result["recommendation"]["summary"]] + [w["message"] for w in result["warnings"]]
    dates = [dt.date.fromisoformat(d) for t in texts for d in CONCEPTION.findall(t)]
    ends = window_ends(record)
    for date in dates:
        late = {d: e for d, e in ends.items() if e > date}
        assert not late, (date, late, result["recommendation"]["summary"])


def starts(result: dict[str, Any]) -> set[str]:
    steps = [result["recommendation"]] + result["alternatives"]
    return {s["drug"] for s in steps
            if s["action"] in ("start", "add", "switch", "reintroduce") and s["drug"]}


@st.composite
def women_with_oestrogen_and_apl(draw) -> dict[str, Any]:
    """Risky women on combined contraception with antiphospholipid antibodies, most of
    them refractory enough for an IMiD, whatever else they have."""
    record = draw(risky_patients())
    woman(record, contraception=draw(st.sampled_from(["one_method", "two_methods"])),
          oestrogen_contraception=True)
    record["conditions"] = sorted(set(record["conditions"]) | {"antiphospholipid_antibodies"})
    record["antithrombotic"] = draw(st.sampled_from(["none", "anticoagulant"]))
    if not any(c["drug"] == "mycophenolate" for c in record["treatments"]):
        record["treatments"].append(course("mycophenolate", 700, 400, "none",
                                           stop_reason="inefficacy"))
    return record


@given(women_with_oestrogen_and_apl())
def test_no_imid_start_with_oestrogen_and_antiphospholipid_antibodies(record) -> None:
    result = run(record, RULESET)
    assert not starts(result) & set(IMIDS), result["recommendation"]["summary"]
    assert any(w["severity"] == "critical" for w in result["warnings"])


HOLD = {"lenalidomide": "lenalidomide_hold_neutrophils", "methotrexate": "dmard_hold_neutrophils",
        "mycophenolate": "dmard_hold_neutrophils", "dapsone": "dmard_hold_neutrophils"}


@given(risky_patients())
def test_a_low_count_with_fever_is_a_critical_same_day_step(record) -> None:
    current = current_drugs(record)
    low = [d for d in MYELOSUPPRESSIVE if d in current
           and record["labs"]["neutrophils"]["value"] < RULESET.thresholds[HOLD[d]]]
    if not low or not {"fever", "infection"} & set(record["symptoms"]):
        return
    result = run(record, RULESET)
    rec = result["recommendation"]
    assert any(w["severity"] == "critical" and "neutropenic sepsis" in w["message"]
               for w in result["warnings"]), rec["summary"]
    assert rec["action"] == "stop" and "same-day" in rec["summary"], rec["summary"]
    assert set(low) <= step_stops(result), (low, rec)


# ----------------------------------------- reader C: the status quo and the headline

def safety_touches_current(result: dict[str, Any], record: dict[str, Any]) -> bool:
    """A safety rule stops, holds or reduces a drug the patient takes."""
    current = current_drugs(record)
    rec = result["recommendation"]
    rule = RULESET.by_id.get(rec["rule"])
    if rule is not None and rule.spec.priority >= 81 and rec["action"] in ("stop", "reduce") \
            and (step_stops(result) | {rec["drug"]}) & current:
        return True
    for e in result["excluded"]:
        rule = RULESET.by_id.get(e["rule"])
        if e["drug"] in current and rule is not None and \
                (rule.spec.then.if_taken or "hold") in ("hold", "stop"):
            return True
    return False


@given(risky_patients())
def test_keeping_the_plan_is_never_offered_when_a_safety_rule_changes_it(record) -> None:
    """'Continue the current plan' is not an option beside a safety stop, hold or dose
    reduction of a current drug, and never what follows a hold (reader C, F2 and F6)."""
    result = run(record, RULESET)
    texts = [result["recommendation"]["summary"]] + [w["message"] for w in result["warnings"]]
    assert not any("Then: continue the current plan" in t for t in texts), texts
    if safety_touches_current(result, record):
        assert not [a for a in result["alternatives"] if a["action"] == "continue"], (
            result["recommendation"]["summary"], result["alternatives"])


@given(risky_patients())
def test_a_lasting_contraindication_is_said_in_the_step_that_holds_the_drug(record) -> None:
    """A hold for one reason never reads as 'restart later' when another rule rules the
    drug out for good (reader C, F3)."""
    result = run(record, RULESET)
    rec = result["recommendation"]
    for drug in step_stops(result):
        lasting = [e for e in result["excluded"] if e["drug"] == drug
                   and e["rule"] != rec["rule"] and e["rule"] in RULESET.by_id
                   and RULESET.by_id[e["rule"]].spec.then.if_taken == "stop"
                   and not RULESET.by_id[e["rule"]].spec.then.request
                   and not RULESET.by_id[e["rule"]].spec.then.fix]
        if lasting:
            assert "is not restarted" in rec["summary"], (drug, rec["summary"])


@given(risky_patients())
def test_a_methotrexate_overdose_sign_is_the_same_day_step(record) -> None:
    """Methotrexate recorded daily with fever, a low count or raised ALT: the emergency
    is the step, not a warning beside another (reader C, F3, probe r2)."""
    result = run(record, RULESET)
    daily = [c for c in record["treatments"] if c["drug"] == "methotrexate"
             and "stop" not in c and "dose_mg_per_day" in c]
    trace = {t["rule"] for t in result["trace"]}
    if not daily or "safety.methotrexate.toxicity" not in trace:
        return
    rec = result["recommendation"]
    assert rec["action"] == "stop" and "same-day" in rec["summary"], rec["summary"]
    assert "methotrexate" in step_stops(result) or any(
        w["severity"] == "critical" and w["message"].startswith("Also now") and
        "methotrexate" in w["message"].lower() for w in result["warnings"]), rec


@given(risky_patients())
def test_hydroxychloroquine_is_kept_in_pregnancy_planning_and_breastfeeding(record) -> None:
    """Hydroxychloroquine is continued before conception, in pregnancy and while
    breastfeeding: the ladder never switches it away (reader C, F1). Retinal disease or
    toxicity is the exception."""
    rep = record.get("reproductive", {})
    if not any(rep.get(k) is True for k in ("pregnant", "planning_pregnancy", "breastfeeding")):
        return
    if "retinopathy" in record["conditions"] or "hydroxychloroquine" not in current_drugs(record):
        return
    result = run(record, RULESET)
    assert "hydroxychloroquine" not in step_stops(result), result["recommendation"]
    assert all(a["drug"] != "chloroquine" for a in result["alternatives"]), result["alternatives"]


@given(risky_patients())
def test_yearly_retinal_screening_and_not_yet_due_never_meet(record) -> None:
    """One risk-factor list, read the same way by 'yearly' and 'not yet due' (reader C, F2:
    retinopathy counted in one and not the other)."""
    result = run(record, RULESET)
    rules = {m["rule"] for m in result["monitoring"]}
    assert not {"monitoring.retinal.annual", "monitoring.retinal.not-yet-due"} <= rules, rules


@given(risky_patients())
def test_no_alternative_keeps_a_drug_the_step_stops(record) -> None:
    """A step that stops a drug is not undone by an alternative that keeps it, at any
    dose (reader D, p10: 'reduce hydroxychloroquine' beside its stop for retinal
    toxicity)."""
    result = run(record, RULESET)
    stopped = step_stops(result)
    for alt in result["alternatives"]:
        assert alt["drug"] not in stopped or alt["action"] in ("stop", "gather_data", "refer"), (
            result["recommendation"]["summary"], alt)


@given(risky_patients())
def test_a_weekly_drug_recorded_daily_is_held_today(record) -> None:
    """A once-weekly drug recorded as daily is a possible sevenfold overdose: the step
    holds it today (or a same-day emergency does), with or without signs (reader D, p07)."""
    daily = [c for c in record["treatments"] if c["drug"] == "methotrexate"
             and "stop" not in c and "dose_mg_per_day" in c]
    if not daily:
        return
    result = run(record, RULESET)
    rec = result["recommendation"]
    held = "methotrexate" in step_stops(result) or any(
        w["severity"] == "critical" and w["message"].startswith("Also now")
        and "methotrexate" in w["message"].lower() for w in result["warnings"])
    assert held and rec["action"] == "stop", rec
