"""Many patients in one run (issue 12, part 1): folders, globs and JSON Lines in; JSON
Lines or CSV out in input order; a bad record is one error line and the run goes on;
--jobs gives the same output as one process; the library entry point evaluates a
partition."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from cledecide import cohort

from conftest import BASE, EXAMPLES

CLI = str(Path(sys.executable).with_name("cledecide"))
PATIENTS = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "expected.yaml")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, timeout=120)


def folder_with_a_bad_record(tmp_path: Path) -> Path:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in PATIENTS:
        shutil.copy(p, folder / p.name)
    (folder / "zz-bad.yaml").write_text("id: broken\nas_of: 2026-11-20\n")
    return folder


def test_folder_to_jsonl_in_order_with_one_error_line(tmp_path) -> None:
    proc = run("evaluate", str(folder_with_a_bad_record(tmp_path)))
    assert proc.returncode == 2  # one record failed
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [Path(r["source"]).name for r in rows] == [p.name for p in PATIENTS] + ["zz-bad.yaml"]
    assert all(r["format"] == "cledecide/result@1" for r in rows[:-1])
    assert rows[-1]["error"].endswith("demographics: required field is missing") or \
        "required field is missing" in rows[-1]["error"]
    err = proc.stderr.decode()
    assert "error: " in err and "zz-bad.yaml" in err
    assert f"{len(PATIENTS) + 1} patients: {len(PATIENTS)} evaluated, 1 failed" in err


def test_jsonl_input_names_the_line_of_a_bad_record(tmp_path) -> None:
    good = json.dumps(BASE)
    path = tmp_path / "clinic.jsonl"
    path.write_text(good + "\n\n" + '{"id": "x"}\n' + good.replace("test-patient", "p2") + "\n")
    proc = run("evaluate", str(path), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode())))
    assert [r["source"] for r in rows] == [f"{path}:1", f"{path}:3", f"{path}:4"]
    assert rows[0]["action"] and rows[2]["patient_id"] == "p2"
    assert rows[1]["error"].startswith(f"{path}:3")
    assert proc.returncode == 2


def test_jobs_give_the_same_output_as_one_process(tmp_path) -> None:
    path = tmp_path / "many.jsonl"
    lines = []
    for i in range(40):
        data = yaml.safe_load(PATIENTS[i % len(PATIENTS)].read_text())
        data["id"] = f"p{i}"
        lines.append(json.dumps(data, default=str))
    path.write_text("\n".join(lines) + "\n")
    one = run("evaluate", str(path), "--jobs", "1")
    two = run("evaluate", str(path), "--jobs", "2")
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout
    assert len(one.stdout.decode().splitlines()) == 40


def test_one_patient_keeps_the_contract_output() -> None:
    proc = run("evaluate", str(PATIENTS[0]), "--format", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["format"] == "cledecide/result@1"
    assert proc.stderr == b""


def test_library_evaluates_a_partition() -> None:
    items = [cohort.Record(str(p), p.read_bytes()) for p in PATIENTS[:3]]
    items.append(cohort.Record("bad", b"id: [\n"))
    out = list(cohort.evaluate_records(items))
    assert [o.source for o in out] == [str(p) for p in PATIENTS[:3]] + ["bad"]
    assert all(o.result for o in out[:3]) and out[3].error.startswith("bad")


def test_summary_counts_steps_and_critical_warnings() -> None:
    summary = cohort.Summary()
    for o in cohort.evaluate_records(cohort.records([str(EXAMPLES)])):
        summary.add(o)
    text = summary.text()
    assert "evaluated" in text and "action" in text
    assert summary.total == len(PATIENTS) + 1 and summary.failed == 1  # expected.yaml


def test_rules_diff_over_a_cohort(tmp_path) -> None:
    """A threshold change (moderate CLASI 10 -> 15) over a small clinic: the table counts
    old -> new steps with up to three example patients per cell."""
    from conftest import RULES
    new = tmp_path / "new"
    shutil.copytree(RULES, new)
    text = (new / "ruleset.yaml").read_text()
    (new / "ruleset.yaml").write_text(text.replace(
        "  moderate_clasi_activity:\n    value: 10", "  moderate_clasi_activity:\n    value: 15"))
    clinic = tmp_path / "clinic.jsonl"
    rows = []
    for i, clasi in enumerate([12, 12, 12, 12, 30]):
        data = json.loads(json.dumps(BASE))
        data["id"] = f"p{i}"
        data["activity"] = [{"date": "2026-11-20", "clasi_activity": clasi}]
        data["treatments"] = [{"drug": "hydroxychloroquine", "dose_mg_per_day": 300,
                               "start": "2026-01-01", "response": "partial"}]
        rows.append(json.dumps(data))
    clinic.write_text("\n".join(rows) + "\n")
    proc = run("rules", "diff", str(RULES), str(new), "--patients", str(clinic))
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert "cohort: 4 of 5 patients get different advice (step 4," in out
    line = next(x for x in out.splitlines() if x.strip().startswith("add quinacrine"))
    assert line.split()[-4] == "4"  # the count column
    assert line.count(str(clinic)) == 3  # three examples, not four
    # ... and below it, every patient whose advice changes, old -> new
    listing = out[out.index("every patient whose advice changes"):].splitlines()
    assert [x for x in listing if x.startswith("  ")
            and not x.startswith("    ")] == [f"  {clinic}:{n}" for n in (1, 2, 3, 4)]


def test_lines_rendered_in_the_worker_are_the_lines_of_the_full_results(tmp_path) -> None:
    """With a view, each worker renders the output line and sends back only what the
    summary counts: the lines and the summary are those of the full results."""
    folder = folder_with_a_bad_record(tmp_path)
    full = list(cohort.evaluate_stream(cohort.records([folder]), jobs=2))
    for view, render in cohort.VIEWS.items():
        slim = list(cohort.evaluate_stream(cohort.records([folder]), jobs=2, view=view,
                                           keep_result=False))
        assert [o.line for o in slim] == [render(o) for o in full]
        a, b = cohort.Summary(), cohort.Summary()
        for o in full:
            a.add(o)
        for o in slim:
            b.add(o)
        assert a.text() == b.text() and a.failed == 1
    kept = list(cohort.evaluate_stream(cohort.records([folder]), view="csv"))
    assert [o.result for o in kept] == [o.result for o in full]  # keep_result: whole
