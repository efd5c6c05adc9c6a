.PHONY: setup run test lint fmt clean vendor-assets

PORT ?= 8501
PYTEST_ARGS ?=
# Parallel test workers (pytest-xdist); 0 runs everything in this one process.
TEST_WORKERS ?= 2
BIN := .venv/bin

setup:
	command -v uv >/dev/null || python3 -m pip install --quiet uv
	uv sync --frozen

# The worker (scheduled jobs, the mail intake's SMTP receiver, the LINE outbox) runs beside
# the app and receives one sample dispatch mail for the demo.
# HIKESHI_PORT: without a configured HIKESHI_PUBLIC_BASE_URL, links point at this port.
run: export HIKESHI_PORT := $(PORT)
run: setup
	$(BIN)/python cli.py bootstrap
	$(BIN)/python cli.py worker --smtp --send-sample & WORKER=$$!; \
	trap 'kill $$WORKER 2>/dev/null' EXIT INT TERM; \
	$(BIN)/streamlit run server.py --server.port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# Compiled modules are cached (in .venv/pycache) even where PYTHONDONTWRITEBYTECODE is set:
# otherwise every worker, app server and subprocess compiles Streamlit, SQLAlchemy, pandas and
# the app from source again, 5-10 s of CPU each.
test: lint
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/.venv/pycache \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis test-results
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +

vendor-assets: setup
	$(BIN)/python scripts/vendor_assets.py --fetch
