# trailwatch: `make demo` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Builds live outside the clone so that CI runs on the same machine reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/trailwatch/target
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
DEMO_REGIONS := us-east-1,eu-west-1,ap-southeast-2

.PHONY: help venv infra-venv browser build build-cli demo test fuzz bench bench-peers bench-lambda dashboard-preview lint lint-infra sam-build deploy clean

help:
	@echo "make demo   run trailwatch against a seeded AWS emulator (moto)"
	@echo "make test   run every test: unit, fixture, emulator and CLI"
	@echo "make lint   cargo fmt --check, clippy -D warnings, and the infra/ template checks"
	@echo "make fuzz   the property tests, 100,000 cases each from a random seed"
	@echo "make bench  criterion benchmarks of the core, and whole scans on moto (target/bench/)"
	@echo "make build  the three Lambda zips (x86_64, provided.al2023) under target/lambda/"
	@echo "make bench-peers  trailwatch, Prowler and Cloud Custodian side by side (target/bench/peers.md)"
	@echo "make bench-lambda  the scheduled-scan zip's cold start and scan, as Lambda runs it"
	@echo "make dashboard-preview  the CloudWatch dashboard's panels, drawn from the template into docs/dashboard.png"
	@echo "make deploy sam build + sam deploy (--guided the first time) of infra/template.yaml"
	@echo "make sam-build  only the sam build step, offline"

