# mailguard: `make run` starts the gateway with the default config; `make test` runs the suite.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= config/mailguard.toml

.PHONY: run test test-fast lint bench eval check-config screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run:
	scripts/system-deps.sh run
	$(MAKE) $(STAMP)
	$(VENV)/bin/mailguard serve --config $(CONFIG)

check-config: $(STAMP)
	$(VENV)/bin/mailguard check-config --config $(CONFIG)

lint: $(STAMP)
	$(VENV)/bin/ruff check mailguard tests bench

test:
	scripts/system-deps.sh test
	$(MAKE) $(STAMP)
	$(VENV)/bin/ruff check mailguard tests bench
	$(PY) -m pytest -q -p no:cacheprovider
	# Every test that starts a gateway or a milter, again on PostgreSQL (a server the tests
	# start themselves, tests/pgserver.py); tests/conftest.py picks them by fixture.
	MAILGUARD_TEST_STORE=postgresql $(PY) -m pytest -q -p no:cacheprovider

test-fast:   # the in-process tests only, for a developer's loop; `make test` runs them all
	scripts/system-deps.sh test
	$(MAKE) $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not process"

bench:
	scripts/system-deps.sh bench
	$(MAKE) $(STAMP)
	$(PY) bench/run.py

eval: $(STAMP)
	$(PY) -m pip install -q better-profanity alt-profanity-check scikit-learn
	$(PY) bench/language_eval.py
	$(PY) bench/misdirected_eval.py

screenshots:   # the review desk's main pages, for the README (Debian's chromium)
	scripts/system-deps.sh test
	$(MAKE) $(STAMP)
	MAILGUARD_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q -p no:cacheprovider tests/test_desk_browser.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
