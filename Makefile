# Switchboard — every task a person wants, one target each. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(abspath $(VENV)/bin)
STAMP  := $(VENV)/.installed

PROTO_ROOT  := protos
PROTO_FILES := $(shell find $(PROTO_ROOT) -name "*.proto" 2>/dev/null | LC_ALL=C sort)
GEN_PY      := generated/python

# Pinned tools under .tools/ (grpcurl, ghz, Go/TS/Java stub plugins, etcd) and `make stubs`.
include mk/tools.mk
# make bench / bench-quick (bench/), make soak (tests/reliability).
include mk/bench.mk
include mk/soak.mk

.PHONY: help
help: ## List the targets
	@if [ -t 1 ]; then on=$$'\033[36m'; off=$$'\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} \
	  /^[a-zA-Z_-]+:.*## / {printf "  %s%-28s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

# The venv is rebuilt only when pyproject.toml changes: the stamp records the last install.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@# setuptools warns on every editable install that a folder named like a package may
	@# shadow it; ours are the packages themselves (generated/python is mapped on purpose).
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtualenv and install what is missing

# --- contracts --------------------------------------------------------------

.PHONY: protos
protos: $(STAMP) ## Generate Python messages, gRPC stubs and .pyi into generated/python
	PATH="$(BIN):$$PATH" tools/gen_python.sh $(GEN_PY) $(PROTO_ROOT)

.PHONY: check-generated
check-generated: $(STAMP) ## Fail if generated/python differs from a fresh generation
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH="$(BIN):$$PATH" tools/gen_python.sh "$$tmp" $(PROTO_ROOT); \
	if ! diff -r -x __pycache__ "$$tmp" $(GEN_PY) >/dev/null; then \
	  echo "generated/python is stale: run 'make protos' and commit the result" >&2; \
	  diff -r -x __pycache__ "$$tmp" $(GEN_PY) | head -40 >&2; exit 1; \
	fi; echo "generated/python is fresh"

.PHONY: buf-lint
buf-lint: $(STAMP) ## Lint the contracts with buf (STANDARD + COMMENTS)
	cd $(PROTO_ROOT)/.. && $(BIN)/buf lint

.PHONY: breaking
breaking: $(STAMP) ## Compare the contracts with main's (buf breaking, FILE rules)
	$(BIN)/buf breaking --against '.git#branch=main'

# --- quality ---------------------------------------------------------------

.PHONY: lint
lint: buf-lint $(STAMP) ## buf lint, ruff and mypy (strict on hand-written code)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format and fix imports with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# --- run & test ------------------------------------------------------------

.PHONY: test
test: $(STAMP) tools-postgres tools-prometheus tools-chromium tools-etcd ## Create the venv (and install PostgreSQL, Prometheus, Chromium, etcd) if needed, then run every test
	$(PY) -m pytest

.PHONY: run
run: $(STAMP) ## Create the venv if needed, then start the platform in the foreground
	$(BIN)/switchboard run

.PHONY: run-cluster
run-cluster: $(STAMP) tools-etcd tools-postgres ## Production's shape on one box: 3 etcd, 2 registries, PostgreSQL, 2+2 instances, auth + mTLS
	TLS=$${TLS:-1} AUTH=$${AUTH:-1} $(BIN)/switchboard run --file switchboard.cluster.toml

DATA_DIR ?= var

.PHONY: reset-data
reset-data: ## Delete the services' data (DATA_DIR, default ./var); keeps the venv and tools
	rm -rf -- "$(DATA_DIR)"
	@echo "removed $(DATA_DIR): the next 'make run' starts with empty services"

.PHONY: console-screenshot
console-screenshot: $(STAMP) tools-chromium ## Regenerate docs/console.png (the README's console screenshot)
	$(PY) -m tests.console.screenshot docs/console.png

.PHONY: console-measure
console-measure: $(STAMP) tools-chromium ## Console load time and payload with 1,000 instances registered
	$(PY) -m tests.console.measure

.PHONY: clean
clean: ## Remove the venv, caches and data (generated/ is committed and kept)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
