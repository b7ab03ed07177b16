"""Render stage: golden text for the examples, 80 columns, deterministic JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cledecide import evaluate_file, to_json, to_text
from cledecide.schemas import schema

from conftest import EXAMPLES, ROOT, RULES

GOLDEN = ROOT / "tests" / "golden"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.name != "expected.yaml")


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # golden files show paths relative to the repository


def _any_engine(text: str) -> str:
    """The engine's hash changes with every edit of its code; the golden files pin the
    advice, so that line is compared without it (the rule set's hash stays)."""
    import re
    return re.sub(r"engine sha256\s+[0-9a-f]{16}", "engine sha256 (this build)", text)


@pytest.mark.parametrize("name", NAMES)
def test_text_matches_golden(name: str) -> None:
    text = to_text(evaluate_file(Path("examples") / f"{name}.yaml", Path("rules")))
    expected = (GOLDEN / f"{name}.txt").read_text()
    assert _any_engine(text) == _any_engine(expected), \
        "run `python tests/update_golden.py` and review the diff"


def test_results_name_the_engine_that_gave_them() -> None:
    """Traceability: the result names the engine's source hash beside the rule set's."""
    import hashlib
    from cledecide.engine import explain
    result = json.loads(to_json(evaluate_file(EXAMPLES / "hcq-inadequate.yaml", RULES)))
    folder = Path(explain.__file__).parent
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    assert result["engine"] == {"name": "cledecide", "sha256": h.hexdigest()}
    text = to_text(evaluate_file(EXAMPLES / "hcq-inadequate.yaml", RULES))
    assert f"engine sha256 {h.hexdigest()[:16]}" in text.replace("\n", " ")


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
