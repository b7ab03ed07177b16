"""The input's resources: a Bundle (collection, searchset; nested Bundles flattened) or
a CDS Hooks prefetch object becomes a flat list of entries, each validated by its FHIR
model and knowing where it sits in the input; and the index that resolves references.

The FHIR models are fhir.resources' R4B classes (FHIR 4.3, wire-compatible with R4 for
every resource read here), imported only when a FHIR record arrives.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from .reading import Entry, Fail
from ..engine.load import Path_

MAX_ENTRIES = 5000


def validate(cls: Any, data: Any, path: Path_) -> Any:
    """A model of `data`, or Fail naming the first invalid element."""
    from pydantic import ValidationError
    try:
        return cls.model_validate(data)
    except (KeyError, LookupError, TypeError):  # the models meet a resourceType they lack
        raise Fail(path, "not valid FHIR R4: an entry names an unknown resourceType") \
            from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p != "root"
                    and (p != "resource_type" or len(err["loc"]) > 1))
        msg = str(err.get("msg", "invalid")).split("\n")[0].strip()
        if err["type"] == "fhir-validation-wrong-resource-type":
            msg = f"wrong resourceType (expected {cls.__name__})"
        raise Fail(path + loc, f"not valid FHIR R4: {msg}") from None


def read_entries(data: dict[str, Any]) -> tuple[list[Entry], dt.date | None]:
    """Every resource of the input (nested Bundles flattened) and the Bundle's date."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.bundle import Bundle
    if "resourceType" not in data:  # a CDS Hooks prefetch object
        return _prefetch_entries(data, get_fhir_model_class, Bundle), None
    kind = data.get("resourceType")
    if kind != "Bundle":
        raise Fail(("resourceType",), f"wrong resourceType '{kind}': a FHIR Bundle "
                                      "(collection or searchset) is needed")
    _known_types(data, (), get_fhir_model_class)
    bundle = validate(Bundle, data, ())
    if bundle.type not in ("collection", "searchset", "transaction", "batch", "document"):
        raise Fail(("type",), f"a Bundle of type '{bundle.type}' holds no patient record")
    stamp = bundle.timestamp.date() if bundle.timestamp is not None else None
    return _bundle_entries(bundle, ()), stamp


def _prefetch_entries(data: dict[str, Any], lookup: Any, bundle_cls: Any) -> list[Entry]:
    out: list[Entry] = []
    for key, value in data.items():
        if value is None:
            raise Fail((key,), "prefetch is null: the EHR did not fetch this data, "
                               "so the record is incomplete")
        if not isinstance(value, dict) or "resourceType" not in value:
            raise Fail((key,), "not FHIR: a prefetch value must be a FHIR resource")
        if value["resourceType"] == "Bundle":
            _known_types(value, (key,), lookup)
            out.extend(_bundle_entries(validate(bundle_cls, value, (key,)), (key,)))
        else:
            out.append(Entry(_resource(value, (key,), lookup), (key,), None))
    return out


def _known_types(bundle: dict[str, Any], base: Path_, lookup: Any) -> None:
    """Name the entry whose resourceType the models do not know (before validating)."""
    entries = bundle.get("entry")
    for i, e in enumerate(entries if isinstance(entries, list) else []):
        resource = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue
        kind = resource["resourceType"]
        path = base + ("entry", i, "resource", "resourceType")
        try:
            lookup(kind) if isinstance(kind, str) else None
        except (KeyError, LookupError, ValueError):
            raise Fail(path, f"unknown resourceType '{kind}'") from None
        if not isinstance(kind, str):
            raise Fail(path, "resourceType must be text")
        if kind == "Bundle":
            _known_types(resource, base + ("entry", i, "resource"), lookup)


def _resource(value: dict[str, Any], path: Path_, lookup: Any) -> Any:
    kind = value.get("resourceType")
    try:
        cls = lookup(kind)
    except (KeyError, ValueError):
        raise Fail(path + ("resourceType",), f"unknown resourceType '{kind}'") from None
    return validate(cls, value, path)


def _bundle_entries(bundle: Any, base: Path_) -> list[Entry]:
    out: list[Entry] = []
    for i, link in enumerate(bundle.link or []):
        if link.relation == "next":  # a search result of several pages: not all here
            raise Fail(base + ("link", i), "the Bundle is one page of a search (it has a "
                       "'next' link): the rest of the record is missing")
    entries = bundle.entry or []
    if len(entries) > MAX_ENTRIES:
        raise Fail(base + ("entry",), f"more than {MAX_ENTRIES} entries")
    for i, e in enumerate(entries):
        path = base + ("entry", i)
        if e.resource is None:
            raise Fail(path, "Bundle.entry without resource")
        if e.resource.get_resource_type() == "Bundle":
            out.extend(_bundle_entries(e.resource, path + ("resource",)))
            continue
        out.append(Entry(e.resource, path + ("resource",), e.fullUrl))
    return out


class Index:
    """References by urn:uuid (fullUrl) and by Type/id, as EHRs write both."""

    def __init__(self, entries: list[Entry]) -> None:
        self.by_key: dict[str, Entry] = {}
        for e in entries:
            if e.full_url:
                self.by_key[e.full_url] = e
            rid = getattr(e.resource, "id", None)
            if rid:
                self.by_key[f"{e.kind}/{rid}"] = e
                if e.full_url and not e.full_url.startswith("urn:"):
                    self.by_key[e.full_url.rstrip("/")] = e

    def resolve(self, ref: Any, path: Path_) -> Entry:
        text = getattr(ref, "reference", None) if ref is not None else None
        if not text:
            raise Fail(path, "a reference without a 'reference' value")
        found = self.by_key.get(text)
        if found is None and "/" in text and not text.startswith("urn:"):
            parts = text.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[:parts.index("_history")]
            found = self.by_key.get("/".join(parts[-2:]))
        if found is None:
            raise Fail(path, f"reference to a missing resource: {text}")
        return found
