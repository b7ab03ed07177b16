# Quick start: `make demo` and `make test` on a fresh machine with Python 3.11+ and make.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] < (3,13)))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-deep typecheck install bench check-examples clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is needed (durable-rules has no 3.13 build)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	@# editable: a checkout's own rules/ and code are what the commands use
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --editable ".[test]"

demo: install
	$(BIN)/cledecide evaluate examples/refractory-neuropathy.yaml

# The quick loop (about 2 minutes on 2 cores): every test but the deep analysis, with the
# quick hypothesis profile, on every core (pytest-xdist).
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto

# CI runs it after `make test`: the deep analysis tests (rules check --deep) and every
# property test again with five times the examples (hypothesis profile `deep`).
test-deep: install
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -n auto -m "deep or hypothesis"

# mypy on engine/ (pyproject.toml): fails when the errors outnumber the baseline of
# CHANGELOG.md ("Habits"), which only ever goes down.
MYPY_BASELINE := 0
typecheck: install
	@$(BIN)/mypy > .mypy.out 2>&1; tail -1 .mypy.out; \
	n=$$(grep -c ': error:' .mypy.out); rm -f .mypy.out; \
	if [ "$$n" -gt $(MYPY_BASELINE) ]; then \
	  echo "mypy: $$n errors on engine/, more than the baseline of $(MYPY_BASELINE)"; exit 1; fi

check-examples: install
	$(BIN)/python ../shared/tools/check-examples $(BIN)/cledecide ../shared/examples

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
