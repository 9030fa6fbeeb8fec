# Setlist. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The packages run from the checkout (no install step), for make targets and their subprocesses.
export PYTHONPATH := $(CURDIR)
BENCH_SCALE ?= small
SOURCE ?=
IMPORT_ARGS ?=
ERASE_ARGS ?=
RETENTION_ARGS ?=
COMPACT_ARGS ?=
VERSION ?=
STATUS_ARGS ?=
COST_ARGS ?=
VALIDATE_ARGS ?=

.DEFAULT_GOAL := help

# A settings file (SETLIST_SETTINGS_FILE) is read by Python: the variables it sets, so that no default
# below is exported over them (the environment wins over the file), and the profile it may set. Before
# .venv exists it cannot be read: then no default is exported at all (a file that does not read stops
# the first Python command with its own message).
ifneq ($(strip $(SETLIST_SETTINGS_FILE)),)
ifneq ($(wildcard $(PY)),)
IN_SETTINGS_FILE := $(shell $(PY) -m setlist.settings --in-file 2>/dev/null || echo unread)
else
IN_SETTINGS_FILE := unread
endif
ifneq ($(filter unread,$(IN_SETTINGS_FILE)),)
$(warning SETLIST_SETTINGS_FILE could not be read yet (no .venv, or the file does not read): the Makefile exports no production defaults)
endif
ifeq ($(strip $(SETLIST_PROFILE)),)
SETLIST_PROFILE := $(patsubst SETLIST_PROFILE=%,%,$(filter SETLIST_PROFILE=%,$(IN_SETTINGS_FILE)))
endif
endif

# The production profile needs a pseudonymization key shared by every process; locally
# `make services` keeps one under var/services/. Its data gets a directory of its own, since
# pseudonyms made with the local profile's key would not match.
# The cluster profile (Spark, Redis Cluster) uses the same services and keeps its data apart too.
ifneq ($(filter production cluster,$(SETLIST_PROFILE)),)
ifeq ($(filter unread,$(IN_SETTINGS_FILE)),)
ifeq ($(strip $(SETLIST_HMAC_KEY))$(filter SETLIST_HMAC_KEY SETLIST_HMAC_KEY_FILE,$(IN_SETTINGS_FILE)),)
# next to the services' data, where `make services` keeps it (SETLIST_SERVICES_DIR moves both)
export SETLIST_HMAC_KEY_FILE ?= $(or $(SETLIST_SERVICES_DIR),$(CURDIR)/var/services)/hmac.key
endif
ifeq ($(filter SETLIST_DATA_DIR,$(IN_SETTINGS_FILE)),)
export SETLIST_DATA_DIR ?= $(CURDIR)/var/$(SETLIST_PROFILE)
endif
# The one-machine demo serves plaintext without tokens, which production allows only when told; it
# listens on loopback only. A real deployment sets TLS and tokens instead (docs/production.md).
ifeq ($(filter SETLIST_INSECURE,$(IN_SETTINGS_FILE)),)
export SETLIST_INSECURE ?= true
endif
ifeq ($(filter SETLIST_HOST,$(IN_SETTINGS_FILE)),)
export SETLIST_HOST ?= 127.0.0.1
endif
endif
endif

.PHONY: help  ## show this menu
help:
	@grep -E '^\.PHONY: [a-z-]+ +## ' $(MAKEFILE_LIST) | sed -E 's/^\.PHONY: ([a-z-]+) +## /\1\t/' \
		| awk -F '\t' '{ printf "  %-15s %s\n", $$1, $$2 }'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies (requirements.lock, no resolution)…"
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements.lock
	@touch $(STAMP)

.PHONY: setup  ## build .venv from pinned dependencies and generate the gRPC code (idempotent)
setup: $(STAMP) protos

.PHONY: protos  ## generate Python code from protos/ (never edited by hand)
protos: $(STAMP)
	@$(PY) -m scripts.protogen

.PHONY: generate  ## generate synthetic events (SETLIST_SCALE=demo|bench) and ingest them
generate: setup
	$(PY) -m ingest generate

.PHONY: import  ## import your own interactions: make import SOURCE=path IMPORT_ARGS='--user-col …'
import: setup
	@test -n "$(SOURCE)" || { echo "usage: make import SOURCE=path/to/interactions.csv [IMPORT_ARGS='--user-col user …']"; exit 2; }
	$(PY) -m ingest import "$(SOURCE)" $(IMPORT_ARGS)

.PHONY: apply  ## register the Feast feature definitions
apply: setup
	$(PY) -m feature_repo apply

.PHONY: materialize  ## build features from the event log, validate them and publish to the online store
materialize: setup
	$(PY) -m feature_repo materialize

.PHONY: validate  ## run every data-quality gate on the current data (VALIDATE_ARGS='--junit gates.xml' for CI)
validate: setup
	$(PY) -m validation all $(VALIDATE_ARGS)

.PHONY: train  ## train and register the candidate and ranking models
train: setup
	$(PY) -m training

