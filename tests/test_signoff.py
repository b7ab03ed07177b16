"""Clinical sign-off (issue 21): review records tied to each unit's content hash, the
rule set's status that rests on them, and `rules review`, which writes a record without
touching anything else in the file."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cledecide.engine.errors import RuleError
from cledecide.engine.load import load_file
from cledecide.engine.rulecache import load_ruleset
from cledecide.engine.ruleset import check_folder
from cledecide.engine.signoff import ReviewRecord, ruleset_units
from cledecide.rulebook.records import find, insert_record, write_review

from conftest import EXAMPLES, RULES
from test_examples import CLI

DAY = dt.date(2026, 11, 29)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    dest = tmp_path / "rules"
    shutil.copytree(RULES, dest)
    return dest


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)


def approve_everything(folder: Path) -> int:
    """A record on every active unit, written as `rules review` would (test data only:
    the shipped rules stay unsigned)."""
    rs = load_ruleset(folder)
    todo: dict[Path, list[tuple[tuple, str]]] = {}
    for u in ruleset_units(rs):
        if u.kind == "rule":
            path = Path(u.file)
            doc = load_file(path, RuleError)
            index = next(i for i, r in enumerate(doc.data["rules"]) if r["id"] == u.id)
            todo.setdefault(path, []).append((("rules", index), u.sha256))
        else:
            path = folder / ("drugs.yaml" if u.kind == "drug" else "ruleset.yaml")
            todo.setdefault(path, []).append(
                (("drugs" if u.kind == "drug" else "thresholds", u.id), u.sha256))
    count = 0
    for path, items in todo.items():
        text = path.read_text()
        for where, sha in items:
            record = ReviewRecord(by="Dr Test", role="consultant dermatologist", date=DAY,
                                  verdict="approved", sha256=sha)
            text = insert_record(text, where, record, str(path))
            count += 1
        path.write_text(text)
    return count


def edit(path: Path, old: str, new: str) -> None:
    """Change one place of a rule file (the test fails if the text is not there)."""
    text = path.read_text()
    assert old in text, f"{path.name} no longer has {old!r}: update the test"
    path.write_text(text.replace(old, new, 1))


def set_status(folder: Path, status: str) -> None:
    path = folder / "ruleset.yaml"
    text = path.read_text()
    assert "\nstatus: draft" in text
    path.write_text(text.replace("\nstatus: draft", f"\nstatus: {status}", 1))


def test_shipped_rules_stay_a_draft_nobody_signed() -> None:
    rs = load_ruleset(RULES)
    assert rs.provenance.status == "draft"
    assert all(u.state == "unreviewed" for u in ruleset_units(rs))


def test_review_writes_only_the_record_and_keeps_every_other_byte(rules: Path) -> None:
    before = {p.name: p.read_text() for p in rules.glob("*.yaml")}
    proc = cli("rules", "review", "antimalarial.quinacrine.add", "--verdict", "approved",
               "--by", "Dr Jane Roe", "--role", "consultant dermatologist",
               "--comment", "Dose and evidence checked: yes", "--rules", str(rules))
    assert proc.returncode == 0, proc.stderr
    assert "antimalarial.yaml:" in proc.stdout and "approved by Dr Jane Roe" in proc.stdout
    after = {p.name: p.read_text() for p in rules.glob("*.yaml")}
    changed = [n for n in before if before[n] != after[n]]
    assert changed == ["antimalarial.yaml"]
    old, new = before["antimalarial.yaml"].splitlines(), after["antimalarial.yaml"].splitlines()
    added = [line for line in new if line not in old]
    # the old lines in order, and only the record's lines added
    it = iter(new)
    assert all(any(line == n for n in it) for line in old)
    assert len(new) == len(old) + len(added) == len(old) + 7
    assert added[0].strip() == "review:" and '"Dose and evidence checked: yes"' in added[-1]
    rs = load_ruleset(rules)
    (unit,) = [u for u in ruleset_units(rs) if u.id == "antimalarial.quinacrine.add"]
    assert unit.state == "approved" and unit.last.by == "Dr Jane Roe"


def test_review_of_drug_and_threshold_and_history_is_kept(rules: Path) -> None:
    write_review("drug:hydroxychloroquine", "approved", "Dr A", "pharmacist", "", rules, DAY)
    write_review("severe_clasi_activity", "changes_requested", "Dr B", "dermatologist",
                 "21 or 20?", rules, DAY)
    write_review("severe_clasi_activity", "approved", "Dr B", "dermatologist", "", rules,
                 DAY + dt.timedelta(days=1))
    states = {u.ref: u for u in ruleset_units(load_ruleset(rules))}
    assert states["drug:hydroxychloroquine"].state == "approved"
    t = states["threshold:severe_clasi_activity"]
    assert t.state == "approved" and [r.verdict for r in t.records] == \
        ["changes_requested", "approved"]


def test_review_refuses_unknown_ambiguous_and_generated_units(rules: Path) -> None:
    with pytest.raises(RuleError, match="no rule, drug entry or threshold"):
        find("no.such.rule", rules)
    with pytest.raises(RuleError, match="generated from drugs.yaml"):
        find("catalogue.max-dose.dapsone", rules)
    proc = cli("rules", "review", "general.continue", "--verdict", "maybe", "--by", "X",
               "--role", "Y", "--rules", str(rules))
    assert proc.returncode == 2 and "verdict must be one of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_names_that_yaml_1_1_would_misread_are_quoted(rules: Path) -> None:
    write_review("general.continue", "rejected", "yes", "017", "no: #not a comment",
                 rules, DAY)
    (unit,) = [u for u in ruleset_units(load_ruleset(rules)) if u.id == "general.continue"]
    assert (unit.last.by, unit.last.role, unit.last.comment) == \
        ("yes", "017", "no: #not a comment")


def test_an_edit_makes_the_approval_stale_and_check_says_where(rules: Path) -> None:
    write_review("antimalarial.quinacrine.add", "approved", "Dr A", "dermatologist", "",
                 rules, DAY)
    path = rules / "antimalarial.yaml"
    edit(path, "dose: 100 mg once daily}", "dose: 200 mg once daily}")
    (unit,) = [u for u in ruleset_units(load_ruleset(rules))
               if u.id == "antimalarial.quinacrine.add"]
    assert unit.state == "stale"
    _, findings = check_folder(rules)
    (stale,) = [f for f in findings if f.code == "review"]
    assert stale.severity == "warning" and "stale" in stale.message
    assert stale.file == str(path) and stale.line == unit.line


def test_layout_and_comments_do_not_make_an_approval_stale(rules: Path) -> None:
    write_review("antimalarial.quinacrine.add", "approved", "Dr A", "dermatologist", "",
                 rules, DAY)
    path = rules / "antimalarial.yaml"
    edit(path, "recommend: {action: add, drug: quinacrine, dose: 100 mg once daily}",
         "# reviewed\n      recommend:\n        action: add\n        drug: quinacrine\n"
         "        dose: 100 mg once daily")
    (unit,) = [u for u in ruleset_units(load_ruleset(rules))
               if u.id == "antimalarial.quinacrine.add"]
    assert unit.state == "approved"


def test_approved_status_needs_every_unit_approved(rules: Path) -> None:
    set_status(rules, "approved")
    _, findings = check_folder(rules)
    errors = [f for f in findings if f.code == "review"]
    units = ruleset_units(load_ruleset(RULES))
    assert len(errors) == len(units)  # every unit named, each with its file and line
    assert all(f.severity == "error" and f.file and f.line for f in errors)
    proc = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "--rules", str(rules))
    assert proc.returncode == 2 and "needs a current approval" in proc.stderr


def test_a_fully_signed_rule_set_is_approved_until_one_edit(rules: Path) -> None:
    assert approve_everything(rules) == len(ruleset_units(load_ruleset(RULES)))
    set_status(rules, "approved")
    proc = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "--rules", str(rules),
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ruleset"]["status"] == "approved"
    text = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "--rules", str(rules))
    assert "(approved)" in text.stdout and "not clinically approved" not in text.stdout
    # one threshold edited: the approval is stale and the rule set is refused
    path = rules / "ruleset.yaml"
    edit(path, "    value: 21\n", "    value: 20\n")
    ruleset, findings = check_folder(rules)
    assert ruleset is None
    (error,) = [f for f in findings if f.severity == "error"]
    assert "severe_clasi_activity" in error.message and "stale" in error.message
    assert error.file == str(path) and error.line is not None
    proc = cli("rules", "check", str(rules), "--samples", "0", "--hypothesis", "0")
    assert proc.returncode == 2
    assert f"{path}:{error.line}" in proc.stdout and "stale" in proc.stdout


def test_draft_results_say_so_and_check_prints_the_counts() -> None:
    proc = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "--format", "json")
    assert json.loads(proc.stdout)["ruleset"]["status"] == "draft"
    text = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml")).stdout
    assert "(draft: not clinically approved)" in " ".join(text.split())
    proc = cli("rules", "check", "--samples", "0", "--hypothesis", "0")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("sign-off:"))
    assert "draft: not clinically approved" in line and "unreviewed" in line

