"""Patient record -> FHIR R4 Bundle, through the same code map the importer reads.

Test data, not part of the evaluation pipeline: the shared examples' FHIR twins
(examples/fhir/, made by `cledecide export fhir`), the round-trip property (record ->
bundle -> import gives back the same Patient) and EHR-style bundles (extra resources,
several codings per concept, references by urn:uuid and by Type/id).
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from .codemap import CodeEntry, CodeMap
from ..engine.models import Patient

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFY = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
UNITS = {"demographics.weight_kg": "kg", "labs.neutrophils": "10*9/L",
         "labs.platelets": "10*9/L", "labs.egfr": "mL/min/{1.73_m2}",
         "labs.creatinine": "umol/L", "labs.alt": "U/L"}


class _Builder:
    def __init__(self, codemap: CodeMap, patient: Patient, ehr: bool) -> None:
        self.map, self.p, self.ehr = codemap, patient, ehr
        self.entries: list[dict[str, Any]] = []
        self.count = 0
        self.patient_url = self._url("Patient", patient.id)

    def _url(self, kind: str, rid: str) -> str:
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{self.p.id}/{kind}/{rid}')}"

    def ref(self, kind: str, rid: str) -> dict[str, str]:
        """EHR style alternates urn:uuid and Type/id references."""
        self.count += 1
        if self.ehr and self.count % 2:
            return {"reference": f"{kind}/{rid}"}
        return {"reference": self._url(kind, rid)}

    def subject(self) -> dict[str, str]:
        return self.ref("Patient", self.p.id)

    def add(self, resource: dict[str, Any]) -> str:
        rid = resource.setdefault("id", f"r{len(self.entries) + 1}")
        self.entries.append({"fullUrl": self._url(resource["resourceType"], rid),
                             "resource": resource})
        return rid

    def concept(self, entries: list[CodeEntry]) -> dict[str, Any]:
        """All codings of a concept (standard first), or our code only when not EHR."""
        chosen = entries if self.ehr else [e for e in entries if e.code.startswith(
            tuple(n + "#" for n, u in self.map.spec.systems.items()
                  if u.startswith("urn:cledecide:")))] or entries[:1]
        return {"coding": [self.map.coding(e) for e in chosen], "text": entries[0].display}

    def answer(self, answers: dict[str, Any], value: Any) -> dict[str, Any]:
        key = next(k for k, v in answers.items() if v == value and type(v) is type(value))
        name, code = key.split("#", 1)
        return {"coding": [{"system": self.map.uri(name), "code": code}]}

    def observation(self, name: str, when: dt.date | None, **value: Any) -> None:
        spec = self.map.spec.observations[name]
        self.add({"resourceType": "Observation", "status": "final",
                  "code": self.concept(spec.codes), "subject": self.subject(),
                  "effectiveDateTime": (when or self.p.as_of).isoformat(), **value})


def to_bundle(patient: Patient, codemap: CodeMap, ehr: bool = False) -> dict[str, Any]:
    """A FHIR R4 collection Bundle that imports back to `patient`. `ehr` adds what
    real EHRs send: extra resources, several codings, mixed reference styles."""
    p = patient
    if p.demographics.age != int(p.demographics.age):
        raise ValueError("a fractional age has no FHIR form (birthDate gives whole years)")
    b = _Builder(codemap, p, ehr)
    age = int(p.demographics.age)
    try:
        birth = p.as_of.replace(year=p.as_of.year - age)
    except ValueError:  # 29 February
        birth = p.as_of.replace(year=p.as_of.year - age, day=28)
    b.add({"resourceType": "Patient", "id": p.id, "gender": p.demographics.sex,
           "birthDate": birth.isoformat()})
    spec = codemap.spec
    if p.demographics.weight_kg is not None:
        b.observation("demographics.weight_kg", p.as_of, valueQuantity=_qty(
            p.demographics.weight_kg, "kg", codemap))
    for lab in ("neutrophils", "platelets", "egfr", "creatinine", "alt"):
        value = getattr(p.labs, lab)
        if value is not None:
            b.observation(f"labs.{lab}", value.date, valueQuantity=_qty(
                value.value, UNITS[f"labs.{lab}"], codemap))
    if p.labs.g6pd is not None:
        b.observation("labs.g6pd", p.labs.g6pd.date, valueCodeableConcept=b.answer(
            spec.observations["labs.g6pd"].answers, p.labs.g6pd.value))
    if p.reproductive is not None:
        _reproductive(b, p.reproductive)
    if p.smoker != "unknown":
        b.observation("smoker", None, valueBoolean=p.smoker)
    dx = p.diagnosis
    if dx.extent != "unknown":
        b.observation("diagnosis.extent", None, valueCodeableConcept=b.answer(
            spec.observations["diagnosis.extent"].answers, dx.extent))
    if dx.suspected_drug_trigger:
        b.observation("diagnosis.suspected_drug_trigger", None,
                      valueString=dx.suspected_drug_trigger)
    _condition(b, spec.subtypes[dx.subtype], "confirmed")
    if dx.systemic_lupus is True:
        _condition(b, spec.systemic_lupus, "confirmed")
    elif dx.systemic_lupus is False:
        _condition(b, spec.systemic_lupus, "refuted")
    for word in p.conditions:
        _condition(b, spec.comorbidities[word], "confirmed")
    for word in p.symptoms:
        _condition(b, spec.symptoms[word], "confirmed")
    for a in p.activity:
        b.add({"resourceType": "Observation", "status": "final",
               "code": b.concept(spec.clasi.activity), "subject": b.subject(),
               "effectiveDateTime": a.date.isoformat(),
               "valueQuantity": {"value": a.clasi_activity}})
        if a.clasi_damage is not None:
            b.add({"resourceType": "Observation", "status": "final",
                   "code": b.concept(spec.clasi.damage), "subject": b.subject(),
                   "effectiveDateTime": a.date.isoformat(),
                   "valueQuantity": {"value": a.clasi_damage}})
    for i, c in enumerate(p.treatments):
        _course(b, c, i)
    for e in p.eye_exams:
        b.add({"resourceType": "Procedure", "status": "completed",
               "code": b.concept(spec.eye_exam.codes), "subject": b.subject(),
               "performedDateTime": e.date.isoformat(),
               "outcome": b.answer(spec.eye_exam.outcomes, e.result)})
    if ehr:
        _extras(b)
    return {"resourceType": "Bundle", "type": "collection",
            "timestamp": f"{p.as_of.isoformat()}T12:00:00Z", "entry": b.entries}


def _reproductive(b: _Builder, r: Any) -> None:
    spec = b.map.spec
    for name in ("childbearing_potential", "breastfeeding", "oestrogen_contraception",
                 "planning_pregnancy", "partner_may_conceive", "condom_use",
                 "planning_to_father"):
        value = getattr(r, name)
        if value != "unknown":
            b.observation(f"reproductive.{name}", None, valueBoolean=value)
    if r.pregnant != "unknown":
        b.observation("reproductive.pregnant", None, valueCodeableConcept=b.answer(
            spec.observations["reproductive.pregnant"].answers, r.pregnant))
    if r.contraception != "unknown":
        b.observation("reproductive.contraception", None, valueCodeableConcept=b.answer(
            spec.observations["reproductive.contraception"].answers, r.contraception))
    if r.contraception_since is not None:
        b.observation("reproductive.contraception_since", None,
                      valueDateTime=r.contraception_since.isoformat())
    for when in r.negative_tests():
        b.observation("reproductive.negative_pregnancy_tests", when,
                      valueCodeableConcept=b.answer(spec.observations[
                          "reproductive.negative_pregnancy_tests"].answers, "negative"))


def _qty(value: float, unit: str, codemap: CodeMap) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": codemap.spec.ucum, "code": unit}


def _condition(b: _Builder, entries: list[CodeEntry], verification: str) -> None:
    b.add({"resourceType": "Condition",
           "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
           "verificationStatus": {"coding": [{"system": VERIFY, "code": verification}]},
           "code": b.concept(entries), "subject": b.subject()})


def _course(b: _Builder, c: Any, i: int) -> None:
    spec = b.map.spec
    rid = f"course{i + 1}"
    period: dict[str, str] = {"start": c.start.isoformat()}
    if c.stop is not None:
        period["end"] = c.stop.isoformat()
    # EHRs send both: a statement of what is taken, or the order (request) itself.
    kind = "MedicationRequest" if b.ehr and i % 3 == 2 else "MedicationStatement"
    resource: dict[str, Any] = {
        "resourceType": kind, "id": rid,
        "status": "stopped" if c.stop is not None else "active",
        "subject": b.subject()}
    if kind == "MedicationStatement":
        resource["effectivePeriod"] = period
    else:
        resource.update(intent="order", authoredOn=period["start"],
                        dispenseRequest={"validityPeriod": period})
    concept = b.concept(spec.medications[c.drug])
    if b.ehr and i % 2:  # some EHRs send a Medication resource by reference
        med_id = b.add({"resourceType": "Medication", "id": f"med{i + 1}", "code": concept})
        resource["medicationReference"] = b.ref("Medication", med_id)
    else:
        resource["medicationCodeableConcept"] = concept
    dose, unit = (c.dose_mg_per_day, "d") if c.dose_mg_per_day is not None else \
        (c.dose_mg_per_week, "wk")
    if dose is not None:
        field = "dosage" if kind == "MedicationStatement" else "dosageInstruction"
        resource[field] = [{
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": unit}},
            "doseAndRate": [{"doseQuantity": _qty(dose, "mg", b.map)}]}]
    if c.stop_reason is not None:
        reason = b.concept(spec.stop_reasons[c.stop_reason])
        resource["statusReason"] = [reason] if kind == "MedicationStatement" else reason
    b.add(resource)
    if c.response != "unknown":
        b.add({"resourceType": "Observation", "status": "final",
               "code": b.concept(spec.course_response.codes), "subject": b.subject(),
               "effectiveDateTime": (c.stop or b.p.as_of).isoformat(),
               "focus": [b.ref(kind, rid)],
               "valueCodeableConcept": b.answer(spec.course_response.answers, c.response)})
    for word in c.adverse_events:
        b.add({"resourceType": "AdverseEvent", "actuality": "actual",
               "subject": b.subject(), "event": b.concept(spec.symptoms[word]),
               "suspectEntity": [{"instance": b.ref(kind, rid)}]})


def _extras(b: _Builder) -> None:
    """What an EHR sends beside what we read: the importer must report, not choke."""
    b.add({"resourceType": "Encounter", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                     "code": "AMB"}, "subject": b.subject()})
    b.add({"resourceType": "Observation", "status": "final", "subject": b.subject(),
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                                "display": "Heart rate"}]},
           "effectiveDateTime": b.p.as_of.isoformat(),
           "valueQuantity": {"value": 72, "unit": "/min",
                             "system": "http://unitsofmeasure.org", "code": "/min"}})
    b.add({"resourceType": "AllergyIntolerance", "patient": b.subject(),
           "code": {"text": "penicillin"}})


PREFETCH_TYPES = {"conditions": ("Condition",), "observations": ("Observation",),
                  "medicationStatements": ("MedicationStatement", "Medication"),
                  "medicationRequests": ("MedicationRequest",),
                  "procedures": ("Procedure",), "adverseEvents": ("AdverseEvent",)}


def prefetch_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """A collection Bundle as the CDS Hooks prefetch an EHR would send for our
    discovery templates: the Patient, then one searchset per template. References to
    the Patient become Patient/id, as in a real prefetch (no fullUrl to point at)."""
    entries = bundle["entry"]
    patient = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
    text = __import__("json").dumps(entries).replace(
        patient["fullUrl"], f"Patient/{patient['resource']['id']}")
    entries = __import__("json").loads(text)
    out: dict[str, Any] = {"patient": next(e["resource"] for e in entries
                                           if e["resource"]["resourceType"] == "Patient")}
    for key, kinds in PREFETCH_TYPES.items():
        found = [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in entries
                 if e["resource"]["resourceType"] in kinds]
        out[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                    "entry": found}
    return out


def hook_request(bundle: dict[str, Any], hook: str = "patient-view",
                 draft_orders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A CDS Hooks request body for one of our services, with full prefetch."""
    prefetch = prefetch_of(bundle)
    pid = prefetch["patient"]["id"]
    context: dict[str, Any] = {"userId": "Practitioner/example", "patientId": pid}
    if draft_orders is not None:
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in draft_orders]}
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context,
            "prefetch": prefetch}
