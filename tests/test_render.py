"""Render stage: golden text for the examples, 80 columns, deterministic JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cledecide import evaluate_file, to_json, to_text
from cledecide.engine.schema import schema

from conftest import EXAMPLES, ROOT, RULES

GOLDEN = ROOT / "tests" / "golden"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.name != "expected.yaml")


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # golden files show paths relative to the repository


@pytest.mark.parametrize("name", NAMES)
def test_text_matches_golden(name: str) -> None:
    text = to_text(evaluate_file(Path("examples") / f"{name}.yaml", Path("rules")))
    expected = (GOLDEN / f"{name}.txt").read_text()
    assert text == expected, "run `python tests/update_golden.py` and review the diff"


@pytest.mark.parametrize("name", NAMES)
def test_text_fits_80_columns_and_has_one_disclaimer(name: str) -> None:
    text = to_text(evaluate_file(EXAMPLES / f"{name}.yaml", RULES))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.count("Decision support for a clinician; not a prescription.") == 1
    for heading in ("Why", "Not recommended", "Alternatives", "Monitoring", "Warnings",
                    "Evidence"):
        assert f"\n{heading}\n" in text


@pytest.mark.parametrize("name", NAMES)
def test_json_is_byte_identical_and_valid(name: str) -> None:
    import jsonschema
    first = to_json(evaluate_file(EXAMPLES / f"{name}.yaml", RULES))
    second = to_json(evaluate_file(EXAMPLES / f"{name}.yaml", RULES))
    assert first == second
    data = json.loads(first)
    jsonschema.Draft202012Validator(schema("result")).validate(data)
    assert list(data)[:13] == ["format", "patient_id", "as_of", "ruleset", "input_sha256",
                               "recommendation", "alternatives", "excluded", "monitoring",
                               "warnings", "missing_data", "trace", "disclaimer"]
    assert len(data["input_sha256"]) == 64 and len(data["ruleset"]["sha256"]) == 64


def test_committed_schemas_are_current() -> None:
    """schemas/*.json are what the models generate (run tests/update_golden.py)."""
    for name in ("patient", "result", "rules", "ruleset", "drugs", "evidence"):
        committed = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
        assert committed == schema(name), name
