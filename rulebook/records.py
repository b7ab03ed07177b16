"""`cledecide rules review`: write one review record into the rule files, and name the
reviewable units of a folder.

The record is inserted as text, at the place the YAML composer reports for the unit;
every other byte of the file stays as the reviewer wrote it (comments, order, line
breaks inside flow lists). A round-trip library was tried first: ruamel.yaml 0.19
keeps comments and order, but re-flows the multi-line flow lists the rule files use
(124 lines of the shipped rules changed on a load and dump with no edit), which a
reviewer would see as a diff they did not make. PyYAML's composer (already a
dependency; it builds nodes, never objects) gives each node's start and end, which is
all an insertion needs. The new file is read back with the project's loader and must
equal the old data plus the record, else nothing is written.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..engine.errors import RuleError
from ..engine.load import load_file, read_bytes
from ..engine.prose import filled
from ..engine.ruleset import (RULE_FILE_LIMIT, SPECIAL_FILES, DrugEntry, RuleSpec,
                              Threshold, default_rules_dir, threshold_values)
from ..engine.signoff import VERDICTS, ReviewRecord, content_sha256

# The pure-Python composer: its marks count characters (libyaml's count bytes). In an
# ASCII file the two count alike, and libyaml's is about ten times faster (the shipped
# rule files are ASCII; the same text is written either way on all their 214 units).
_Loader = yaml.SafeLoader
_ASCII_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Target:
    """Where a unit is written: its file, the path of its mapping, and its content hash."""

    kind: str
    id: str
    file: Path
    path: tuple[Any, ...]
    sha256: str
    line: int | None


def _rule_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.yaml")) if p.name not in SPECIAL_FILES]


def find(ref: str, folder: Path | str | None = None) -> Target:
    """A unit by the name `rules review` takes: a rule id, `drug:NAME` or
    `threshold:NAME` (a bare drug or threshold name when nothing else has it)."""
    folder = Path(folder) if folder else default_rules_dir()
    kind, _, name = ref.partition(":") if ":" in ref else ("", "", ref)
    if kind and kind not in ("rule", "drug", "threshold"):
        raise RuleError(f"'{ref}': name a rule id, drug:NAME or threshold:NAME")
    found: list[Target] = []
    values = threshold_values(folder)  # texts are signed as the engine reads them
    if kind in ("", "rule"):
        for path in _rule_files(folder):
            doc = load_file(path, RuleError, RULE_FILE_LIMIT)
            for i, item in enumerate((doc.data or {}).get("rules") or []):
                if isinstance(item, dict) and item.get("id") == name:
                    item = filled(item, values)[0]
                    spec = _validate(RuleSpec, item, doc.file, doc.line_of(("rules", i)))
                    stage = spec.stage or doc.data.get("stage")
                    found.append(Target("rule", name, path, ("rules", i),
                                        content_sha256("rule", name, spec, stage),
                                        doc.line_of(("rules", i, "id"))))
    for k, file, top, model in (("drug", "drugs.yaml", "drugs", DrugEntry),
                                ("threshold", "ruleset.yaml", "thresholds", Threshold)):
        if kind in ("", k) and (folder / file).exists():
            doc = load_file(folder / file, RuleError, RULE_FILE_LIMIT)
            entry = ((doc.data or {}).get(top) or {}).get(name)
            if isinstance(entry, dict):
                if k == "drug":
                    entry = filled(entry, values)[0]
                unit = _validate(model, entry, doc.file, doc.line_of((top, name)))
                found.append(Target(k, name, folder / file, (top, name),
                                    content_sha256(k, name, unit), doc.line_of((top, name))))
    if not found:
        if name.startswith("catalogue."):
            drugs = [w for w in name.split(".") if (folder / "drugs.yaml").exists()
                     and f"\n  {w}:" in (folder / "drugs.yaml").read_text()]
            raise RuleError(f"'{name}' is generated from drugs.yaml: review the drug "
                            "entries it comes from ("
                            + (", ".join(f"drug:{d}" for d in drugs) or "drug:NAME") + ")",
                            str(folder))
        raise RuleError(f"no rule, drug entry or threshold named '{ref}'", str(folder))
    if len(found) > 1:
        raise RuleError(f"'{ref}' names several units: say "
                        + " or ".join(f"{t.kind}:{t.id}" for t in found), str(folder))
    return found[0]


def _validate(model: Any, data: dict[str, Any], file: str, line: int | None) -> Any:
    try:
        return model.model_validate(data)
    except ValueError as exc:
        raise RuleError(f"the unit is not valid ({str(exc).splitlines()[0]}); run "
                        "'cledecide rules check'", file, line) from None


def _scalar(text: str) -> str:
    """A YAML double-quoted scalar that YAML 1.1 and 1.2 read the same (JSON's escapes,
    and every character that is not printable escaped too)."""
    body = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in body)


def _record_lines(record: ReviewRecord, col: int) -> list[str]:
    pad, inner = " " * col, " " * (col + 2)
    lines = [f"{pad}- by: {_scalar(record.by)}",
             f"{inner}role: {_scalar(record.role)}",
             f"{inner}date: {record.date.isoformat()}",
             f"{inner}verdict: {record.verdict}",
             f"{inner}sha256: {record.sha256}"]
    if record.comment:
        lines.append(f"{inner}comment: {_scalar(record.comment)}")
    return lines


def _child(node: yaml.Node, key: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        return node.value[key] if key < len(node.value) else None
    return None


def _last_leaf(node: yaml.Node) -> yaml.Node:
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.value \
            and not node.flow_style:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node


def _line_end_after(text: str, node: yaml.Node) -> int:
    """The offset just past the line that holds the node's last character."""
    end = len(text[:node.end_mark.index].rstrip())
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline + 1


