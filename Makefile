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

# issue 13: data → SFT → RM → DPO and PPO → report → deploy on the demo data (SmolLM2-135M);
# leaves demo-sft, demo-rm, demo-dpo, demo-ppo registered; PROFILE=ci runs a few steps each
.PHONY: align-demo
align-demo:
	@bash scripts/setup.sh
	OMP_NUM_THREADS=1 TRL_EXPERIMENTAL_SILENCE=1 .venv/bin/zhinao align demo --profile $${PROFILE:-demo}
