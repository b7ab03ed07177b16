# Quick start: `make demo` and `make test` on a fresh machine with Python 3.11+ and make.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] < (3,13)))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install bench check-examples clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is needed (durable-rules has no 3.13 build)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	@# editable: a checkout's own rules/ and code are what the commands use
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --editable ".[test]"

demo: install
	$(BIN)/cledecide evaluate examples/refractory-neuropathy.yaml

test: install
	$(BIN)/python -m pytest

check-examples: install
	$(BIN)/python ../shared/tools/check-examples $(BIN)/cledecide ../shared/examples

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
