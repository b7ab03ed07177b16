"""The HTTP face of the service (FastAPI on uvicorn): discovery, the two hooks, their
feedback, /health and CORS for the configured EHR origins.

Nothing slow runs on the event loop: bodies are parsed and patients evaluated on a pool
of evaluation threads (`evaluation_threads`), tokens checked and audit rows written on
a small I/O pool, and missing prefetch fetched asynchronously (`fhir_connections`), so a
slow FHIR server holds only its own request. Each request has a deadline
(`request_timeout_seconds`): past it the answer is 503 and the audit says no card was
delivered. Every answer, refused ones too, is one audit row (never a token); a card is
delivered only once its row is written.
"""

import asyncio
import logging
from typing import Any

from .calls import SERVICES, Answer, Call, refused
from .prefetch import Precondition, complete

log = logging.getLogger("cledecide.service")


class _Base:
    """What the handlers share: the Service (service/server.py), its pools, the FHIR
    client, the token check and the audit row of an answer."""

    def __init__(self, service: Any) -> None:
        self.s = service
        self._client: Any = None

    async def _on(self, pool: Any, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, func, *args)

    def client(self) -> Any:
        if self._client is None:  # made on the loop that uses it (one per worker)
            import httpx
            n = self.s.config.fhir_connections
            self._client = httpx.AsyncClient(
                timeout=self.s.config.fhir_timeout,
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
        return self._client

    def _token_ok(self, header: str | None, path: str) -> bool:
        if self.s.auth is None:
            return True
        endpoint = self.s.config.service_url + path.removeprefix("/cds-services")
        return self.s.auth.check(header, endpoint)

    async def record(self, sid: str, answer: Answer, call: Call | None,
                     kind: str | None = None) -> Answer:
        """The audit row of an answer; a card whose row cannot be written is not given."""
        try:
            await self._on(self.s.io, self.s.record, sid, answer, call, kind)
        except Exception as exc:  # noqa: BLE001 - the store is down or locked
            log.error("audit write failed (%s): answered 503", type(exc).__name__)
            if answer.status == 200:
                return refused(503, "the audit trail could not be written; no card is given")
        return answer

    def _feedback_rows(self, sid: str, body: bytes, header: str | None, path: str) -> Any:
        from .feedback import feedback_rows
        if not self._token_ok(header, path):
            return Answer(401, {}, "no valid token")
        return feedback_rows(sid, body, self.s.log.card)

    async def feedback(self, sid: str, body: bytes, header: str | None, path: str) -> Answer:
        rows = await self._on(self.s.io, self._feedback_rows, sid, body, header, path)
        if isinstance(rows, Answer):
            return await self.record(sid, rows, None)
        try:
            await self._on(self.s.io, self.s.record_feedback, sid, rows, body)
        except Exception as exc:  # noqa: BLE001
            log.error("audit write failed (%s): answered 503", type(exc).__name__)
            return refused(503, "the audit trail could not be written")
        return Answer(200, {})

    async def refuse(self, sid: str, status: int, why: str) -> None:
        """A request refused before its body was read (401, 404, 413): a row with the
        status and why, no token and no patient data."""
        await self.record(sid, Answer(status, {}, why), None)


class Handlers(_Base):
    """The hook handlers: one hop on an evaluation thread for a complete request,
    asynchronous fetches for an incomplete one, a deadline either way."""

    def _first(self, sid: str, body: bytes, header: str | None, path: str,
               seen: dict[str, Call]) -> Answer | None:
        """One hop on an evaluation thread: the token, the body, the patient check and,
        when the prefetch is complete (the usual case), the answer."""
        if not self._token_ok(header, path):
            return Answer(401, {}, "no valid token")
        return self.s.engine.first(sid, body, seen)

    async def hook(self, sid: str, body: bytes, header: str | None, path: str) -> Answer:
        """The hook's answer within the request's deadline, audited either way."""
        seen: dict[str, Call] = {}
        try:
            answer = await asyncio.wait_for(self._hook(sid, body, header, path, seen),
                                            self.s.config.request_timeout)
        except asyncio.TimeoutError:
            call = seen.get("call")
            answer = refused(503, "the evaluation took too long; no card was given",
                             "timed out: not delivered", call.patient_id if call else None)
            return await self.record(sid, answer, call, kind="timeout")
        return await self.record(sid, answer, seen.get("call"))

    async def _hook(self, sid: str, body: bytes, header: str | None, path: str,
                    seen: dict[str, Call]) -> Answer:
        answer = await self._on(self.s.evaluators, self._first, sid, body, header, path, seen)
        call = seen.get("call")
        if answer is not None or call is None:
            return answer or refused(400, "not a CDS Hooks request")
        try:  # the prefetch is incomplete: fetched here, on the loop, not on a thread
            prefetch = await complete(call.request, self.s.engine.templates, call.patient_id,
                                      self.client(), self.s.config.fhir_timeout)
        except Precondition as exc:
            return refused(412, str(exc), str(exc)[:300], call.patient_id)
        return await self._on(self.s.evaluators, self.s.engine.answer, call, prefetch)


def create_app(service: Any) -> Any:
    """The ASGI app."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="cledecide CDS Hooks", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=service.lifespan)
    if service.config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(service.config.cors_origins),
                           allow_methods=["GET", "POST"], allow_credentials=False,
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    h = Handlers(service)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.error("internal error (%s) on %s", type(exc).__name__, request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        return service.engine.discovery()

    async def serve(sid: str, request: Request, handler: Any) -> Response:
        """404, 413, then the handler (which checks the token first: 401, no body)."""
        if sid not in SERVICES:
            await h.refuse(sid[:64], 404, "no such service")
            return JSONResponse({"error": "no such service"}, status_code=404)
        body = await body_of(request, service.config.max_body_bytes)
        if body is None:
            await h.refuse(sid, 413, "body too large")
            return JSONResponse({"error": "body too large"}, status_code=413)
        answer = await handler(sid, body, request.headers.get("authorization"),
                               request.url.path)
        if answer.status == 401:
            return Response(status_code=401)
        return JSONResponse(answer.payload, status_code=answer.status)

    @app.post("/cds-services/{sid}")
    async def hook(sid: str, request: Request) -> Response:
        return await serve(sid, request, h.hook)

    @app.post("/cds-services/{sid}/feedback")
    async def feedback(sid: str, request: Request) -> Response:
        return await serve(sid, request, h.feedback)

    return app


async def body_of(request: Any, limit: int) -> bytes | None:
    """The body, or None past `limit` bytes (declared or streamed)."""
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
