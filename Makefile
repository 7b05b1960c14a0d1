# The two set-up commands on a fresh machine are `make demo` and `make test`; both create the venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv tools test lint demo clean

# Checkov (the IaC scanner tests/test_deploy_validators.py runs over the rendered overlays) pins dozens of
# libraries of its own, so it gets a venv of its own rather than sharing ours.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30

venv: $(STAMP)

# (Re)install when the pinned dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The outside DNS software the interop tests run against: the clients dig and kdig, and the recursive resolvers
# BIND (named), Unbound and Knot Resolver (kresd) that tests/resolver/test_recursors.py starts on loopback.
# Best effort: what is missing is installed with apt when we are root; without it those tests skip and say why.
# Installing starts no service: a policy-rc.d that denies every start is in place during the install (one is
# written and removed again when the system has none), and where systemd runs the new services are disabled.
TOOLS := dig:dnsutils kdig:knot-dnsutils named:bind9 unbound:unbound kresd:knot-resolver knotd:knot \
	promtool:prometheus docker-compose:docker-compose

tools:
	@PATH="$$PATH:/usr/sbin:/sbin"; missing=""; \
	for tool in $(TOOLS); do command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "note: not installed:$$missing (needs root and apt-get); the tests that use them will skip"; exit 0; fi; \
	policy=/usr/sbin/policy-rc.d; own_policy=""; \
	if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' >$$policy && chmod 755 $$policy && own_policy=1; fi; \
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  $$missing >/dev/null) || echo "note: could not install$$missing; the tests that use them will skip"; \
	if [ -n "$$own_policy" ]; then rm -f $$policy; fi; \
	services=""; for pkg in $$missing; do case $$pkg in \
	  bind9) services="$$services named";; unbound) services="$$services unbound unbound-resolvconf";; \
	  knot-resolver) services="$$services kresd.target kresd@1 kres-cache-gc";; \
	  knot) services="$$services knot";; prometheus) services="$$services prometheus";; esac; done; \
	if [ -n "$$services" ] && [ -d /run/systemd/system ]; then \
	  systemctl disable --now $$services >/dev/null 2>&1 || true; fi

$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

lint: venv
	$(BIN)/ruff check skydns resolver syncer devtools tests bench
	$(BIN)/mypy skydns resolver syncer devtools

test: lint tools $(CHECKOV)
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m devtools.demo

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info
