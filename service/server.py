"""`cledecide serve`: a CDS Hooks 2.0 service (FastAPI on uvicorn).

Why FastAPI on uvicorn: a maintained ASGI stack with request validation, plain JSON
responses and a production server in one dependency pair; the rules load once and each
request then costs only the evaluation. Evaluations run one at a time on a worker
thread (durable_rules' engine is process-global), with a per-request timeout.

Security as the CDS Hooks spec asks: every request carries a JWT from the EHR, checked
against the trusted issuers' keys (JWKS file or URL per issuer): signature, iss, aud
(our service URL), exp, iat and jti (no replay). Failures are 401 with no detail. Bodies
are size-limited; patient data never goes to the logs.
"""

import asyncio
import datetime as dt
import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..engine.errors import CledecideError, InputError, RuleError

SERVICES = {
    "cledecide-patient-view": ("patient-view", "CLE treatment: the suggested next step"),
    "cledecide-order-sign": ("order-sign", "CLE treatment: safety check of draft orders"),
}
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "adverseEvents": "AdverseEvent?subject={{context.patientId}}",
}
ALGORITHMS = ["ES384", "RS384", "ES256", "RS256"]
MAX_TOKEN_AGE = 300  # seconds an iat may lie in the past (and jti is remembered)


@dataclass
class Config:
    service_url: str
    issuers: dict[str, dict[str, str]]
    audit: Path
    max_body_bytes: int = 1_000_000
    request_timeout: float = 10.0
    fhir_timeout: float = 5.0
    insecure: bool = False
    base: Path = field(default_factory=Path.cwd)


