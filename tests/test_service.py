"""`cledecide serve` over real loopback (issue 11): the server runs as a subprocess on a
free 127.0.0.1 port and is called with httpx, as an EHR would. It stops with the test
module."""
from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import json
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cledecide import evaluate_file
from cledecide.service.audit import AuditLog
from cledecide.fhir_r4.export import hook_request
from cledecide.service.server import dev_setup, dev_token

from conftest import EXAMPLES
from test_examples import CLI

FHIR = EXAMPLES / "fhir"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "expected")
PV, OS = "cledecide-patient-view", "cledecide-order-sign"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.base = f"http://127.0.0.1:{port}/cds-services"
        self.audit = folder / "audit.sqlite"

    def token(self, **changes: Any) -> str:
        return dev_token(self.folder, changes.pop("aud", None), changes.pop("lifetime", 300))

    def post(self, path: str, body: Any, token: str | None = "new", **kw: Any) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token == "new":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.base}/{path}", content=data, headers=headers, timeout=30,
                          **kw)


@contextlib.contextmanager
def running(folder: Path, *extra: str) -> Iterator[Server]:
    """`cledecide serve` with a development issuer on a free loopback port, stopped
    afterwards whatever happens."""
    port = free_port()
    dev_setup(folder, port)
    proc = subprocess.Popen([CLI, "serve", "--config", str(folder / "config.yaml"),
                             "--host", "127.0.0.1", "--port", str(port), "--allow-draft",
                             *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    srv = Server(folder, port)
    try:
        for _ in range(300):
            try:
                if httpx.get(srv.base, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the service did not start")
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("dev")) as srv:
        yield srv


def request_for(name: str, hook: str = "patient-view", orders: list | None = None) -> dict:
    for o in orders or []:
        o["subject"] = {"reference": f"Patient/example-{name}"}
    return hook_request(json.loads((FHIR / f"{name}.json").read_text()), hook, orders)


def order(drug: str, mg: float | None = None, period: str = "d") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "urn:cledecide:drug",
                                                  "code": drug}], "text": drug}}
    if mg is not None:
        resource["dosageInstruction"] = [{
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": period}},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "code": "mg",
                                              "system": "http://unitsofmeasure.org"}}]}]
    return resource


def test_discovery_lists_both_hooks_with_prefetch(server: Server) -> None:
    services = httpx.get(server.base, timeout=10).json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {(PV, "patient-view"),
                                                       (OS, "order-sign")}
    for s in services:
        assert s["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert "MedicationStatement?patient={{context.patientId}}" in s["prefetch"].values()


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
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "overrideReason": {"reason": {"code": "specialist-advice",
                                                        "system": "urn:cledecide:override"}},
                          "outcomeTimestamp": "2026-11-26T10:00:00Z"}]}
    assert server.post(f"{PV}/feedback", body).status_code == 200
    with sqlite3.connect(server.audit) as db:
        kind, feedback = db.execute("SELECT kind, feedback FROM audit WHERE request_id=?",
                                    (card["uuid"],)).fetchone()
    assert kind == "feedback" and json.loads(feedback)["overrideReason"] == "specialist-advice"


