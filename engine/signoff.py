"""Clinical sign-off: review records on the reviewable units of a rule set (each rule,
each drug entry of drugs.yaml, each named threshold of ruleset.yaml) and the rule set's
status that rests on them.

A record names who reviewed, in which role, when, the verdict and the sha256 of the
unit's content at that moment. The content is the unit as the engine reads it (every
field, defaults included, without its review records and review dates), so an edit
that changes what a rule means makes its approval stale, and a change of layout or
comments does not. The latest record of a unit decides its state.

A rule set may call itself `approved` (or `active`) only when every active rule, drug
entry and threshold has a current approval; `check_folder` refuses it otherwise, with
FILE:LINE for each unit, so nothing is evaluated under an untrue label.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

VERDICTS = ("approved", "changes_requested", "rejected")
# The states a unit can be in, in the order a summary lists them.
STATES = ("approved", "stale", "changes_requested", "rejected", "unreviewed")
KINDS = ("rule", "drug", "threshold")
# Statuses that say the rule set is clinically signed (`active`: signed and in use).
APPROVED_STATUSES = ("approved", "active")
DRAFT_LABEL = "draft: not clinically approved"
# Fields that record the review itself, not what the unit says.
NOT_CONTENT = frozenset({"review", "last_reviewed"})


class ReviewRecord(BaseModel):
    """One reviewer's verdict on one version of a unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    by: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(min_length=1, max_length=200)]
    date: dt.date
    verdict: Literal[VERDICTS]  # type: ignore[valid-type]
    # The sha256 of the unit's content this verdict is about (`rules review` writes it).
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    comment: Annotated[str, Field(max_length=4000)] = ""


def status_label(status: str) -> str:
    """The rule set's status as every result shows it."""
    if status in APPROVED_STATUSES:
        return status
    if status == "draft":
        return DRAFT_LABEL
    return f"{status}: not for clinical use"


def is_approved(status: str) -> bool:
    return status in APPROVED_STATUSES


def content_sha256(kind: str, name: str, model: BaseModel, stage: str | None = None) -> str:
    """The hash a review record is tied to. `stage`: a rule's effective stage (a rule
    that moves to another stage's file says something else)."""
    data: dict[str, Any] = model.model_dump(
        mode="json", exclude=set(NOT_CONTENT & set(type(model).model_fields)))
    if stage is not None:
        data["stage"] = stage
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{kind}\0{name}\0{text}".encode()).hexdigest()


def state_of(records: Iterable[ReviewRecord], sha256: str) -> str:
    """approved | stale | changes_requested | rejected | unreviewed (the latest record
    decides; a record about other content is stale whatever its verdict)."""
    records = list(records)
    if not records:
        return "unreviewed"
    last = records[-1]
    return "stale" if last.sha256 != sha256 else last.verdict


@dataclass(frozen=True)
class Unit:
    """A reviewable unit, its current content hash and its records."""

    kind: str                 # rule | drug | threshold
    id: str
    sha256: str
    records: tuple[ReviewRecord, ...]
    file: str | None = None
    line: int | None = None
    active: bool = True       # an inactive rule is reviewable, never required

    @property
    def state(self) -> str:
        return state_of(self.records, self.sha256)

    @property
    def last(self) -> ReviewRecord | None:
        return self.records[-1] if self.records else None

    @property
    def ref(self) -> str:
        """How `rules review` names it: a rule id, drug:NAME or threshold:NAME."""
        return self.id if self.kind == "rule" else f"{self.kind}:{self.id}"

    @property
    def approval(self) -> ReviewRecord | None:
        """The current approval, if any."""
        last = self.last
        return last if self.state == "approved" else None


Where = Callable[[str, str], tuple[str | None, int | None]]


def units(rules: Iterable[tuple[Any, str, bool]], drugs: dict[str, Any],
          thresholds: dict[str, Any], where: Where) -> list[Unit]:
    """Every reviewable unit. rules: (RuleSpec, effective stage, active); where(kind,
    id) gives the FILE and LINE a unit is written at."""
    out: list[Unit] = []
    for spec, stage, active in rules:
        out.append(Unit("rule", spec.id, content_sha256("rule", spec.id, spec, stage),
                        tuple(spec.review), *where("rule", spec.id), active))
    for name, entry in sorted(drugs.items()):
        out.append(Unit("drug", name, content_sha256("drug", name, entry),
                        tuple(entry.review), *where("drug", name)))
    for name, t in sorted(thresholds.items()):
        out.append(Unit("threshold", name, content_sha256("threshold", name, t),
                        tuple(t.review), *where("threshold", name)))
    return out


def counts(found: Iterable[Unit]) -> dict[str, dict[str, int]]:
    """kind -> state -> how many (active units only), for summaries."""
    out = {k: dict.fromkeys(STATES, 0) for k in KINDS}
    for u in found:
        if u.active:
            out[u.kind][u.state] += 1
    return out


def gate(status: str, found: Iterable[Unit]) -> list[tuple[str, str, Unit]]:
    """(severity, message, unit) for the sign-off: a stale record is a warning; under an
    approved status, every active unit without a current approval is an error."""
    out: list[tuple[str, str, Unit]] = []
    claim = is_approved(status)
    for u in found:
        state = u.state
        if state == "stale":
            last = u.last
            assert last is not None
            msg = (f"{u.kind} '{u.id}': the {last.verdict.replace('_', ' ')} review by "
                   f"{last.by} ({last.date}) is stale: the {u.kind} changed since "
                   f"(content sha256 {u.sha256[:12]}, reviewed {last.sha256[:12]})")
            out.append(("error" if claim and u.active else "warning", msg, u))
        elif claim and u.active and state != "approved":
            out.append(("error", f"{u.kind} '{u.id}' is {state.replace('_', ' ')}: the "
                        f"rule set's status '{status}' needs a current approval of every "
                        f"active rule, drug entry and threshold", u))
    return out


def ruleset_units(ruleset: Any) -> list[Unit]:
    """The active units of a checked RuleSet (rules generated from drugs.yaml are part of
    their drug entries' review), with the FILE:LINE of each rule."""
    rules = [r for r in ruleset.rules if not r.id.startswith("catalogue.")]
    where = {("rule", r.id): (r.file, r.line) for r in rules}
    return units([(r.spec, r.stage, True) for r in rules], ruleset.drugs,
                 ruleset.provenance.thresholds, lambda k, n: where.get((k, n), (None, None)))


def summary(status: str, found: Iterable[Unit]) -> str:
    """One line for `rules check`: the status and how many units are in each state."""
    table = counts(found)
    total = {s: sum(table[k][s] for k in KINDS) for s in STATES}
    units_n = sum(total.values())
    parts = [f"{total[s]} {s.replace('_', ' ')}" for s in STATES if total[s]]
    return (f"sign-off: rule set {status_label(status)}; {units_n} units (rules "
            f"{sum(table['rule'].values())}, drug entries {sum(table['drug'].values())}, "
            f"thresholds {sum(table['threshold'].values())}): {', '.join(parts)}")
