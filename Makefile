# Zhinao: two commands. `make run` starts the platform with demo data; `make test` runs the suite.
.PHONY: setup run test test-deps bench

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/zhinao models install qwen2.5-coder-0.5b
	.venv/bin/zhinao serve --demo

test-deps: setup
	bash scripts/test_deps.sh

test: test-deps
	.venv/bin/python -m pytest -q -ra --durations=25

bench:
	ZHINAO_EXTRAS=test,bench bash scripts/setup.sh
	.venv/bin/python bench/serving.py
