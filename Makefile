# Two commands set everything up on a fresh machine with Python 3.11+:
#   make demo   -- the main job: the whole story on a real label set
#   make test   -- creates the environment and runs the whole test suite (what CI runs)
#   make test-fast -- the quick loop: everything not marked `slow` (a few minutes)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# 8 virtual CPU devices so that sharding is exercised on any machine.
export XLA_FLAGS ?= --xla_force_host_platform_device_count=8

.PHONY: venv demo test test-fast bench bench-env gpu-check study docs clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/jbalance demo

# Tests are spread over $(WORKERS) pytest-xdist workers (--dist worksteal: contiguous runs of
# a file's tests, an idle worker takes the rest of another's queue), and the conftest's cache
# release whenever a worker moves to another file bounds its memory. Measured on the 2-core
# VM: 595 s for the suite against 647 s with whole files per worker (--dist loadfile).
# `make test WORKERS=0` runs in one process.
WORKERS ?= 2
PYTEST_N := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist worksteal)

# Each run starts an empty compilation cache of its own (removed afterwards): a program that
# several test files compile, in either worker, is compiled once.
test: venv
	@cache=$$(mktemp -d); \
	 JBALANCE_JAX_CACHE=$$cache $(PY) -m pytest -q $(PYTEST_N) --durations=15; rc=$$?; \
	 rm -rf $$cache; exit $$rc

# The quick loop: skips tests marked slow, and keeps XLA's compiled programs in .cache/ so a
# re-run after an edit recompiles only what changed.
test-fast: venv
	JBALANCE_JAX_CACHE=$(CURDIR)/.cache/jax-tests $(PY) -m pytest -q -m "not slow" $(PYTEST_N)

# The benchmark peers (torch, timm, ...) are heavy: they live in their own environment.
BVENV ?= .venv-bench
$(BVENV)/.installed: pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BVENV)
	$(BVENV)/bin/python -m pip install --quiet --upgrade pip
	$(BVENV)/bin/python -m pip install --quiet -e '.[bench]'
	$(BVENV)/bin/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BVENV)/bin/python -m pip install --quiet --no-deps -r benchmarks/requirements-nodeps.txt
	@touch $@

bench-env: $(BVENV)/.installed

# Runs with whatever peers are importable; a missing peer is reported as skipped.
bench:
	@if [ -x $(BVENV)/bin/python ]; then $(BVENV)/bin/python -m benchmarks $(ARGS); \
	 else $(MAKE) venv && $(PY) -m benchmarks $(ARGS); fi

# On a machine with a GPU: the device-independent tests and the benchmarks, results recorded.
gpu-check: venv
	bash benchmarks/gpu_check.sh

study: venv
	$(PY) -m examples.long_tail.main

# The API reference and guides as HTML in docs/_build/html (Sphinx; see docs/conf.py). Every
# warning fails it, nitpicky cross-references included; -E rebuilds from scratch each time.
docs: venv
	$(PY) -m sphinx -E -W --keep-going -n -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(BVENV) .pytest_cache .cache build *.egg-info
