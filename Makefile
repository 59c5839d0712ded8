# Every target installs what it needs: a fresh machine needs only Python 3.11+.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help install run replay-dead-letters test test-unit e2e lint fmt token bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found: installing it into .tools/"
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet uv

.venv/.synced: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml) | $(UV)
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.synced ## Install every workspace package from uv.lock

run: install ## Start PostgreSQL, the broker and every service; Ctrl-C stops all
	$(RUN) devctl run

replay-dead-letters: install ## Feed SERVICE's dead letters back once (while make run runs), e.g. SERVICE=protocol-svc
	$(RUN) devctl replay-dead-letters $(SERVICE)

test: install ## Run the whole test suite (unit + integration) against real servers
	$(RUN) pytest $(PYTEST_ARGS)

test-unit: install ## Only the fast unit tests
	$(RUN) pytest -m unit $(PYTEST_ARGS)

e2e: install ## The full end-to-end, fault and security suite; writes e2e/report.json
	$(RUN) rn623-e2e $(E2E_ARGS)

lint: install ## ruff and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs/events/src libs/devinfra/src libs/rulebook/src tools/devctl/src e2e/src bench $(wildcard services/*/src)

bench: install ## Measure the platform; prints tables and writes bench/results.json
	$(RUN) python bench/backbone.py $(BENCH_ARGS)
	$(RUN) python bench/rulebook.py
	$(RUN) python bench/protocols.py
	$(RUN) python bench/deadlines.py
	$(RUN) python bench/retention.py
	$(RUN) python bench/igr.py
	$(RUN) python bench/notifications.py
	$(RUN) python bench/whole_platform.py

fmt: install ## Format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

token: install ## Print a dev JWT (OPERATOR="123456 654321" SCOPES="protocols:write" to narrow it)
	@$(RUN) devctl token $(foreach op,$(OPERATOR),--operator $(op)) $(if $(SCOPES),--scopes "$(SCOPES)")

clean: ## Remove the local state (databases, logs) kept by make run
	rm -rf .state
