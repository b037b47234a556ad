# The two commands of a fresh clone are `make run` and `make test`; everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
SHELL := bash
# pip repeats this machine's unreachable find-links folders once per package; the rest of its output stays.
PIP_QUIET := 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

.PHONY: run test lint format lock bench bench-fraud bench-journey bench-webhooks sandbox clean

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned requirements into $(VENV)/ (first run only)…"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip $(PIP_QUIET)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt $(PIP_QUIET)
	@rm -f $(VENV)/.installed-* && touch $@

## run: web, worker, beat and the Stripe sandbox on embedded defaults, with a demo account
run: $(STAMP)
	@$(PY) -m config.devserver

## test: the whole suite on the embedded PostgreSQL (or DATABASE_URL's) and Redis (CELERY_BROKER_URL)
test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: $(STAMP)
	@$(PY) -m ruff check --fix . && $(PY) -m ruff format .

## lock: re-pin requirements.txt after changing the ranges in pyproject.toml
lock: $(STAMP)
	@$(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	print('\n'.join(p['dependencies'] + p['optional-dependencies']['dev']))" > $(VENV)/requirements.in
	@$(PY) -m pip install --quiet --upgrade -r $(VENV)/requirements.in && $(PY) -m pip freeze > requirements.txt

## bench: usage ingestion over HTTP (gunicorn, 2 workers) vs psycopg executemany, and rating 100,000 periods
bench: $(STAMP)
	@$(PY) -m bench.ingest $(BENCH_ARGS)
	@$(PY) -m bench.rating

## bench-journey: 300 merchants through 14 months on the sandbox against the independent oracle (BENCH_ARGS="--merchants N --months M --seed S")
bench-journey: $(STAMP)
	@$(PY) -m bench.journey $(BENCH_ARGS)

## bench-fraud: the default fraud rules on a generated population (caught / honest blocked / review, signup p95)
bench-fraud: $(STAMP)
	@$(PY) -m bench.fraud_scenarios $(BENCH_ARGS)

## bench-webhooks: Stripe events via gunicorn + a Celery worker: acks/s vs a signature-only view, processed/s, Stripe reads per event, duplicates applied (BENCH_ARGS="--events N --accounts M --clients K")
bench-webhooks: $(STAMP)
	@$(PY) -m bench.webhooks $(BENCH_ARGS)

sandbox: $(STAMP)
	@$(PY) -m sandbox --port $${TOLLBOOTH_SANDBOX_PORT:-12111}

clean:
	rm -rf var $(VENV)
