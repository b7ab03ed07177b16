"""What the service tests share: `cledecide serve` as a subprocess on a free 127.0.0.1
port (real uvicorn, real HTTP), called with httpx as an EHR would; a FHIR server on
loopback that can hold its answers (a deliberately slow EHR, released by the test, so
nothing depends on timing); the CDS Hooks specification's example bodies; the audit
trail read with its key."""
from __future__ import annotations

import contextlib
import copy
import http.server
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from cledecide.fhir_r4.export import hook_request
from cledecide.service.audit import open_log
from cledecide.service.server import dev_setup, dev_token

from conftest import EXAMPLES
from test_examples import CLI

FHIR = EXAMPLES / "fhir"
SPEC = Path(__file__).resolve().parent / "cds_hooks_spec"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "expected")
PV, OS = "cledecide-patient-view", "cledecide-order-sign"
AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/*.read", "subject": "cledecide"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spec(name: str) -> dict[str, Any]:
    return json.loads((SPEC / f"{name}.json").read_text())


class Server:
    def __init__(self, folder: Path, port: int, log: Path) -> None:
        self.folder, self.port, self.log_file = folder, port, log
        self.base = f"http://127.0.0.1:{port}/cds-services"
        self.root = f"http://127.0.0.1:{port}"
        self.audit = folder / "audit.sqlite"
        self.config = folder / "config.yaml"

    def token(self, path: str = PV, **changes: Any) -> str:
        return dev_token(self.folder, changes.pop("aud", f"{self.base}/{path}"),
                         changes.pop("lifetime", 300))

    def post(self, path: str, body: Any, token: str | None = "new",
             **kw: Any) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token == "new":
            token = self.token(path)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.base}/{path}", content=data, headers=headers, timeout=60,
                          **kw)

    def rows(self) -> list[dict[str, Any]]:
        log = open_log(self.audit, self.folder / "secrets" / "audit.key", read_only=True)
        try:
            return list(log.rows())
        finally:
            log.close()

    def stderr(self) -> str:
        return self.log_file.read_text(errors="replace")


def configure(folder: Path, port: int, **settings: Any) -> None:
    """dev-setup's config with some settings changed."""
    dev_setup(folder, port)
    path = folder / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(settings)
    path.write_text(yaml.safe_dump(data))


@contextlib.contextmanager
def running(folder: Path, *extra: str, **settings: Any) -> Iterator[Server]:
    """`cledecide serve` with a development issuer on a free loopback port, stopped
    afterwards whatever happens; its stderr kept in a file the test can read."""
    port = free_port()
    configure(folder, port, **settings)
    log = folder / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([CLI, "serve", "--config", str(folder / "config.yaml"),
                                 "--host", "127.0.0.1", "--port", str(port), "--allow-draft",
                                 *extra], stdout=subprocess.DEVNULL, stderr=err)
    srv = Server(folder, port, log)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{srv.root}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            if proc.poll() is not None:
                raise RuntimeError("the service stopped: " + srv.stderr())
        else:
            raise RuntimeError("the service did not start")
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


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


KINDS = (("conditions", "Condition"), ("observations", "Observation"),
         ("medicationStatements", "MedicationStatement"),
         ("medicationRequests", "MedicationRequest"), ("procedures", "Procedure"),
         ("adverseEvents", "AdverseEvent"))


class FakeFHIR:
    """A FHIR server on loopback answering our prefetch searches from one record. With
    `hold`, every search waits until the test sets it (a slow EHR, without sleeping)."""

    def __init__(self, prefetch: dict[str, Any], pages: dict[str, dict] | None = None,
                 hold: threading.Event | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.waiting = threading.Semaphore(0)
        self.by_type = {"Patient": prefetch["patient"]}
        self.by_type.update({kind: prefetch[key] for key, kind in KINDS})
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                outer.seen.append((parts.path, self.headers.get("Authorization", "")))
                if hold is not None:
                    outer.waiting.release()
                    hold.wait(60)
                body = outer.answer(parts.path, parse_qs(parts.query), pages or {})
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, query: dict[str, list[str]], pages: dict[str, dict]) -> Any:
        if path.startswith("/fhir/page/"):
            return pages.get(path.rsplit("/", 1)[1])
        return copy.deepcopy(self.by_type.get(path.split("/")[2]))

    def close(self) -> None:
        self.httpd.shutdown()
