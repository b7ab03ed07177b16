"""`cledecide serve` over real loopback (issues 11 and 22): the server runs as a
subprocess on a free 127.0.0.1 port (real uvicorn) and is called with httpx, as an EHR
would, with request bodies written from the CDS Hooks 2.0 specification's own examples
(tests/cds_hooks_spec). It stops with the test module."""
from __future__ import annotations

import concurrent.futures
import copy
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cledecide import evaluate_file
from cledecide.fhir_r4.export import hook_request
from cledecide.service.server import dev_setup

from conftest import EXAMPLES
from servicekit import (AUTH, NAMES, OS, PV, FakeFHIR, Server, free_port, order,
                        request_for, running, spec)
from test_examples import CLI


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    # a long deadline: the slow-FHIR test holds requests while others are answered
    with running(tmp_path_factory.mktemp("dev"), cors_origins=["https://ehr.example.org"],
                 request_timeout_seconds=60, fhir_timeout_seconds=60) as srv:
        yield srv


def test_discovery_lists_both_hooks_with_prefetch_and_usage(server: Server) -> None:
    services = httpx.get(server.base, timeout=10).json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {(PV, "patient-view"),
                                                       (OS, "order-sign")}
    for s in services:
        assert s["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert "MedicationStatement?patient={{context.patientId}}" in s["prefetch"].values()
        assert "no CLE" in s["usageRequirements"]


def test_health_needs_no_token_and_names_no_patient(server: Server) -> None:
    response = httpx.get(f"{server.root}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and "patient" not in response.text


@pytest.mark.parametrize("name", NAMES)
def test_patient_view_card_for_every_example(server: Server, name: str) -> None:
    response = server.post(PV, request_for(name))
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    expected = evaluate_file(EXAMPLES / f"{name}.yaml").result.recommendation
    assert len(card["summary"]) <= 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert expected.rule in card["detail"] and card["source"]["topic"]["code"] == expected.rule
    assert "cle-default" in card["source"]["label"]
    # the shipped rules are a draft: the card says so where the clinician reads it
    assert "draft: not clinically approved" in card["source"]["label"]
    if expected.action in ("start", "add", "switch") and expected.drug:
        action = card["suggestions"][0]["actions"][0]
        assert action["resource"]["resourceType"] == "MedicationRequest"
        assert action["resource"]["intent"] == "proposal"
    if card["indicator"] == "critical":
        assert card["overrideReasons"]


@pytest.mark.parametrize("name,drug,mg,why", [
    ("widespread-scle-new", "thalidomide", 100, "two reliable contraception"),
    ("refractory-pregnancy-unknown", "lenalidomide", 5, "pregnan"),
    ("refractory-neuropathy", "chloroquine", 250, "chloroquine"),
    ("widespread-scle-new", "hydroxychloroquine", 600, "mg"),
])
def test_order_sign_excluded_drug_gets_a_critical_card(server: Server, name: str, drug: str,
                                                       mg: float, why: str) -> None:
    response = server.post(OS, request_for(name, "order-sign", [order(drug, mg)]))
    assert response.status_code == 200, response.text
    card = response.json()["cards"][0]
    assert card["indicator"] == "critical", card
    assert why in card["detail"] and "**Instead:**" in card["detail"]
    assert card["overrideReasons"]


def test_order_sign_allowed_drug_is_not_critical(server: Server) -> None:
    response = server.post(OS, request_for("widespread-scle-new", "order-sign",
                                           [order("hydroxychloroquine", 300)]))
    assert response.json()["cards"][0]["indicator"] == "info"


def test_feedback_is_audited(server: Server) -> None:
    card = server.post(PV, request_for("hcq-inadequate")).json()["cards"][0]
    body = spec("feedback-overridden")
    body["feedback"][0]["card"] = card["uuid"]
    assert server.post(f"{PV}/feedback", body).status_code == 200
    (row,) = [r for r in server.rows() if r["kind"] == "feedback"
              and r["request_id"] == card["uuid"]]
    assert json.loads(row["feedback"])["overrideReason"] == "d7ecf885"
    assert "A comment entered" not in json.dumps(row)  # free text is never stored


def test_feedback_is_checked_as_the_specification_requires(server: Server) -> None:
    """outcomeTimestamp required; acceptedSuggestions required when accepted (and one
    of the card's); a card this service never delivered refused; all 400."""
    card = server.post(PV, request_for("widespread-scle-new")).json()["cards"][0]
    suggestion = card["suggestions"][0]["uuid"]
    accepted = spec("feedback-accepted")
    assert server.post(f"{PV}/feedback", accepted).status_code == 400  # unknown card
    item = accepted["feedback"][0]
    item["card"] = card["uuid"]
    assert server.post(f"{PV}/feedback", accepted).status_code == 400  # unknown suggestion
    item["acceptedSuggestions"] = [{"id": suggestion}]
    for broken in ({"outcomeTimestamp": None}, {"acceptedSuggestions": None},
                   {"outcome": "ignored"}, {"outcomeTimestamp": "yesterday"}):
        body = {"feedback": [{k: v for k, v in {**item, **broken}.items() if v is not None}]}
        response = server.post(f"{PV}/feedback", body)
        assert response.status_code == 400, broken
    assert server.post(f"{OS}/feedback", accepted).status_code == 400  # another service's
    assert server.post(f"{PV}/feedback", accepted).status_code == 200


def test_auth_failures_are_401_without_detail(server: Server) -> None:
    """Including: `aud` the base URL (not the endpoint called), a token for another
    endpoint, and a token without `kid` (refused for every issuer)."""
    body = request_for("hcq-inadequate")
    other = ec.generate_private_key(ec.SECP384R1())
    now = int(time.time())
    claims = {"iss": "dev-ehr", "aud": f"{server.base}/{PV}", "iat": now, "exp": now + 60,
              "jti": "x-1"}
    forged = jwt.encode(claims, other, algorithm="ES384", headers={"kid": "dev-1"})
    key = (server.folder / "dev-private-key.pem").read_bytes()
    expired = jwt.encode({**claims, "jti": "x-2", "iat": now - 600, "exp": now - 300}, key,
                         algorithm="ES384", headers={"kid": "dev-1"})
    no_kid = jwt.encode({**claims, "jti": "x-3"}, key, algorithm="ES384")
    replayed = server.token()
    assert server.post(PV, body, replayed).status_code == 200
    for label, token in (("none", None), ("bad signature", forged),
                         ("aud is the base URL", server.token(aud=server.base)),
                         ("aud is another endpoint", server.token(OS)),
                         ("wrong aud", server.token(aud="https://elsewhere.example/cds")),
                         ("no kid", no_kid), ("expired", expired),
                         ("replayed jti", replayed), ("not a jwt", "abc.def.ghi")):
        response = server.post(PV, body, token)
        assert response.status_code == 401, label
        assert response.content == b"", label


def test_oversized_body_is_refused(server: Server) -> None:
    big = json.dumps({"hook": "patient-view", "pad": "x" * 1_100_000}).encode()
    assert server.post(PV, big).status_code == 413


def test_missing_prefetch_is_a_precondition_failure_never_a_card(server: Server) -> None:
    body = request_for("hcq-inadequate")
    del body["prefetch"]["medicationStatements"]
    response = server.post(PV, body)
    assert response.status_code == 412 and "cards" not in response.json()
    body["fhirServer"] = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer",
                                 "expires_in": 300, "scope": "patient/*.read",
                                 "subject": "cledecide"}
    response = server.post(PV, body)
    assert response.status_code == 412 and "cards" not in response.json()


def test_unreadable_record_is_an_error_never_a_card(server: Server) -> None:
    body = request_for("hcq-inadequate")
    body["prefetch"]["patient"] = copy.deepcopy(body["prefetch"]["patient"])
    body["prefetch"]["patient"]["gender"] = "unknown"
    response = server.post(PV, body)
    assert response.status_code == 422 and "cards" not in response.json()


def test_fifty_concurrent_requests_all_answered_audited_chain_intact(server: Server) -> None:
    before = len(server.rows())
    bodies = [request_for(NAMES[i % len(NAMES)]) for i in range(50)]
    tokens = [server.token() for _ in bodies]
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda bt: server.post(PV, bt[0], bt[1]).status_code,
                              zip(bodies, tokens)))
    assert codes == [200] * 50
    assert len(server.rows()) - before == 50
    proc = subprocess.run([CLI, "audit", "verify", str(server.audit), "--config",
                           str(server.config)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "intact" in proc.stdout, proc.stderr


def test_service_refuses_to_start_without_config() -> None:
    proc = subprocess.run([CLI, "serve", "--port", str(free_port())], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--config" in proc.stderr
    proc = subprocess.run([CLI, "serve", "--insecure-dev", "--host", "0.0.0.0", "--port",
                           str(free_port())], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr


def test_service_refuses_a_draft_rule_set_unless_allowed(tmp_path: Path) -> None:
    """No clinician signed the shipped rules (status draft): serving them needs
    --allow-draft, and the refusal says why and how, in one line, exit 2."""
    port = free_port()
    dev_setup(tmp_path, port)
    proc = subprocess.run([CLI, "serve", "--config", str(tmp_path / "config.yaml"),
                           "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "draft: not clinically approved" in proc.stderr
    assert "--allow-draft" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "audit.sqlite").exists()  # refused before anything started


def test_two_workers_share_the_audit_chain_and_the_seen_tokens(tmp_path: Path) -> None:
    """With --workers 2 the requests land on two processes: every one is audited in one
    intact chain, and a token used once is refused whichever worker sees it again."""
    with running(tmp_path, "--workers", "2") as srv:
        bodies = [request_for(NAMES[i % len(NAMES)]) for i in range(30)]
        tokens = [srv.token() for _ in bodies]
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            codes = list(pool.map(lambda bt: srv.post(PV, bt[0], bt[1]).status_code,
                                  zip(bodies, tokens)))
        assert codes == [200] * 30
        again = [srv.post(PV, bodies[0], tokens[i]).status_code for i in range(10)]
        assert again == [401] * 10
    rows = srv.rows()
    assert [r["status"] for r in rows].count("200") == 30
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))  # no gap, no fork
    proc = subprocess.run([CLI, "audit", "verify", str(srv.audit), "--config",
                           str(srv.config)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_missing_prefetch_is_fetched_from_the_fhir_server(server: Server) -> None:
    """No prefetch at all: the service fetches every template from fhirServer with the
    EHR's access token (a real HTTP server on loopback), then answers as usual."""
    full = request_for("refractory-neuropathy")
    fhir = FakeFHIR(full["prefetch"])
    try:
        body = dict(full)
        del body["prefetch"]
        body["fhirServer"], body["fhirAuthorization"] = fhir.base, AUTH
        response = server.post(PV, body)
        assert response.status_code == 200, response.text
        assert "lenalidomide" in response.json()["cards"][0]["summary"].lower()
        assert len(fhir.seen) == 7 and {a for _, a in fhir.seen} == {"Bearer secret-token"}
    finally:
        fhir.close()


def test_paged_prefetch_is_completed_or_refused(server: Server) -> None:
    """A searchset with a 'next' link is one page: the rest is fetched from the EHR's
    FHIR server, or the request is refused (412); never evaluated on half a list."""
    full = request_for("refractory-neuropathy")
    meds = full["prefetch"]["medicationStatements"]
    first, rest = meds["entry"][:1], meds["entry"][1:]
    fhir = FakeFHIR(full["prefetch"], pages={"2": {"resourceType": "Bundle",
                                                   "type": "searchset", "entry": rest}})
    try:
        paged = copy.deepcopy(full)
        paged["prefetch"]["medicationStatements"] = {
            "resourceType": "Bundle", "type": "searchset", "entry": first,
            "link": [{"relation": "next", "url": fhir.base + "/page/2"}]}
        response = server.post(PV, paged)
        assert response.status_code == 412 and "one page" in response.json()["error"]
        paged["fhirServer"], paged["fhirAuthorization"] = fhir.base, AUTH
        response = server.post(PV, paged)
        assert response.status_code == 200, response.text
        assert "lenalidomide" in response.json()["cards"][0]["summary"].lower()
        assert [p for p, _ in fhir.seen] == ["/fhir/page/2"]
    finally:
        fhir.close()


def test_discovery_asks_only_for_the_observations_the_code_map_reads(server: Server) -> None:
    services = httpx.get(server.base, timeout=10).json()["services"]
    template = services[0]["prefetch"]["observations"]
    assert template.startswith("Observation?patient={{context.patientId}}&code=")
    assert "http://loinc.org|29463-7" in template and "urn:cledecide:clasi|activity" in template


def _request_from_record(name: str, change, orders: list[dict]) -> dict:
    """A shared example, changed the way a test needs, as an order-sign request."""
    import yaml
    from cledecide.fhir_r4.codemap import load_codemap
    from cledecide.engine.models import Patient
    from cledecide.engine.ruleset import default_rules_dir
    from cledecide.fhir_r4.export import to_bundle
    record = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    change(record)
    bundle = to_bundle(Patient.model_validate(record), load_codemap(default_rules_dir()))
    for o in orders:
        o["subject"] = {"reference": f"Patient/{record['id']}"}
    return hook_request(bundle, "order-sign", orders)


def test_order_sign_lenalidomide_on_top_of_thalidomide_is_critical(server: Server) -> None:
    def on_thalidomide(record: dict) -> None:
        record["treatments"].append({"drug": "thalidomide", "start": "2026-09-01",
                                     "dose_mg_per_day": 100})
    body = _request_from_record("refractory-neuropathy", on_thalidomide,
                                [order("lenalidomide", 5)])
    card = server.post(OS, body).json()["cards"][0]
    assert card["indicator"] == "critical", card
    assert "thalidomide" in card["detail"].lower()


def test_order_sign_methotrexate_with_cytopenia_is_critical(server: Server) -> None:
    def cytopenic(record: dict) -> None:
        record["labs"]["platelets"] = {"value": 40, "date": "2026-11-15"}
        record["labs"]["neutrophils"] = {"value": 0.8, "date": "2026-11-15"}
    body = _request_from_record("antimalarial-refractory", cytopenic,
                                [order("methotrexate", 15, "wk")])
    card = server.post(OS, body).json()["cards"][0]
    assert card["indicator"] == "critical", card


def test_order_sign_renewing_a_held_drug_is_critical(server: Server) -> None:
    """Methotrexate taken, neutrophils 0.8: the step holds it, so an order to renew it
    is critical (it was "info": a current drug is not 'excluded')."""
    def held(record: dict) -> None:
        record["treatments"].append({"drug": "methotrexate", "start": "2026-06-01",
                                     "dose_mg_per_week": 15})
        record["labs"]["neutrophils"] = {"value": 0.8, "date": "2026-11-15"}
    body = _request_from_record("antimalarial-refractory", held,
                                [order("methotrexate", 15, "wk")])
    card = server.post(OS, body).json()["cards"][0]
    assert card["indicator"] == "critical", card
    assert "monitoring.cytopenia.hold" in card["detail"]


def test_order_sign_with_standing_critical_warnings_is_never_bare_info(server: Server) -> None:
    """Severe cytopenia of unknown cause: no rule excludes acitretin, but the order card
    lists the critical warnings and the suggested step."""
    def cytopenic(record: dict) -> None:
        record["diagnosis"]["subtype"] = "DLE"
        record["labs"]["platelets"] = {"value": 40, "date": "2026-11-15"}
        record["labs"]["neutrophils"] = {"value": 0.8, "date": "2026-11-15"}
    body = _request_from_record("antimalarial-refractory", cytopenic, [order("acitretin", 25)])
    card = server.post(OS, body).json()["cards"][0]
    assert card["indicator"] == "warning", card
    assert "safety.cytopenia.severe" in card["detail"]


# ------------------------------------------------------------------ issue 22: safety

def _rejected(server: Server, hook_instance: str) -> dict:
    (row,) = [r for r in server.rows() if r["request_id"] == hook_instance]
    return row


def test_operation_outcome_prefetch_is_missing_never_empty(server: Server) -> None:
    """A patient on hydroxychloroquine whose medication prefetch is an OperationOutcome
    (the EHR could not fetch it) got "start topical corticosteroid": it is missing, so
    412 without a FHIR server, and fetched from one when given."""
    full = request_for("hcq-inadequate")
    expected = server.post(PV, full).json()["cards"][0]["source"]["topic"]["code"]
    body = copy.deepcopy(full)
    body["prefetch"]["medicationStatements"] = spec("operation-outcome")
    response = server.post(PV, body)
    assert response.status_code == 412 and "cards" not in response.json()
    assert "OperationOutcome" in response.json()["error"]
    fhir = FakeFHIR(full["prefetch"])
    try:
        body["fhirServer"], body["fhirAuthorization"] = fhir.base, AUTH
        response = server.post(PV, body)
        assert response.status_code == 200, response.text
        assert response.json()["cards"][0]["source"]["topic"]["code"] == expected
        assert [p for p, _ in fhir.seen] == ["/fhir/MedicationStatement"]
    finally:
        fhir.close()


@pytest.mark.parametrize("label,value", [
    ("null", None),
    ("a Patient where a search was asked for", "patient"),
    ("a Bundle with an error outcome", "error-bundle"),
    ("a Bundle of the wrong type", "transaction-response"),
])
def test_a_prefetch_that_is_not_what_was_asked_for_is_missing(server: Server, label: str,
                                                              value: object) -> None:
    body = request_for("hcq-inadequate")
    if value == "patient":
        value = body["prefetch"]["patient"]
    elif value == "error-bundle":
        value = {"resourceType": "Bundle", "type": "searchset",
                 "entry": [{"resource": spec("operation-outcome"),
                            "search": {"mode": "outcome"}}]}
    elif value == "transaction-response":
        value = {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    body["prefetch"]["medicationStatements"] = value
    response = server.post(PV, body)
    assert response.status_code == 412, label
    assert "medicationStatements" in response.json()["error"] and "cards" not in response.json()


def test_prefetch_of_another_patient_is_refused_and_audited(server: Server) -> None:
    """Patient B's prefetch in patient A's context gave a 200 card whose draft order
    named Patient/B: now 400 naming the mismatch, audited as rejected (the place, not
    the ids)."""
    a, b = request_for("hcq-inadequate"), request_for("widespread-scle-new")
    body = copy.deepcopy(a)
    body["prefetch"] = b["prefetch"]
    response = server.post(PV, body)
    assert response.status_code == 400 and "cards" not in response.json()
    error = response.json()["error"]
    assert "prefetch.patient" in error and "example-widespread-scle-new" in error
    assert "example-hcq-inadequate" in error
    row = _rejected(server, body["hookInstance"])
    assert row["kind"] == "rejected" and row["status"] == "400"
    assert "patient mismatch at prefetch.patient" in row["detail"]
    assert "example-" not in json.dumps(row)


@pytest.mark.parametrize("key", ["conditions", "medicationStatements", "observations"])
def test_one_resource_of_another_patient_is_refused(server: Server, key: str) -> None:
    body = request_for("hcq-inadequate")
    entry = body["prefetch"][key]["entry"][0]["resource"]
    entry["subject"] = {"reference": "Patient/someone-else"}
    response = server.post(PV, body)
    assert response.status_code == 400, response.text
    assert f"prefetch.{key}.entry[0].resource.subject" in response.json()["error"]


def test_draft_order_for_another_patient_is_refused(server: Server) -> None:
    body = request_for("widespread-scle-new", "order-sign", [order("hydroxychloroquine", 300)])
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {
        "reference": "Patient/B"}
    response = server.post(OS, body)
    assert response.status_code == 400 and "cards" not in response.json()
    assert "context.draftOrders.entry[0].resource.subject" in response.json()["error"]
    del body["context"]["draftOrders"]["entry"][0]["resource"]["subject"]
    assert server.post(OS, body).status_code == 400  # no subject: cannot be checked


# ------------------------------------------------------------- issue 22: conformance

@pytest.mark.parametrize("missing", ["hookInstance", "context.userId", "context.patientId"])
def test_required_request_fields_are_400(server: Server, missing: str) -> None:
    body = request_for("hcq-inadequate")
    if missing == "hookInstance":
        del body["hookInstance"]
    else:
        del body["context"][missing.split(".")[1]]
    response = server.post(PV, body)
    assert response.status_code == 400 and missing in response.json()["error"]


def test_the_specification_patient_view_example_without_cle_gets_no_card(server: Server) -> None:
    """The spec's own request: its prefetch key is not ours, so the record is fetched
    from fhirServer (here a loopback FHIR server holding that patient, with no CLE on
    record). A hospital-wide hook sends every patient: 200 with no card, audited."""
    body = spec("patient-view-request")
    record = request_for("hcq-inadequate")["prefetch"]
    record["patient"] = body["prefetch"]["patientToGreet"]
    for key in record:
        if key != "patient":
            record[key] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    fhir = FakeFHIR(record)
    try:
        body["fhirServer"] = fhir.base
        response = server.post(PV, body)
        assert response.status_code == 200, response.text
        assert response.json() == {"cards": []}
        assert {a for _, a in fhir.seen} == {"Bearer some-opaque-fhir-access-token"}
    finally:
        fhir.close()
    row = _rejected(server, body["hookInstance"])
    assert row["kind"] == "evaluate" and row["detail"] == "no advice: no_cle"


def _spec_orders_for(name: str) -> dict:
    """The order-sign example's draft orders (a diet and amoxicillin) for one of our
    example patients."""
    body = request_for(name, "order-sign", [])
    orders = spec("order-sign-request")["context"]["draftOrders"]
    for e in orders["entry"]:
        field = "patient" if "patient" in e["resource"] else "subject"
        e["resource"][field] = {"reference": f"Patient/example-{name}"}
    body["context"]["draftOrders"] = orders
    return body


def test_unrelated_orders_get_no_card_but_a_catalogue_drug_by_name_does(server: Server) -> None:
    body = _spec_orders_for("widespread-scle-new")
    response = server.post(OS, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"cards": []}
    named = order("thalidomide", 100)
    named["medicationCodeableConcept"] = {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "0000000",
        "display": "Thalidomide 100 MG Oral Capsule"}], "text": "Thalidomide 100 MG Oral Capsule"}
    named["subject"] = {"reference": "Patient/example-widespread-scle-new"}
    body["context"]["draftOrders"]["entry"].append({"resource": named})
    cards = server.post(OS, body).json()["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] in ("warning", "critical")
    assert "Thalidomide" in cards[0]["summary"] or "thalidomide" in cards[0]["summary"]


def test_cors_preflight_for_configured_origins_only(server: Server) -> None:
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}
    good = httpx.options(f"{server.base}/{PV}", timeout=10,
                         headers={"Origin": "https://ehr.example.org", **asked})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://ehr.example.org"
    assert "POST" in good.headers["access-control-allow-methods"]
    bad = httpx.options(f"{server.base}/{PV}", timeout=10,
                        headers={"Origin": "https://evil.example", **asked})
    assert bad.status_code >= 400
    assert "access-control-allow-origin" not in bad.headers


def test_json_nested_100000_deep_is_400_without_a_traceback(server: Server) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = server.post(PV, deep)
    assert response.status_code == 400
    nested = b'{"hook": "patient-view", "x": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001
    assert server.post(PV, nested).status_code == 400
    assert server.post(f"{PV}/feedback", deep).status_code == 400
    assert "Traceback" not in server.stderr()


def test_a_slow_fhir_server_does_not_stall_other_patients(server: Server) -> None:
    """Three requests wait on a FHIR server that holds every answer (until the test
    lets go); meanwhile fully prefetched requests for other patients are answered. The
    held ones then get their cards too."""
    slow = request_for("refractory-neuropathy")
    hold = threading.Event()
    fhir = FakeFHIR(slow["prefetch"], hold=hold)
    try:
        waiting = []
        for _ in range(3):
            body = copy.deepcopy(slow)
            del body["prefetch"]["medicationStatements"]
            body["fhirServer"], body["fhirAuthorization"] = fhir.base, AUTH
            waiting.append((body, server.token()))
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            held = [pool.submit(server.post, PV, b, t) for b, t in waiting]
            for _ in range(3):
                assert fhir.waiting.acquire(timeout=30)  # all three are at the FHIR server
            for name in ("hcq-inadequate", "widespread-scle-new", "mild-localized-dle"):
                assert server.post(PV, request_for(name)).status_code == 200
            assert not any(f.done() for f in held)
            hold.set()
            assert [f.result().status_code for f in held] == [200] * 3
    finally:
        hold.set()
        fhir.close()


def test_a_timed_out_request_is_audited_as_not_delivered(tmp_path: Path) -> None:
    """Past request_timeout_seconds the EHR gets 503; the audit says no card was
    delivered (never a delivered card)."""
    slow = request_for("refractory-neuropathy")
    hold = threading.Event()
    fhir = FakeFHIR(slow["prefetch"], hold=hold)
    try:
        with running(tmp_path, request_timeout_seconds=1, fhir_timeout_seconds=30) as srv:
            body = copy.deepcopy(slow)
            del body["prefetch"]["medicationStatements"]
            body["fhirServer"], body["fhirAuthorization"] = fhir.base, AUTH
            response = srv.post(PV, body)
            assert response.status_code == 503 and "cards" not in response.json()
            hold.set()
            row = [r for r in srv.rows() if r["request_id"] == body["hookInstance"]][-1]
            assert row["kind"] == "timeout" and row["status"] == "503"
            assert json.loads(row["cards"]) == [] and "not delivered" in row["detail"]
    finally:
        hold.set()
        fhir.close()


@pytest.mark.parametrize("name,sid", [("patient-view", PV), ("order-sign-thalidomide", OS)])
def test_the_readme_hook_examples_are_answered(server: Server, name: str, sid: str) -> None:
    body = json.loads((EXAMPLES / "cds-hooks" / f"{name}.json").read_text())
    response = server.post(sid, body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert cards and (sid == PV or cards[0]["indicator"] == "critical")


def test_every_connection_has_nagle_off() -> None:
    """With --workers N uvicorn's own listening socket left Nagle on for accepted
    connections: a keep-alive client waited for delayed ACKs (~44 ms a request). The
    service's HTTP protocol sets TCP_NODELAY on each connection."""
    import socket

    from cledecide.service.nodelay import NoDelayHTTP

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str, default: object = None) -> object:
            return self.sock if name == "socket" else default

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        protocol = NoDelayHTTP.__new__(NoDelayHTTP)
        try:
            protocol.connection_made(Transport(sock))
        except Exception:  # noqa: BLE001 - the base class needs more than a fake
            pass
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def _hs256(header: dict, claims: dict, secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_an_rsa_issuer_whose_jwks_names_no_alg_is_accepted_with_rs384(tmp_path: Path) -> None:
    """RS384 is one of the two algorithms CDS Hooks recommends; a JWKS key often carries
    no "alg". HS256 with the public key as the secret (algorithm confusion) stays 401."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "rsa-1"
    (tmp_path / "rsa-jwks.json").write_text(json.dumps({"keys": [jwk]}))
    with running(tmp_path, issuers={"rsa-ehr": {"jwks_file": "rsa-jwks.json"}}) as srv:
        now = int(time.time())
        claims = {"iss": "rsa-ehr", "aud": f"{srv.base}/{PV}", "iat": now, "exp": now + 60}
        good = jwt.encode({**claims, "jti": "r-1"}, key, algorithm="RS384",
                          headers={"kid": "rsa-1"})
        assert srv.post(PV, request_for("hcq-inadequate"), good).status_code == 200
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        confused = _hs256({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
                          {**claims, "jti": "r-2"}, public)
        assert srv.post(PV, request_for("hcq-inadequate"), confused).status_code == 401
