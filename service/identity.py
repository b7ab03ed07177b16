"""Never the wrong patient: every resource a hook call uses must belong to
`context.patientId`. The prefetch Patient must be that patient; every subject and
patient reference in the prefetch and in the draft orders must name it. A mismatch is
a 400 that names where it is (the audit keeps only the place, not the ids)."""
from __future__ import annotations

from typing import Any, Iterator

from .prefetch import Mismatch

REF_FIELDS = ("subject", "patient")


def _resources(value: Any, where: str, depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(value, dict) or depth > 4:
        return
    yield where, value
    if value.get("resourceType") == "Bundle":
        for i, e in enumerate(value.get("entry") or []):
            if isinstance(e, dict):
                yield from _resources(e.get("resource"), f"{where}.entry[{i}].resource",
                                      depth + 1)


def names_patient(reference: Any, patient_id: str) -> bool:
    """A Reference that points at Patient/{patient_id} (relative, absolute, or a
    version of it)."""
    text = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(text, str) or text.startswith(("urn:", "#")):
        return False
    parts = text.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] == patient_id


def _shown(reference: Any) -> str:
    text = reference.get("reference") if isinstance(reference, dict) else None
    return f"'{text}'" if isinstance(text, str) else "no reference"


def check(prefetch: dict[str, Any], draft_orders: Any, patient_id: str) -> None:
    """Mismatch unless every resource used belongs to `patient_id`."""
    for key, value in prefetch.items():
        for where, r in _resources(value, f"prefetch.{key}"):
            _one(r, where, patient_id, required=False)
    for where, r in _resources(draft_orders, "context.draftOrders"):
        if r.get("resourceType") != "Bundle":
            _one(r, where, patient_id, required=True)


def _one(r: dict[str, Any], where: str, patient_id: str, required: bool) -> None:
    if r.get("resourceType") == "Patient":
        if r.get("id") != patient_id:
            raise Mismatch(f"{where} is Patient '{r.get('id')}', not context.patientId "
                           f"'{patient_id}'", where)
        return
    present = [f for f in REF_FIELDS if f in r]
    if required and not present:
        raise Mismatch(f"{where} names no patient (subject), so it cannot be checked for "
                       f"context.patientId '{patient_id}'", where)
    for f in present:
        if not names_patient(r[f], patient_id):
            raise Mismatch(f"{where}.{f} is {_shown(r[f])}, not context.patientId "
                           f"'{patient_id}'", f"{where}.{f}")
