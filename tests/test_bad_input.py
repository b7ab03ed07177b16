"""Bad input never breaks anything: patient and rule files that are malformed, empty,
binary, hostile or wrong give exit 2 and one line `FILE:LINE: FIELD: message` (no line
where none exists), never a traceback."""
from __future__ import annotations

import re
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from cledecide.cli.main import app
from cledecide.engine.load import MAX_FILE_BYTES

from conftest import BASE, EXAMPLES, RULES

runner = CliRunner()
LINE = re.compile(r"^error: (?P<file>[^:]+)(?::(?P<line>\d+))?: "
                  r"(?:(?P<field>[\w.\[\]]+): )?(?P<msg>.+)$")

GOOD = yaml.safe_dump(BASE, sort_keys=False)
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))

PATIENT_CASES = {
    "malformed": (b"id: [unclosed\nas_of: 2026-01-01\n", None, "YAML syntax"),
    "empty": (b"", None, "empty file"),
    "only a comment": (b"# nothing\n", None, "empty file"),
    "binary": (bytes(range(256)), None, "binary"),
    "not utf-8": ("id: café\n".encode("latin-1"), None, "not UTF-8"),
    "a list": (b"- id: a\n- id: b\n", None, "must be a mapping"),
    "a number": (b"42\n", None, "must be a mapping"),
    "duplicate keys": (GOOD.replace("smoker: false", "smoker: false\nsmoker: true").encode(),
                       "smoker", "duplicate key"),
    "python tag": (GOOD.replace("id: test-patient",
                                "id: !!python/object/apply:os.getcwd []").encode(),
                   "id", "unsupported YAML"),
    "python tag on mapping": (GOOD.replace("smoker: false",
                                           "smoker: !!python/object:os.Foo {a: 1}").encode(),
                              "smoker", "unsupported YAML"),
    "alias bomb": (ALIAS_BOMB.encode(), None, "too large"),
    "wrong type": (GOOD.replace("age: 50", "age: fifty").encode(), "demographics.age",
                   "must be a number"),
    "out of range": (GOOD.replace("clasi_activity: 18", "clasi_activity: 99").encode(),
                     "activity[0].clasi_activity", "<= 70"),
    "unknown word": (GOOD.replace("conditions: []", "conditions: [gout]").encode(),
                     "conditions[0]", "must be one of"),
    "unknown field": (GOOD.replace("smoker: false", "smoker: false\nsmokes: true").encode(),
                      "smokes", "unknown field"),
    "date after as_of": (GOOD.replace("date: '2026-11-20'", "date: '2027-01-01'").encode(),
                         "activity[0].date", "after as_of"),
    "impossible date": (GOOD.replace("as_of: '2026-11-20'", "as_of: 2026-02-30").encode(),
                        "as_of", "invalid value"),
    "boolean as word": (GOOD.replace("smoker: false", "smoker: 'no'").encode(), "smoker", ""),
}


def one_line_error(output: str) -> re.Match:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    m = LINE.match(lines[0])
    assert m, lines[0]
    return m


@pytest.mark.parametrize("name", sorted(PATIENT_CASES))
def test_bad_patient_files(tmp_path, name) -> None:
    raw, field, words = PATIENT_CASES[name]
    path = tmp_path / "patient.yaml"
    path.write_bytes(raw)
    r = runner.invoke(app, ["evaluate", str(path)])
    assert r.exit_code == 2, r.output
    m = one_line_error(r.output)
    assert m["file"].endswith("patient.yaml") and words in m["msg"]
    if field:
        assert m["field"] == field and m["line"] is not None


def test_oversized_patient_file(tmp_path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * MAX_FILE_BYTES)
    r = runner.invoke(app, ["evaluate", str(path)])
    assert r.exit_code == 2 and "limit" in one_line_error(r.output)["msg"]


def test_empty_folder_of_patients(tmp_path) -> None:
    """A folder is a list of patients (see test_cohort); an empty one is an error."""
    r = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert r.exit_code == 2 and "no patient records" in r.output
    assert len(r.output.strip().splitlines()) == 1


RULE_CASES = {
    "malformed": (b"stage: topical\nrules: [\n", "YAML syntax"),
    "empty": (b"", "empty file"),
    "binary": (b"\x00\x01rules", "binary"),
    "not utf-8": ("stage: topical\n# caf\xe9\n".encode("latin-1"), "not UTF-8"),
    "a list": (b"- stage: topical\n", "must be a mapping"),
    "python tag": (b"stage: !!python/name:os.system topical\nrules: []\n", "unsupported YAML"),
    "alias bomb": (ALIAS_BOMB.encode(), "too large"),
    "duplicate keys": (b"stage: topical\nstage: bridge\nrules: []\n", "duplicate key"),
    "wrong type": (b"stage: topical\nrules: 3\n", "must be a list"),
    "unknown field": (b"stage: topical\ncolour: red\nrules:\n  - {id: x.y, title: t, priority: 1,"
                      b" then: {warn: {severity: info, message: m}}, because: b}\n",
                      "unknown field"),
    "no rules": (b"stage: topical\nrules: []\n", "at least 1 item"),
}


@pytest.mark.parametrize("name", sorted(RULE_CASES))
def test_bad_rule_files(tmp_path, name) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    raw, words = RULE_CASES[name]
    (folder / "zz-extra.yaml").write_bytes(raw)
    for command in (["evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "--rules", str(folder)],):
        r = runner.invoke(app, command)
        assert r.exit_code == 2, r.output
        m = one_line_error(r.output)
        assert m["file"].endswith("zz-extra.yaml") and words in m["msg"]
    r = runner.invoke(app, ["rules", "check", str(folder), "--samples", "0"])
    assert r.exit_code == 2 and "zz-extra.yaml" in r.output and "Traceback" not in r.output


def test_oversized_rule_file(tmp_path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    (folder / "huge.yaml").write_bytes(b"# " + b"x" * 1_000_001)
    r = runner.invoke(app, ["evaluate", str(EXAMPLES / "hcq-inadequate.yaml"),
                            "--rules", str(folder)])
    assert r.exit_code == 2 and "limit" in one_line_error(r.output)["msg"]


def test_missing_rules_folder(tmp_path) -> None:
    r = runner.invoke(app, ["evaluate", str(EXAMPLES / "hcq-inadequate.yaml"),
                            "--rules", str(tmp_path / "none")])
    assert r.exit_code == 2 and "not found" in r.output
