# streaming_agents: every target a newcomer or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export LITELLM_LOCAL_MODEL_COST_MAP := True
export JAVA_HOME ?= $(shell dirname $$(dirname $$(readlink -f $$(which java))))
export SA_JARS_DIR := $(CURDIR)/.jars
MVN := mvn -q -B -C
LINT_PATHS := streaming_agents tests $(wildcard examples jobs scripts)

.DEFAULT_GOAL := help
.PHONY: help install jars jars-lock wheel test test-fast lint bench demo kafka-up kafka-down cluster-up cluster-down fake-llm chaos clean browser

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install the package with dev extras (idempotent; no network once done)

.jars/.fetched: jvm/flink/pom.xml jvm/kafka/pom.xml
	rm -rf .jars/flink .jars/kafka
	$(MVN) -f jvm/flink/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.jars/flink
	$(MVN) -f jvm/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/kafka
	touch $@

jars: .jars/.fetched ## Fetch the Flink Kafka connector and the Kafka broker from Maven Central (checksums strict)

jars-lock: jars ## Re-pin the jars of jvm/*/pom.xml (coordinates + SHA-256) in streaming_agents/_jars/*.lock.json
	$(PY) -m scripts.lock_jars

wheel: install jars ## Build the wheel into dist/ (ships the Kafka connector jar and jobs/; see setup.py)
	$(PY) -m pip wheel -q --no-deps -w dist .
	@ls -l dist/*.whl

test: install jars browser ## Run the whole test suite (starts Kafka, the fake LLM and a Flink cluster, stops them after)
	$(PY) -m pytest -q --durations=40 tests

browser: ## Install headless Chromium (Debian's chromium package via apt) for the HTML report test
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }
	@chromium --version

test-fast: install jars browser ## Run the tests that need neither the standalone cluster nor long runs
	$(PY) -m pytest -q tests -m "not cluster"

lint: install ## ruff + mypy --strict
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

bench: install jars ## Benchmarks: prints measured ratios side by side, journal backends in (g) (writes docs/benchmarks.md)
	$(PY) -m scripts.bench

chaos: install jars ## Crash the agent job on two TaskManagers with their own filesystems, Kafka journal (TM/JM kill -9, broker restart); prints the exactly-once report (SECURE=1: over SASL_SSL, the job as its own principal)
	$(PY) -m streaming_agents.chaos $(if $(SECURE),--secure)

demo: install jars ## Run the demo job against a local broker and the fake LLM
	$(PY) -m streaming_agents.cli.main demo

kafka-up: install jars ## Start a single-node KRaft broker on localhost (SECURE=1: SASL_SSL, SCRAM users, ACLs; prints bootstrap and the admin's client-security file)
	$(PY) -m streaming_agents.testing.kafka up $(if $(SECURE),--secure)

kafka-down: install ## Stop the broker started by kafka-up (SECURE=1: the secured one)
	$(PY) -m streaming_agents.testing.kafka down $(if $(SECURE),--secure)

cluster-up: install jars ## Start a standalone Flink cluster (JobManager + TaskManager) from flink-conf/
	$(PY) -m streaming_agents.testing.cluster up

cluster-down: install ## Stop the standalone Flink cluster
	$(PY) -m streaming_agents.testing.cluster down

fake-llm: install ## Run the fake OpenAI-compatible LLM server in the foreground (port 8399)
	$(PY) -m streaming_agents.testing.fake_llm --port 8399

clean: ## Remove runtime folders (.run); keeps .venv and .jars
	rm -rf .run
