# The two commands of README.md. Python 3.11 is the only thing the machine must have.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test demo install install-test browser lint bench relying-party

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Installed again only when pyproject.toml changed (a stamp file per extra).
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

install-test: $(VENV)/.installed-test
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

serve: install
	$(BIN)/identity serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

demo: install
	$(BIN)/identity demo --port $${PORT:-8000} --sim-port $${SIM_PORT:-8001} --app-port $${APP_PORT:-8002}

# The browser tests drive Debian's Chromium (never `playwright install`); the CJK fonts make the
# Chinese in their screenshots legible. Installed when missing.
browser:
	@{ command -v chromium >/dev/null 2>&1 && dpkg -s fonts-noto-cjk >/dev/null 2>&1; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium fonts-noto-cjk; }

# The independent relying party of tests/test_provider_rp.py: npm's openid-client, as pinned by
# tests/rp/package-lock.json, installed again when the lock file changes. Without node the tests
# skip themselves.
RP := tests/rp
relying-party:
	@if command -v node >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(RP)/node_modules/.package-lock.json; \
	else echo "node not found: tests/test_provider_rp.py will be skipped"; fi

$(RP)/node_modules/.package-lock.json: $(RP)/package-lock.json $(RP)/package.json
	cd $(RP) && npm ci --no-audit --no-fund

test: install-test browser relying-party
	$(BIN)/ruff check identity tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: install-test
	$(BIN)/python -m benchmarks.authsync
	$(BIN)/python -m benchmarks.login
	$(BIN)/python -m benchmarks.flood
	$(BIN)/python -m benchmarks.password_flood
	$(BIN)/python -m benchmarks.validate
	$(BIN)/python -m benchmarks.introspect
	$(BIN)/python -m benchmarks.admin_members