def test_auth_failures_are_401_without_detail(server: Server) -> None:
    body = request_for("hcq-inadequate")
    other = ec.generate_private_key(ec.SECP384R1())
    now = int(time.time())
    claims = {"iss": "dev-ehr", "aud": server.base, "iat": now, "exp": now + 60,
              "jti": "x-1"}
    forged = jwt.encode(claims, other, algorithm="ES384", headers={"kid": "dev-1"})
    key = (server.folder / "dev-private-key.pem").read_bytes()
    expired = jwt.encode({**claims, "jti": "x-2", "iat": now - 600, "exp": now - 300}, key,
                         algorithm="ES384", headers={"kid": "dev-1"})
    replayed = server.token()
    assert server.post(PV, body, replayed).status_code == 200
    for label, token in (("none", None), ("bad signature", forged),
                         ("wrong aud", server.token(aud="https://elsewhere.example/cds")),
                         ("expired", expired), ("replayed jti", replayed),
                         ("not a jwt", "abc.def.ghi")):
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
    with sqlite3.connect(server.audit) as db:
        before = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    bodies = [request_for(NAMES[i % len(NAMES)]) for i in range(50)]
    tokens = [server.token() for _ in bodies]
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda bt: server.post(PV, bt[0], bt[1]).status_code,
                              zip(bodies, tokens)))
    assert codes == [200] * 50
    with sqlite3.connect(server.audit) as db:
        after = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert after - before == 50
    proc = subprocess.run([CLI, "audit", "verify", str(server.audit)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "intact" in proc.stdout, proc.stderr


# ------------------------------------------------------------------ the audit chain

def _log_with_rows(path: Path, n: int = 5) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append(kind="evaluate", service="cli", request_id=f"r{i}", ruleset_name="x",
                   ruleset_version="1", ruleset_sha256="s", input_sha256="i",
                   patient_hash=log.patient_hash(f"p{i}"), recommendation={"a": i},
                   card_ids=[])
    log.close()


def test_audit_verify_names_an_altered_row(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    _log_with_rows(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET recommendation='{\"a\":99}' WHERE seq=3")
    proc = subprocess.run([CLI, "audit", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith("TAMPERED: row 3: its content was changed")


def test_audit_verify_names_a_deleted_row(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    _log_with_rows(path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit WHERE seq=2")
    proc = subprocess.run([CLI, "audit", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "row 3: row(s) 2..2 were removed" in proc.stderr


def test_audit_verify_catches_an_inserted_row_and_a_removed_tail(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    _log_with_rows(path)
    log = AuditLog(path)
    rows = list(log.rows())
    log.close()
    with sqlite3.connect(path) as db:
        fake = dict(rows[1], seq=10, recommendation='{"a":"forged"}')
        db.execute(f"INSERT INTO audit ({', '.join(fake)}) VALUES "
                   f"({', '.join('?' for _ in fake)})", tuple(fake.values()))
    assert AuditLog(path).verify()
    path2 = tmp_path / "b.sqlite"
    _log_with_rows(path2)
    with sqlite3.connect(path2) as db:
        db.execute("DELETE FROM audit WHERE seq=5")
    problems = AuditLog(path2).verify()
    assert problems and "last row" in str(problems[-1])


def test_cli_evaluate_audit_appends_one_row(tmp_path: Path) -> None:
    path = tmp_path / "cli.sqlite"
    proc = subprocess.run([CLI, "evaluate", str(EXAMPLES / "hcq-inadequate.yaml"),
                           "--audit", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    log = AuditLog(path)
    (row,) = list(log.rows())
    assert row["service"] == "cli" and "example-hcq" not in json.dumps(row)
    assert row["patient_hash"] == log.patient_hash("example-hcq-inadequate")
    assert log.verify() == []


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
    log = AuditLog(srv.audit)
    assert sum(1 for _ in log.rows()) == 30 and log.verify() == []


class FakeFHIR:
    """A FHIR server on loopback answering our prefetch searches from one record."""

    def __init__(self, prefetch: dict[str, Any], pages: dict[str, list[dict]] | None = None):
        import http.server
        import threading
        from urllib.parse import urlsplit
        self.seen: list[tuple[str, str]] = []
        by_type = {"Patient": prefetch["patient"]}
        for key, kind in (("conditions", "Condition"), ("observations", "Observation"),
                          ("medicationStatements", "MedicationStatement"),
                          ("medicationRequests", "MedicationRequest"),
                          ("procedures", "Procedure"), ("adverseEvents", "AdverseEvent")):
            by_type[kind] = prefetch[key]
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                outer.seen.append((parts.path, self.headers.get("Authorization", "")))
                if parts.path.startswith("/fhir/page/"):
                    body = (pages or {}).get(parts.path.rsplit("/", 1)[1])
                else:
                    body = by_type.get(parts.path.split("/")[2])
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/*.read", "subject": "cledecide"}


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
        assert response.status_code == 412 and "paged" in response.json()["error"]
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


def test_cli_cohort_audit_appends_a_row_per_patient(tmp_path: Path) -> None:
    path = tmp_path / "cohort.sqlite"
    files = [str(EXAMPLES / f"{n}.yaml") for n in NAMES]
    proc = subprocess.run([CLI, "evaluate", *files, "--format", "csv", "--jobs", "1",
                           "--audit", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    log = AuditLog(path)
    rows = list(log.rows())
    assert len(rows) == len(NAMES) and {r["service"] for r in rows} == {"cli-cohort"}
    assert log.verify() == []


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
