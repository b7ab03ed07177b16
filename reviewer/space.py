"""Synthetic patient records for searching the rule space: valid contract records whose
numbers cluster around the rule set's thresholds (the boundary values where rules
change their mind). Used by `rules check`, the benchmarks and the property tests; never
clinical data."""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ..engine import vocabulary as V
from ..engine.validate import catalogue_drugs

AS_OF = dt.date(2026, 11, 20)
DOSES = {"hydroxychloroquine": (200, 300, 400, 600), "chloroquine": (150, 250),
         "quinacrine": (100, 200), "mycophenolate": (2000, 3000, 4000),
         "dapsone": (50, 100, 300), "acitretin": (25, 50, 75), "isotretinoin": (20,),
         "thalidomide": (50, 100, 200), "lenalidomide": (2.5, 5, 10, 15),
         "systemic_corticosteroid": (10, 30)}
LADDER = ("topical_corticosteroid", "hydroxychloroquine", "quinacrine", "chloroquine",
          "methotrexate", "mycophenolate", "dapsone", "acitretin", "isotretinoin",
          "thalidomide", "lenalidomide")


def _near(rng: random.Random, points: tuple[float, ...], lo: float, hi: float,
          step: float = 1) -> float:
    """A value at, just below or just above a threshold, or anywhere in range."""
    if points and rng.random() < 0.7:
        v = rng.choice(points) + rng.choice((-step, 0, step))
    else:
        v = rng.uniform(lo, hi)
    return round(min(max(v, lo), hi), 1)


def _days_ago(rng: random.Random, months: tuple[float, ...], max_days: int) -> int:
    if rng.random() < 0.6:
        base = rng.choice(months) * 30.44
        return int(max(1, min(max_days, base + rng.choice((-10, 0, 10)))))
    return rng.randint(1, max_days)


