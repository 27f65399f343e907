# The two commands of the README, and their parts.
.PHONY: demo test setup lint typecheck unit bench reliability

demo: setup
	.venv/bin/python scripts/demo.py

test: setup lint typecheck
	.venv/bin/pytest -q

setup:
	./scripts/setup.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	.venv/bin/mypy

unit: setup
	.venv/bin/pytest -q tests/unit

bench: setup
	.venv/bin/python -m bench

# The reliability suite at full size (about 13 minutes on two cores); the figures go to docs/reliability.md.
reliability: setup
	rm -f tests/reliability/results.json
	SLIPWAY_RELIABILITY=full .venv/bin/pytest -q tests/reliability
	.venv/bin/python -m tests.reliability.report --write docs/reliability.md
