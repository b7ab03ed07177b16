"""Synthea-shaped FHIR R4 bundles for tests and benchmarks (synthetic, never clinical data).

Synthea (github.com/synthetichealth/synthea, Apache-2.0) writes one `transaction` Bundle
per patient: a Patient with US Core extensions, then years of Encounters, each with its
vital signs, lab panels, Conditions, MedicationRequests, Claims and ExplanationOfBenefits
(the bulk of the bytes), DiagnosticReports with base64 notes, Immunizations, Procedures,
CarePlans and Provenance. This generator writes the same shapes, seeded, with a cutaneous
lupus Condition added the way an EHR codes it (issue 23), and with the variations real
exports carry (`Variant`): the truth of each variation is kept beside the bundle, so a
test can check the import read it, refused it in one line, or asked for it.

The codes below are test data: the ones the code map reads are the map's own codes, the
others are Synthea's, used only to be *not* mapped (a real export's noise).
"""
from __future__ import annotations

import base64
import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

LOINC, SNOMED, RXNORM, UCUM = ("http://loinc.org", "http://snomed.info/sct",
                               "http://www.nlm.nih.gov/research/umls/rxnorm",
                               "http://unitsofmeasure.org")
ICD10CM, ICD10 = "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFY = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"

# Synthea's noise: conditions and observations the code map does not read.
NOISE_CONDITIONS = [("444814009", "Viral sinusitis (disorder)"),
                    ("10509002", "Acute bronchitis (disorder)"),
                    ("195662009", "Acute viral pharyngitis (disorder)"),
                    ("40055000", "Chronic sinusitis (disorder)")]
VITALS = [("8302-2", "Body height", "cm", 150, 190),
          ("39156-5", "Body mass index", "kg/m2", 18, 35),
          ("8867-4", "Heart rate", "/min", 55, 100), ("9279-1", "Respiratory rate", "/min", 12, 20)]
PANEL = [("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4, 11),
         ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11, 17),
         ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 70, 110),
         ("2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", 135, 145)]


@dataclass
class Variant:
    """What one bundle carries besides the usual, and what it means (the truth)."""

    cle: str | None = "DLE"            # the CLE subtype coded, None: no CLE on record
    cle_coding: str = "snomed+icd"     # snomed+icd | icd | who | undotted | snomed
    cle_status: str = "active"         # clinicalStatus of the CLE Condition
    cle_verification: str | None = "confirmed"
    deceased: str | None = None        # None | "boolean" | "datetime" | "after_as_of"
    birth: str = "full"                # full | month (YYYY-MM) | year (YYYY)
    weight: str = "kg"                 # kg | lb_ucum | lb_text | stone | none
    weight_age_days: int = 10          # age of the newest weight on as_of
    retinopathy: bool = False          # diabetic retinopathy on the problem list
    hcq: str | None = None             # None | ingredient | product | text | contained
    hcq_dose: str = "mg"               # mg | tab | unitless | bid
    hcq_status: str = "active"         # active | completed_no_end | proposal
    contraception: str | None = None   # None | lng_ius | combined_pill | implant
    pregnancy_answer: str | None = None  # None | loinc_not_pregnant | snomed_not_pregnant
    hcg_text: str | None = None        # None | "Negative" | "positive" | "equivocal"
    smoking: str | None = None         # None | daily | never | former
    egfr_code: str = "33914-3"
    encounters: int = 6
    note_bytes: int = 3000             # base64 note per DiagnosticReport


@dataclass
class Made:
    """A bundle and the truth it encodes."""

    bundle: dict[str, Any]
    as_of: dt.date
    variant: Variant
    truth: dict[str, Any] = field(default_factory=dict)


class _B:
    def __init__(self, rng: random.Random, pid: str) -> None:
        self.rng, self.pid = rng, pid
        self.entries: list[dict[str, Any]] = []
        self.patient_url = self.url()

    def url(self) -> str:
        return f"urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def add(self, resource: dict[str, Any], url: str | None = None) -> str:
        url = url or self.url()
        resource.setdefault("id", url.rsplit(":", 1)[-1])
        self.entries.append({"fullUrl": url, "resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"]}})
        return url

    def ref(self, url: str) -> dict[str, str]:
        return {"reference": url}


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}],
            "text": text or display}


def _when(d: dt.date) -> str:
    return f"{d.isoformat()}T10:{d.day % 60:02d}:00-05:00"


