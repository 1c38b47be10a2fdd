# Every target installs what it needs: a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all install test test-unit test-integration test-process test-render demo proto bench \
	bench-round bench-sweep lint clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	touch $(STAMP)

install: $(STAMP)

# The whole suite: every tier of tests/ and the benchmarks run once as tests.
test: $(STAMP) lint
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest

# One tier at a time: unit (no sockets), integration (in-process servers, real mTLS),
# process (real subprocesses and faults), render (headless Chromium).
test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

test-process: $(STAMP)
	$(PY) -m pytest tests/process

test-render: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest tests/render

demo: $(STAMP)
	$(PY) -m scripts.demo

proto: $(STAMP)
	$(PY) -m scripts.gen_proto

bench: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only --benchmark-columns=min,mean,ops,rounds

# A real round: coordinator and nodes as processes, mTLS on loopback. ARGS="--partners 5 ..."
bench-round: $(STAMP)
	$(PY) -m benchmarks.round_bench $(ARGS)

bench-sweep: $(STAMP)
	$(PY) -m benchmarks.sweep $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy kruispunt psi_node coordinator

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
