# The three commands of the README. Each installs what it needs first (once; again when the
# requirements change) into .venv, so a fresh clone needs only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install images demo test lint format airflow stop clean

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Real product pictures for the sample store's item_images: Debian's dataset-fashion-mnist (MIT), used where
# installed, else downloaded with apt-get and unpacked into .local/datasets (no root needed). Without it
# the store has no item images and the demo's generate_ad_creatives fails for want of them, so this stops first.
# The folder is unpacked beside its final place and renamed into it: an interrupted fetch leaves no half folder.
# A machine without apt's package lists (containers often drop them) gets its own, fetched into the scratch
# folder: `apt-get update` into a folder of ours needs no root and leaves the system's apt state alone.
FASHION_DEB_DIR := /usr/share/datasets/fashion-mnist
# Where an installed copy is looked for; `.ci/run` empties it so that CI takes a newcomer's download path.
FASHION_SYSTEM_DIR := $(FASHION_DEB_DIR)
FASHION_LOCAL := $(or $(PIPELINES_STATE_DIR),.local)/datasets/fashion-mnist
FASHION_CANDIDATES := $(PIPELINES_FASHION_MNIST_DIR) $(FASHION_LOCAL) $(FASHION_SYSTEM_DIR)
# Shell: the first candidate holding the images. A recipe runs it after `images`, so it sees a fresh fetch.
FASHION_FOUND_SH := for d in $(FASHION_CANDIDATES); do [ -f $$d/train-images-idx3-ubyte.gz ] && echo $$d && break; done
APT_OWN_LISTS = -o Dir::State::Lists=$$tmp/lists -o Dir::Cache=$$tmp/cache
images:
	@test -n "$$($(FASHION_FOUND_SH))" || { \
	  mkdir -p $(dir $(FASHION_LOCAL)) && tmp=$$(mktemp -d -p $(dir $(FASHION_LOCAL))) && \
	  (cd $$tmp && { apt-get download -qq dataset-fashion-mnist 2>/dev/null || { \
	    mkdir -p lists/partial cache/archives/partial && \
	    apt-get -qq $(APT_OWN_LISTS) update 2>/dev/null && \
	    apt-get -qq $(APT_OWN_LISTS) download dataset-fashion-mnist 2>/dev/null; }; }) && \
	  dpkg-deb -x $$tmp/dataset-fashion-mnist_*.deb $$tmp/root && \
	  mv -T $$tmp/root$(FASHION_DEB_DIR) $(FASHION_LOCAL) && rm -rf $$tmp && \
	  echo "Fashion-MNIST unpacked into $(FASHION_LOCAL)"; \
	} || { rm -rf "$$tmp"; echo "Fashion-MNIST not found and apt-get could not download dataset-fashion-mnist:" \
	  "install that package, or set PIPELINES_FASHION_MNIST_DIR to a folder holding its four .gz files" >&2; exit 1; }

## make demo: embedded PostgreSQL, set-up, sample store, one real marketing_daily DAG run, a summary.
demo: install images
	PIPELINES_PROFILE=$${PIPELINES_PROFILE:-demo} $(PY) -m pipelines demo

## make test: lint, format check and the whole test suite (what CI runs), on the images `make images` found.
test: install lint images
	PIPELINES_FASHION_MNIST_DIR=$$($(FASHION_FOUND_SH)) $(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## make airflow: `airflow standalone` on the same databases; UI on http://127.0.0.1:8080 (PIPELINES_API_HOST).
airflow: install
	PIPELINES_PROFILE=$${PIPELINES_PROFILE:-demo} $(PY) -m pipelines airflow standalone

## make stop: stop every process `make airflow` started, then the embedded PostgreSQL (its data stays in .local/).
stop: install
	$(PY) -m pipelines stop

clean: stop
	rm -rf .local