def insert_record(text: str, path: tuple[Any, ...], record: ReviewRecord, file: str) -> str:
    """The file's text with the record appended to the unit's review list."""
    root = yaml.compose(text, Loader=_ASCII_LOADER if text.isascii() else _Loader)
    node = root
    for key in path:
        node = _child(node, key) if node is not None else None
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise RuleError(f"cannot find {'.'.join(map(str, path))}", file)
    if node.flow_style:
        raise RuleError("the unit is written as a flow mapping ({...}); write it as a "
                        "block to add a review", file, node.start_mark.line + 1)
    key_col = node.value[0][0].start_mark.column
    review = _child(node, "review")
    if review is None:
        at = _line_end_after(text, _last_leaf(node))
        lines = [" " * key_col + "review:"] + _record_lines(record, key_col + 2)
    elif isinstance(review, yaml.SequenceNode) and review.value and not review.flow_style:
        at = _line_end_after(text, _last_leaf(review))
        lines = _record_lines(record, review.value[0].start_mark.column - 2)
    else:
        raise RuleError("review: must be a block list of records to add one", file,
                        review.start_mark.line + 1)
    head = text[:at] if text[:at].endswith("\n") or not at else text[:at] + "\n"
    return head + "\n".join(lines) + "\n" + text[at:]


def write_review(ref: str, verdict: str, by: str, role: str, comment: str = "",
                 folder: Path | str | None = None,
                 date: dt.date | None = None) -> tuple[Target, ReviewRecord]:
    """Append a review record to a unit, tied to its content hash now."""
    if verdict not in VERDICTS:
        raise RuleError(f"verdict must be one of {', '.join(VERDICTS)}, got '{verdict}'")
    target = find(ref, folder)
    try:
        record = ReviewRecord(by=by.strip(), role=role.strip(), date=date or dt.date.today(),
                              verdict=verdict, sha256=target.sha256,
                              comment=" ".join(comment.split()))
    except ValueError as exc:
        raise RuleError(f"review record: {str(exc).splitlines()[-1].strip()}") from None
    raw = read_bytes(target.file, RuleError, RULE_FILE_LIMIT)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleError("not UTF-8 text", str(target.file)) from None
    new = insert_record(text, target.path, record, str(target.file))
    _same_but_the_record(text, new, target, record)
    _write_atomic(target.file, new)
    return target, record


def _same_but_the_record(old: str, new: str, target: Target, record: ReviewRecord) -> None:
    """The new text must read as the old data with the record appended; nothing else."""
    from ..engine.load import parse
    before = parse(old.encode(), str(target.file), RuleError).data
    after = parse(new.encode(), str(target.file), RuleError).data
    unit = before
    for key in target.path:
        unit = unit[key]
    unit.setdefault("review", []).append(
        {k: v for k, v in record.model_dump().items() if k != "comment" or v})
    if before != after:
        raise RuleError("the record could not be added without changing anything else; "
                        "nothing was written", str(target.file))


def _write_atomic(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
