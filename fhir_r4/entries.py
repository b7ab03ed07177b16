"""The input's resources: a Bundle (collection, searchset, transaction...; nested Bundles
flattened) or a CDS Hooks prefetch object becomes a flat list of entries, each knowing
where it sits in the input; and the index that resolves references.

Only the resource types the code map reads are validated, by the models of fhir_r4.models
(the elements read, as FHIR R4 defines them); an entry of another type only has to name a
FHIR R4 resourceType. The input's size is bounded by entries and by Bundles nested in
Bundles (the code map's `limits`), not by bytes: a 10 MB Synthea bundle is ordinary.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from . import models as M
from .reading import Entry, Fail
from ..engine.load import Path_

BUNDLE_TYPES = ("collection", "searchset", "transaction", "batch", "document")


@dataclass(frozen=True)
class Limits:
    """How much FHIR one input may hold (rules/fhir-map.yaml `limits`)."""

    max_entries: int = 50_000
    max_nesting: int = 3


def validate(cls: type[M.Element], data: Any, path: Path_) -> Any:
    """A model of `data`, or Fail naming the first invalid element."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        msg = str(err.get("msg", "invalid")).split("\n")[0].strip()
        msg = msg.removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required element missing"
        raise Fail(path + loc, f"not valid FHIR R4: {msg}") from None


def resource_of(value: Any, path: Path_) -> Any:
    """A resource (a JSON object) as its model: validated if cledecide reads its type."""
    if not isinstance(value, dict):
        raise Fail(path, "not valid FHIR R4: a resource must be a JSON object")
    kind = value.get("resourceType")
    if not isinstance(kind, str):
        raise Fail(path + ("resourceType",), "not valid FHIR R4: resourceType must be text"
                   if "resourceType" in value else "not valid FHIR R4: no resourceType")
    if kind not in M.RESOURCE_TYPES:
        raise Fail(path + ("resourceType",), f"unknown resourceType '{kind}'")
    return validate(M.READ.get(kind, M.Other), value, path)


class _Reader:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0
        self.out: list[Entry] = []

    def bundle(self, model: M.Bundle, base: Path_, depth: int) -> None:
        if depth > self.limits.max_nesting:
            raise Fail(base, f"Bundles nested more than {self.limits.max_nesting} deep "
                       "(limits.max_nesting in the code map)")
        for i, link in enumerate(model.link or []):
            if link.relation == "next":  # a search result of several pages: not all here
                raise Fail(base + ("link", i), "the Bundle is one page of a search (it has "
                           "a 'next' link): the rest of the record is missing")
        entries = model.entry or []
        self.count += len(entries)
        if self.count > self.limits.max_entries:
            raise Fail(base + ("entry",), f"more than {self.limits.max_entries} entries "
                       "(limits.max_entries in the code map)")
        for i, e in enumerate(entries):
            path = base + ("entry", i)
            if e.resource is None:
                raise Fail(path, "Bundle.entry without resource")
            resource = resource_of(e.resource, path + ("resource",))
            if isinstance(resource, M.Bundle):
                self.bundle(resource, path + ("resource",), depth + 1)
            else:
                self.out.append(Entry(resource, path + ("resource",), e.fullUrl))


def read_entries(data: dict[str, Any], limits: Limits | None = None
                 ) -> tuple[list[Entry], dt.date | None]:
    """Every resource of the input (nested Bundles flattened) and the Bundle's date."""
    reader = _Reader(limits or Limits())
    if "resourceType" not in data:  # a CDS Hooks prefetch object
        for key, value in data.items():
            if value is None:
                raise Fail((key,), "prefetch is null: the EHR did not fetch this data, "
                                   "so the record is incomplete")
            if not isinstance(value, dict) or "resourceType" not in value:
                raise Fail((key,), "not FHIR: a prefetch value must be a FHIR resource")
            resource = resource_of(value, (key,))
            if isinstance(resource, M.Bundle):
                reader.bundle(resource, (key,), 1)
            else:
                reader.out.append(Entry(resource, (key,), None))
        return reader.out, None
    kind = data.get("resourceType")
    if kind != "Bundle":
        raise Fail(("resourceType",), f"wrong resourceType '{kind}': a FHIR Bundle "
                                      "(collection or searchset) is needed")
    bundle = validate(M.Bundle, data, ())
    if bundle.type not in BUNDLE_TYPES:
        raise Fail(("type",), f"a Bundle of type '{bundle.type}' holds no patient record")
    reader.bundle(bundle, (), 1)
    stamp = dt.date.fromisoformat(bundle.timestamp[:10]) if bundle.timestamp else None
    return reader.out, stamp


class Index:
    """References by urn:uuid (fullUrl) and by Type/id, as EHRs write both; `#id` points
    into the referring resource's `contained`."""

    def __init__(self, entries: list[Entry]) -> None:
        self.by_key: dict[str, Entry] = {}
        for e in entries:
            if e.full_url:
                self.by_key[e.full_url] = e
            rid = getattr(e.resource, "id", None)
            if isinstance(rid, str) and rid:
                self.by_key[f"{e.kind}/{rid}"] = e
                if e.full_url and not e.full_url.startswith("urn:"):
                    self.by_key[e.full_url.rstrip("/")] = e

    def resolve(self, ref: Any, path: Path_, holder: Entry | None = None) -> Entry:
        text = getattr(ref, "reference", None) if ref is not None else None
        if not text:
            raise Fail(path, "a reference without a 'reference' value")
        if text.startswith("#") and holder is not None:
            return _contained(holder, text[1:], path)
        found = self.by_key.get(text)
        if found is None and "/" in text and not text.startswith("urn:"):
            parts = text.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[:parts.index("_history")]
            found = self.by_key.get("/".join(parts[-2:]))
        if found is None:
            raise Fail(path, f"reference to a missing resource: {text}")
        return found


def _contained(holder: Entry, rid: str, path: Path_) -> Entry:
    for i, c in enumerate(getattr(holder.resource, "contained", None) or []):
        if isinstance(c, dict) and c.get("id") == rid:
            where = holder.path + ("contained", i)
            return Entry(resource_of(c, where), where, None)
    raise Fail(path, f"reference to a missing contained resource: #{rid}")
