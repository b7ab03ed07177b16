"""Dose bases (issue 24, "Ideal body weight cannot be expressed"): a weight-based dose
limit is per kg of real, ideal (Devine) or lean (Janmahasatian) body weight, each a
named formula checked here against hand-worked values; a basis whose data are missing
names no dose and asks for them (never a bigger dose)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cledecide.engine.decide import weight_dose
from cledecide.engine.dosing import (basis_weight, ideal_body_weight_devine,
                                     lean_body_weight_janmahasatian)
from cledecide.engine.load import parse
from cledecide.engine.pipeline import evaluate_patient
from cledecide.engine.render import to_json
from cledecide.engine.ruleset import check_folder
from cledecide.engine.validate import validate_patient

from conftest import RULES, patient


def test_devine_ideal_body_weight() -> None:
    # 70 inches (177.8 cm): 50 + 2.3 x 10 = 73.0 kg (men); 66 inches (167.64 cm):
    # 45.5 + 2.3 x 6 = 59.3 kg (women); exactly 5 feet: the base.
    assert ideal_body_weight_devine(177.8, "male") == pytest.approx(73.0)
    assert ideal_body_weight_devine(167.64, "female") == pytest.approx(59.3)
    assert ideal_body_weight_devine(152.4, "male") == pytest.approx(50.0)
    assert ideal_body_weight_devine(152.4, "female") == pytest.approx(45.5)
    # Below 5 feet the formula goes on down (a lower weight), never below 0.
    assert ideal_body_weight_devine(147.32, "female") == pytest.approx(45.5 - 4.6)
    assert ideal_body_weight_devine(30, "female") == 0


def test_janmahasatian_lean_body_weight() -> None:
    # A man of 110 kg and 178 cm: BMI 34.72; 9270 x 110 / (6680 + 216 x 34.72) = 71.9 kg.
    assert lean_body_weight_janmahasatian(110, 178, "male") == pytest.approx(71.92, abs=0.01)
    # A woman of 60 kg and 165 cm: BMI 22.04; 9270 x 60 / (8780 + 244 x 22.04) = 39.3 kg.
    assert lean_body_weight_janmahasatian(60, 165, "female") == pytest.approx(39.29, abs=0.01)


def test_a_basis_is_never_above_real_body_weight_and_needs_its_data() -> None:
    assert basis_weight("real_body_weight", 70, None, None) == 70
    # An underweight woman of 40 kg and 170 cm: Devine gives 61.4 kg; real weight caps it.
    assert basis_weight("ideal_body_weight", 40, 170, "female") == 40
    assert basis_weight("ideal_body_weight", 90, 177.8, "male") == pytest.approx(73.0)
    assert basis_weight("lean_body_weight", 110, 178, "male") == pytest.approx(71.92, abs=0.01)
    for basis in ("ideal_body_weight", "lean_body_weight"):
        assert basis_weight(basis, 70, None, "female") is None   # no height
        assert basis_weight(basis, None, 170, "female") is None  # no weight
        assert basis_weight(basis, 70, 170, None) is None        # no sex


def _ideal_rules(tmp_path: Path) -> Path:
    """A copy of the rules whose hydroxychloroquine limit is per kg ideal body weight
    (a test only: the shipped basis is real body weight)."""
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    path = folder / "drugs.yaml"
    text = path.read_text()
    assert text.count("basis: real_body_weight") == 2
    path.write_text(text.replace("basis: real_body_weight", "basis: ideal_body_weight", 1))
    return folder


def _result(folder: Path, **changes) -> dict:
    ruleset, findings = check_folder(folder)
    assert ruleset is not None, [str(f) for f in findings if f.severity == "error"]
    data = patient(**changes)
    p = validate_patient(parse(yaml.safe_dump(data).encode(), "p.yaml"), ruleset.drugs)
    return json.loads(to_json(evaluate_patient(p, ruleset)))


def test_an_ideal_body_weight_limit_doses_by_height_and_sex(tmp_path: Path) -> None:
    folder = _ideal_rules(tmp_path)
    ruleset, _ = check_folder(folder)
    # A woman of 90 kg and 160 cm: Devine 45.5 + 2.3 x (62.99 - 60) = 52.4 kg;
    # 5 mg/kg x 52.4 = 262 mg/day: 200 mg daily (one 200 mg tablet), not real weight's 400.
    text, cap = weight_dose(ruleset, "hydroxychloroquine", 90, 160, "female")
    assert cap == 262 and text.startswith("200 mg once daily")
    assert "5 mg/kg ideal body weight (Devine) x 52.4 kg = 262 mg/day" in text
    real, real_cap = weight_dose(ruleset, "hydroxychloroquine", 90)  # height missing
    assert real_cap is None and "record the height and weight" in real
    result = _result(folder, **{"demographics.weight_kg": 90, "demographics.height_cm": 160})
    rec = result["recommendation"]
    assert rec["drug"] == "hydroxychloroquine" and "ideal body weight" in rec["dose"]
    assert "demographics.height_cm" not in {m["field"] for m in result["missing_data"]}


def test_a_missing_height_asks_for_it_and_names_no_dose(tmp_path: Path) -> None:
    result = _result(_ideal_rules(tmp_path), **{"demographics.weight_kg": 90})
    rec = result["recommendation"]
    assert rec["drug"] == "hydroxychloroquine"
    assert "mg once daily" not in rec["dose"] and "record the height" in rec["dose"]
    assert "demographics.height_cm" in {m["field"] for m in result["missing_data"]}


def test_the_shipped_hydroxychloroquine_basis_is_real_body_weight() -> None:
    result = _result(RULES, **{"demographics.weight_kg": 90, "demographics.height_cm": 160})
    assert "5 mg/kg real body weight x 90 kg" in result["recommendation"]["dose"]
    assert "demographics.height_cm" not in {m["field"] for m in result["missing_data"]}