def _instant(d: dt.date) -> str:
    return f"{d.isoformat()}T10:{d.day % 60:02d}:00.000-05:00"


def synthea_like(seed: int, variant: Variant | None = None,
                 as_of: dt.date = dt.date(2026, 11, 20)) -> Made:
    """One Synthea-shaped patient bundle (type transaction) and the truth it encodes."""
    v = variant or Variant()
    rng = random.Random(seed)
    b = _B(rng, f"p{seed}")
    truth: dict[str, Any] = {}
    age = rng.randint(20, 70)
    birth = dt.date(as_of.year - age, rng.randint(1, 12), rng.randint(1, 28))
    truth["age"] = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
    sex = rng.choice(["female", "male"])
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": b.patient_url.rsplit(":", 1)[-1],
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "extension": [
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
             "extension": [{"url": "ombCategory", "valueCoding": {
                 "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3",
                 "display": "White"}}, {"url": "text", "valueString": "White"}]},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
             "valueString": "Jane Doe"},
            {"url": "http://synthetichealth.github.io/synthea/disability-adjusted-life-years",
             "valueDecimal": round(rng.random(), 6)}],
        "identifier": [{"system": "https://github.com/synthetichealth/synthea",
                        "value": str(uuid.UUID(int=rng.getrandbits(128)))}],
        "name": [{"use": "official", "family": f"Family{seed}", "given": [f"Given{seed}"]}],
        "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
        "gender": sex,
        "birthDate": {"full": birth.isoformat(), "month": birth.isoformat()[:7],
                      "year": birth.isoformat()[:4]}[v.birth],
        "address": [{"line": ["1 Main St"], "city": "Boston", "state": "MA", "country": "US",
                     "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                                    "extension": [{"url": "latitude", "valueDecimal": 42.36},
                                                  {"url": "longitude", "valueDecimal": -71.05}]}]}],
        "maritalStatus": _concept("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                  "M", "Married"),
        "multipleBirthBoolean": False,
        "communication": [{"language": _concept("urn:ietf:bcp:47", "en-US", "English")}]}
    if v.deceased == "boolean":
        patient["deceasedBoolean"] = True
    elif v.deceased == "datetime":
        patient["deceasedDateTime"] = _when(as_of - dt.timedelta(days=400))
    elif v.deceased == "after_as_of":
        patient["deceasedDateTime"] = _when(as_of + dt.timedelta(days=30))
    truth["deceased"] = v.deceased in ("boolean", "datetime")
    b.entries.append({"fullUrl": b.patient_url, "resource": patient,
                      "request": {"method": "POST", "url": "Patient"}})
    start = as_of - dt.timedelta(days=365 * 3)
    days = sorted(rng.sample(range(0, 365 * 3 - 30), max(1, v.encounters)))
    for i, offset in enumerate(days):
        _encounter(b, rng, start + dt.timedelta(days=offset), v, i == 0)
    _clinical(b, rng, v, as_of, sex, truth)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}
    return Made(bundle, as_of, v, truth)


