"""order-sign: each draft MedicationRequest that is a catalogue drug (by code, or named
in its text) is checked for this patient; an order unrelated to CLE (amoxicillin) gets
no card, as CDS Hooks asks of a service with nothing to say. The audit keeps the verdict
per draft order (critical "do not sign", warning, info) with its card."""
from __future__ import annotations

import re
from typing import Any

from .calls import Answer, Call, card_record, step


def draft_medication_requests(context: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    orders = context.get("draftOrders") or {}
    entries = orders.get("entry", []) if isinstance(orders, dict) else []
    return [(i, e["resource"]) for i, e in enumerate(entries) if isinstance(e, dict)
            and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == "MedicationRequest"]


def named_drug(codemap: Any, resource: dict[str, Any]) -> str | None:
    """A catalogue drug that an order's words name (its text or a coding's display),
    when its code is not in the code map: the order is then not unrelated."""
    concept = resource.get("medicationCodeableConcept") or {}
    words = [concept.get("text") or ""] + [c.get("display") or "" for c in
                                           concept.get("coding") or [] if isinstance(c, dict)]
    tokens = set(re.findall(r"[a-z]+", " ".join(w for w in words if isinstance(w, str)).lower()))
    found = sorted(d for d in codemap.spec.medications if d.split("_")[0] in tokens)
    return found[0] if found else None


def order_sign(engine: Any, call: Call, patient: Any, report: Any) -> Answer:
    from ..fhir_r4.medications import read_draft_order
    from .cards import order_sign_cards
    orders, kept = [], []
    for i, resource in draft_medication_requests(call.context):
        o = read_draft_order(resource, engine.codemap, ("context", "draftOrders", "entry", i,
                                                        "resource"), report)
        label = o.label
        if o.by_name:
            label = (f"{o.label} (recognised by name as {o.drug}: its code is not in the "
                     "code map)")
        if o.drug is None and named_drug(engine.codemap, resource) is None:
            continue  # not a drug cledecide knows, by code or by name: nothing to say
        orders.append((o.drug, label, o.dose))
        kept.append((o.drug, label))
    if not orders:
        return Answer(200, {"cards": []}, "no draft order is a catalogue drug",
                      call.patient_id)
    cards, explanation = order_sign_cards(patient, orders, engine.ruleset, engine.codemap,
                                          call.digest, report)
    records = [card_record(c, order=label, drug=drug, verdict=c["indicator"])
               for c, (drug, label) in zip(cards, kept)]
    return Answer(200, {"cards": cards}, "", call.patient_id, step(explanation), records)
