"""The rule set's version and what it says: `rules lock` records the content hash of
each version in `versions.lock` beside ruleset.yaml; `rules check` warns when the rules
say something else than what their version recorded (a change without a version bump).

The content is what changes advice: every rule as the engine reads it (the generated
ones too; retired and draft ones by their content), every drug entry, every threshold,
the gap check and the FHIR code map. Review records, review dates, reviewers, the
status and evidence citations are not content: signing a rule or correcting a citation
needs no new version. The hash is not the rule set's sha256 that results carry (that
one covers every byte, the version itself included)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..engine.errors import RuleError
from ..engine.ruleset import Finding, RuleSet
from ..engine.signoff import content_sha256

LOCK_FILE = "versions.lock"
_LINE = re.compile(r"^(\S+)\s+([0-9a-f]{64})\s*$")
HEADER = ("# The content sha256 of each released rule-set version (written by `cledecide "
          "rules lock`;\n# `rules check` warns when the rules change while ruleset.yaml "
          "keeps a version recorded here).\n")


def content_hash(ruleset: RuleSet) -> str:
    """The hash of what the rule set says (see the module's docstring)."""
    parts = sorted(content_sha256("rule", r.id, r.spec, r.stage) for r in ruleset.rules)
    parts += sorted(content_sha256("rule", s.id, s) for s in ruleset.inactive)
    parts += sorted(content_sha256("drug", n, d) for n, d in ruleset.drugs.items())
    parts += sorted(content_sha256("threshold", n, t)
                    for n, t in ruleset.provenance.thresholds.items())
    prov = ruleset.provenance
    parts.append(f"gap\0{prov.gap_check}\0{','.join(prov.gap_fallbacks)}")
    codemap = Path(ruleset.folder) / "fhir-map.yaml"
    if codemap.is_file():
        parts.append(hashlib.sha256(codemap.read_bytes()).hexdigest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def read_lock(folder: Path) -> dict[str, tuple[str, int]]:
    """version -> (content sha256, line) from the lock file; {} without one."""
    path = folder / LOCK_FILE
    if not path.is_file():
        return {}
    out: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise RuleError("expected 'VERSION SHA256' on each line", str(path), n)
        out[m.group(1)] = (m.group(2), n)
    return out


def version_findings(ruleset: RuleSet, meta_file: str, version_line: int | None
                     ) -> list[Finding]:
    """A warning when the rule set's version is recorded in the lock file with other
    content: the rules changed and the version was not bumped."""
    folder = Path(ruleset.folder)
    try:
        recorded = read_lock(folder)
    except RuleError as exc:
        return [Finding("warning", "version-lock", exc.message, exc.file, exc.line)]
    version = ruleset.provenance.version
    if version not in recorded:
        return []
    sha, _ = recorded[version]
    now = content_hash(ruleset)
    if sha == now:
        return []
    return [Finding("warning", "version-not-bumped",
                    f"the rules changed since version {version} was recorded in "
                    f"{LOCK_FILE} (content sha256 {sha[:12]}, now {now[:12]}): bump the "
                    f"version, then record it with `cledecide rules lock`",
                    meta_file, version_line, "version")]


def write_lock(ruleset: RuleSet) -> tuple[Path, str, bool]:
    """Record the rule set's version with its content hash. Refuses to overwrite a
    version recorded with other content (that is the change the warning is about).
    Returns the file, the hash and whether a line was added."""
    folder = Path(ruleset.folder)
    recorded = read_lock(folder)
    version = ruleset.provenance.version
    now = content_hash(ruleset)
    if version in recorded:
        if recorded[version][0] != now:
            raise RuleError(f"version {version} is already recorded with other content "
                            f"(sha256 {recorded[version][0][:12]}); bump `version` in "
                            "ruleset.yaml first", str(folder / LOCK_FILE),
                            recorded[version][1])
        return folder / LOCK_FILE, now, False
    path = folder / LOCK_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(f"{text}{version} {now}\n", encoding="utf-8")
    return path, now, True
