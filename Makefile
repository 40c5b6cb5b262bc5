# sweepflow: `make demo` runs a sweep end to end on the embedded defaults; `make test` runs the tests.
# Both install what they need into .venv from constraints.txt (exact pins).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP_VERSION := 26.3
export HPO_HOME ?= $(CURDIR)/.hpo

.PHONY: help install system-deps demo test e2e lint bench soak screenshots lock clean

help:
	@echo "make demo    an ARC sweep run by the Airflow DAG on the embedded defaults (no server)"
	@echo "make test    run the test suite (starts its own PostgreSQL and MLflow servers)"
	@echo "make e2e     whole-product runs: the Airflow and MLflow UIs in headless Chromium, DAGs end to end"
	@echo "make bench   overhead, scaling, training, analysis, tracking and DAG parse benchmarks"
	@echo "make soak    PostgreSQL restarts, killed workers, an MLflow outage; recovery measured"
	@echo "make lint    ruff, mypy and the import layers (import-linter)"
	@echo "make screenshots  docs/images: the Airflow UI driven in headless Chromium, plots, MLflow"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,arc,tracking,airflow]'
	touch $(STAMP)

install: $(STAMP)

# The tests and benchmarks start a real PostgreSQL server; install its binaries if missing.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		echo "installing postgresql (server binaries for the tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	@# tests/docker checks the compose file with `docker-compose config` (no engine needed; no
	@# recommends, or apt brings a Docker engine along)
	@if ! command -v docker-compose >/dev/null; then \
		echo "installing docker-compose (to check docker-compose.yaml; no engine)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
	fi
	@# tests/e2e and `make screenshots` drive the Airflow UI in headless Chromium (selenium)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (the browser tests of the Airflow UI)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	fi

demo: install
	HPO_HOME=$(HPO_HOME) bash scripts/demo.sh

# worksteal: a process that runs out of tests takes queued ones from the other, so the slow
# end-to-end tests do not leave one core idle at the end. The tests' folders are in memory where
# the machine has a writable, executable /dev/shm (removed afterwards; TEST_TMP= keeps them on
# disk): the journal syncs every record to disk (tests/study with the analysis commands: 62 s
# on disk, 42 s in memory).
TEST_TMP ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && ! findmnt -no OPTIONS /dev/shm 2>/dev/null | grep -qw noexec && echo /dev/shm/sweepflow-tests)
test: install system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal --durations=15 -m "not e2e" \
		$(if $(TEST_TMP),--basetemp=$(TEST_TMP)); status=$$?; \
		$(if $(TEST_TMP),rm -rf $(TEST_TMP);) exit $$status

# The whole-product runs (marked e2e; make test leaves them out to stay under 15 minutes): the
# Airflow UI in headless Chromium (Airflow started for real, a sweep triggered from the form, a
# bad value refused), MLflow's UI (runs ranked by the score, the champion's version page), the
# sweep DAG end to end for both families (dag.test(): gate, review, report, champion and its
# approval) and the binary family's real-budget config. About 6 minutes on 2 cores; CI runs it
# after make test.
e2e: install system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -m e2e --durations=5

lint: install
	$(BIN)/ruff check hpo_core tests bench dags scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: install system-deps
	$(BIN)/python -m bench.run --out bench/results

# The reliability faults again, longer, with recovery times measured (bench/results/soak.json).
soak: install system-deps
	$(BIN)/python scripts/soak.py

# docs/images/*.png regenerated: a small ARC sweep triggered from the Airflow UI's form in headless
# Chromium (the helpers of tests/e2e), its graph, a worker's log, the report's plots and MLflow's
# comparison of its champions (a few minutes of CPU).
screenshots: install system-deps
	$(BIN)/python scripts/screenshots.py --out docs/images

# Re-resolve the pins after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/sweepflow-lock && $(PYTHON) -m venv /tmp/sweepflow-lock
	/tmp/sweepflow-lock/bin/pip install --quiet "pip==$(PIP_VERSION)"
	/tmp/sweepflow-lock/bin/pip install --quiet '.[dev,arc,tracking,airflow]'
	( echo "# Exact versions for every install that make runs (pip install -c constraints.txt)."; \
	  echo "# Regenerate after changing pyproject.toml: make lock"; \
	  /tmp/sweepflow-lock/bin/pip freeze --exclude-editable | grep -v '^sweepflow' \
	    | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/' ) > constraints.txt

clean:
	rm -rf $(VENV) .hpo .pytest_cache .mypy_cache .ruff_cache
