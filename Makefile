# Tidings — the two commands a new machine needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run serve test install install-dev browser promtool lint migrate seed clean

# uv is bootstrapped with pip into .tools/ when the machine does not have it.
$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==0.13.9

install: $(UV)
	$(UV) sync --frozen --no-dev --inexact

install-dev: $(UV)
	$(UV) sync --frozen

# The demo starts fresh each time (its times are relative to now); `make serve` keeps your data.
run: install
	$(BIN)/tidings db upgrade
	$(BIN)/tidings seed-demo --fresh
	@echo "Tidings is starting on http://$${HOST:-127.0.0.1}:$${PORT:-8000}"
	$(BIN)/tidings serve

serve: install
	$(BIN)/tidings db upgrade
	$(BIN)/tidings serve

# A Chromium for the browser tests: Debian's when present, else Playwright's own download.
browser: install-dev
	@if [ -x /usr/bin/chromium ] || [ -x /usr/lib/chromium/chromium ]; then \
		echo "Using the system Chromium"; \
	else \
		$(BIN)/playwright install chromium; \
	fi

# The real ActionCable and EventSource clients that tests/interop drives, at the versions pinned
# in its package-lock.json; reinstalled only when the lock file is newer than the install.
INTEROP_MODULES := tests/interop/node_modules/.package-lock.json
$(INTEROP_MODULES): tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund

# promtool checks the Prometheus config and the dashboard's queries (tests/observability/
# test_deploy_files.py): the machine's own, or the one binary unpacked from Debian's prometheus
# package into .tools/bin (nothing is installed, no service starts).
PROMTOOL := .tools/bin/promtool
promtool: $(PROMTOOL)
$(PROMTOOL):
	@mkdir -p .tools/bin
	@if command -v promtool >/dev/null 2>&1; then \
		ln -sf "$$(command -v promtool)" $@; \
	else \
		tmp=$$(mktemp -d) && cd $$tmp && \
		{ apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && \
		cd - >/dev/null && mv $$tmp/usr/bin/promtool $@ && rm -rf $$tmp; \
	fi
	@$@ --version | head -n1

test: install-dev browser promtool $(INTEROP_MODULES)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check tidings webapp jobs tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .tools var/tidings.db* tests/e2e/artifacts