def _encounter(b: _B, rng: random.Random, day: dt.date, v: Variant, first: bool) -> None:
    enc = b.add({"resourceType": "Encounter", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "AMB"},
                 "type": [_concept(SNOMED, "185349003", "Encounter for check up (procedure)")],
                 "subject": b.ref(b.patient_url),
                 "period": {"start": _when(day), "end": _when(day)}})
    for code, display, unit, lo, hi in VITALS:
        _obs(b, enc, day, "vital-signs", code, display,
             {"valueQuantity": {"value": round(rng.uniform(lo, hi), 1), "unit": unit,
                                "system": UCUM, "code": unit}})
    b.add({"resourceType": "Observation", "status": "final",
           "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
           "code": _concept(LOINC, "85354-9", "Blood pressure panel"),
           "subject": b.ref(b.patient_url), "encounter": b.ref(enc),
           "effectiveDateTime": _when(day), "issued": _instant(day),
           "component": [{"code": _concept(LOINC, "8480-6", "Systolic blood pressure"),
                          "valueQuantity": {"value": rng.randint(100, 140), "unit": "mm[Hg]",
                                            "system": UCUM, "code": "mm[Hg]"}}]})
    report_results = []
    for code, display, unit, lo, hi in PANEL:
        report_results.append(b.ref(_obs(b, enc, day, "laboratory", code, display, {
            "valueQuantity": {"value": round(rng.uniform(lo, hi), 1), "unit": unit,
                              "system": UCUM, "code": unit}})))
    if not first and rng.random() < 0.5:
        name = rng.choice(NOISE_CONDITIONS)
        b.add({"resourceType": "Condition",
               "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "resolved"}]},
               "verificationStatus": {"coding": [{"system": VERIFY, "code": "confirmed"}]},
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                         "code": "encounter-diagnosis"}]}],
               "code": _concept(SNOMED, *name), "subject": b.ref(b.patient_url),
               "encounter": b.ref(enc), "onsetDateTime": _when(day),
               "abatementDateTime": _when(day + dt.timedelta(days=14)),
               "recordedDate": _when(day)})
    note = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(v.note_bytes))).decode()
    b.add({"resourceType": "DiagnosticReport", "status": "final",
           "code": _concept(LOINC, "34117-2", "History and physical note"),
           "subject": b.ref(b.patient_url), "encounter": b.ref(enc),
           "effectiveDateTime": _when(day), "issued": _instant(day),
           "result": report_results,
           "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": note}]})
    claim = b.add({"resourceType": "Claim", "status": "active",
                   "type": _concept("http://terminology.hl7.org/CodeSystem/claim-type",
                                    "professional", "Professional"),
                   "use": "claim", "patient": b.ref(b.patient_url),
                   "billablePeriod": {"start": _when(day), "end": _when(day)},
                   "created": _when(day), "provider": {"display": "Clinic"},
                   "priority": {"coding": [{"code": "normal"}]},
                   "insurance": [{"sequence": 1, "focal": True,
                                  "coverage": {"display": "Medicaid"}}],
                   "item": [{"sequence": n, "productOrService": _concept(
                       SNOMED, "185349003", "Encounter for check up"),
                       "encounter": [b.ref(enc)]} for n in range(1, 13)],
                   "total": {"value": 129.16, "currency": "USD"}})
    b.add({"resourceType": "ExplanationOfBenefit", "status": "active",
           "type": _concept("http://terminology.hl7.org/CodeSystem/claim-type",
                            "professional", "Professional"),
           "use": "claim", "patient": b.ref(b.patient_url), "created": _when(day),
           "insurer": {"display": "Medicaid"}, "provider": {"display": "Clinic"},
           "claim": b.ref(claim), "outcome": "complete",
           "insurance": [{"focal": True, "coverage": {"display": "Medicaid"}}],
           "item": [{"sequence": n, "productOrService": _concept(
               SNOMED, "185349003", "Encounter for check up"),
               "servicedPeriod": {"start": _when(day), "end": _when(day)},
               "adjudication": [{"category": _concept(
                   "https://bluebutton.cms.gov/resources/codesystem/adjudication",
                   "https://bluebutton.cms.gov/resources/variables/line_coinsrnc_amt",
                   "Line Beneficiary Coinsurance Amount"),
                   "amount": {"value": 25.8, "currency": "USD"}}]} for n in range(1, 13)],
           "total": [{"category": _concept("http://terminology.hl7.org/CodeSystem/adjudication",
                                           "submitted", "Submitted Amount"),
                      "amount": {"value": 129.16, "currency": "USD"}}]})
    b.add({"resourceType": "Immunization", "status": "completed",
           "vaccineCode": _concept("http://hl7.org/fhir/sid/cvx", "140", "Influenza"),
           "patient": b.ref(b.patient_url), "encounter": b.ref(enc),
           "occurrenceDateTime": _when(day), "primarySource": True})
    b.add({"resourceType": "Provenance", "target": [b.ref(enc)], "recorded": _instant(day),
           "agent": [{"who": {"display": "Clinic"}}]})


def _obs(b: _B, enc: str | None, day: dt.date, category: str, code: str, display: str,
         value: dict[str, Any], status: str = "final") -> str:
    resource = {"resourceType": "Observation", "status": status,
                "category": [{"coding": [{"system": OBS_CAT, "code": category}]}],
                "code": _concept(LOINC, code, display), "subject": b.ref(b.patient_url),
                "effectiveDateTime": _when(day), "issued": _instant(day), **value}
    if enc:
        resource["encounter"] = b.ref(enc)
    return b.add(resource)


