"""Regenerate everything that is generated from the code and rules, for review in the
diff: the golden text outputs, the README's example, the ladder of docs/ladder.md, and
schemas/.

    .venv/bin/python tests/update_golden.py
"""
from __future__ import annotations

from pathlib import Path

import json
import os

from cledecide import evaluate_file, to_text
from cledecide.reviewer.review import graph
from cledecide.schemas import SCHEMAS, schema

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    os.chdir(ROOT)  # outputs name the rules folder relative to the working directory
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        if path.name == "expected.yaml":
            continue
        text = to_text(evaluate_file(path.relative_to(ROOT), Path("rules")))
        (ROOT / "tests" / "golden" / (path.stem + ".txt")).write_text(text)
    example = (ROOT / "tests" / "golden" / "hcq-inadequate.txt").read_text()
    embed("example", "```text\n$ cledecide evaluate examples/hcq-inadequate.yaml\n"
                     f"{example}```")
    embed("graph", f"```mermaid\n{graph(ROOT / 'rules')}```", ROOT / "docs" / "ladder.md")
    for name in SCHEMAS:
        (ROOT / "schemas" / f"{name}.schema.json").write_text(
            json.dumps(schema(name), indent=2, sort_keys=True) + "\n")


def embed(marker: str, block: str, readme: Path = ROOT / "README.md") -> None:
    """Replace a document's text between <!-- marker:start --> and <!-- marker:end -->."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    body = readme.read_text()
    head, rest = body.split(start, 1)
    readme.write_text(head + f"{start}\n{block}\n{end}" + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
