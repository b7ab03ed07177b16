"""`cledecide serve`: a CDS Hooks 2.0 service (FastAPI on uvicorn).

Why FastAPI on uvicorn: a maintained ASGI stack with plain JSON responses and a
production server in one dependency pair; the rules load once and each request then
costs only its evaluation. The parts: config (the YAML), auth (the EHR's JWT), calls
(the request's shape), prefetch and identity (the record, complete and of the patient in
context), hooks and orders (the evaluation and cards), feedback, app (HTTP, threads,
deadlines), audit, store and checkpoint (the audit trail). This module holds the state
they share and starts the server.

Security as the CDS Hooks spec asks: every hook and feedback call carries a JWT from the
EHR, checked against the trusted issuers' keys; failures are 401 with no detail. Bodies
are size-limited; patient data never goes to the logs.
"""
from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator

from ..engine.errors import CledecideError, RuleError
from .app import create_app
from .calls import SERVICES, Answer, Call
from .config import Config, load_config
from .devkeys import dev_setup, dev_token

__all__ = ["SERVICES", "Config", "Service", "create_app", "dev_setup", "dev_token",
           "load_config", "serve"]


class Service:
    """The service's state: rules, audit trail, token checks, thread pools."""

    def __init__(self, config: Config, rules_dir: str | None) -> None:
        from ..cohort.stream import settle
        from .audit import open_log
        from .auth import Auth
        from .checkpoint import Checkpoints
        from .groupcommit import GroupCommit
        from .hooks import Engine
        self.config = config
        self.engine = Engine(rules_dir)
        self.log = open_log(config.audit, config.audit_key_file, create_key=True)
        self.writer = GroupCommit(self.log)
        self.auth = None if config.insecure else Auth(config, self.log.first_use)
        self.evaluators = ThreadPoolExecutor(max(1, config.evaluation_threads),
                                             thread_name_prefix="evaluate")
        self.io = ThreadPoolExecutor(32, thread_name_prefix="audit")  # waiting, mostly
        self.checkpoints = Checkpoints(config, self.log)
        settle()

    def health(self) -> dict[str, Any]:
        """For load balancers: no authentication, no patient data."""
        prov = self.engine.ruleset.provenance
        return {"status": "ok", "ruleset": {"name": prov.name, "version": prov.version,
                                            "status": prov.status}}

    def record(self, sid: str, answer: Answer, call: Call | None, kind: str | None) -> int:
        """One answer's audit row (on the I/O pool)."""
        pid = answer.patient_id
        seq = self.writer.append(
            kind=kind or ("evaluate" if answer.status == 200 else "rejected"),
            service=sid, status=answer.status, detail=answer.detail,
            request_id=call.hook_instance if call else "",
            input_sha256=call.digest if call else "",
            patient_hash=self.log.patient_hash(pid) if pid else "",
            recommendation=answer.recommendation,
            cards=answer.cards if answer.status == 200 else [], **self.engine.audit_fields())
        self.checkpoints.after(seq)
        return seq

    def record_feedback(self, sid: str, rows: list[dict[str, Any]], body: bytes) -> None:
        import hashlib
        digest = hashlib.sha256(body).hexdigest()
        for row in rows:
            seq = self.writer.append(kind="feedback", service=sid, status=200, input_sha256=digest,
                                  **row, **self.engine.audit_fields())
            self.checkpoints.after(seq)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Checkpoints every `checkpoint_every_minutes` while serving."""
        import asyncio
        task = asyncio.create_task(self.checkpoints.every_minutes(self.io))
        try:
            yield
        finally:
            task.cancel()


def _config(host: str, port: int, config_path: str | None, insecure_dev: bool) -> Config:
    if config_path is None:
        if not insecure_dev:
            raise CledecideError("no --config: the service needs trusted issuers' keys to "
                                 "authenticate the EHR (or --insecure-dev, loopback only)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise CledecideError("--insecure-dev binds to loopback only (127.0.0.1)")
        return Config(service_url=f"http://{host}:{port}/cds-services", issuers={},
                      audit=str(Path.cwd() / "cledecide-audit.sqlite"), insecure=True)
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
    draft. Several workers (processes) share the audit trail and the seen tokens."""
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
    from .nodelay import NoDelayHTTP
    options = dict(host=host, port=port, log_level="warning", access_log=False,
                   timeout_keep_alive=5, http=NoDelayHTTP)
    if workers <= 1:
        uvicorn.run(create_app(service), **options)
        return
    service.log.close()
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
