"""Reviewer tooling: rules check (static analysis and a search of the patient space),
scenario tests, diff and graph. Not part of the evaluation pipeline in engine/."""
