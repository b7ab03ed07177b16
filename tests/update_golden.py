"""Regenerate the golden text outputs: `python tests/update_golden.py` (review the diff)."""
from __future__ import annotations

from pathlib import Path

from cledecide import evaluate_file, to_text

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        if path.name == "expected.yaml":
            continue
        text = to_text(evaluate_file(path.relative_to(ROOT), ROOT / "rules"))
        (ROOT / "tests" / "golden" / (path.stem + ".txt")).write_text(text)


if __name__ == "__main__":
    main()
