# trailwatch: `make demo` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Builds live outside the clone so that CI runs on the same machine reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/trailwatch/target
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
DEMO_REGIONS := us-east-1,eu-west-1,ap-southeast-2

.PHONY: help venv build build-cli demo test lint clean

help:
	@echo "make demo   run trailwatch against a seeded AWS emulator (moto)"
	@echo "make test   run every test: unit, fixture, emulator and CLI"
	@echo "make lint   cargo fmt --check and clippy -D warnings"
	@echo "make build  the two Lambda zips (x86_64, provided.al2023) under target/lambda/"

$(VENV_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

venv: $(VENV_STAMP)

# Release zips for Lambda. Settings (zip, x86_64, release, zig linker) live in cargo-lambda.toml.
# The zips land in the repo's target/lambda/ whatever CARGO_TARGET_DIR is, where deploy tools
# expect them.
LAMBDA_DIR := target/lambda

build: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --global cargo-lambda.toml \
		--lambda-dir $(LAMBDA_DIR) -p trailwatch-scheduled-scan -p trailwatch-trail-change
	@ls -l $(LAMBDA_DIR)/*/bootstrap.zip

build-cli:
	cargo build --quiet -p trailwatch-cli -p trailwatch-tests --bins
	@# Built as `cargo lambda watch` runs them (`cargo run --bin`), so the demo and the
	@# end-to-end tests do not wait for a compile.
	cargo build --quiet --bin scheduled-scan
	cargo build --quiet --bin trail-change

demo: venv build-cli
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-moto scripts/demo $(CARGO_TARGET_DIR)/debug $(DEMO_REGIONS)

TEST_LOG := $(CARGO_TARGET_DIR)/trailwatch-test.log

test: venv build-cli
	cargo build --quiet --workspace --all-targets
	scripts/with-moto cargo test --workspace 2>&1 | tee $(TEST_LOG); exit $${PIPESTATUS[0]}
	@scripts/test-summary $(TEST_LOG)

lint:
	cargo fmt --all --check
	cargo clippy --quiet --workspace --all-targets -- -D warnings

clean:
	rm -rf $(VENV)
