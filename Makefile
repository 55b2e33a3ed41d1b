# CRM Analytics Handbook — the two commands a user needs are `make report` and `make test`;
# both set up the project virtual environment (.venv) first. `make help` lists all targets.

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

PARAMS  ?= params/default.yaml
OUT     ?=
ARGS    ?=
DATASET ?= synthetic
CHAPTERS ?=
PYTEST_ARGS ?=
# Benchmark (bench/): sizes in customers, extra options of `python -m bench` (e.g.
# BENCH_ARGS='--data-root /work/bench_data --record'); the peers live in their own venv.
SIZES   ?= 10k,100k,1m
BENCH_ARGS ?=
PEER_VENV := bench/.venv-peers
PEER_STAMP := $(PEER_VENV)/.installed

# Notebooks run in kernels: let this environment's `python3` kernelspec win over user-wide ones,
# and keep the debugger's frozen-modules notice off stderr.
export JUPYTER_PREFER_ENV_PATH := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help venv report test notebooks validate lock bench bench-peers bench-peers-venv

help:
	@echo "make report [PARAMS=params/<name>.yaml] [OUT=<folder>] [ARGS='--chapters 02 -p seed=7']"
	@echo "                      run the chapters into reports/<date>/ (or OUT)"
	@echo "make test [PYTEST_ARGS=...]   run the test suite (unit, runner, nbval)"
	@echo "make notebooks [CHAPTERS='02_lifecycle ...']"
	@echo "                      rebuild notebooks from notebooks/src and execute them in place"
	@echo "make validate DATASET=<name|path>   print a dataset's data-quality report"
	@echo "make venv             create .venv from requirements.lock (done by the others)"
	@echo "make lock             re-freeze requirements.lock and environment.yml from .venv"
	@echo "make bench [SIZES=10k,100k,1m] [BENCH_ARGS='--data-root DIR --record']"
	@echo "                      benchmark every chapter per size + default run + peers"
	@echo "make bench-peers [BENCH_ARGS='--data 1m=DIR --peer-lines 1000000']"
	@echo "                      only the peer comparison (lifetimes, mlxtend in $(PEER_VENV))"

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || { $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (try: make PYTHON=python3.11)")' && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --disable-pip-version-check --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $(STAMP)

report: $(STAMP)
	$(PY) -m helpers.run --params $(PARAMS) $(if $(OUT),--out $(OUT)) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) tools/build_notebooks.py $(CHAPTERS)
	$(PY) tools/execute_notebooks.py $(CHAPTERS)

validate: $(STAMP)
	$(PY) -m helpers.data validate $(DATASET)

lock: $(STAMP)
	{ grep '^#' requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -v '^#'; } \
	  > requirements.lock.tmp && mv requirements.lock.tmp requirements.lock
	$(PY) tools/write_environment.py
	touch $(STAMP)

# The peers (lifetimes, mlxtend) are benchmark-only: a separate venv from a pinned list, never
# the project .venv or requirements.lock.
bench-peers-venv: $(PEER_STAMP)

$(PEER_STAMP): bench/requirements-peers.txt
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --disable-pip-version-check -r bench/requirements-peers.txt
	touch $(PEER_STAMP)

bench: $(STAMP) $(PEER_STAMP)
	$(PY) -m bench --sizes $(SIZES) $(BENCH_ARGS)

bench-peers: $(STAMP) $(PEER_STAMP)
	$(PY) -m bench --peers-only $(BENCH_ARGS)
