# Entry points: `make setup`, `make test`, `make lint`, `make demo`, `make clean`.
# Recipes run in bash with -e and pipefail, so any failing command fails the target.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := . scripts/env.sh
PYTEST_ARGS ?=

.PHONY: setup venv build vllm test lint demo clean

# The vLLM environment (.venv-vllm, ~2.5 GB) is part of setup; RDR_VLLM=0 opts out (docs/setup.md).
setup: venv build vllm

venv:
	scripts/setup.sh

vllm: venv
	scripts/setup_vllm.sh

build: venv
	scripts/build.sh

# `pytest`, not `python -m pytest`: the latter puts the repo root first on sys.path, so the source
# package (which has no generated msg/) would shadow the colcon-installed one.
# Lint is part of the tests: a ruff finding fails `make test` (and so CI) before pytest runs.
# The transformers backend also runs in .venv-vllm (vLLM's transformers pin, 5.19): its tests run
# there too, unless the vLLM environment was opted out of (RDR_VLLM=0).
VLLM_ENV_TESTS := test/test_transformers_backend.py test/test_widen_demo_grm.py
test: setup lint
	$(ENV) && pytest -q $(PYTEST_ARGS) test
	if [ -x .venv-vllm/bin/pytest ]; then $(ENV) && .venv-vllm/bin/pytest -q $(VLLM_ENV_TESTS); fi

lint: venv
	.venv/bin/ruff check .

demo: venv build   # the demo needs no vLLM environment
	$(ENV) && robo-dopamine demo

clean:
	rm -rf build install log .pytest_cache
	find . \( -path ./.venv -o -path ./.venv-vllm \) -prune -o -name __pycache__ -type d -exec rm -rf {} +
