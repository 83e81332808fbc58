# The three commands of the README. Each installs what it needs first (once; again when the
# requirements change) into .venv, so a fresh clone needs only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install demo test lint format airflow stop clean

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## make demo: embedded PostgreSQL, set-up, sample store, one real marketing_daily DAG run, a summary.
demo: install
	PIPELINES_PROFILE=$${PIPELINES_PROFILE:-demo} $(PY) -m pipelines demo

## make test: lint, format check and the whole test suite (what CI runs).
test: install lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## make airflow: `airflow standalone` on the same databases; UI on http://localhost:8080.
airflow: install
	PIPELINES_PROFILE=$${PIPELINES_PROFILE:-demo} $(PY) -m pipelines airflow standalone

## make stop: stop the embedded PostgreSQL (its data stays in .local/).
stop: install
	$(PY) -m pipelines db stop

clean: stop
	rm -rf .local
