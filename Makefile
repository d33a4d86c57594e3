# The two commands: `make run` (the whole application on this machine) and `make test` (every test).
# Both create the virtual environment and install what they need on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHROMIUM := /usr/bin/chromium
PORT ?= 3000
TENANT ?= t1
APP ?= app1
ROLES ?= admin
SUB ?= ops

.PHONY: venv browser run token test unit e2e fuzz lint operations packaging bench build deploy clean

$(STAMP): pyproject.toml layers/shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r layers/shared/requirements.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# SAM CLI lives in its own environment: installed beside the project it downgrades boto3 and pydantic.
$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.140'
	touch $(SAM_STAMP)

# checkov too: installed beside the project it downgrades urllib3 and packaging.
$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'
	touch $(CHECKOV_STAMP)

# The console's browser tests drive Debian's Chromium (never `playwright install`: its download fails here).
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

browser: $(CHROMIUM)

run: venv
	PORT=$(PORT) $(BIN)/python -m local_stack

token: venv
	@$(BIN)/python -m local_stack.token --tenant $(TENANT) --app $(APP) --roles $(ROLES) --sub $(SUB)

# The template with the serverless rules, its generated operations section up to date, checkov (every finding
# fixed or skipped with its reason in the resource's Metadata; --skip-download: no network), and the code.
lint: venv $(CHECKOV_STAMP)
	$(BIN)/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules
	$(BIN)/python -m tools.operations --check
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(BIN)/ruff check layers functions local_stack tests bench tools

# Regenerates template.yaml's alarms, log groups and dashboard from its resources (tools/operations.py).
operations: venv
	$(BIN)/python -m tools.operations

test: venv $(SAM_STAMP) $(CHROMIUM) lint
	SAM_CLI=$(abspath $(SAM)) $(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit tests/handlers

e2e: venv $(CHROMIUM)
	$(BIN)/pytest tests/e2e

# Schemathesis over the local stack's OpenAPI document (a fixed seed, 4 minutes); `make test` runs it too.
fuzz: venv
	$(BIN)/pytest tests/e2e/test_fuzz.py

bench: venv
	$(BIN)/python -m bench

build: $(SAM_STAMP)
	PATH="$$($(BIN)/python -m tests.packaging.python313):$$PATH" $(SAM) build

# One command per environment: `make deploy` (dev), `make deploy ENV=prod` (samconfig.toml; docs/operations.md).
ENV ?= default
deploy: build
	$(SAM) deploy --config-env $(ENV)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache
