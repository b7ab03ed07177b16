"""Deterministic synthetic patients for benchmarks (not clinical data)."""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

DRUGS = ["topical_corticosteroid", "hydroxychloroquine", "quinacrine", "chloroquine",
         "methotrexate", "mycophenolate", "dapsone", "acitretin", "thalidomide",
         "lenalidomide", "systemic_corticosteroid"]
AS_OF = dt.date(2026, 11, 20)


def _date(rng: random.Random, lo_days: int, hi_days: int) -> str:
    return (AS_OF - dt.timedelta(days=rng.randint(lo_days, hi_days))).isoformat()


def patient(rng: random.Random, i: int) -> dict[str, Any]:
    sex = rng.choice(["female", "male"])
    age = rng.randint(16, 85)
    data: dict[str, Any] = {
        "id": f"bench-{i}", "as_of": AS_OF.isoformat(),
        "demographics": {"age": age, "sex": sex, "weight_kg": rng.randint(45, 120)},
        "smoker": rng.choice([True, False, "unknown"]),
        "diagnosis": {"subtype": rng.choice(["DLE", "SCLE", "ACLE", "LEP"]),
                      "extent": rng.choice(["localized", "widespread"]),
                      "systemic_lupus": rng.random() < 0.2},
        "activity": [{"date": _date(rng, 0, 10), "clasi_activity": rng.randint(0, 40)},
                     {"date": _date(rng, 40, 200), "clasi_activity": rng.randint(0, 40)}],
        "treatments": [],
        "conditions": rng.sample(["peripheral_neuropathy", "cytopenia", "liver_disease",
                                  "venous_thromboembolism", "retinopathy"],
                                 k=rng.choice([0, 0, 0, 1, 2])),
        "symptoms": rng.sample(["gastrointestinal", "paresthesia", "leg_swelling"],
                               k=rng.choice([0, 0, 0, 1])),
        "labs": {"egfr": {"value": rng.randint(20, 120), "date": _date(rng, 0, 60)},
                 "neutrophils": {"value": round(rng.uniform(0.5, 6), 1),
                                 "date": _date(rng, 0, 60)},
                 "platelets": {"value": rng.randint(40, 400), "date": _date(rng, 0, 60)},
                 "alt": {"value": rng.randint(10, 80), "date": _date(rng, 0, 60)}},
    }
    if sex == "female" and age <= 55:
        data["reproductive"] = {
            "childbearing_potential": rng.choice([True, False, "unknown"]),
            "pregnant": rng.choice([False, False, False, True, "unknown"]),
            "breastfeeding": rng.choice([False, False, "unknown"]),
            "contraception": rng.choice(["none", "one_method", "two_methods", "unknown"])}
    for drug in rng.sample(DRUGS, k=rng.randint(0, 5)):
        start = AS_OF - dt.timedelta(days=rng.randint(20, 1500))
        course: dict[str, Any] = {"drug": drug, "start": start.isoformat(),
                                  "response": rng.choice(["none", "partial", "complete"])}
        if drug == "methotrexate":
            course["dose_mg_per_week"] = 15
        elif not drug.startswith("topical"):
            course["dose_mg_per_day"] = {"hydroxychloroquine": 400, "chloroquine": 250,
                                         "lenalidomide": 5, "thalidomide": 100}.get(drug, 100)
        if rng.random() < 0.5:
            stop = start + dt.timedelta(days=rng.randint(10, (AS_OF - start).days))
            course["stop"] = stop.isoformat()
            course["stop_reason"] = rng.choice(["inefficacy", "adverse_event", "remission"])
        data["treatments"].append(course)
    return data


def patients(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [patient(rng, i) for i in range(n)]
