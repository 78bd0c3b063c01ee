# All set-up happens here: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools/sam
SAM    := $(TOOLS)/bin/sam
PYENV_313 := $(shell pyenv root 2>/dev/null)/versions/3.13.0/bin
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: install tools browser run test unit integration lint typecheck validate build deploy bench clean

install: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# SAM CLI lives in its own venv; cfn-lint is pinned because newer releases miss SAM errors.
tools: $(SAM)
$(SAM):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q aws-sam-cli 'cfn-lint==1.53.3'

# The web page's tests drive Debian's Chromium (never a browser downloaded by Playwright): installed when missing.
CHROMIUM := /usr/bin/chromium
browser: $(CHROMIUM)
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "make browser: $(CHROMIUM) is missing; install Debian's chromium package as root" >&2; exit 1; fi; \
	$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

run: install
	$(BIN)/imagegen local --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

validate: tools
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint

unit: install
	$(BIN)/pytest tests/unit -q

integration: install
	$(BIN)/pytest tests/integration -q

test: lint typecheck validate browser
	$(BIN)/pytest -q

build: tools
	PATH="$(PYENV_313):$$PATH" $(SAM) build

deploy: build
	$(SAM) deploy --guided

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache
