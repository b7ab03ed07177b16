"""One hook call, from its checked request to its answer, without the HTTP around it:
the patient check, the FHIR import, the evaluation and the cards. Pure work that runs
on an evaluation thread; what is fetched over the network is fetched before
(prefetch.complete)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..engine.errors import CledecideError
from . import identity
from .calls import SERVICES, USAGE, Answer, Call, card_record, parse_call, refused, step
from .prefetch import Mismatch, missing, templates


def check_given(call: Call) -> Answer | None:
    """The patient check on what the EHR sent (before anything is fetched)."""
    given = call.request.get("prefetch")
    try:
        identity.check(given if isinstance(given, dict) else {},
                       call.context.get("draftOrders"), call.patient_id)
    except Mismatch as exc:
        return refused(400, f"not the patient in context: {exc}",
                       f"patient mismatch at {exc.where}", call.patient_id)
    return None


class Rules:
    """The rules, the code map and what is built from them once."""

    def __init__(self, rules_dir: str | None) -> None:
        from ..engine.compile import compile_rules
        from ..engine.rulecache import load_ruleset
        from ..engine.ruleset import default_rules_dir
        from ..fhir_r4.codemap import load_codemap
        folder = rules_dir or str(default_rules_dir())
        self.ruleset = load_ruleset(folder)
        self.codemap = load_codemap(folder)
        self.templates = templates(self.codemap)
        compile_rules(self.ruleset)  # warm: the first request costs only its evaluation

    def discovery(self) -> dict[str, Any]:
        prov = self.ruleset.provenance
        return {"services": [{"hook": hook, "id": sid, "title": title,
                              "description": f"{title} (decision support for a clinician; "
                              f"not an order). Rule set {prov.name} {prov.version}.",
                              "usageRequirements": USAGE, "prefetch": self.templates}
                             for sid, (hook, title) in SERVICES.items()]}

    def audit_fields(self) -> dict[str, str]:
        from ..engine.identity import engine_sha256
        prov = self.ruleset.provenance
        return {"ruleset_name": prov.name, "ruleset_version": prov.version,
                "ruleset_sha256": self.ruleset.sha256, "engine_sha256": engine_sha256()}



class Engine(Rules):
    """The evaluation of one checked hook call."""

    def first(self, sid: str, body: bytes, seen: dict[str, Call]) -> Answer | None:
        """The request parsed and checked, and answered at once when its prefetch is
        complete; None when something must be fetched first (seen["call"] holds it)."""
        call = parse_call(sid, body)
        if isinstance(call, Answer):
            return call
        seen["call"] = call
        bad = check_given(call)
        if bad is not None:
            return bad
        given = call.request.get("prefetch")
        if isinstance(given, dict) and not missing(given, self.templates):
            return self.answer(call, {k: given[k] for k in self.templates})
        return None

    def answer(self, call: Call, prefetch: dict[str, Any]) -> Answer:
        """The cards for a complete, checked prefetch (runs on an evaluation thread)."""
        try:
            identity.check(prefetch, call.context.get("draftOrders"), call.patient_id)
        except Mismatch as exc:
            return refused(400, f"not the patient in context: {exc}",
                           f"patient mismatch at {exc.where}", call.patient_id)
        try:
            return self._answer(call, prefetch)
        except CledecideError as exc:
            # never a card that looks like advice: the EHR shows its own error
            return refused(422, f"the record could not be read: {exc.message}",
                           "record not readable", call.patient_id)
        except Exception as exc:  # noqa: BLE001
            return refused(422, f"the record could not be read: {type(exc).__name__}",
                           f"record not readable ({type(exc).__name__})", call.patient_id)

    def _answer(self, call: Call, prefetch: dict[str, Any]) -> Answer:
        from ..engine.load import Document
        from ..engine.validate import validate_patient
        from ..fhir_r4.bundle import import_fhir
        imported = import_fhir(Document("prefetch", prefetch, {}, call.digest),
                               self.codemap, dt.date.today())
        if len(imported) != 1 or imported[0].document is None:
            return refused(422, "the prefetch must hold exactly one Patient",
                           "not one Patient", call.patient_id)
        none = imported[0].no_advice
        if none is not None:  # no CLE on record (hospital-wide hooks send every
            # patient), or deceased: nothing to advise, not an error
            return Answer(200, {"cards": []}, f"no advice: {none.reason}", call.patient_id)
        patient = validate_patient(imported[0].document, self.ruleset.drugs)
        report = imported[0].report
        if call.hook == "patient-view":
            return self._patient_view(call, patient, report)
        from .orders import order_sign
        return order_sign(self, call, patient, report)

    def _patient_view(self, call: Call, patient: Any, report: Any) -> Answer:
        from ..engine.pipeline import evaluate_patient
        from .cards import patient_view_cards
        explanation = evaluate_patient(patient, self.ruleset, call.digest, report)
        cards = patient_view_cards(explanation, self.codemap)
        return Answer(200, {"cards": cards}, "", call.patient_id,
                      step(explanation), [card_record(c) for c in cards])
