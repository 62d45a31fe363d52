# trailwatch: `make demo` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Builds live outside the clone so that CI runs on the same machine reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/trailwatch/target
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
DEMO_REGIONS := us-east-1,eu-west-1,ap-southeast-2

.PHONY: help venv build-cli demo test lint clean

help:
	@echo "make demo   run trailwatch against a seeded AWS emulator (moto)"
	@echo "make test   run every test: unit, fixture, emulator and CLI"
	@echo "make lint   cargo fmt --check and clippy -D warnings"

$(VENV_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

venv: $(VENV_STAMP)

build-cli:
	cargo build --quiet -p trailwatch-cli -p trailwatch-tests --bins

demo: venv build-cli
	scripts/with-moto scripts/demo $(CARGO_TARGET_DIR)/debug $(DEMO_REGIONS)

TEST_LOG := $(CARGO_TARGET_DIR)/trailwatch-test.log

test: venv
	cargo build --quiet --workspace --all-targets
	scripts/with-moto cargo test --workspace 2>&1 | tee $(TEST_LOG); exit $${PIPESTATUS[0]}
	@scripts/test-summary $(TEST_LOG)

lint:
	cargo fmt --all --check
	cargo clippy --quiet --workspace --all-targets -- -D warnings

clean:
	rm -rf $(VENV)
