# The two set-up commands of the README. Both create the environment on first use (scripts/setup-env.sh).
.PHONY: env quickstart test

env:
	@bash scripts/setup-env.sh

quickstart: env
	.venv/bin/medopt run configs/quickstart.yaml

test: env
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup
