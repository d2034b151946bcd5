# The two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: help install demo test lint typecheck pytest bench clean audit

help:
	@echo "make demo   run the example LMS platform (ARGS=--once to run the scenario and exit)"
	@echo "make test   lint, type check and run the whole test suite"
	@echo "make bench  run the benchmarks and print ratios"
	@echo "make audit  bandit + pip-audit + offline OSV check (OSV=advisories.json)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench tools
	$(BIN)/ruff format --check src tests examples bench tools

typecheck: $(STAMP)
	$(BIN)/mypy --strict src examples tools

pytest: $(STAMP)
	$(BIN)/coverage run -m pytest $(ARGS)
	$(BIN)/coverage report

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# bandit on src/ and pip-audit + an offline OSV check of requirements.lock,
# with accepted findings in audit-allowlist.toml (docs/audit.md).
# OSV=path/to/advisories (a .json, a folder or an OSV all.zip) checks offline;
# AUDIT_ARGS=--offline skips pip-audit, --allow-incomplete accepts gaps.
audit: $(STAMP)
	$(BIN)/python -m tools.audit --src src --lock requirements.lock \
		--allowlist audit-allowlist.toml $(if $(OSV),--osv $(OSV)) $(AUDIT_ARGS)

clean:
	rm -rf $(VENV) .lms .pytest_cache .mypy_cache .ruff_cache .coverage
