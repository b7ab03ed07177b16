"""Hostile and odd input (issue 13), one table of cases run through the installed
`cledecide` console script, so exit codes, stdout and stderr are the real ones.

Each case: exit 2 with one line `error: FILE[:LINE]: [FIELD: ]message`, or a correct
answer; never exit 1 for the user's input, never a traceback, never a hang (every run
has a timeout), never a silently different number. Hypothesis then generates hostile
scalars and hostile rule edits, so that variants are found, not only these.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from conftest import BASE, RULES, examples

CLI = str(Path(sys.executable).with_name("cledecide"))
GOOD = yaml.safe_dump(BASE, sort_keys=False)
TIMEOUT = 30


def run(*args: str, stdin: bytes | None = None, stdout=subprocess.PIPE,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], stdout=stdout, stderr=subprocess.PIPE,
                          input=stdin, timeout=TIMEOUT, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess, words: str = "") -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0], (words, lines[0])
    return lines[0]


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# ------------------------------------------------------------------ patient files

PATIENT_CASES = {
    # silent wrong answers before: now refused, with the value named
    "octal": (edit(GOOD, "weight_kg: 70", "weight_kg: 017"), "'017'"),
    "hex": (edit(GOOD, "weight_kg: 70", "weight_kg: 0x47"), "'0x47'"),
    "sexagesimal": (edit(GOOD, "weight_kg: 70", "weight_kg: 1:11"), "'1:11'"),
    "yes for true": (edit(GOOD, "smoker: false", "smoker: yes"), "true or false"),
    "nan": (edit(GOOD, "weight_kg: 70", "weight_kg: .nan"), "finite"),
    "inf": (edit(GOOD, "weight_kg: 70", "weight_kg: .inf"), "finite"),
    "unix time as_of": (edit(GOOD, "as_of: '2026-11-20'", "as_of: 1795132800"), "YYYY-MM-DD"),
    "unix time start": (GOOD.replace("treatments: []", "treatments: [{drug: "
                                     "hydroxychloroquine, start: 0, response: none}]"),
                        "YYYY-MM-DD"),
    "date with time": (edit(GOOD, "as_of: '2026-11-20'", "as_of: 2026-11-20 10:00:00"),
                       "YYYY-MM-DD"),
    "binary tag": (edit(GOOD, "id: test-patient", "id: !!binary aGVsbG8="), "tag"),
    "man pregnant": (edit(edit(GOOD, "sex: female", "sex: male"), "pregnant: false",
                          "pregnant: true"), "male"),
    "blank id": (edit(GOOD, "id: test-patient", "id: '   '"), "blank"),
    "pregnant without childbearing potential": (edit(GOOD, "pregnant: false",
                                                     "pregnant: true"), "childbearing"),
    "newline in field name": (edit(GOOD, "smoker: false", "smoker: false\n\"a\\nb\": 1"),
                              "a\\nb"),
    "escape in field name": (edit(GOOD, "smoker: false", "smoker: false\n\"\\e]0;x\\a\": 1"),
                             "\\x1b"),
}


@pytest.mark.parametrize("name", sorted(PATIENT_CASES))
def test_hostile_patient_files(tmp_path, name) -> None:
    text, words = PATIENT_CASES[name]
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert_one_line_error(run("evaluate", str(path)), words)


def test_blank_trigger_counts_as_absent(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(edit(GOOD, "systemic_lupus: false", "systemic_lupus: false\n"
                                                        "  suspected_drug_trigger: '   '"))
    proc = run("evaluate", str(path), "--format", "json")
    assert proc.returncode == 0
    assert "trigger" not in json.loads(proc.stdout)["recommendation"]["summary"]


def test_json_with_exponent_numbers_is_read_as_json(tmp_path) -> None:
    data = json.loads(json.dumps(BASE))
    text = json.dumps(data).replace('"weight_kg": 70', '"weight_kg": 7.0e1')
    path = tmp_path / "p.json"
    path.write_text(text)
    proc = run("evaluate", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    path.write_text(text.replace("7.0e1", "NaN"))
    assert_one_line_error(run("evaluate", str(path)), "finite")


def test_special_files_are_refused_without_blocking(tmp_path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert_one_line_error(run("evaluate", str(fifo)), "not a regular file")
    sock_path = tmp_path / "s.yaml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        assert_one_line_error(run("evaluate", str(sock_path)), "not a regular file")
    finally:
        sock.close()
    assert_one_line_error(run("evaluate", "/dev/zero"), "not a regular file")


def _loop(d: Path) -> Path:
    (d / "a").symlink_to(d / "b")
    (d / "b").symlink_to(d / "a")
    return d / "a"


def _under_a_file(d: Path) -> Path:
    (d / "f").write_text("x")
    return d / "f" / "p.yaml"


@pytest.mark.parametrize("make, words", [
    (_loop, "symbolic links"),
    (_under_a_file, "not a directory"),
    (lambda d: d / ("x" * 300), "name too long"),
    (lambda d: d, "no patient records"),
])
def test_filesystem_errors_are_one_line(tmp_path, make, words) -> None:
    assert_one_line_error(run("evaluate", str(make(tmp_path))), words)


def test_unreadable_file_is_one_line(tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    path.chmod(0)
    assert_one_line_error(run("evaluate", str(path)), "permission")


def test_newline_in_file_name_is_escaped(tmp_path) -> None:
    assert_one_line_error(run("evaluate", str(tmp_path / "a\nb.yaml")), "a\\nb.yaml")


def test_control_characters_never_reach_the_terminal(tmp_path) -> None:
    hostile = "x\x1b]0;pwned\x07\b\u202e\u009b"
    data = json.loads(json.dumps(BASE))
    data["id"] = hostile
    data["diagnosis"]["suspected_drug_trigger"] = hostile
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    proc = run("evaluate", str(path))
    assert proc.returncode == 0
    out = proc.stdout.decode()
    for ch in "\x1b\x07\b\u202e\u009b":
        assert ch not in out
    assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out


def test_full_disk_is_one_line_and_exit_1(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    with open("/dev/full", "wb") as full:
        proc = run("evaluate", str(path), stdout=full)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip() == "error: cannot write the output: no space left on device"


def test_closed_pipe_exits_quietly(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    proc = subprocess.Popen([CLI, "evaluate", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before the first byte
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and err == b""


# ------------------------------------------------------------------ rule folders

def rules_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    return folder


def extra_rules(folder: Path, n: int, when) -> None:
    lines = ["stage: general", "rules:"]
    for i in range(n):
        lines += [f"  - id: extra.r{i}", f"    title: r{i}", "    priority: 1",
                  f"    when: {when(i)}", "    then: {warn: {severity: info, message: x}}",
                  "    because: x", "    evidence: [kuhn-2017]"]
    (folder / "extra.yaml").write_text("\n".join(lines) + "\n")


RULE_CASES = {
    "nan threshold": (lambda f: (f / "ruleset.yaml").write_text(edit(
        (f / "ruleset.yaml").read_text(), "  moderate_clasi_activity:\n    value: 10",
        "  moderate_clasi_activity:\n    value: .nan")), "finite"),
    "inf threshold": (lambda f: (f / "ruleset.yaml").write_text(edit(
        (f / "ruleset.yaml").read_text(), "  severe_clasi_activity:\n    value: 21",
        "  severe_clasi_activity:\n    value: .inf")), "finite"),
    "nan in a condition": (lambda f: extra_rules(f, 1, lambda i: '"age >= nan"'), "finite"),
    "1e400 in a condition": (lambda f: extra_rules(f, 1, lambda i: '"age >= 1e400"'),
                             "finite"),
    "600 always rules": (lambda f: extra_rules(f, 600, lambda i: "always"), "share one"),
    "500 numeric tests": (lambda f: extra_rules(f, 500, lambda i: f'"age >= {1000 + i}"'),
                          "numeric tests"),
    "deep nesting": (lambda f: extra_rules(f, 1, lambda i: "{not: " * 3000 + "smoker"
                                           + "}" * 3000), "nesting depth"),
    "nested nots": (lambda f: extra_rules(f, 1, lambda i: '"' + "not " * 3000 + 'smoker"'),
                    "nested more than"),
    "nested groups": (lambda f: extra_rules(f, 1, lambda i: "{not: " * 40 + "smoker"
                                            + "}" * 40), "nested more than"),
    "symlink loop in rules": (lambda f: (f / "loop.yaml").symlink_to(f / "loop.yaml"),
                              "symbolic links"),
    "fifo in rules": (lambda f: os.mkfifo(f / "pipe.yaml"), "not a regular file"),
}


@pytest.mark.parametrize("name", sorted(RULE_CASES))
def test_hostile_rule_folders(tmp_path, name) -> None:
    change, words = RULE_CASES[name]
    folder = rules_copy(tmp_path)
    change(folder)
    patient = tmp_path / "p.yaml"
    patient.write_text(GOOD)
    assert_one_line_error(run("evaluate", str(patient), "--rules", str(folder)), words)


def test_rules_show_with_a_newline_is_one_line() -> None:
    assert_one_line_error(run("rules", "show", "a\nb"), "a\\nb")


@pytest.mark.deep  # rules check's deep search, in a subprocess
def test_samples_are_bounded_and_no_state_is_left(tmp_path) -> None:
    assert_one_line_error(run("rules", "check", "--samples", "9" * 23), "100000")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([CLI, "rules", "check", str(RULES), "--samples", "20",
                           "--hypothesis", "5"], cwd=tmp_path, env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / ".hypothesis").exists()


# ------------------------------------------------------------------ generated variants

HOSTILE_SCALARS = st.one_of(
    st.sampled_from([".nan", ".inf", "-.inf", "0x1f", "017", "0o17", "1:30", "1_000",
                     "yes", "No", "on", "~", "!!binary aGk=", "!!float 1", "1e400",
                     "'\x1b[31m'", "\"\\u202e\"", "''", "'   '", "[]", "{}", "2026-13-45",
                     "-1", "1e-400", "99999999999999999999"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12).map(json.dumps),
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
FIELDS = ["demographics.age", "demographics.weight_kg", "as_of", "smoker", "id",
          "activity[0].clasi_activity", "activity[0].date", "labs.egfr.value",
          "diagnosis.suspected_drug_trigger", "reproductive.pregnant"]


def _set(text: str, field: str, scalar: str) -> str:
    data = yaml.safe_load(text)
    marker = "HOSTILE_SCALAR_MARKER"
    target = data
    parts = field.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = marker
    else:
        target[last] = marker
    return yaml.safe_dump(data, sort_keys=False).replace(marker, scalar)


@settings(max_examples=examples(25), deadline=None)
@given(field=st.sampled_from(FIELDS), scalar=HOSTILE_SCALARS)
def test_generated_hostile_scalars(tmp_path_factory, field, scalar) -> None:
    """Any scalar in any field: exit 0 with a result, or exit 2 with one line."""
    path = tmp_path_factory.mktemp("h") / "p.yaml"
    path.write_text(_set(GOOD, field, scalar))
    proc = run("evaluate", str(path), "--format", "json")
    if proc.returncode == 0:
        json.loads(proc.stdout)
    else:
        assert_one_line_error(proc)


RULE_EDITS = st.sampled_from([
    ("value: 10", "value: {v}"), ("priority: 100", "priority: {v}"),
    ("clasi_activity >= moderate_clasi_activity", "clasi_activity >= {v}"),
    ("mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: {v}"),
    ("max_mg: 25", "max_mg: {v}"),
])


@settings(max_examples=examples(15), deadline=None)
@given(edit_=RULE_EDITS, value=HOSTILE_SCALARS)
def test_generated_hostile_rule_edits(tmp_path_factory, edit_, value) -> None:
    """Any scalar in a threshold, priority, condition or dose: exit 0 or one line, exit 2."""
    folder = rules_copy(tmp_path_factory.mktemp("r"))
    old, new = edit_
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, new.format(v=value), 1))
            break
    patient = folder.parent / "p.yaml"
    patient.write_text(GOOD)
    proc = run("evaluate", str(patient), "--rules", str(folder), "--format", "json")
    if proc.returncode != 0:
        assert_one_line_error(proc)


@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE") != "thorough",
                    reason="the fuzz run belongs to the thorough profile")
def test_fuzz_for_a_minute() -> None:
    """benchmarks/fuzz.py: random patient bytes and rule-folder mutations for a minute;
    any exit other than 0/2, traceback, multi-line error or run over 5 s fails."""
    proc = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "benchmarks" /
                                               "fuzz.py"), "--minutes", "1"],
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
