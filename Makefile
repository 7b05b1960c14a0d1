# The two set-up commands on a fresh machine are `make demo` and `make test`; both create the venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv tools test lint demo clean

venv: $(STAMP)

# (Re)install when the pinned dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The outside DNS clients the interop tests check against (dig, kdig). Best effort: installed with apt when
# missing and we are root; without them those tests skip and say why.
tools:
	@if ! command -v dig >/dev/null || ! command -v kdig >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq dnsutils knot-dnsutils >/dev/null) \
	      || echo "note: could not install dig/kdig; interop tests will skip"; \
	  else echo "note: dig/kdig not installed; interop tests will skip"; fi; \
	fi

lint: venv
	$(BIN)/ruff check skydns resolver syncer devtools tests bench
	$(BIN)/mypy skydns resolver syncer devtools

test: lint tools
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m devtools.demo

clean:
	rm -rf $(VENV) build *.egg-info
