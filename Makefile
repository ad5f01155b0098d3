# The two quick-start commands: `make demo` and `make test`. Both build the venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data/generated
OUT ?= out

.PHONY: demo test test-fast test-cluster lint java tools venv dist clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11+ is needed as $(PYTHON)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

java:
	@bash scripts/ensure-java.sh

# What the tests use beyond Python and Java: a browser for the report, a real database server
# and its JDBC driver for the MySQL/MariaDB source. Only this target installs them (as root,
# with apt); `make test` skips their tests with a line saying what is missing, except in CI
# (.ci/run installs them and sets HOTMART_SPARK_REQUIRE_TOOLS=1).
tools:
	@bash scripts/ensure-tool.sh chromium chromium "the report's browser test"
	@bash scripts/ensure-tool.sh /usr/sbin/mariadbd mariadb-server "the JDBC tests"
	@bash scripts/ensure-tool.sh /usr/share/java/mariadb-java-client.jar libmariadb-java "reading from MySQL/MariaDB"

demo: venv java
	PATH="$(CURDIR)/$(BIN):$$PATH" ./spark-submit.sh jobs/generate.py --output $(DATA)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./spark-submit.sh jobs/pipeline.py --input $(DATA) --output $(OUT)
	@echo "report: $(abspath $(OUT))/report/report.html"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Everything: what CI runs.
test: venv java lint
	$(BIN)/pytest

# The edit loop: all but the slow tiers (separate processes, the standalone cluster, the
# database, the browser), in about ten minutes on 2 cores.
test-fast: venv java
	$(BIN)/pytest -m "not (submit or cluster or database or browser or planted)"

# The standalone-cluster tests (a master and two workers on 127.0.0.1, one killed mid-run).
test-cluster: venv java
	$(BIN)/pytest -m cluster

# The artifact for a cluster: the wheel, an environment archive for --archives, and the
# script spark-submit runs (README, On a cluster).
dist: venv
	PYTHON=$(BIN)/python bash scripts/dist.sh dist

clean:
	rm -rf build dist $(OUT) $(DATA) .pytest_cache .ruff_cache
