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
    readme = ROOT / "README.md"
    start, end = "<!-- example:start -->", "<!-- example:end -->"
    body = readme.read_text()
    if start in body and end in body:
        example = (ROOT / "tests" / "golden" / "hcq-inadequate.txt").read_text()
        block = f"{start}\n```text\n$ cledecide evaluate examples/hcq-inadequate.yaml\n" \
                f"{example}```\n{end}"
        head, rest = body.split(start, 1)
        readme.write_text(head + block + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