def random_patient(rng: random.Random, thresholds: dict[str, float] | None = None,
                   index: int = 0, as_of: dt.date = AS_OF,
                   drugs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One valid patient record (contract section 1), as plain data; its drugs are the
    catalogue's (`drugs`, the shipped catalogue by default)."""
    t = thresholds or {}
    clasi_points = tuple(t[k] for k in ("moderate_clasi_activity", "severe_clasi_activity")
                         if k in t) + (0,)
    trial = tuple(t[k] for k in ("antimalarial_trial_months", "immunosuppressant_trial_months",
                                 "retinal_baseline_months", "bridge_max_months")
                  if k in t) + (60,)
    weeks = t.get("relapse_window_weeks", 8)
    sex = rng.choice(("female", "male"))
    age = rng.choice((rng.randint(12, 55), rng.randint(0, 120), 55, 56, 11, 12))
    day = lambda n: (as_of - dt.timedelta(days=n)).isoformat()  # noqa: E731
    record: dict[str, Any] = {
        "id": f"synthetic-{index}", "as_of": as_of.isoformat(),
        "demographics": {"age": age, "sex": sex},
        "smoker": rng.choice((True, False, "unknown")),
        "diagnosis": {"subtype": rng.choice(V.SUBTYPES),
                      "extent": rng.choice(("localized", "widespread", "unknown")),
                      "systemic_lupus": rng.choice((True, False, False, "unknown"))},
        "conditions": rng.sample(V.CONDITIONS, k=rng.choice((0, 0, 0, 1, 1, 2))),
        "symptoms": rng.sample(V.SYMPTOMS, k=rng.choice((0, 0, 0, 1, 2))),
        "treatments": [], "activity": [], "labs": {}, "eye_exams": [],
    }
    if rng.random() < 0.9:
        record["demographics"]["weight_kg"] = rng.choice((rng.randint(40, 120), 2, 400, 55))
    if rng.random() < 0.1:
        record["diagnosis"]["suspected_drug_trigger"] = "terbinafine"
    if sex == "female" and rng.random() < 0.85:
        tri = (True, False, "unknown")
        rep: dict[str, Any] = {"childbearing_potential": rng.choice(tri),
                               "pregnant": rng.choice((False, False, True, "unknown")),
                               "breastfeeding": rng.choice((False, False, True, "unknown")),
                               "contraception": rng.choice(V.CONTRACEPTION)}
        if rng.random() < 0.5:
            rep["last_negative_pregnancy_test"] = day(rng.randint(0, 60))
        if rng.random() < 0.5:  # a pair of tests around the 8-14 day gaps
            first = rng.choice((0, 1, 2, 9))
            rep["negative_pregnancy_tests"] = [day(first), day(first + rng.choice((7, 8, 10,
                                                                                   14, 15)))]
        if rng.random() < 0.6:
            rep["contraception_since"] = day(rng.choice((0, 20, 27, 28, 29, 31, 200)))
        for key in ("planning_pregnancy", "oestrogen_contraception"):
            if rng.random() < 0.7:
                rep[key] = rng.choice((True, False, False, "unknown"))
        if rep["childbearing_potential"] is False:  # contradictions are invalid input
            rep["pregnant"] = False if rep["pregnant"] is True else rep["pregnant"]
            rep["planning_pregnancy"] = False
        record["reproductive"] = rep
    elif sex == "male" and rng.random() < 0.7:
        record["reproductive"] = {k: rng.choice((True, False, "unknown")) for k in
                                  ("partner_may_conceive", "condom_use", "planning_to_father")}
    for _ in range(rng.choice((0, 1, 2, 2, 3))):
        record["activity"].append({"date": day(rng.randint(0, 400)),
                                   "clasi_activity": _near(rng, clasi_points, 0, 70)})
    if record["activity"] and rng.random() < 0.5:
        record["activity"][0]["clasi_damage"] = rng.randint(0, 56)
    for lab, points, hi in (("egfr", (30, 60), 150), ("neutrophils", (0.5, 1.0), 12),
                            ("platelets", (30, 50, 75), 600), ("alt", (), 300),
                            ("creatinine", (90, 150, 300), 900)):
        if rng.random() < 0.85:
            record["labs"][lab] = {"value": _near(rng, points, 0, hi, 0.1 if hi < 20 else 1),
                                   "date": day(rng.choice((0, 29, 30, 31, 90, 400)))}
    if rng.random() < 0.6:
        record["labs"]["g6pd"] = {"value": rng.choice(("normal", "deficient")),
                                  "date": day(rng.randint(0, 2000))}
    if rng.random() < 0.4:
        record["eye_exams"].append({"date": day(rng.randint(0, 800)),
                                    "result": rng.choice(("normal", "normal", "toxicity"))})
    if rng.random() < 0.3:
        _late_course(rng, record, day)
        return record
    catalogue = drugs or catalogue_drugs()
    drugs = [d for d in LADDER[: rng.randint(0, len(LADDER))] if d in catalogue]
    if rng.random() < 0.3:
        drugs = rng.sample(catalogue, k=rng.randint(0, 4))
    for drug in drugs:
        if rng.random() < 0.25:
            continue
        length = _days_ago(rng, trial + (weeks / 4.345,), 3000)
        stopped = rng.random() < 0.55
        since = _days_ago(rng, (weeks / 4.345, 1, 2), 900) if stopped else 0
        start = since + length
        course: dict[str, Any] = {"drug": drug, "start": day(start),
                                  "response": rng.choice(V.RESPONSES)}
        if drug == "methotrexate" and rng.random() < 0.1:
            course["dose_mg_per_day"] = 15  # the dangerous wrong unit
        elif drug == "methotrexate":
            course["dose_mg_per_week"] = rng.choice((7.5, 15, 25, 30))
        elif drug in DOSES:
            course["dose_mg_per_day"] = rng.choice(DOSES[drug])
        if stopped:
            course["stop"] = day(since)
            course["stop_reason"] = rng.choice(V.STOP_REASONS)
            if rng.random() < 0.3:
                course["adverse_events"] = rng.sample(V.SYMPTOMS, k=1)
            if course["stop_reason"] == "dose_reduced" and rng.random() < 0.7:
                record["treatments"].append({**{k: v for k, v in course.items()
                                                if k not in ("stop", "stop_reason")},
                                             "start": day(since)})
        record["treatments"].append(course)
    rng.shuffle(record["treatments"])
    return record


def _late_course(rng: random.Random, record: dict[str, Any], day) -> None:
    """Late in the ladder: antimalarials and immunosuppressants failed, thalidomide or
    lenalidomide current, stopped or reduced, with a recent pair of CLASI scores."""
    record["treatments"] = [
        {"drug": "hydroxychloroquine", "dose_mg_per_day": 300, "start": day(1500),
         "response": "partial"},
        {"drug": "quinacrine", "dose_mg_per_day": 100, "start": day(1300), "stop": day(1100),
         "stop_reason": "inefficacy", "response": "none"},
        {"drug": rng.choice(("methotrexate", "mycophenolate", "acitretin", "dapsone")),
         "start": day(1000),
         "stop": day(700), "stop_reason": rng.choice(("inefficacy", "adverse_event")),
         "response": "none"}]
    if rng.random() < 0.7:  # mostly unremarkable blood counts late in the ladder
        date = day(rng.choice((3, 20)))
        record["labs"].update({"neutrophils": {"value": 3.5, "date": date},
                               "platelets": {"value": 250, "date": date},
                               "egfr": {"value": 90, "date": date},
                               "creatinine": {"value": 70, "date": date}})
    scores = (0, 0, 0, 3, 9, 10, 14, 21, 30)
    gap = rng.choice((14, 28, 56))
    record["activity"] = [{"date": day(0), "clasi_activity": rng.choice(scores)},
                          {"date": day(gap), "clasi_activity": rng.choice(scores)}]
    drug = rng.choice(("thalidomide", "lenalidomide"))
    dose = 100 if drug == "thalidomide" else rng.choice((5, 10))
    weeks = rng.choice((1, 4, 8, 9, 20))
    rep = record.get("reproductive")
    if rng.random() < 0.3 and rep is not None and rep.get("childbearing_potential") is not False \
            and record["demographics"]["sex"] == "female":
        rep["pregnant"] = rng.choice((True, False))
    response = rng.choice(("complete", "complete", "partial", "none"))
    shape = rng.choice(("current", "stopped", "reduced", "failed"))
    if shape == "current":
        record["treatments"].append({"drug": drug, "dose_mg_per_day": dose,
                                     "start": day(rng.choice((7, 30, 89, 92, 200))),
                                     "response": response})
    elif shape == "stopped":
        record["treatments"].append({"drug": drug, "dose_mg_per_day": dose, "start": day(400),
                                     "stop": day(weeks * 7), "response": response,
                                     "stop_reason": rng.choice(("remission", "patient_choice",
                                                                "adverse_event"))})
    elif shape == "reduced":
        record["treatments"] += [
            {"drug": drug, "dose_mg_per_day": dose * 2, "start": day(400),
             "stop": day(weeks * 7), "stop_reason": "dose_reduced", "response": response},
            {"drug": drug, "dose_mg_per_day": dose, "start": day(weeks * 7),
             "response": rng.choice(("unknown", "complete"))}]
    else:
        for other in ("thalidomide", "lenalidomide"):
            record["treatments"].append({"drug": other, "dose_mg_per_day": 5 if other ==
                                         "lenalidomide" else 100, "start": day(600),
                                         "stop": day(rng.choice((100, 300))),
                                         "stop_reason": rng.choice(("inefficacy",
                                                                    "adverse_event")),
                                         "response": "none"})
