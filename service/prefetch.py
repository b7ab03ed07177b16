"""The record behind a hook call: the EHR's prefetch, checked against our templates, and
what it could not give fetched from its FHIR server.

A prefetch value counts only if it is what its template asks for: the Patient for the
read, a searchset Bundle of one page for a search. Anything else is *missing*, never
empty: absent or null (the EHR did not fetch it), an OperationOutcome (it tried and
failed), a Bundle carrying an error outcome, another resource type, or one page of
several. Missing data is fetched from `fhirServer` (asynchronously, so a slow server
holds only its own request); without it the answer is 412, never advice on half a
record. Then every resource must belong to `context.patientId` (never the wrong patient).
"""
from __future__ import annotations

import asyncio
from typing import Any

PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "adverseEvents": "AdverseEvent?subject={{context.patientId}}",
}
MAX_PAGES = 50


class Precondition(Exception):
    """412: the record cannot be had."""


class Mismatch(Exception):
    """400: a resource of another patient. `where` names it without patient data."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def templates(codemap: Any) -> dict[str, str]:
    """Our prefetch templates; Observations only for the codes the code map reads, so a
    prefetch stays small (a patient's whole Observation list can be thousands)."""
    spec = codemap.spec
    found = [c for o in spec.observations.values() for c in o.codes]
    found += spec.clasi.activity + spec.clasi.damage + spec.course_response.codes
    codes = sorted({f"{codemap.uri(c.code.split('#')[0])}|{c.code.split('#')[1]}"
                    for c in found})
    out = dict(PREFETCH)
    out["observations"] = "Observation?patient={{context.patientId}}&code=" + ",".join(codes)
    return out


def next_link(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        for link in value.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next":
                return str(link.get("url") or "")
    return None


def _failed_outcome(resource: Any) -> bool:
    return isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome" \
        and any(isinstance(i, dict) and i.get("severity") in ("error", "fatal")
                for i in resource.get("issue") or [])


def why_missing(template: str, value: Any) -> str | None:
    """None when `value` is what `template` asks for; else why it counts as missing."""
    if value is None:
        return "not prefetched"
    if not isinstance(value, dict):
        return "not a FHIR resource"
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        return "the EHR sent an OperationOutcome (it could not fetch it)"
    wanted = template.split("?")[0].split("/")[0]
    if "?" not in template:
        return None if kind == wanted else f"a {kind} where a {wanted} was asked for"
    if kind != "Bundle" or value.get("type") not in ("searchset", "collection"):
        return f"a {kind} where a searchset Bundle of {wanted} was asked for"
    if next_link(value) is not None:
        return "one page of a longer search (a 'next' link)"
    for e in value.get("entry") or []:
        if _failed_outcome(e.get("resource") if isinstance(e, dict) else None):
            return "the search result carries an error OperationOutcome"
    return None


def missing(given: dict[str, Any], wanted: dict[str, str]) -> dict[str, str]:
    """The template keys the prefetch does not satisfy, with why."""
    out = {}
    for key, template in wanted.items():
        why = "absent" if key not in given else why_missing(template, given[key])
        if why is not None:
            out[key] = why
    return out


async def complete(request: dict[str, Any], wanted: dict[str, str], patient_id: str,
                   client: Any, timeout: float) -> dict[str, Any]:
    """The whole prefetch: what the EHR gave, with the missing keys fetched from its
    FHIR server (every page, on that server only), or Precondition."""
    given = request.get("prefetch") or {}
    if not isinstance(given, dict):
        raise Precondition("prefetch must be an object")
    todo = missing(given, wanted)
    if not todo:
        return {k: given[k] for k in wanted}
    server, auth = request.get("fhirServer"), request.get("fhirAuthorization")
    listed = "; ".join(f"{k}: {why}" for k, why in todo.items())
    if not isinstance(server, str) or not server or not isinstance(auth, dict) \
            or not isinstance(auth.get("access_token"), str):
        raise Precondition(f"the prefetch is incomplete ({listed}) and there is no "
                           "fhirServer with fhirAuthorization to fetch it")
    base = server.rstrip("/")
    headers = {"Authorization": f"Bearer {auth['access_token']}",
               "Accept": "application/fhir+json"}
    jobs = {k: _fetch(client, base, wanted[k], given.get(k), patient_id, headers)
            for k in todo}
    try:
        got = await asyncio.wait_for(asyncio.gather(*jobs.values()), timeout)
    except Precondition:
        raise
    except Exception as exc:  # noqa: BLE001 - timeouts, refused connections, bad JSON
        raise Precondition(f"fetching the record from the FHIR server failed "
                           f"({type(exc).__name__}; {listed})") from None
    out = {k: given[k] for k in wanted if k not in todo}
    for key, value in zip(jobs, got):
        why = why_missing(wanted[key], value)
        if why is not None:
            raise Precondition(f"the FHIR server did not give {key}: {why}")
        out[key] = value
    return {k: out[k] for k in wanted}


async def _fetch(client: Any, base: str, template: str, given: Any, patient_id: str,
                 headers: dict[str, str]) -> Any:
    """One template's data: the search (or read), or the pages a paged value lacks."""
    from urllib.parse import quote
    if next_link(given) is not None:
        first = given
    else:
        url = base + "/" + template.replace("{{context.patientId}}", quote(patient_id, safe=""))
        first = await _get(client, url, headers)
    merged, pages = first, 0
    while (url := next_link(merged)) is not None:
        pages += 1
        if pages > MAX_PAGES or not url.startswith(base + "/"):
            raise Precondition("a search result has more pages than can be fetched from "
                               "the EHR's FHIR server")
        page = await _get(client, url, headers)
        if not isinstance(page, dict):
            raise Precondition("a page of a search result is not a FHIR Bundle")
        entries = list(merged.get("entry") or []) + list(page.get("entry") or [])
        merged = {**page, "entry": entries}
    return merged


async def _get(client: Any, url: str, headers: dict[str, str]) -> Any:
    response = await client.get(url, headers=headers)
    if response.status_code >= 400:
        try:  # an OperationOutcome body is "could not fetch": missing, said as such
            return response.json()
        except ValueError:
            response.raise_for_status()
    return response.json()
