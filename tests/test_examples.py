"""The shared clinical examples, held against what a clinician expects (expected.yaml),
through the installed command line exactly as users run it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES

SHARED = Path(__file__).resolve().parents[2] / "shared" / "examples"
FOLDER = SHARED if (SHARED / "expected.yaml").exists() else EXAMPLES
CASES = yaml.safe_load((FOLDER / "expected.yaml").read_text())["cases"]
CLI = shutil.which("cledecide", path=str(Path(sys.executable).parent)) or "cledecide"


def as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_agrees_with_clinician(name: str) -> None:
    expected = CASES[name]
    proc = subprocess.run([CLI, "evaluate", str(FOLDER / name), "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rec = result["recommendation"]
    if "action" in expected:
        assert rec["action"] in as_list(expected["action"])
    if "drug" in expected:
        assert rec["drug"] in as_list(expected["drug"])
    excluded = {e["drug"] for e in result["excluded"]}
    assert set(expected.get("excluded_includes", [])) <= excluded
    offered = {rec["drug"]} | {a["drug"] for a in result["alternatives"]}
    assert not set(expected.get("never", [])) & offered
    watched = {m["what"] for m in result["monitoring"]}
    assert set(expected.get("monitoring_includes", [])) <= watched
    severities = {w["severity"] for w in result["warnings"]}
    assert set(expected.get("warning_severities_include", [])) <= severities
    missing = {m["field"] for m in result["missing_data"]}
    assert set(expected.get("missing_data_includes", [])) <= missing


def test_bundled_examples_match_shared_copy() -> None:
    """The repository ships the shared examples; they must not drift."""
    if not SHARED.exists():
        pytest.skip("no shared/ folder beside this checkout")
    for path in SHARED.glob("*.yaml"):
        assert (EXAMPLES / path.name).read_text() == path.read_text(), path.name


def test_contract_keeps_the_shared_text_and_only_adds() -> None:
    """docs/contract.md is the contract's home: version 1 stays word for word, and the
    compatible additions follow it."""
    shared = SHARED.parent / "contract.md"
    if not shared.exists():
        pytest.skip("no shared/ folder beside this checkout")
    ours = (Path(__file__).resolve().parents[1] / "docs" / "contract.md").read_text()
    assert ours.startswith(shared.read_text())
    assert "## 4. Compatible additions" in ours
