# The two commands of the README, and their parts.
.PHONY: demo test setup lint typecheck unit bench

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
