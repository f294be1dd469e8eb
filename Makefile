# auth0-s3-import — the commands a newcomer runs first: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
CARGO ?= cargo

.PHONY: help demo test soak bench-reconcile bench-split-1cpu bench-scale fmt-check clippy test-rust lint-infra test-infra bench bench-floor build-cli bench-hash bench-csv deps-python fmt fuzz \
	deps-lambda deps-sam build package deploy validate-infra test-browser deps-browser

# Python tools (moto's server, cfn-lint, the independent hash implementations the test vectors
# come from) live in a project venv, never the system pip (PEP 668 systems refuse it). Tests and
# the demo find that venv's Python through $$PYTHON.
VENV ?= .venv
VENV_PY := $(abspath $(VENV))/bin/python
VENV_STAMP := $(VENV)/.requirements-installed

## make help: the targets and what each does.
help:
	@grep -E '^## make ' $(MAKEFILE_LIST) | sed -E 's/^## make //'

## make demo: the pipeline locally on moto (S3) with a generated export; shows the run folder.
demo: deps-python
	PYTHON=$(VENV_PY) $(CARGO) run --quiet -p integration --bin demo

## make test: formatting, lints (warnings are errors), every test, the template lint, and the
## template-vs-code check (every function, env var, permission and trigger the code needs).
test: deps-python fmt-check clippy test-rust lint-infra test-infra

fmt-check:
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	PYTHON=$(VENV_PY) $(CARGO) test --workspace

lint-infra:
	$(VENV)/bin/cfn-lint infra/template.yaml

# Offline: reads infra/template.yaml with cfn-lint's YAML decoder and scans functions/*/src.
test-infra:
	$(VENV_PY) tests/infra/test_template.py

## make test-browser: report.html in a real headless Chromium (Debian's package, driven by
## playwright-core from npm). A run made by the pipeline on moto + the emulator renders, every
## number on it equals report.json's, nothing loads from elsewhere, no console error; refreshes
## docs/report-screenshot.png. Installs what it lacks (apt needs root or sudo). Not in make test.
CHROMIUM ?= /usr/bin/chromium
BROWSER_OUT := target/browser
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-browser: deps-python deps-browser
	PYTHON=$(VENV_PY) $(CARGO) run --quiet -p integration --bin report_sample -- $(BROWSER_OUT)
	CHROMIUM=$(CHROMIUM) node tests/browser/check_report.mjs $(BROWSER_OUT)/report.html \
		$(BROWSER_OUT)/report.json docs/report-screenshot.png

deps-browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium"; $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	@test -d tests/browser/node_modules/playwright-core || (cd tests/browser && npm ci --no-audit --no-fund)

## make bench: generate ~100 MB and ~1 GB exports, time the CLI vs a naive baseline, peak RSS;
## then the pipeline's makespan against the slot-bound optimum (emulator job time fixed).
bench:
	bash tests/bench/run_bench.sh
	bash tests/bench/makespan.sh --configs "20x1000 20x3000 20x5000"

## make bench-reconcile: a 1,000,000-user connection exported by the emulator and read back the
## way reconcile reads it: export size, time, peak memory of the reader (USERS=n to change).
bench-reconcile:
	bash tests/bench/reconcile.sh

## make bench-split-1cpu: the split handler on one core (taskset, Lambda's share at the template's
## memory) reading a generated drop from moto on the other core (SPLIT_USERS, default 2,000,000).
bench-split-1cpu: deps-python
	PYTHON=$(VENV_PY) bash tests/bench/split_taskset.sh

## make bench-scale: poll's finalisation of one run of SCALE_USERS users (default 10,000,000;
## 100000 and 1000000 work too) on moto + the emulator, per Lambda invocation until the run is
## final: wall, peak RSS, /tmp, S3 requests by type, Auth0 requests; checks the reports. Not in make test.
SCALE_USERS ?= 10000000
bench-scale: deps-python
	PYTHON=$(VENV_PY) SCALE_USERS=$(SCALE_USERS) bash tests/bench/scale.sh

## make bench-floor: on the 100 MB bench input (made by make bench), time the CLI, the baseline,
## `split -b` (copying the bytes into files alone) and a sonic-rs parse of each record, in turns.
bench-floor:
	bash tests/bench/floor.sh

## make soak: the integrity scenarios at full strength: a kill at every S3 write of a run, in
## both modes (before and after the write reaches S3). ~15-25 min; figures in BENCHMARKS.md.
soak: deps-python
	KILL_EVERY=1 PYTHON=$(VENV_PY) $(CARGO) test --workspace --test integrity -- --nocapture --test-threads 1 2>&1 | tee target/soak.log | grep -E '^kill|scenarios|test result'

