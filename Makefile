# One virtualenv, made on first use and reused; every target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install demo test lint format bench clean lock manifests image

all: test

# Dependencies come from the lock files (pins resolved by pip-compile from pyproject.toml):
# requirements-dev.lock here, requirements.lock (runtime only, with hashes) in the image.
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	RELAY_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet -e '.[dev,broker]'
	touch $(STAMP)

# The hot-path modules compiled by mypyc in place (setup.py, relay/hotpath.py), again whenever
# one of their sources changes: a build older than its source is never run.
HOT_SOURCES := $(shell grep -o '"relay/[a-z_/]*\.py"' relay/hotpath.py | tr -d '"')
COMPILED    := $(VENV)/.compiled
$(COMPILED): $(STAMP) setup.py relay/hotpath.py $(HOT_SOURCES)
	find relay -name '*.so' -delete
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(COMPILED)

install: $(COMPILED)

demo: $(COMPILED)
	$(BIN)/relay demo

lint: $(COMPILED)
	$(BIN)/ruff format --check relay tests
	$(BIN)/ruff check relay tests
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

format: $(STAMP)
	$(BIN)/ruff format relay tests
	$(BIN)/ruff check --fix relay tests

# The throughput scenarios, then BENCHMARKS.md and its charts from every result in bench/results.
bench: $(COMPILED)
	RELAY_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet -e '.[dev,broker,bench]'
	$(BIN)/relay bench throughput
	$(BIN)/relay bench throughput --kind mobile
	$(BIN)/relay bench report

# After a change of pyproject.toml's dependencies or build requirements: re-resolve the lock
# files (the image's runtime, the development set, the image's build tools).
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra dev --extra broker -o requirements-dev.lock pyproject.toml
	$(BIN)/pip-compile --quiet --allow-unsafe --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links --build-deps-for wheel --only-build-deps \
		-o requirements-build.lock pyproject.toml

# The PrometheusRule and dashboard ConfigMap, from deploy/prometheus/alerts.yaml and
# grafana/conversion-relay.json.
manifests: $(STAMP)
	$(BIN)/python deploy/generate.py

VERSION ?= $(shell $(BIN)/python -c 'import relay; print(relay.__version__)' 2>/dev/null)
image:
	docker build --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse --short HEAD) -t conversion-relay:$(VERSION) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find relay -name '*.so' -delete
