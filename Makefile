# Every target installs what it needs: a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all install test demo proto bench bench-round bench-sweep lint clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP) lint
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) scripts/demo.py

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

bench: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only --benchmark-columns=min,mean,ops,rounds

# A real round: coordinator and nodes as processes, mTLS on loopback. ARGS="--partners 5 ..."
bench-round: $(STAMP)
	$(PY) benchmarks/round_bench.py $(ARGS)

bench-sweep: $(STAMP)
	$(PY) benchmarks/sweep.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy kruispunt psi_node coordinator

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
