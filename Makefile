# The two commands: `make up` runs the stack, `make test` passes the tests.
PY := .venv/bin/python

.PHONY: up down status test lint install reconcile

install:
	@bash scripts/install.sh

up: install
	@$(PY) -m scripts.stack up

down:
	@$(PY) -m scripts.stack down

status:
	@$(PY) -m scripts.stack status

test: install
	$(PY) -m pytest

reconcile: install
	@$(PY) -m device_registry reconcile

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	@command -v docker-compose >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
	docker-compose config -q