## make fuzz: build the cargo-fuzz targets in fuzz/ (nightly) and run each, one after another,
## for FUZZ_SECONDS (default 60) from its seeds in fuzz/corpus/<target>; not part of make test.
## FUZZ_TARGETS picks targets; FUZZ_ARGS goes to libFuzzer (e.g. FUZZ_ARGS=-runs=10000000).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= framing split_stage fast_path drop_key multipart convert csv_mapping
FUZZ_ARGS ?=
# No sanitizer: the targets are safe Rust but for simd-scan, whose unsafe blocks are checked
# by its SAFETY arguments and differential tests; ASan would cut executions several times.
FUZZ_BUILD := -O -s none
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && $(CARGO) +nightly fuzz build $(FUZZ_BUILD)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus-work/$$t; \
		echo "fuzz: $$t, $(FUZZ_SECONDS) s"; \
		(cd fuzz && nice $(CARGO) +nightly fuzz run $(FUZZ_BUILD) $$t corpus-work/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_ARGS)) || exit 1; \
	done

## make bench-hash: `hash check` per algorithm at its default work factor, and the canary check's
## added time on a ~100 MB drop (passing and failing canaries).
bench-hash: deps-python
	PYTHON=$(VENV_PY) bash tests/bench/hash_bench.sh

## make bench-csv: CSV split through a mapping next to the JSON path on the same users (MB/s,
## users/s) and peak RSS at two sizes; figures in BENCHMARKS.md. Not in make test.
bench-csv: deps-python
	PYTHON=$(VENV_PY) bash tests/bench/csv_bench.sh $(BENCH_CSV_USERS)

build-cli:
	$(CARGO) build --release -p auth0-s3-import

## make deps-python: the project venv ($(VENV)) with tests/requirements.txt, when that file changed.
deps-python: $(VENV_STAMP)

$(VENV_STAMP): tests/requirements.txt
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

# ---- Deployment (issue 5). Tools live in the same venv (git-ignored), never in `make test`.
TOOLS_VENV ?= $(VENV)
LAMBDA_FUNCTIONS := split submit poll
SAM ?= $(firstword $(wildcard $(TOOLS_VENV)/bin/sam) $(shell command -v sam 2>/dev/null))
CARGO_LAMBDA_PATH := $(abspath $(TOOLS_VENV))/bin:$(PATH)
export SAM_CLI_TELEMETRY ?= 0

## make deps-lambda: cargo-lambda (with zig, for the Lambda linker) into $(TOOLS_VENV).
deps-lambda:
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	@PATH="$(CARGO_LAMBDA_PATH)" cargo lambda --version >/dev/null 2>&1 || $(TOOLS_VENV)/bin/pip install --quiet cargo-lambda
	@PATH="$(CARGO_LAMBDA_PATH)" cargo lambda --version

## make deps-sam: the AWS SAM CLI into $(TOOLS_VENV) (~2.5 min).
deps-sam:
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	@test -x $(TOOLS_VENV)/bin/sam || $(TOOLS_VENV)/bin/pip install --quiet aws-sam-cli
	@$(TOOLS_VENV)/bin/sam --version

## make build: release builds of the three Lambda functions for x86_64 (provided.al2023),
## target/lambda/<name>/bootstrap. ~7 min clean on 2 cores.
build: deps-lambda
	PATH="$(CARGO_LAMBDA_PATH)" $(CARGO) lambda build --release --x86-64 $(addprefix --bin ,$(LAMBDA_FUNCTIONS))

## make package: the same build, zipped for upload: target/lambda/<name>/bootstrap.zip.
package: deps-lambda
	PATH="$(CARGO_LAMBDA_PATH)" $(CARGO) lambda build --release --x86-64 --output-format zip $(addprefix --bin ,$(LAMBDA_FUNCTIONS))
	@ls -l $(foreach f,$(LAMBDA_FUNCTIONS),target/lambda/$(f)/bootstrap.zip)

## make validate-infra: SAM's own validation and lint of the template (needs deps-sam; offline).
validate-infra:
	@if [ -z "$(SAM)" ]; then echo "aws-sam-cli is not installed: run 'make deps-sam' (or pip install aws-sam-cli)"; exit 1; fi
	$(SAM) validate --lint --template-file infra/template.yaml --region $${AWS_REGION:-us-east-1}

## make deploy: sam build (cargo-lambda, release, x86_64) + sam deploy. The first time (no
## infra/samconfig.toml) it runs `sam deploy --guided`, which asks for the stack name, region
## and parameters and saves them in infra/samconfig.toml; later runs reuse them. Needs AWS
## credentials. Build output goes to target/sam/ (not infra/.aws-sam).
SAM_BUILD_DIR := $(CURDIR)/target/sam/build
deploy: deps-lambda
	@if [ -z "$(SAM)" ]; then echo "aws-sam-cli is not installed: run 'make deps-sam' (or pip install aws-sam-cli), then 'make deploy' again."; exit 1; fi
	cd infra && PATH="$(CARGO_LAMBDA_PATH)" $(abspath $(SAM)) build --template-file template.yaml \
		--build-dir $(SAM_BUILD_DIR) --cache-dir $(CURDIR)/target/sam/cache --cached
	@cd infra && if [ -f samconfig.toml ]; then \
		PATH="$(CARGO_LAMBDA_PATH)" $(abspath $(SAM)) deploy --template-file $(SAM_BUILD_DIR)/template.yaml; \
	else \
		PATH="$(CARGO_LAMBDA_PATH)" $(abspath $(SAM)) deploy --guided --template-file $(SAM_BUILD_DIR)/template.yaml \
			--capabilities CAPABILITY_IAM; \
	fi
