# MangaHub developer entry points. Every target creates the virtualenv it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Running needs the runtime dependencies only; the development tools (linters, test
# runners) come with the first target that needs them.
RUNTIME_STAMP := $(VENV)/.installed-runtime
PYTEST := $(BIN)/pytest -q -p no:cacheprovider
# The browser tests drive Debian's Chromium and inject axe-core (pinned by package-lock.json).
BROWSER_STAMP := node_modules/.installed

.PHONY: run test test-sqlite test-postgres native check lint typecheck format bench lock clean proto proto-check

$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP) $(RUNTIME_STAMP)

$(RUNTIME_STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(RUNTIME_STAMP)

$(BROWSER_STAMP): package-lock.json scripts/install-browser.sh
	bash scripts/install-browser.sh
	touch $(BROWSER_STAMP)

## run: serve every part on the embedded default (SQLite + bundled catalog under ./data)
run: $(RUNTIME_STAMP)
	$(BIN)/python scripts/build_native.py
	$(BIN)/mangahub serve

## native: compile the hottest pure modules with mypyc (a C compiler is needed; without
## one, or while a compiled module's source has changed since, its source is used)
native: $(RUNTIME_STAMP)
	$(BIN)/python scripts/build_native.py --require

## test: the whole suite on SQLite + in-process bus and on PostgreSQL + Redis, side by side
## (the suite mostly waits on sockets and timers, so two runs take the time of one)
test: $(STAMP) $(BROWSER_STAMP) native
	$(MAKE) -j2 --output-sync=target test-sqlite test-postgres

test-sqlite: $(STAMP)
	MANGAHUB_TEST_BACKEND=sqlite $(PYTEST)

test-postgres: $(STAMP)
	MANGAHUB_TEST_BACKEND=postgres $(PYTEST)

## check: lint, type-check, and the committed gRPC stubs match the .proto
check: lint typecheck proto-check

## proto: regenerate the committed gRPC stubs (src/mangahub/v1) from proto/
PROTOS := proto/mangahub/v1/manga.proto
PROTOC := $(BIN)/python -m grpc_tools.protoc -Iproto
proto: $(STAMP)
	$(PROTOC) --python_out=src --pyi_out=src --grpc_python_out=src $(PROTOS)

proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PROTOC) --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find mangahub -type f); do \
		cmp -s "$$tmp/$$f" "src/$$f" || { echo "src/$$f is stale: run make proto" >&2; exit 1; }; \
	done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

bench: $(STAMP)
	$(BIN)/python bench/http_bench.py

## lock: re-pin dependencies after editing pyproject.toml
lock: $(STAMP)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile -q pyproject.toml --extra native -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --extra native --extra dev -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
