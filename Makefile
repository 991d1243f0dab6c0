# The two commands of README.md. Python 3.11 is the only thing the machine must have.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test demo install install-test lock browser lint bench relying-party peer

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Every install takes exactly the locked versions, hashes checked, with plain pip:
# requirements.lock is the service's dependency tree (what the image installs),
# requirements-test.lock adds the test tools (tests, lint, benchmarks), requirements-build.lock
# pins the build backend. `make lock` refreshes them from pyproject.toml's ranges. Installed
# again only when a lock or pyproject.toml changed (a stamp file per extra).
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
BUILD_LOCK := requirements-build.lock
PIP_LOCKED := $(BIN)/pip install -q --require-hashes
PIP_PROJECT := $(BIN)/pip install -q --no-deps --no-build-isolation -e .

install: $(VENV)/.installed
$(VENV)/.installed: $(LOCK) $(BUILD_LOCK) pyproject.toml | $(BIN)/python
	$(PIP_LOCKED) -r $(BUILD_LOCK) -r $(LOCK)
	$(PIP_PROJECT)
	touch $@

install-test: $(VENV)/.installed-test
$(VENV)/.installed-test: $(TEST_LOCK) $(LOCK) $(BUILD_LOCK) pyproject.toml | $(BIN)/python
	$(PIP_LOCKED) -r $(BUILD_LOCK) -r $(TEST_LOCK)
	$(PIP_PROJECT)
	touch $@ $(VENV)/.installed

# The lock files, for Python 3.11 on linux x86_64, resolved on PyPI by uv (installed in the
# venv for this alone). Versions already locked stay while pyproject.toml still allows them;
# `make lock UPGRADE=1` takes the newest that it allows. The service's lock is the test lock's
# subset, so both install the same versions.
UV_VERSION := 0.13.9
LOCK_FLAGS = --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	--quiet --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock: | $(BIN)/python
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra test $(LOCK_FLAGS) -o $(TEST_LOCK)
	$(BIN)/uv pip compile pyproject.toml -c $(TEST_LOCK) $(LOCK_FLAGS) -o $(LOCK)
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(BIN)/uv pip compile - $(LOCK_FLAGS) -o $(BUILD_LOCK)

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

# The peer benchmarks/peer.py measures identity against: npm's oidc-provider, as pinned by
# benchmarks/node_peer/package-lock.json (installed again when the lock file changes), and
# Debian's wrk, the load generator (installed when missing).
PEER := benchmarks/node_peer
peer:
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q wrk; }
	@if command -v node >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(PEER)/node_modules/.package-lock.json; \
	else echo "node not found: benchmarks.peer cannot run"; fi

$(PEER)/node_modules/.package-lock.json: $(PEER)/package-lock.json $(PEER)/package.json
	cd $(PEER) && npm ci --no-audit --no-fund

test: install-test browser relying-party
	$(BIN)/ruff check identity tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: install-test peer
	$(BIN)/python -m benchmarks.authsync
	$(BIN)/python -m benchmarks.login
	$(BIN)/python -m benchmarks.flood
	$(BIN)/python -m benchmarks.password_flood
	$(BIN)/python -m benchmarks.validate
	$(BIN)/python -m benchmarks.introspect
	$(BIN)/python -m benchmarks.admin_members
	$(BIN)/python -m benchmarks.scale --members 200000 --tenants 1000
	$(BIN)/python -m benchmarks.peer
	$(BIN)/python -m benchmarks.directory

# Two replicas and two workers on PostgreSQL behind a proxy under mixed traffic for
# LOAD_SECONDS (600 unless set); exits 1 when a target is missed (README, Benchmarks).
.PHONY: load
load: install-test
	$(BIN)/python -m benchmarks.load
