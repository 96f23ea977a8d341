# The two commands of the README:
#   make demo   installs everything (system packages, Python venv), starts the database, loads the
#               sample street, starts the API and the live simulator in the background
#   make test   installs what is missing and runs the whole test suite (lint, layering contract, types, pytest)
.PHONY: demo test setup lint stop bench clean-db

demo:
	bash scripts/setup.sh --demo

setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/ruff check gridmap api scripts tests
	.venv/bin/lint-imports
	.venv/bin/mypy
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check gridmap api scripts tests
	.venv/bin/lint-imports
	.venv/bin/mypy

stop:
	.venv/bin/python scripts/simulate_background.py stop
	.venv/bin/python scripts/serve_background.py stop
	.venv/bin/gridmap db down

bench: setup
	.venv/bin/python scripts/bench_load.py
