# Two commands for users: `make serve` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# full install, .[dev] (serve + train + test tools), for `make test`
STAMP  := $(VENV)/.installed
# serve-only install, .[serve] (no torch), for `make serve`
SERVE_STAMP := $(VENV)/.installed-serve

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test install install-dev install-serve browser lint clean

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet "pip>=24"

# Reinstall only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The service needs only the [serve] extra (no torch, no dev tools). A current full install
# already contains it and is left as it is.
$(SERVE_STAMP): pyproject.toml | $(VENV)/bin/python
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then \
		echo "using the full (dev) install in $(VENV); it includes [serve]"; \
	else \
		echo "installing ssd-dehaze[serve] into $(VENV)"; \
		$(PY) -m pip install --quiet -e '.[serve]'; \
	fi
	@touch $(SERVE_STAMP)

install: $(STAMP)
install-dev: $(STAMP)
install-serve: $(SERVE_STAMP)

# Debian's chromium for the browser tests; skipped (tests then skip with a reason) where apt is unavailable.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "warning: could not install chromium; browser tests will be skipped"; \
	else echo "note: no chromium and no root apt; browser tests will be skipped"; fi

serve: $(SERVE_STAMP)
	$(VENV)/bin/dehaze serve --host $(HOST) --port $(PORT)

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