def _clinical(b: _B, rng: random.Random, v: Variant, as_of: dt.date, sex: str,
              truth: dict[str, Any]) -> None:
    """What the code map reads: the CLE Condition, weight, labs, problems, medications."""
    if v.cle:
        _cle_condition(b, v, as_of)
    truth["cle"] = v.cle is not None
    recent = as_of - dt.timedelta(days=v.weight_age_days)
    kg = round(rng.uniform(50, 95), 1)
    truth["weight_kg"] = kg
    truth["weight_date"] = recent
    if v.weight != "none":
        _obs(b, None, as_of - dt.timedelta(days=v.weight_age_days + 400), "vital-signs",
             "29463-7", "Body weight", {"valueQuantity": {"value": kg + 9, "unit": "kg",
                                                          "system": UCUM, "code": "kg"}})
        q = {"kg": {"value": kg, "unit": "kg", "system": UCUM, "code": "kg"},
             "lb_ucum": {"value": round(kg / 0.45359237, 3), "unit": "lb", "system": UCUM,
                         "code": "[lb_av]"},
             "lb_text": {"value": round(kg / 0.45359237, 3), "unit": "lb"},
             "stone": {"value": round(kg / 6.35029318, 3), "unit": "st"}}[v.weight]
        _obs(b, None, recent, "vital-signs", "29463-7", "Body weight", {"valueQuantity": q})
    for code, value, unit in ((v.egfr_code, 88, "mL/min/{1.73_m2}"), ("751-8", 3.4, "10*3/uL"),
                              ("777-3", 250, "10*3/uL"), ("1742-6", 22, "U/L")):
        _obs(b, None, as_of - dt.timedelta(days=20), "laboratory", code, code,
             {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}})
    if v.retinopathy:
        b.add({"resourceType": "Condition",
               "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
               "verificationStatus": {"coding": [{"system": VERIFY, "code": "confirmed"}]},
               "code": _concept(SNOMED, "422034002",
                                "Retinopathy due to type 2 diabetes mellitus (disorder)"),
               "subject": b.ref(b.patient_url),
               "onsetDateTime": _when(as_of - dt.timedelta(days=700))})
    truth["retinopathy"] = v.retinopathy
    if v.smoking:
        answer = {"daily": ("449868002", "Smokes tobacco daily (finding)"),
                  "never": ("266919005", "Never smoked tobacco (finding)"),
                  "former": ("8517006", "Ex-smoker (finding)")}[v.smoking]
        _obs(b, None, as_of - dt.timedelta(days=30), "social-history", "72166-2",
             "Tobacco smoking status", {"valueCodeableConcept": _concept(SNOMED, *answer)})
        truth["smoker"] = v.smoking == "daily"
    if sex == "female":
        _reproductive(b, v, as_of, truth)
    if v.hcq:
        _hcq(b, v, as_of, truth)


def _cle_condition(b: _B, v: Variant, as_of: dt.date) -> None:
    snomed = {"DLE": ("200938002", "Discoid lupus erythematosus (disorder)"),
              "SCLE": ("239891002", "Subacute cutaneous lupus erythematosus (disorder)")}[v.cle]
    icd = {"DLE": "L93.0", "SCLE": "L93.1"}[v.cle]
    codings = []
    if "snomed" in v.cle_coding:
        codings.append({"system": SNOMED, "code": snomed[0], "display": snomed[1]})
    if v.cle_coding in ("snomed+icd", "icd"):
        codings.append({"system": ICD10CM, "code": icd})
    elif v.cle_coding == "who":
        codings.append({"system": ICD10, "code": icd})
    elif v.cle_coding == "undotted":
        codings.append({"system": ICD10CM, "code": icd.replace(".", "")})
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": v.cle_status}]},
        "code": {"coding": codings, "text": snomed[1]}, "subject": b.ref(b.patient_url),
        "onsetDateTime": _when(as_of - dt.timedelta(days=500)),
        "recordedDate": _when(as_of - dt.timedelta(days=500))}
    if v.cle_verification:
        condition["verificationStatus"] = {"coding": [{"system": VERIFY,
                                                       "code": v.cle_verification}]}
    b.add(condition)