def load_config(path: Path | str) -> Config:
    """The service's config (YAML); relative paths are relative to the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read the config: {exc}".split("\n")[0], str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("issuers"), dict) \
            or not data.get("service_url") or not data["issuers"]:
        raise InputError("the config needs service_url and at least one issuer "
                         "(issuers: {NAME: {jwks_file: ...} or {jwks_url: ...}})", str(path))
    base = path.resolve().parent
    return Config(service_url=str(data["service_url"]).rstrip("/"),
                  issuers={str(k): dict(v) for k, v in data["issuers"].items()},
                  audit=base / str(data.get("audit", "audit.sqlite")),
                  max_body_bytes=int(data.get("max_body_bytes", 1_000_000)),
                  request_timeout=float(data.get("request_timeout_seconds", 10)),
                  fhir_timeout=float(data.get("fhir_timeout_seconds", 5)), base=base)


class Auth:
    """JWT bearer checks for every request; a seen jti is refused until it expires."""

    def __init__(self, config: Config) -> None:
        import jwt
        self.jwt = jwt
        self.config = config
        self.keys: dict[str, Any] = {}
        for iss, spec in config.issuers.items():
            if "jwks_file" in spec:
                data = json.loads((config.base / spec["jwks_file"]).read_text())
                self.keys[iss] = jwt.PyJWKSet.from_dict(data)
            elif "jwks_url" in spec:
                self.keys[iss] = jwt.PyJWKClient(spec["jwks_url"], timeout=5)
            else:
                raise InputError(f"issuer {iss}: give jwks_file or jwks_url")
        self.replay = ReplayStore(config.audit.with_name(config.audit.name + ".jti"))

    def check(self, header: str | None, endpoint: str) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        jwt = self.jwt
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            iss = unverified.get("iss")
            keys = self.keys.get(iss)
            if keys is None:
                return False
            kid = jwt.get_unverified_header(token).get("kid")
            if isinstance(keys, jwt.PyJWKClient):
                key = keys.get_signing_key(kid).key
            else:
                key = next((k.key for k in keys.keys if k.key_id == kid or kid is None), None)
                if key is None:
                    return False
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, issuer=iss,
                                audience=[self.config.service_url, endpoint],
                                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                                leeway=5)
        except Exception:  # noqa: BLE001 - any token problem is a plain 401
            return False
        now = time.time()
        if claims["iat"] > now + 5 or claims["iat"] < now - MAX_TOKEN_AGE:
            return False
        until = max(float(claims["exp"]), now + MAX_TOKEN_AGE) + 10
        return self.replay.first_use(f"{iss}|{claims['jti']}", until, now)


class ReplayStore:
    """Token ids seen, until they expire, in a small SQLite file beside the audit trail:
    shared by all worker processes, so a token is good once whichever worker gets it."""

    def __init__(self, path: Path) -> None:
        import sqlite3
        self._db = sqlite3.connect(str(path), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jti (key TEXT PRIMARY KEY, "
                         "until REAL NOT NULL)")
        self._lock = threading.Lock()
        self._count = 0

    def first_use(self, key: str, until: float, now: float) -> bool:
        import sqlite3
        with self._lock:
            try:
                self._db.execute("INSERT INTO jti VALUES (?, ?)", (key, until))
            except sqlite3.IntegrityError:
                return False
            self._count += 1
            if self._count % 500 == 0:
                self._db.execute("DELETE FROM jti WHERE until < ?", (now,))
        return True


class Service:
    """The CDS service's state: rules, code map, audit trail, one evaluation thread."""

    def __init__(self, config: Config, rules_dir: str | None) -> None:
        from ..engine.rulecache import load_ruleset
        from ..engine.ruleset import default_rules_dir
        from .audit import AuditLog
        from ..fhir_r4.codemap import load_codemap
        self.config = config
        folder = rules_dir or str(default_rules_dir())
        self.ruleset = load_ruleset(folder)
        self.codemap = load_codemap(folder)
        self.audit = AuditLog(config.audit)
        self.auth = None if config.insecure else Auth(config)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluate")
        from ..engine.compile import compile_rules
        compile_rules(self.ruleset)  # warm: the first request costs only its evaluation
        _warm_fhir_models()
        from ..cohort.stream import settle
        settle()

    @property
    def templates(self) -> dict[str, str]:
        """Prefetch templates; Observations only for the codes the code map reads, so a
        prefetch stays small (a patient's whole Observation list can be thousands)."""
        found = self.__dict__.get("_templates")
        if found is None:
            codes = sorted({f"{self.codemap.uri(c.code.split('#')[0])}|{c.code.split('#')[1]}"
                            for c in _observation_codes(self.codemap)})
            found = dict(PREFETCH)
            found["observations"] = ("Observation?patient={{context.patientId}}&code="
                                     + ",".join(codes))
            self.__dict__["_templates"] = found
        return found

    def discovery(self) -> dict[str, Any]:
        return {"services": [{"hook": hook, "id": sid, "title": title,
                              "description": title + " (decision support for a "
                              "clinician; not an order). Rule set "
                              f"{self.ruleset.provenance.name} "
                              f"{self.ruleset.provenance.version}.",
                              "prefetch": self.templates}
                             for sid, (hook, title) in SERVICES.items()]}

    # -------------------------------------------------------------- requests

    def handle(self, sid: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """One hook request (runs on the evaluation thread)."""
        from .cards import order_sign_cards, patient_view_cards
        from ..fhir_r4.bundle import import_fhir
        from ..fhir_r4.medications import read_draft_order
        from ..engine.load import Document
        from ..engine.validate import validate_patient
        hook = SERVICES[sid][0]
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "the body is not JSON"}
        if not isinstance(request, dict) or request.get("hook") != hook \
                or not isinstance(request.get("context"), dict):
            return 400, {"error": f"a CDS Hooks request for hook {hook} is expected"}
        context = request["context"]
        digest = hashlib.sha256(body).hexdigest()
        try:
            prefetch = self._prefetch(request, context)
        except _Precondition as exc:
            return 412, {"error": str(exc)}
        try:
            doc = Document("prefetch", prefetch, {}, digest)
            imported = import_fhir(doc, self.codemap, dt.date.today())
            if len(imported) != 1:
                raise InputError("the prefetch must hold exactly one Patient")
            patient = validate_patient(imported[0].document)
            report = imported[0].report
            if hook == "patient-view":
                from ..engine.pipeline import evaluate_patient
                explanation = evaluate_patient(patient, self.ruleset, digest, report)
                cards = patient_view_cards(explanation, self.codemap)
            else:
                orders = []
                for i, entry in enumerate(_draft_orders(context)):
                    o = read_draft_order(entry, self.codemap, ("context", "draftOrders", i),
                                         report)
                    orders.append((o.drug, o.label, o.dose))
                if not orders:
                    return 400, {"error": "order-sign needs context.draftOrders with "
                                          "MedicationRequest entries"}
                cards, explanation = order_sign_cards(patient, orders, self.ruleset,
                                                      self.codemap, digest, report)
        except CledecideError as exc:
            # never a card that looks like advice: the EHR shows its own error
            return 422, {"error": f"the record could not be read: {exc.message}"}
        except Exception as exc:  # noqa: BLE001
            return 422, {"error": f"the record could not be read: {type(exc).__name__}"}
        rec = explanation.result.recommendation
        self.audit.append(kind="evaluate", service=sid,
                          request_id=str(request.get("hookInstance", "")),
                          ruleset_name=self.ruleset.provenance.name,
                          ruleset_version=self.ruleset.provenance.version,
                          ruleset_sha256=self.ruleset.sha256, input_sha256=digest,
                          patient_hash=self.audit.patient_hash(patient.id),
                          recommendation={"action": rec.action, "drug": rec.drug,
                                          "rule": rec.rule},
                          card_ids=[c["uuid"] for c in cards])
        return 200, {"cards": cards}

    def feedback(self, sid: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(body)
            items = request["feedback"]
            assert isinstance(items, list) and items
        except Exception:  # noqa: BLE001
            return 400, {"error": "a CDS Hooks feedback body ({feedback: [...]}) is expected"}
        for item in items:
            if not isinstance(item, dict) or not item.get("card") \
                    or item.get("outcome") not in ("accepted", "overridden"):
                return 400, {"error": "each feedback needs card and outcome "
                                      "(accepted or overridden)"}
        for item in items:
            reason = item.get("overrideReason") or {}
            self.audit.append(kind="feedback", service=sid, request_id=str(item["card"]),
                              ruleset_name=self.ruleset.provenance.name,
                              ruleset_version=self.ruleset.provenance.version,
                              ruleset_sha256=self.ruleset.sha256,
                              input_sha256=hashlib.sha256(body).hexdigest(),
                              card_ids=[str(item["card"])],
                              feedback={"outcome": item["outcome"],
                                        "overrideReason": (reason.get("reason") or {}).get(
                                            "code") if isinstance(reason, dict) else None,
                                        "time": str(item.get("outcomeTimestamp", ""))})
        return 200, {}

    def _prefetch(self, request: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """The whole record: the EHR's prefetch, with what is missing (null or absent)
        or paged (a searchset with a 'next' link) fetched from its FHIR server."""
        given = request.get("prefetch") or {}
        if not isinstance(given, dict):
            raise _Precondition("prefetch must be an object")
        templates = self.templates
        todo = [k for k in templates if given.get(k) is None or _next_link(given[k])]
        if not todo:
            return {k: given[k] for k in templates}
        server, token = request.get("fhirServer"), request.get("fhirAuthorization")
        patient_id = context.get("patientId")
        if not server or not isinstance(token, dict) or not patient_id:
            raise _Precondition("prefetch incomplete or paged (" + ", ".join(todo) + ") and "
                                "no fhirServer with fhirAuthorization to fetch it")
        import httpx
        base = str(server).rstrip("/")
        out = dict(given)
        headers = {"Authorization": f"Bearer {token.get('access_token', '')}",
                   "Accept": "application/fhir+json"}
        try:
            with httpx.Client(timeout=self.config.fhir_timeout, headers=headers) as client:
                for key in todo:
                    first = given.get(key)
                    if first is None:
                        url = base + "/" + templates[key].replace("{{context.patientId}}",
                                                                  str(patient_id))
                        first = _get(client, url)
                    out[key] = _all_pages(client, first, base)
        except _Precondition:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _Precondition(f"fetching the record from the FHIR server failed "
                                f"({type(exc).__name__})") from None
        return {k: out[k] for k in templates}


MAX_PAGES = 50


def _next_link(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        for link in value.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next":
                return str(link.get("url") or "")
    return None


def _get(client: Any, url: str) -> Any:
    response = client.get(url)
    response.raise_for_status()
    return response.json()


def _all_pages(client: Any, bundle: Any, base: str) -> Any:
    """Every page of a search, merged into one Bundle; 'next' links are followed only on
    the EHR's own FHIR server (the token never goes elsewhere), at most 50 pages."""
    pages = 0
    merged = bundle
    while (url := _next_link(merged)) is not None:
        pages += 1
        if pages > MAX_PAGES or not url.startswith(base + "/") and url != base:
            raise _Precondition("a search result has more pages than can be fetched "
                                "from the EHR's FHIR server")
        page = _get(client, url)
        entries = list(merged.get("entry") or []) + list(page.get("entry") or [])
        merged = {**page, "entry": entries}
    return merged


class _Precondition(Exception):
    pass


def _warm_fhir_models() -> None:
    """Build the FHIR models' validators now, not on the first EHR request (~100 ms)."""
    from fhir.resources.R4B import get_fhir_model_class
    ref = {"reference": "Patient/x"}
    concept = {"text": "x"}
    minimal = {
        "Bundle": {"type": "searchset"}, "Patient": {},
        "Observation": {"status": "final", "code": concept},
        "Condition": {"subject": ref}, "Medication": {},
        "MedicationStatement": {"status": "active", "subject": ref,
                                "medicationCodeableConcept": concept},
        "MedicationRequest": {"status": "active", "intent": "order", "subject": ref,
                              "medicationCodeableConcept": concept},
        "Procedure": {"status": "completed", "subject": ref},
        "AdverseEvent": {"actuality": "actual", "subject": ref},
    }
    for kind, data in minimal.items():
        try:
            get_fhir_model_class(kind).model_validate({"resourceType": kind, **data})
        except Exception:  # noqa: BLE001 - warming only; a real request reports its own
            pass


def _observation_codes(codemap: Any) -> list[Any]:
    spec = codemap.spec
    out = [c for o in spec.observations.values() for c in o.codes]
    out += spec.clasi.activity + spec.clasi.damage + spec.course_response.codes
    return out


def _draft_orders(context: dict[str, Any]) -> list[dict[str, Any]]:
    orders = context.get("draftOrders") or {}
    entries = orders.get("entry", []) if isinstance(orders, dict) else []
    return [e["resource"] for e in entries if isinstance(e, dict)
            and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == "MedicationRequest"]


def create_app(service: Service) -> Any:
    """The ASGI app: discovery, the two hooks and their feedback."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="cledecide CDS Hooks", docs_url=None, redoc_url=None,
                  openapi_url=None)
    limit = service.config.max_body_bytes

    async def body_of(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def authorized(request: Request) -> bool:
        if service.auth is None:
            return True
        endpoint = service.config.service_url + request.url.path.removeprefix("/cds-services")
        return service.auth.check(request.headers.get("authorization"), endpoint)

    async def run(func: Any, *args: Any) -> tuple[int, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(service.pool, func, *args),
                                          timeout=service.config.request_timeout)
        except asyncio.TimeoutError:
            return 503, {"error": "the evaluation took too long"}

    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        return service.discovery()

    async def answer(sid: str, request: Request, handler: Any) -> Response:
        """Auth, service id and body limit, then the handler on the evaluation thread."""
        if not authorized(request):
            return Response(status_code=401)
        if sid not in SERVICES:
            return JSONResponse({"error": "no such service"}, status_code=404)
        body = await body_of(request)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        status, payload = await run(handler, sid, body)
        return JSONResponse(payload, status_code=status)

    @app.post("/cds-services/{sid}")
    async def hook(sid: str, request: Request) -> Response:
        return await answer(sid, request, service.handle)

    @app.post("/cds-services/{sid}/feedback")
    async def feedback(sid: str, request: Request) -> Response:
        return await answer(sid, request, service.feedback)

    return app


def _config(host: str, port: int, config_path: str | None, insecure_dev: bool) -> Config:
    if config_path is None:
        if not insecure_dev:
            raise CledecideError("no --config: the service needs trusted issuers' keys to "
                                 "authenticate the EHR (or --insecure-dev, loopback only)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise CledecideError("--insecure-dev binds to loopback only (127.0.0.1)")
        config = Config(service_url=f"http://{host}:{port}/cds-services", issuers={},
                        audit=Path.cwd() / "cledecide-audit.sqlite", insecure=True)
        return config
    return load_config(config_path)


def worker_app() -> Any:
    """The app of one worker process (uvicorn --workers imports it by name)."""
    import os
    args = json.loads(os.environ["CLEDECIDE_SERVE"])
    config = _config(args["host"], args["port"], args["config"], args["insecure"])
    return create_app(Service(config, args["rules"]))


def serve(host: str, port: int, rules_dir: str | None, config_path: str | None,
          insecure_dev: bool, workers: int = 1, allow_draft: bool = False) -> None:
    """Start the service; without a config it refuses, unless --insecure-dev (loopback
    only, no authentication, said loudly). A rule set that is not clinically approved
    (ruleset.yaml's status) is refused unless allow_draft; every card then says it is a
    draft. Several workers (processes) share the audit trail and the seen-token store,
    both SQLite."""
    import os
    import sys

    import uvicorn
    config = _config(host, port, config_path, insecure_dev)
    _check_status(rules_dir, allow_draft)
    if config.insecure:
        print("WARNING: --insecure-dev: no authentication; loopback only; audit in "
              f"{config.audit}", file=sys.stderr)
    service = Service(config, rules_dir)  # checks rules, keys and audit before serving
    print(f"cledecide CDS Hooks service on http://{host}:{port}/cds-services "
          f"({workers} worker{'s' if workers > 1 else ''}; decision support for a "
          "clinician, not an order)", file=sys.stderr)
    options = dict(host=host, port=port, log_level="warning", access_log=False,
                   timeout_keep_alive=5)
    if workers <= 1:
        uvicorn.run(create_app(service), **options)
        return
    os.environ["CLEDECIDE_SERVE"] = json.dumps({
        "host": host, "port": port, "config": config_path, "insecure": insecure_dev,
        "rules": rules_dir})
    uvicorn.run("cledecide.service.server:worker_app", factory=True, workers=workers, **options)


def _check_status(rules_dir: str | None, allow_draft: bool) -> None:
    """Refuse a rule set no clinician signed, unless the operator says it is a test."""
    import sys

    from ..engine.rulecache import load_ruleset
    from ..engine.ruleset import default_rules_dir
    from ..engine.signoff import is_approved, status_label
    folder = rules_dir or str(default_rules_dir())
    prov = load_ruleset(folder).provenance
    label = status_label(prov.status)
    if is_approved(prov.status):
        return
    if not allow_draft:
        raise RuleError(f"rule set {prov.name} {prov.version} is {label}; the service "
                        "refuses it (give --allow-draft to serve it anyway, for testing: "
                        "every card then says so)", str(Path(folder) / "ruleset.yaml"),
                        None, "status")
    print(f"WARNING: --allow-draft: rule set {prov.name} {prov.version} is {label}; every "
          "card says so", file=sys.stderr)


# ------------------------------------------------------------------ development keys

def dev_setup(folder: Path | str, port: int = 8080) -> str:
    """A development issuer: an ES384 key pair, its JWKS and a config for 127.0.0.1."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (folder / "dev-private-key.pem").write_bytes(pem)
    (folder / "dev-private-key.pem").chmod(0o600)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "dev-1", "alg": "ES384", "use": "sig"})
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk]}, indent=1))
    url = f"http://127.0.0.1:{port}/cds-services"
    (folder / "config.yaml").write_text(
        "# cledecide serve --config: a DEVELOPMENT issuer (its private key is beside it)\n"
        f"service_url: {url}\nissuers:\n  dev-ehr: {{jwks_file: jwks.json}}\n"
        "audit: audit.sqlite\nmax_body_bytes: 1000000\nrequest_timeout_seconds: 10\n")
    return str(folder / "config.yaml")


def dev_token(folder: Path | str, audience: str | None = None, lifetime: int = 300) -> str:
    """A signed token from the development issuer (what an EHR sends)."""
    import uuid

    import jwt
    folder = Path(folder)
    config = load_config(folder / "config.yaml")
    now = int(time.time())
    claims = {"iss": "dev-ehr", "aud": audience or config.service_url, "iat": now,
              "exp": now + lifetime, "jti": str(uuid.uuid4()), "sub": "dev-ehr-client"}
    return jwt.encode(claims, (folder / "dev-private-key.pem").read_bytes(),
                      algorithm="ES384", headers={"kid": "dev-1", "typ": "JWT"})
