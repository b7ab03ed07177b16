"""`cledecide audit show`: the audit trail as a reviewer reads it. With --patient, the
answer to "what did we suggest for this patient, when, under which rule set and
engine": the patient id is keyed with the audit key (the trail never holds it in clear),
and each answer is shown with its hookInstance, cards and what the clinician did with
them (the feedback rows on those cards)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from .audit import AuditLog, open_log


def _day(text: str | None, name: str) -> str | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        from ..engine.errors import InputError
        raise InputError(f"{name} must be a date (YYYY-MM-DD)", field=name) from None


def select(log: AuditLog, patient: str | None, since: str | None,
           date: str | None) -> list[dict[str, Any]]:
    """The rows asked for: one patient's (by keyed id), from a day or on a day."""
    where, args = [], []
    if patient is not None:
        where.append("patient_hash = ?")
        args.append(log.patient_hash(patient))
    if since is not None:
        where.append("time >= ?")
        args.append(since)
    if date is not None:
        nxt = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()
        where += ["time >= ?", "time < ?"]
        args += [date, nxt]
    return list(log.rows(" AND ".join(where), tuple(args)))


def _outcomes(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for r in rows:
        if r["kind"] == "feedback":
            fb = json.loads(r["feedback"] or "{}")
            why = f" ({fb['overrideReason']})" if fb.get("overrideReason") else ""
            found.setdefault(r["request_id"], []).append(
                f"{fb.get('outcome')}{why} at {fb.get('time')}")
    return found


def _block(r: dict[str, Any], outcomes: dict[str, list[str]]) -> list[str]:
    head = (f"{r['seq']:>6}  {r['time']}  {r['kind']} {r['status']}  {r['service']}  "
            f"hookInstance {r['request_id'] or '-'}")
    lines = [head, f"        rule set {r['ruleset_name']} {r['ruleset_version']} "
                   f"({r['ruleset_sha256'][:12]}), engine {r['engine_sha256'][:12] or '-'}"]
    if r["detail"]:
        lines.append(f"        {r['detail']}")
    rec = json.loads(r["recommendation"] or "{}")
    if rec:
        what = " ".join(str(x) for x in (rec.get("action"), rec.get("drug")) if x)
        lines.append(f"        step: {what} ({rec.get('rule')})")
    for c in json.loads(r["cards"] or "[]"):
        order = f" [{c['order']}]" if c.get("order") else ""
        lines.append(f"        card {c['uuid']}: {c['indicator']}{order} {c['summary']}")
        for o in outcomes.get(c["uuid"], ["no feedback"]):
            lines.append(f"            feedback: {o}")
    return lines


def show(target: str | Path, key_file: Path | None = None, patient: str | None = None,
         since: str | None = None, date: str | None = None, limit: int = 50) -> str:
    """The rows asked for (the latest `limit` answers), read-only."""
    since, date = _day(since, "--since"), _day(date, "--date")
    log = open_log(target, key_file, read_only=True)
    try:
        rows = select(log, patient, since, date)
    finally:
        log.close()
    outcomes = _outcomes(rows)
    shown = [r for r in rows if r["kind"] != "feedback" or patient is None][-limit:]
    out = [line for r in shown for line in _block(r, outcomes if r["kind"] != "feedback"
                                                   else {})]
    return "\n".join(out) + "\n" if out else "no rows\n"
