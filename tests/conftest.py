"""Shared helpers: patient records built from a small baseline, run through the library."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from cledecide import evaluate_patient, load_ruleset, to_json
from cledecide.cli.main import app
from cledecide.engine.load import parse
from cledecide.engine.validate import validate_patient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RULES = ROOT / "rules"

BASE: dict[str, Any] = {
    "id": "test-patient",
    "as_of": "2026-11-20",
    "demographics": {"age": 50, "sex": "female", "weight_kg": 70},
    "reproductive": {"childbearing_potential": False, "pregnant": False,
                     "breastfeeding": False, "contraception": "none"},
    "smoker": False,
    "diagnosis": {"subtype": "DLE", "extent": "widespread", "systemic_lupus": False},
    "activity": [{"date": "2026-11-20", "clasi_activity": 18}],
    "treatments": [],
    "conditions": [],
    "symptoms": [],
    "labs": {
        "egfr": {"value": 90, "date": "2026-11-10"},
        "neutrophils": {"value": 3.5, "date": "2026-11-10"},
        "platelets": {"value": 250, "date": "2026-11-10"},
        "alt": {"value": 20, "date": "2026-11-10"},
        "g6pd": {"value": "normal", "date": "2024-01-01"},
    },
    "eye_exams": [],
}

REFRACTORY_HISTORY = [
    {"drug": "hydroxychloroquine", "dose_mg_per_day": 300, "start": "2023-01-01",
     "response": "partial"},
    {"drug": "quinacrine", "dose_mg_per_day": 100, "start": "2023-06-01",
     "stop": "2024-01-01", "stop_reason": "inefficacy", "response": "none"},
    {"drug": "methotrexate", "dose_mg_per_week": 20, "start": "2024-02-01",
     "stop": "2025-01-01", "stop_reason": "inefficacy", "response": "none"},
]


def patient(**changes: Any) -> dict[str, Any]:
    """The baseline with top-level or dotted-path changes: patient(**{'demographics.age': 30})."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        if value is DELETE:
            target.pop(parts[-1], None)
        else:
            target[parts[-1]] = value
    return data


DELETE = object()


@pytest.fixture(scope="session")
def ruleset():
    return load_ruleset(RULES)


def run(data: dict[str, Any], rules=None) -> dict[str, Any]:
    """Evaluate a patient dict; return the contract JSON as a dict."""
    rules = rules or load_ruleset(RULES)
    doc = parse(yaml.safe_dump(data, sort_keys=False).encode(), "test.yaml")
    result = evaluate_patient(validate_patient(doc), rules, doc.sha256)
    return json.loads(to_json(result))


def offered(result: dict[str, Any]) -> set[str | None]:
    """Drugs a step puts forward (a stop names the drug it stops: not offered)."""
    steps = [result["recommendation"]] + result["alternatives"]
    return {s["drug"] for s in steps if s["action"] not in ("stop", "reduce")}


def excluded(result: dict[str, Any]) -> set[str]:
    return {e["drug"] for e in result["excluded"]}


def monitoring(result: dict[str, Any]) -> set[str]:
    return {m["what"] for m in result["monitoring"]}


# Hypothesis profiles: `quick` (the default: make test, deterministic), `deep` (make
# test-deep and CI: five times the examples, deterministic) and `thorough` (by hand,
# random: HYPOTHESIS_PROFILE=thorough). `ci` is the old name of `quick`.
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

for _name in ("quick", "ci"):
    settings.register_profile(_name, max_examples=40, derandomize=True, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=200, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "quick")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A test's own number of examples (@settings(max_examples=examples(N))), scaled
    like the profiles: N in `deep` (CI), five times N in `thorough`, and a third of N
    (at least 8) in the quick loop."""
    return {"deep": n, "thorough": 5 * n}.get(PROFILE, max(8, n // 3))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """Say plainly when the rulebook's browser tests did not run, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "test_rulebook_browser" in r.nodeid]
    if skipped:
        reason = skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else ""
        terminalreporter.write_line(
            f"NOTE: {len(skipped)} browser tests of the rulebook were SKIPPED: "
            f"{str(reason).removeprefix('Skipped: ').removeprefix('browser tests skipped: ')}",
            yellow=True, bold=True)


# ------------------------------------------------ the reviewer's tools on a rules copy
_runner = CliRunner()


def cli(*args: object):
    """Run the `cledecide` CLI in process (arguments may be paths)."""
    return _runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def rules(tmp_path) -> Path:
    """A private copy of the shipped rules to edit or break."""
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    return folder


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace text in a rules file; the text must be there (a stale edit fails loudly)."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))
