# `make demo` and `make test` do all their own set-up on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
PYTEST_ARGS ?=
UI_PORT ?= 3000

.PHONY: install demo ui test docs spark-demo-check bench bench-bound bench-spark bench-anomalies bench-backfill validate security crash-sweep stop-s3 clean

$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements-dev.lock -e '.[dev,spark]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml "$@"

demo: install
	$(BIN)/billing demo

ui: install
	$(BIN)/billing ui --port $(UI_PORT)

# three workers on two cores, whole files each: most tests wait on S3, Dagster, Spark or a browser
# rather than a core (two workers: 935 s on this VM, three: 879 s, CPU 136 %)
test: install
	$(BIN)/python -m pytest -n 3 --dist loadfile $(PYTEST_ARGS)

# docs/tables.md from the pandera models, the assets and docs/table-notes.md (a test fails when stale)
docs: install
	$(BIN)/python -m billing_assets.table_reference docs/table-notes.md > docs/tables.md.tmp
	mv docs/tables.md.tmp docs/tables.md

validate: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

# no high-severity bandit finding; no secret in a tracked file that .secrets.baseline does not
# list as audited (a finding there is a reviewed false positive)
security: install
	$(BIN)/bandit -q -r billing_assets billing_assets_tests --severity-level high
	git ls-files -z | xargs -0 $(BIN)/detect-secrets-hook --baseline .secrets.baseline

# billing run killed after each of its S3 writes in turn, run again, compared with a run never killed
crash-sweep: install
	$(BIN)/python -m billing_assets_tests.crash_points

# the demo month through billing run on each engine, every table, document and check compared
spark-demo-check: install
	$(BIN)/python -m billing_assets_tests.spark_demo_month

bench: install
	$(BIN)/python -m benchmarks.job $(BENCH_ARGS)

# what make bench's 0.5 target leaves room for: the exact read and Dagster doing nothing
bench-bound: install
	$(BIN)/python -m benchmarks.bound $(BENCH_ARGS)

# one day through billing run on the local engine and on Spark in local[1] and local[2]
bench-spark: install
	$(BIN)/python -m benchmarks.spark $(BENCH_ARGS)

# the anomaly detector on seeded usage with injected faults: tuned on seeds 0-9, reported on 100-109
bench-anomalies: install
	$(BIN)/python -m benchmarks.anomalies $(BENCH_ARGS)

bench-backfill: install
	$(BIN)/python -m benchmarks.backfill

stop-s3: install
	$(BIN)/billing stop-s3

clean: stop-s3
	rm -rf $(VENV) .dagster_home .demo .pytest_cache .hypothesis *.egg-info