.PHONY: serve  ## run the gRPC ranking server
serve: setup
	$(PY) -m serving

.PHONY: demo  ## the whole loop on embedded defaults: events, gates, features, training, serving
demo: setup
	@echo "== 1/11 events: generate synthetic listening (kept if the log already has events)"
	$(PY) -m ingest generate
	$(PY) -m ingest summary
	@echo "== 2/11 validate the raw events"
	$(PY) -m validation events
	@echo "== 3/11 build, validate and publish features"
	$(PY) -m feature_repo materialize
	@echo "== 4/11 train and register the two-stage model"
	$(PY) -m training
	@echo "== 5/11 every data-quality gate"
	$(PY) -m validation all
	@echo "== 6/11 serve: rank, send a skip, rank again"
	$(PY) -m scripts.demo
	@echo "== 7/11 a short simulated A/B experiment (synthetic listeners answer from their hidden tastes)"
	$(PY) -m experiments simulate --users 300 --quick
	@echo "== 8/11 onboarding: brand-new listeners over simulated days, time-to-first-value, return rate, engaged users"
	$(PY) -m experiments onboarding --users 200 --quick
	@echo "== 9/11 cost: per 1,000 Rank calls, per engaged user and per value event, at cost.yaml's example prices"
	$(PY) -m ops cost --days 7
	@echo "== 10/11 lifecycle: each dataset's retention, then old impressions to daily counts and small files merged"
	$(PY) -m ingest retention
	$(PY) -m ingest.lifecycle all
	@echo "== 11/11 status: the loop at a glance, and whether each SLO holds"
	$(PY) -m ops status

.PHONY: test  ## unit, integration and end-to-end tests (tests/unit, tests/integration, tests/e2e)
test: setup
	$(PY) -m pytest -q --durations=30  # the slowest tests named at the end: where CI time goes

.PHONY: lint  ## ruff (lint and format check), mypy on the core packages, the import-graph contracts
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

.PHONY: rules  ## regenerate deploy/prometheus/rules/slo.rules.yml from deploy/prometheus/slo.yaml
rules: setup
	$(PY) -m ops rules

.PHONY: bench  ## benchmark Rank/Track against the baseline; BENCH_SCALE=small|full
bench: setup
	$(PY) -m bench --scale $(BENCH_SCALE)

.PHONY: status  ## the loop at a glance: events, lags, gates, jobs, models, canary, serving, SLOs (exit 1: an SLO is broken)
status: setup
	$(PY) -m ops status $(STATUS_ARGS)

.PHONY: cost  ## cost per 1,000 Rank calls, per engaged user, per value event, per day and arm (cost.yaml prices; COST_ARGS=--no-mlflow)
cost: setup
	$(PY) -m ops cost $(COST_ARGS)

.PHONY: chaos  ## fault drills against real servers under Track load: a table of lost and duplicated events
chaos: setup
	$(PY) -m bench.chaos

.PHONY: bench-publish  ## make the latest bench run the published result of its scale (bench/results/)
bench-publish: setup
	$(PY) -m bench.publish

.PHONY: services  ## start Redis and PostgreSQL (data under var/); SETLIST_PROFILE=cluster adds a Redis Cluster
services:
	@scripts/services.sh up

.PHONY: services-down  ## stop Redis, the Redis Cluster and PostgreSQL
services-down:
	@scripts/services.sh down

.PHONY: erase  ## erase one user everywhere: make erase USER_ID=…
erase: setup
	@test -n "$(USER_ID)" || { echo "usage: make erase USER_ID=<the app's user id> [ERASE_ARGS=--pseudonym]"; exit 2; }
	$(PY) -m ingest erase "$(USER_ID)" $(ERASE_ARGS)

.PHONY: access  ## what is stored about one user (a subject-access request): make access USER_ID=… [ACCESS_ARGS=--export DIR]
access: setup
	@test -n "$(USER_ID)" || { echo "usage: make access USER_ID=<the app's user id> [ACCESS_ARGS='--export DIR --pseudonym']"; exit 2; }
	$(PY) -m ingest access "$(USER_ID)" $(ACCESS_ARGS)

.PHONY: lineage  ## trace a model version back to its data: make lineage [VERSION=n] (default: the champion ranker)
lineage: setup
	$(PY) -m training.lineage $(VERSION)

.PHONY: compact  ## old impressions to daily counts, then small files merged per partition; COMPACT_ARGS=--dry-run shows what would change
compact: setup
	$(PY) -m ingest.lifecycle all $(COMPACT_ARGS)

.PHONY: retention  ## apply each dataset's retention (SETLIST_RETENTION_*); RETENTION_ARGS=--dry-run shows what would go
retention: setup
	$(PY) -m ingest retention $(RETENTION_ARGS)

.PHONY: schedule  ## run the scheduled jobs on this machine until stopped (materialize, validate, train, retention, compaction)
schedule: setup
	$(PY) -m ops schedule

.PHONY: clean  ## remove generated data (var/) and the virtualenv
clean:
	rm -rf var $(VENV)
