# The two commands: `make up` runs the stack, `make test` passes the tests.
PY := .venv/bin/python

.PHONY: up down status test lint install reconcile cluster-up cluster-down cluster-status

install:
	@bash scripts/install.sh

up: install
	@$(PY) -m scripts.stack up

down:
	@$(PY) -m scripts.stack down

status:
	@$(PY) -m scripts.stack status

# the tests also need a browser for the console (Debian's chromium)
test:
	@bash scripts/install.sh test
	$(PY) -m pytest

reconcile: install
	@$(PY) -m device_registry reconcile
	@$(PY) -m dispatcher.campaigns reconcile

# A RabbitMQ cluster of the project's own beside the machine's broker (nodes on
# 127.0.0.1:5701-5703, data in .run/cluster); it prints the PUSH_* settings that run
# Pushbox on it. NODES=1: one node, for a machine whose broker has too few open files.
cluster-up: install
	@$(PY) -m scripts.cluster up $(if $(NODES),--nodes $(NODES))

cluster-down:
	@$(PY) -m scripts.cluster down

cluster-status:
	@$(PY) -m scripts.cluster status

# the compose check needs Debian's docker-compose: installed on first use (it brings
# Docker's client packages; no Docker engine is started)
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	@command -v docker-compose >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
	docker-compose config -q

# Benchmarks run against the `make up` stack, restarted with rate limits raised for
# the run and APNs pointed at the stand-in the wake figures start on BENCH_APNS_PORT
# (environment variables only; see bench/README.md).
BENCH_APNS_PORT ?= 9444
BENCH_ENV := PUSH_RATE_DEVICE_PER_S=1000000 PUSH_RATE_DEVICE_BURST=1000000 \
	PUSH_RATE_SERVER_KEY_PER_S=1000000 PUSH_RATE_SERVER_KEY_BURST=1000000 \
	PUSH_RATE_REGISTRATION_PER_S=1000000 PUSH_RATE_REGISTRATION_BURST=1000000 \
	PUSH_DEVICE_BACKLOG_MAX=10000 \
	PUSH_APNS_URL=https://127.0.0.1:$(BENCH_APNS_PORT) PUSH_CA_FILE=$(CURDIR)/.run/bench-apns/ca.pem

.PHONY: bench demo
bench: install
	@$(PY) -m scripts.stack down >/dev/null
	@env $(BENCH_ENV) $(PY) -m scripts.stack up >/dev/null
	@env $(BENCH_ENV) $(PY) -m bench; rc=$$?; \
	  $(PY) -m scripts.stack down >/dev/null; $(PY) -m scripts.stack up >/dev/null; exit $$rc

demo: up
	@$(PY) -m scripts.demo