$(VENV_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

venv: $(VENV_STAMP)

# The SAM CLI and checkov each pin a boto3 that conflicts with moto's (and with each other's),
# so each gets its own virtualenv.
INFRA_VENV := .venv-infra
CHECKOV_VENV := .venv-checkov

# Prowler and Cloud Custodian, for `make bench-peers`, get theirs for the same reason.
# .venv-NAME installs tools/NAME-requirements.txt.
PROWLER_VENV := .venv-prowler
CUSTODIAN_VENV := .venv-custodian
TOOL_VENVS := $(INFRA_VENV) $(CHECKOV_VENV) $(PROWLER_VENV) $(CUSTODIAN_VENV)

$(TOOL_VENVS:%=%/.installed): .venv-%/.installed: tools/%-requirements.txt
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

infra-venv: $(INFRA_VENV)/.installed $(CHECKOV_VENV)/.installed

# Release zips for Lambda. Settings (zip, x86_64, release, zig linker) live in cargo-lambda.toml.
# The zips land in the repo's target/lambda/ whatever CARGO_TARGET_DIR is, where deploy tools
# expect them.
LAMBDA_DIR := target/lambda

build: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --global cargo-lambda.toml \
		--lambda-dir $(LAMBDA_DIR) -p trailwatch-scheduled-scan -p trailwatch-trail-change \
		-p trailwatch-account-worker
	@ls -l $(LAMBDA_DIR)/*/bootstrap.zip

build-cli:
	cargo build --quiet -p trailwatch-cli -p trailwatch-tests --bins
	@# Built as `cargo lambda watch` runs them (`cargo run --bin`), so the demo and the
	@# end-to-end tests do not wait for a compile.
	cargo build --quiet --bin scheduled-scan
	cargo build --quiet --bin trail-change
	cargo build --quiet --bin account-worker

demo: venv build-cli
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-moto scripts/demo $(CARGO_TARGET_DIR)/debug $(DEMO_REGIONS)

TEST_LOG := $(CARGO_TARGET_DIR)/trailwatch-test.log

# The HTML report's browser test runs headless Chromium: Debian's package, installed when
# neither `chromium` nor $$TRAILWATCH_CHROMIUM is there (root, or sudo, runs apt-get).
browser:
	@{ [ -n "$${TRAILWATCH_CHROMIUM:-}" ] && [ -x "$$TRAILWATCH_CHROMIUM" ]; } || \
	  scripts/apt-install chromium chromium "for the HTML report's browser test (or set TRAILWATCH_CHROMIUM)"

# The dashboard's panels drawn from infra/template.yaml into docs/dashboard.png, for the README:
# a layout preview, since there is no console without AWS.
dashboard-preview: venv browser
	$(VENV)/bin/python scripts/dashboard-preview docs/dashboard.png

# The property tests draw from a seed fixed per commit: new inputs with each commit, and a CI
# failure that reproduces on a rerun. `make fuzz` explores from a random seed.
export PROPTEST_RNG_SEED ?= $(shell printf '%d' 0x$$(git rev-parse --short=12 HEAD 2>/dev/null || echo 0))

test: venv infra-venv build-cli browser
	cargo build --quiet --workspace --all-targets
	scripts/with-moto cargo test --workspace 2>&1 | tee $(TEST_LOG); exit $${PIPESTATUS[0]}
	@scripts/test-summary $(TEST_LOG)

# Prowler and Cloud Custodian against trailwatch, timed by hyperfine on one seeded moto account.
bench-peers: venv $(PROWLER_VENV)/.installed $(CUSTODIAN_VENV)/.installed
	@scripts/apt-install hyperfine hyperfine "to time the tools side by side"
	cargo build --quiet --release -p trailwatch-cli
	cargo build --quiet -p trailwatch-tests --bin bench-scan
	scripts/with-moto scripts/bench-peers $(CARGO_TARGET_DIR)/debug/bench-scan \
		$(CARGO_TARGET_DIR)/release/trailwatch $(BENCH_DIR)

fuzz:
	env -u PROPTEST_RNG_SEED PROPTEST_CASES=100000 cargo test --release -p trailwatch-core --test fuzz

# Benchmarks, kept out of `make test`: criterion on the pure core, then the release binary
# scanning moto seeded with REGIONS x TRAILS healthy trails, and organisations of N accounts,
# each shape on a fresh server.
# The JSON lands in target/bench/ of the clone, with a Markdown summary in table.md.
BENCH_DIR := target/bench
BENCH_SHAPES := 3x3 17x3 17x20
# Organisations of this many accounts, each with one healthy trail, scanned with --org; the
# largest again with 16 accounts at once, to see what concurrency costs in memory.
BENCH_ORGS := 1 10 50
# Accounts of this many roles, for where reading every role at once stops winning.
BENCH_IAM_ROLES := 10 100 1000
# Requests in flight for the latency shape: the default of 8, and either side of it. moto
# answers one request at a time, about 200 a second, which 8 in flight at 40 ms already asks
# for; 4 shows trailwatch's own scheduling against the bound without that floor.
BENCH_LATENCY_IN_FLIGHT := 4 8 16

bench: venv bench-lambda
	cargo bench --quiet -p trailwatch-core --bench core
	cargo build --quiet --release -p trailwatch-cli
	cargo build --quiet -p trailwatch-tests --bin bench-scan
	@mkdir -p $(BENCH_DIR)
	for shape in $(BENCH_SHAPES); do \
		scripts/with-moto $(CARGO_TARGET_DIR)/debug/bench-scan run \
			$(CARGO_TARGET_DIR)/release/trailwatch $${shape%x*} $${shape#*x} $(BENCH_DIR) || exit 1; \
	done
	@# The 17 x 20 shape again with every call 40 ms away, a regional round trip, against the
	@# bound of its call graph.
	for in_flight in $(BENCH_LATENCY_IN_FLIGHT); do \
		TRAILWATCH_CONCURRENCY=$$in_flight scripts/with-moto $(CARGO_TARGET_DIR)/debug/bench-scan \
			latency $(CARGO_TARGET_DIR)/release/trailwatch 17 20 40 $(BENCH_DIR) || exit 1; \
	done
	for accounts in $(BENCH_ORGS); do \
		scripts/with-moto $(CARGO_TARGET_DIR)/debug/bench-scan org \
			$(CARGO_TARGET_DIR)/release/trailwatch $$accounts $(BENCH_DIR) || exit 1; \
	done
	for roles in $(BENCH_IAM_ROLES); do \
		scripts/with-moto $(CARGO_TARGET_DIR)/debug/bench-scan iam $$roles $(BENCH_DIR) || exit 1; \
	done
	BENCH_ACCOUNT_CONCURRENCY=16 scripts/with-moto $(CARGO_TARGET_DIR)/debug/bench-scan org \
		$(CARGO_TARGET_DIR)/release/trailwatch 50 $(BENCH_DIR)
	$(CARGO_TARGET_DIR)/debug/bench-scan table $(BENCH_DIR) | tee $(BENCH_DIR)/table.md

# The scheduled-scan zip as provided.al2023 runs it: its bootstrap started five times cold
# against a stand-in for the Lambda runtime API, on moto seeded with 3 regions x 3 healthy
# trails. LABEL names the result file (target/bench/lambda-LABEL.json), for comparing builds.
bench-lambda: build
	cargo build --quiet -p trailwatch-tests --bin bench-scan
	rm -rf $(BENCH_DIR)/bootstrap && mkdir -p $(BENCH_DIR)/bootstrap
	$(VENV)/bin/python -m zipfile -e $(LAMBDA_DIR)/scheduled-scan/bootstrap.zip $(BENCH_DIR)/bootstrap
	chmod +x $(BENCH_DIR)/bootstrap/bootstrap
	scripts/with-moto $(CARGO_TARGET_DIR)/debug/bench-scan lambda \
		$(LAMBDA_DIR)/scheduled-scan/bootstrap.zip $(BENCH_DIR)/bootstrap/bootstrap \
		$${LABEL:-scheduled-scan} $(BENCH_DIR)

lint: lint-infra
	cargo fmt --all --check
	cargo clippy --quiet --workspace --all-targets -- -D warnings

# SAM CLI offline: no telemetry, and a region so that validation needs no AWS profile.
SAM := env SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
	PATH="$(CURDIR)/$(VENV)/bin:$(CURDIR)/$(INFRA_VENV)/bin:$$PATH" sam

# Every template: cfn-lint with no errors or warnings, SAM's own validation, and checkov with
# no failed check (each skip is justified inline, next to the resource it concerns).
lint-infra: infra-venv
	$(INFRA_VENV)/bin/cfn-lint infra/template.yaml infra/region-forwarder.yaml infra/member-account.yaml
	cd infra && $(SAM) validate --lint --template template.yaml
	$(CHECKOV_VENV)/bin/checkov --directory infra --framework cloudformation terraform \
		--quiet --compact --skip-download

# The first deploy asks for the stack name, region and parameters and saves the answers in
# infra/samconfig.toml; later deploys reuse them. `sam build` compiles both functions with
# cargo-lambda (from .venv) for the template's Architecture. .venv comes first on PATH:
# cargo-lambda finds zig through the `python3` it sees, and only .venv's has ziglang.
sam-build: venv infra-venv
	cd infra && $(SAM) build --template template.yaml

deploy: sam-build
	if grep -q '^\[default\.deploy\.parameters\]' infra/samconfig.toml; then \
		cd infra && $(SAM) deploy; \
	else \
		cd infra && $(SAM) deploy --guided; \
	fi

clean:
	rm -rf $(VENV) $(TOOL_VENVS) infra/.aws-sam
