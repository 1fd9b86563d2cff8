# One place for the commands. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
KEYWORDS := -k notice -k N_ -k t -k PluralMsg:1,2 --no-default-keywords

.PHONY: demo test venv lint messages bench check-wheel clean

$(BIN)/votz: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/votz

venv: $(BIN)/votz

demo: venv  ## the console demo on SQLite with the example campaigns
	$(BIN)/votz chat

test: venv  ## the whole test suite (SQLite and PostgreSQL)
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check bot tests bench
	$(BIN)/mypy

messages: venv  ## extract keys, update every catalog, compile (commit the results)
	$(BIN)/pybabel extract -F babel.cfg $(KEYWORDS) --omit-header --sort-by-file -o locales/messages.pot .
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete -w 100
	$(BIN)/pybabel compile -d locales -D messages --statistics

bench: venv
	$(BIN)/python bench/inbound.py

check-wheel:  ## a plain (non-editable) install ships flows, campaigns and catalogs
	rm -rf build/wheel-venv
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/pip install --quiet .
	cd build && printf 'bonjour\n2\n' | wheel-venv/bin/votz --database-url sqlite:///wheel.db chat | grep -q "To take part, we keep your account ID" \
	  || { echo "the installed wheel does not hold a conversation"; exit 1; }
	cd build && wheel-venv/bin/votz flows check
	rm -rf build/wheel-venv build/wheel.db*

clean:
	rm -rf $(VENV) votz.db votz.db-wal votz.db-shm
