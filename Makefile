# Every target installs what it needs: a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The Rust core (native/), built into the editable install as kruispunt.native.
NATIVE_SRC   := native/Cargo.toml native/Cargo.lock .cargo/config.toml $(wildcard native/src/*.rs)
NATIVE_STAMP := $(VENV)/.native
AVX2_LIB     := native/target/avx2/release/libnative.so

.PHONY: all install test test-unit test-integration test-process test-render demo proto bench \
	bench-round bench-sweep lint wheel clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the dependency list changes. The editable install builds the
# extension too (maturin, pinned in pyproject.toml; cargo with the committed Cargo.lock).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	touch $(STAMP)

# Rebuild the extension whenever the Rust sources change (maturin from the dev group).
$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(NATIVE_STAMP)

install: $(NATIVE_STAMP)

# The whole suite: every tier of tests/ and the benchmarks run once as tests.
test: $(NATIVE_STAMP) lint
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest

# One tier at a time: unit (no sockets), integration (in-process servers, real mTLS),
# process (real subprocesses and faults), render (headless Chromium).
test-unit: $(NATIVE_STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(NATIVE_STAMP)
	$(PY) -m pytest tests/integration

test-process: $(NATIVE_STAMP)
	$(PY) -m pytest tests/process

test-render: $(NATIVE_STAMP)
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest tests/render

demo: $(NATIVE_STAMP)
	$(PY) -m scripts.demo

proto: $(NATIVE_STAMP)
	$(PY) -m scripts.gen_proto

# Micro-benchmarks, then the native core against rbcl in one run (per core and all cores),
# with a second build of the core that has dalek's AVX2 backend forced beside it.
bench: $(NATIVE_STAMP)
	$(PY) -m benchmarks.native_variants
	KRUISPUNT_NATIVE_AVX2=$(AVX2_LIB) $(PY) -m pytest benchmarks --benchmark-enable --benchmark-only \
		--benchmark-columns=min,mean,ops,rounds
	KRUISPUNT_NATIVE_AVX2=$(AVX2_LIB) $(PY) -m benchmarks.native_compare

# An installable wheel for partner IT teams (dist/): the Python packages and the Rust
# core, which picks AVX-512 IFMA, AVX2 or serial code on the CPU it runs on.
wheel: $(NATIVE_STAMP)
	$(VENV)/bin/maturin build --release --locked --out dist

# A real round: coordinator and nodes as processes, mTLS on loopback. ARGS="--partners 5 ..."
bench-round: $(NATIVE_STAMP)
	$(PY) -m benchmarks.round_bench $(ARGS)

bench-sweep: $(NATIVE_STAMP)
	$(PY) -m benchmarks.sweep $(ARGS)

lint: $(NATIVE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy kruispunt psi_node coordinator

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks dist native/target kruispunt/native.*.so
