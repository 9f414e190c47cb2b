# Zhinao: two commands. `make run` starts the platform with demo data; `make test` runs the suite.
.PHONY: setup run test test-deps bench

setup:
	@bash scripts/setup.sh

# quiet: one line per step, full build output in build/logs/setup.log; serve ends with a banner
# (URL, admin user, the one-time password and key, how to stop, where the logs are)
run:
	@bash scripts/setup.sh --pack qwen2.5-coder-0.5b
	@.venv/bin/zhinao serve --demo

test-deps: setup
	@bash scripts/test_deps.sh

test: test-deps
	.venv/bin/python -m pytest -q -ra --durations=25

bench:
	ZHINAO_EXTRAS=test,bench bash scripts/setup.sh
	.venv/bin/python bench/serving.py
