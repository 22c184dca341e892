# Tollgate: `make run` brings the product up on the embedded default; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
PYTEST_ARGS ?=

.PHONY: install run test lint format docs bench smoke sandbox vendor clean

install: $(VENV)/.installed

# The virtualenv, exactly as locked in uv.lock (uv itself is pinned above and lives in the venv).
$(VENV)/.installed: pyproject.toml uv.lock
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --frozen --inexact --quiet
	@touch $@

run: install
	@DJANGO_DEBUG=$${DJANGO_DEBUG:-true} scripts/run.sh

# pytest exits 5 when it collects nothing: that is reported, not treated as a failure.
test: install
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "No tests were collected."; exit 0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	DJANGO_SETTINGS_MODULE=config.settings.test $(VENV)/bin/python manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The documentation site (docs/, mkdocs.yml) into site/; any warning (a broken link, a page not in the nav) fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

bench: install
	$(VENV)/bin/python -m bench

# Production as operators run it (deploy/smoke.py): nginx (Debian's) with TLS in front of two gunicorn nodes,
# a Celery worker and beat, a fresh PostgreSQL database and a Redis of its own, started from deploy/'s own
# files; a journey through the proxy, a race on one spend cap, then faults under load. Counts printed; exits
# non-zero when one that must be zero is not. Needs PostgreSQL on 127.0.0.1:5432 (SMOKE_POSTGRES), nginx,
# redis-server and openssl.
smoke: install
	$(VENV)/bin/python -m deploy.smoke

sandbox: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(VENV)/bin/python manage.py sandbox

# Browser libraries, exactly as locked in package-lock.json, copied into our static files and committed (so
# `make run` and CI need no npm). Chart.js's UMD build with its source map (whitenoise's manifest storage
# requires the file a sourceMappingURL names) and its licence, and the licence of the colour library it bundles.
CHARTJS := core/static/vendor/chartjs
vendor:
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(CHARTJS)
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map $(CHARTJS)/
	cp node_modules/chart.js/LICENSE.md $(CHARTJS)/LICENSE.md
	cp node_modules/@kurkle/color/LICENSE.md $(CHARTJS)/LICENSE-kurkle-color.md

clean:
	rm -rf $(VENV) var staticfiles site node_modules
