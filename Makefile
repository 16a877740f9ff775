# The two commands of the README's quickstart are `make serve` and `make test`; each creates
# the virtual environment on first use. Everything else here is for developers and CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data

.PHONY: serve test lint generate check-generated bench clean

$(BIN)/colending-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

serve: $(BIN)/colending-gateway
	$(BIN)/colending-gateway serve --data-dir $(DATA_DIR)

test: $(BIN)/colending-gateway
	$(BIN)/pytest --cov --cov-report=term:skip-covered

lint: $(BIN)/colending-gateway
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy colending_core gateway partners
	npx --yes @bufbuild/buf@1.75.0 lint

generate: $(BIN)/colending-gateway
	$(BIN)/python scripts/generate_protos.py

check-generated: $(BIN)/colending-gateway
	$(BIN)/python scripts/generate_protos.py --check

bench: $(BIN)/colending-gateway
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
