# The README's commands. Each installs what it needs on a fresh machine, then runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
SYSTEM_STAMP := build/.system-deps-installed
STACK ?= staging

.PHONY: help deps system-deps plan test lint typecheck pytest run smoke bench mutation lock rds-ca-pin clean

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# constraints.txt pins the run-time set (the images install exactly it): the suite runs those versions.
$(DEPS_STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check --constraint constraints.txt -e '.[infra,dev]'
	@touch $@

deps: $(DEPS_STAMP) ## create the virtualenv and install the Python dependencies

$(SYSTEM_STAMP): tests/bin/install-system-deps
	@tests/bin/install-system-deps
	@mkdir -p $(dir $@) && touch $@

system-deps: $(SYSTEM_STAMP) ## install PostgreSQL, Redis and the other test servers and linters

# checkov pins packaging<24, which pulumi (packaging>=26) cannot share: it gets its own environment.
CHECKOV_STAMP := .tools/checkov/.installed
$(CHECKOV_STAMP):
	@$(PYTHON) -m venv .tools/checkov
	@.tools/checkov/bin/pip install --quiet --disable-pip-version-check 'checkov>=3.2,<4'
	@touch $@

plan: deps ## offline plan of the staging stack (no cloud account, no Pulumi CLI): build/plan/staging/
	@$(PY) -m stacks plan $(STACK)

lint: deps ## ruff lint and format check
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

typecheck: deps ## pyright against the provider SDKs' own typings (strict on the infrastructure code)
	@$(VENV)/bin/pyright

# Two pytest-xdist workers, a test file each at a time (its module fixtures are built once): much of the
# suite waits on real servers, outages and timeouts, so two share the 2 cores well. PYTEST_WORKERS=0: serial.
# Every run lists its slowest tests and leaves a JUnit report (per-test times) in build/test-results.xml.
# The CRD schemas the manifests test validates Gateway API and cert-manager objects against (pinned npm packages).
SCHEMAS_STAMP := tests/schemas/node_modules/.installed
$(SCHEMAS_STAMP): tests/schemas/package.json tests/schemas/package-lock.json
	@npm ci --prefix tests/schemas --no-audit --no-fund --silent
	@touch $@

PYTEST_WORKERS ?= 2
pytest: deps system-deps $(CHECKOV_STAMP) $(SCHEMAS_STAMP) ## the whole pytest suite (starts its own PostgreSQL, Redis and workers)
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 --junitxml=build/test-results.xml

test: deps system-deps lint typecheck pytest ## everything CI runs: linters, type check, the whole suite

run: deps system-deps ## the whole service locally, no Docker (fakes unless LLM_*/--servicedesk-url are real)
	@$(PY) -m harness.localrun $(RUN_ARGS)

# An http:// URL has no TLS to check: its three TLS checks are allowed to skip, by name.
smoke: deps ## smoke-test a running instance: make smoke URL=http://127.0.0.1:8000 TENANT=demo SECRET=... TICKET=...
	@SMOKE_WEBHOOK_SECRET="$(SECRET)" $(PY) -m app.smoke --base-url "$(URL)" $(if $(TENANT),--tenant "$(TENANT)") \
		$(if $(TICKET),--ticket-id "$(TICKET)") \
		$(if $(filter http://%,$(URL)),--allow-skip tls-certificate --allow-skip legacy-tls --allow-skip https-redirect)

BENCHMARKS := plan ingest worker e2e scale drain
bench: deps system-deps ## all benchmarks (a few minutes; needs wrk): tables, bench/results/*.json, scale.png, drain.png
	@command -v wrk >/dev/null || { echo "make bench needs wrk (apt-get install wrk)"; exit 2; }
	@for b in $(BENCHMARKS); do echo "== bench.$$b"; $(PY) -m bench.$$b || exit 1; done

# Mutation testing (docs/testing.md): long, so not part of `make test`. One child at nice 19 on purpose;
# each mutant runs only the unit tests that call its function. MUTATION_SCOPE=<mutant name globs> runs a
# part (e.g. 'policy.rds.*'); results accumulate in mutants/ and the report covers the scope given.
MUTATION_SCOPE ?= policy.* app.signing.* app.api.tenant_auth.* app.worker.note.* app.worker.enhance.x__post_once*
mutation: deps ## mutation testing of the policies, signing, webhook auth and note path: kill rate per module
	@mkdir -p build && nice -n 19 $(VENV)/bin/mutmut run --max-children 1 $(foreach g,$(MUTATION_SCOPE),'$(g)') >build/mutmut-run.log 2>&1 \
		|| { tail -40 build/mutmut-run.log; exit 1; }
	@$(PY) -m tests.mutation.report $(foreach g,$(MUTATION_SCOPE),'$(g)')

PIP_TOOLS_STAMP := .tools/pip-tools/.installed
$(PIP_TOOLS_STAMP):
	@$(PYTHON) -m venv .tools/pip-tools
	@.tools/pip-tools/bin/pip install --quiet --disable-pip-version-check 'pip-tools>=7.4,<8'
	@touch $@

lock: $(PIP_TOOLS_STAMP) ## re-pin constraints.txt (the images' run-time dependencies) from pyproject.toml
	@.tools/pip-tools/bin/pip-compile --quiet --upgrade --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file constraints.txt pyproject.toml

RDS_CA_URL := https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
rds-ca-pin: ## re-pin the RDS CA bundle's checksum in app/docker/*.Dockerfile (needs network; review the diff)
	@sum=$$(curl -fsSL $(RDS_CA_URL) | sha256sum | cut -d' ' -f1) && test $${#sum} -eq 64 \
		&& sed -i -E "s/--checksum=sha256:[0-9a-f]{64}/--checksum=sha256:$$sum/" app/docker/*.Dockerfile \
		&& grep -c "sha256:$$sum" app/docker/*.Dockerfile

clean: ## remove build output (keeps the virtualenv)
	rm -rf build .pytest_cache .ruff_cache
