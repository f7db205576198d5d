# LinkWithMentor: `make dev` runs the platform locally, `make test` runs every test.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR):$(CURDIR)/layers/core
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
PYTEST := $(PY) -m pytest -p no:cacheprovider
SEED ?=

.PHONY: setup dev test lint format typecheck test-unit test-integration test-e2e test-infra \
        synth openapi bench pr clean

setup:  ## install what the platform needs (system packages, venv from uv.lock, npm tools)
	@scripts/setup.sh

dev: setup  ## run the whole platform on 127.0.0.1 (SEED=1 loads demo data)
	$(PY) -m local_runtime up $(if $(SEED),--seed,)

test: setup  ## lint, type-check and run every test level, offline
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint typecheck && \
	$(PYTEST) tests -q -n 2 --dist loadgroup --timeout 300; rc=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s"; exit $$rc

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

typecheck:
	.venv/bin/mypy layers/core/lwm_core functions websocket_handlers blueprint local_runtime infra_cdk app.py

test-unit: setup
	$(PYTEST) tests/unit -q

test-integration: setup
	$(PYTEST) tests/integration -q

test-e2e: setup
	$(PYTEST) tests/e2e -q

test-infra: setup
	$(PYTEST) tests/infra -q

synth: setup  ## synthesize the CDK app (STAGE=dev|prod), then cfn-lint every template
	npx cdk synth --quiet -c stage=$(or $(STAGE),dev)
	.venv/bin/cfn-lint --config-file infra_cdk/cfnlintrc.yaml -- cdk.out/*.template.json

openapi: setup  ## regenerate docs/openapi.json from the apps
	$(PY) -m local_runtime openapi > docs/openapi.json

bench: setup  ## run the benchmarks (they need no running platform)
	$(PY) bench/cold_start.py
	$(PY) bench/api_latency.py
	$(PY) bench/chat_fanout.py
	$(PY) bench/stream_latency.py

pr: format lint typecheck test  ## everything a pull request must pass

clean:
	rm -rf .venv .tools .local cdk.out build node_modules
