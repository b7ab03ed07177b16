"""CDS Hooks feedback: what the clinician did with a card. Each item is checked as the
specification requires (card, outcome, outcomeTimestamp; acceptedSuggestions for an
accepted card) against the cards this service delivered; a body with one bad item is
refused whole (400) and nothing is written. Free-text comments are never stored."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import orjson

from .calls import Answer, refused


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10:
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _accepted(item: dict[str, Any], card: dict[str, Any]) -> str | None:
    found = item.get("acceptedSuggestions")
    if not isinstance(found, list) or not found:
        return "acceptedSuggestions is required when the outcome is accepted"
    for s in found:
        if not isinstance(s, dict) or not isinstance(s.get("id"), str):
            return "each acceptedSuggestions item needs an id"
        if s["id"] not in card["suggestions"]:
            return f"suggestion {s['id']} is not one of card {item['card']}'s suggestions"
    return None


def _problem(item: Any, sid: str, card_of: Callable[[str], Any]) -> str | None:
    if not isinstance(item, dict) or not isinstance(item.get("card"), str) \
            or not item["card"]:
        return "each feedback needs card (the card's uuid)"
    if item.get("outcome") not in ("accepted", "overridden"):
        return "outcome must be accepted or overridden"
    if not _timestamp(item.get("outcomeTimestamp")):
        return "outcomeTimestamp (an ISO 8601 time) is required"
    card = card_of(item["card"])
    if card is None or card["service"] != sid:
        return f"card {item['card']} is not a card this service delivered"
    if item["outcome"] == "accepted":
        return _accepted(item, card)
    reason = item.get("overrideReason")
    if reason is not None and not isinstance(reason, dict):
        return "overrideReason must be an object"
    return None


def feedback_rows(sid: str, body: bytes, card_of: Callable[[str], Any]
                  ) -> list[dict[str, Any]] | Answer:
    """The audit rows of a feedback body, or the 400 naming its first problem."""
    try:
        request = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError):
        return refused(400, "the body is not JSON (or nests too deep)", "not JSON")
    items = request.get("feedback") if isinstance(request, dict) else None
    if not isinstance(items, list) or not items:
        return refused(400, "a CDS Hooks feedback body ({feedback: [...]}) is expected")
    rows = []
    for n, item in enumerate(items):
        problem = _problem(item, sid, card_of)
        if problem is not None:
            return refused(400, f"feedback[{n}]: {problem}", f"feedback[{n}] invalid")
        card = card_of(item["card"])
        reason = (item.get("overrideReason") or {}).get("reason") or {}
        rows.append({"request_id": item["card"], "patient_hash": card["patient_hash"],
                     "cards": [], "feedback": {
                         "outcome": item["outcome"], "time": item["outcomeTimestamp"],
                         "overrideReason": reason.get("code") if isinstance(reason, dict)
                         else None,
                         "acceptedSuggestions": [s["id"] for s in
                                                 item.get("acceptedSuggestions") or []]}})
    return rows
