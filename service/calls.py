"""A hook call as CDS Hooks 2.0 defines it: the request's required fields, checked
before anything else, and the answer with what the audit keeps of it (never a token)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

SERVICES = {
    "cledecide-patient-view": ("patient-view", "CLE treatment: the suggested next step"),
    "cledecide-order-sign": ("order-sign", "CLE treatment: safety check of draft orders"),
}
USAGE = ("For patients with cutaneous lupus erythematosus (CLE) on record: a patient "
         "with no CLE Condition gets no card. Needs the prefetch (or fhirServer with "
         "fhirAuthorization to fetch it) for the patient in context. Decision support "
         "for a clinician, never an order.")


@dataclass
class Answer:
    """The HTTP answer and what the audit row records of it (never a token)."""

    status: int
    payload: dict[str, Any]
    detail: str = ""                         # why refused (no patient data)
    patient_id: str | None = None            # hashed before it is stored
    recommendation: dict[str, Any] = field(default_factory=dict)
    cards: list[dict[str, Any]] = field(default_factory=list)   # what the audit keeps


@dataclass
class Call:
    sid: str
    hook: str
    request: dict[str, Any]
    context: dict[str, Any]
    patient_id: str
    hook_instance: str
    digest: str


def refused(status: int, message: str, detail: str | None = None,
            patient_id: str | None = None) -> Answer:
    return Answer(status, {"error": message}, detail or message, patient_id)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_call(sid: str, body: bytes) -> Call | Answer:
    """The request, or 400 naming the first field CDS Hooks requires that is missing.
    orjson refuses nesting deeper than 1,024 (a 100,000-deep body is a plain 400)."""
    hook = SERVICES[sid][0]
    try:
        request = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError):
        return refused(400, "the body is not JSON (or nests too deep)", "not JSON")
    if not isinstance(request, dict) or request.get("hook") != hook:
        return refused(400, f"a CDS Hooks request for hook {hook} is expected",
                       "not this hook")
    context = request.get("context")
    if not _text(request.get("hookInstance")):
        return refused(400, "hookInstance is required")
    if not isinstance(context, dict):
        return refused(400, "context is required")
    for name in ("userId", "patientId"):
        if not _text(context.get(name)):
            return refused(400, f"context.{name} is required")
    if hook == "order-sign" and not isinstance(context.get("draftOrders"), dict):
        return refused(400, "context.draftOrders (a FHIR Bundle) is required for "
                            "order-sign", patient_id=context["patientId"])
    return Call(sid, hook, request, context, context["patientId"],
                request["hookInstance"], hashlib.sha256(body).hexdigest())


def step(explanation: Any) -> dict[str, Any]:
    rec = explanation.result.recommendation
    return {"action": rec.action, "drug": rec.drug, "rule": rec.rule}


def card_record(card: dict[str, Any], **more: Any) -> dict[str, Any]:
    """What the audit keeps of a card: its id, indicator, summary and suggestion ids."""
    return {"uuid": card["uuid"], "indicator": card["indicator"], "summary": card["summary"],
            "suggestions": [s["uuid"] for s in card.get("suggestions", []) if "uuid" in s],
            **more}