def _reproductive(b: _B, v: Variant, as_of: dt.date, truth: dict[str, Any]) -> None:
    day = as_of - dt.timedelta(days=5)
    if v.pregnancy_answer == "loinc_not_pregnant":
        _obs(b, None, day, "social-history", "82810-3", "Pregnancy status",
             {"valueCodeableConcept": _concept(LOINC, "LA26683-5", "Not pregnant")})
        truth["pregnant"] = False
    elif v.pregnancy_answer == "snomed_not_pregnant":
        _obs(b, None, day, "social-history", "82810-3", "Pregnancy status",
             {"valueCodeableConcept": _concept(SNOMED, "60001007", "Not pregnant (finding)")})
        truth["pregnant"] = False
    if v.hcg_text:
        _obs(b, None, day, "laboratory", "2106-3",
             "Choriogonadotropin (pregnancy test) [Presence] in Urine",
             {"valueString": v.hcg_text})
        truth["hcg"] = v.hcg_text
    if v.contraception:
        code, display, oestrogen = {
            "lng_ius": ("807283", "Mirena 52 MG Intrauterine System", False),
            "combined_pill": ("238019", "ethinyl estradiol 0.03 MG / levonorgestrel 0.15 MG "
                                         "Oral Tablet", True),
            "implant": ("389221", "etonogestrel 68 MG Drug Implant", False)}[v.contraception]
        since = as_of - dt.timedelta(days=200)
        b.add({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
               "medicationCodeableConcept": _concept(RXNORM, code, display),
               "subject": b.ref(b.patient_url), "authoredOn": _when(since)})
        truth["contraception_oestrogen"] = oestrogen
        truth["contraception_since"] = since


def _hcq(b: _B, v: Variant, as_of: dt.date, truth: dict[str, Any]) -> None:
    """Hydroxychloroquine taken now, coded as an EHR codes it."""
    start = as_of - dt.timedelta(days=120)
    order: dict[str, Any] = {"resourceType": "MedicationRequest", "status": "active",
                             "intent": "order", "subject": b.ref(b.patient_url),
                             "authoredOn": _when(start)}
    if v.hcq == "ingredient":
        order["medicationCodeableConcept"] = _concept(RXNORM, "5521", "hydroxychloroquine")
    elif v.hcq == "product":
        order["medicationCodeableConcept"] = _concept(
            RXNORM, "979092", "hydroxychloroquine sulfate 200 MG Oral Tablet")
    elif v.hcq == "text":
        order["medicationCodeableConcept"] = {"text": "Plaquenil 200mg tablets"}
    elif v.hcq == "contained":
        order["contained"] = [{"resourceType": "Medication", "id": "med1",
                               "code": _concept(RXNORM, "979092", "hydroxychloroquine "
                                                "sulfate 200 MG Oral Tablet")}]
        order["medicationReference"] = {"reference": "#med1"}
    repeat = {"frequency": 1, "period": 1, "periodUnit": "d"}
    dose: dict[str, Any] = {"value": 400, "unit": "mg", "system": UCUM, "code": "mg"}
    if v.hcq_dose == "tab":
        dose = {"value": 2, "unit": "TAB", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                "code": "TAB"}
    elif v.hcq_dose == "unitless":
        dose = {"value": 2}
    dosage: dict[str, Any] = {"sequence": 1, "timing": {"repeat": repeat},
                              "doseAndRate": [{"doseQuantity": dose}]}
    if v.hcq_dose == "bid":
        dosage["timing"] = {"code": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
            "code": "BID"}]}}
        dosage["doseAndRate"] = [{"doseQuantity": {"value": 200, "unit": "mg",
                                                   "system": UCUM, "code": "mg"}}]
    order["dosageInstruction"] = [dosage]
    if v.hcq_status == "completed_no_end":
        order["status"] = "completed"
    elif v.hcq_status == "proposal":
        order["intent"] = "proposal"
    b.add(order)
    truth["hcq_current"] = v.hcq_status == "active"
    truth["hcq_taken"] = v.hcq_status in ("active", "completed_no_end")


def sized(target_bytes: int, seed: int = 1, **kw: Any) -> Made:
    """A bundle of about `target_bytes` as Synthea writes it (JSON indented by 2): more
    encounters, as Synthea's records grow with the years."""
    import json
    made = synthea_like(seed, Variant(encounters=4, **kw))
    per = len(json.dumps(made.bundle, indent=2)) / 4
    return synthea_like(seed, Variant(encounters=max(1, int(target_bytes / per)), **kw))
