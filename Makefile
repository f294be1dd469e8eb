# auth0-s3-import — the commands a newcomer runs first: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
CARGO ?= cargo

.PHONY: demo test fmt-check clippy test-rust lint-infra bench build-cli deps-python fmt

## make demo: the pipeline locally on moto (S3) with a generated export; shows the run folder.
demo: deps-python
	$(CARGO) run --quiet -p integration --bin demo

## make test: formatting, lints (warnings are errors), every test, the template lint.
test: deps-python fmt-check clippy test-rust lint-infra

fmt-check:
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

lint-infra:
	"$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/cfn-lint" infra/template.yaml

## make bench: generate ~100 MB and ~1 GB exports, time the CLI vs a naive baseline, peak RSS.
bench:
	bash tests/bench/run_bench.sh

build-cli:
	$(CARGO) build --release -p auth0-s3-import

# moto's server (S3, Secrets Manager) and cfn-lint, installed only when missing.
deps-python:
	@$(PYTHON) -c 'import moto.server, flask' 2>/dev/null || $(PYTHON) -m pip install --quiet 'moto[server]'
	@$(PYTHON) -c 'import cfnlint' 2>/dev/null || $(PYTHON) -m pip install --quiet cfn-lint
