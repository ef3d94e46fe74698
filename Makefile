# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: install run test lint format lock bench bench-backtest bench-orders bench-walk-forward bench-api bench-chaos clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

## install: create .venv and install the project with its dev extras (quick when nothing changed)
install: $(STAMP)

## run: migrate the embedded SQLite database, seed demo data, start web + worker + beat (Ctrl-C stops all)
run: install
	PORT=$(PORT) $(PY) manage.py run_platform

## test: the static checks (make lint), then the whole suite (Postgres, Redis and chromium are started/installed by scripts/test.sh)
test: install lint
	bash scripts/test.sh

## lint: ruff (lint and format), mypy (strict) and the import layers (lint-imports, .importlinter); the same as the pre-commit hooks
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## lock: re-resolve the pinned dependencies and rewrite requirements.lock
lock:
	rm -rf /tmp/quant-lock-venv && $(PYTHON) -m venv /tmp/quant-lock-venv
	/tmp/quant-lock-venv/bin/pip install -q -e '.[dev]'
	{ echo "# Full resolved set, used as pip constraints by 'make install'. Regenerate with 'make lock'."; \
	  /tmp/quant-lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock

## bench: the ingestion benchmark against Postgres (prints bars/s and the ratio to raw COPY)
bench: install
	$(PY) benchmarks/ingest.py

## bench-backtest: both engine paths against backtesting.py and vectorbt (peers installed apart, in benchmarks/.venv-peers)
bench-backtest: install
	@test -d benchmarks/.venv-peers || $(PY) -m pip install -q --no-deps --target benchmarks/.venv-peers -r benchmarks/requirements.txt
	$(PY) benchmarks/backtest_speed.py

## bench-orders: order path latency against Postgres: the risk check alone, and signal → Alpaca acknowledgement (10,000 orders each)
bench-orders: install
	$(PY) benchmarks/order_path.py

## bench-walk-forward: 20 rolling windows x 24 grid points on 10 years of daily bars, 1 then 2 Celery workers over Redis
bench-walk-forward: install
	$(PY) benchmarks/walk_forward.py

## bench-api: /v1 metrics, positions and orders under 50 concurrent clients (10,000 positions, 100,000 orders, daphne on loopback)
bench-api: install
	$(PY) benchmarks/api_load.py

## bench-chaos: 3 minutes of paper orders, backtests and walk-forwards while web, worker and beat are killed and PostgreSQL/Redis connections dropped; fails if anything is lost, duplicated or stuck (SEED=n, MINUTES=n)
bench-chaos: install
	$(PY) benchmarks/chaos.py --minutes $${MINUTES:-3} --seed $${SEED:-1}

clean:
	rm -rf $(VENV) var/ .pytest_cache .mypy_cache .ruff_cache .hypothesis .schemathesis
