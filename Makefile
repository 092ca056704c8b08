# unimon.stack developer entry points. Two commands matter for a newcomer:
#   make test   -- every test tier, stops at the first failure
#   make demo   -- bring up the local lab, run playbooks/site.yml, verify, print the result
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt requirements.txt | sha256sum | cut -c1-12)
# Outside the git tree: ansible-test would otherwise see every copied file as git-ignored.
COLL_ROOT := /tmp/unimon-build-$(shell echo $(CURDIR) | sha256sum | cut -c1-8)/collections
COLL_DIR := $(COLL_ROOT)/ansible_collections/unimon/stack
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PATH := $(abspath $(BIN)):$(PATH)

# CI logs show the slowest tests of each tier: the whole of make test must stay under 90 minutes.
PYTEST_DURATIONS ?= --durations=15

.PHONY: lab-real-up lab-real-down peers faults molecule lab-reset bench sanity-bootstrap test demo venv yamllint lint sanity unit render integration collection lab-build lab-up lab-down lab-status clean

venv: $(STAMP)
$(STAMP): requirements-dev.txt requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*; touch $@

# The checkout placed where Ansible looks for unimon.stack (ansible-test insists on this path).
collection: venv
	rm -rf $(COLL_DIR); mkdir -p $(COLL_DIR)
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t $(COLL_DIR)

# The lab tiers start from an empty lab (state from earlier runs could hide a missing step).
test: yamllint lint sanity unit lab-reset render integration peers molecule faults
	@echo "make test: all tiers passed"

lab-reset:
	lab/down.sh --purge

yamllint: venv
	$(BIN)/yamllint --strict .

lint: collection
	cd $(COLL_DIR) && $(abspath $(BIN))/ansible-lint --profile production --offline -q

# ansible-test bootstraps pip in each sanity virtualenv with a script from a host we cannot reach;
# give it our stand-in (tools/ansible_test_get_pip.py) and the pip wheel from PyPI.
ANSIBLE_TEST_PIP := 24.2
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
sanity-bootstrap: venv
	mkdir -p $(ANSIBLE_TEST_CACHE)
	ls $(ANSIBLE_TEST_CACHE)/pip-$(ANSIBLE_TEST_PIP)-*.whl >/dev/null 2>&1 || \
	  $(BIN)/pip download -q --no-deps --only-binary :all: -d $(ANSIBLE_TEST_CACHE) pip==$(ANSIBLE_TEST_PIP)
	cp tools/ansible_test_get_pip.py $(ANSIBLE_TEST_CACHE)/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py

sanity: collection sanity-bootstrap
	# --venv: each sanity test gets its pinned tools in its own virtualenv (kept under ~/.ansible/test).
	cd $(COLL_DIR) && $(abspath $(BIN))/ansible-test sanity --venv --python 3.11 --color no

unit: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_DURATIONS) tests/unit

render: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_DURATIONS) tests/render

integration: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_DURATIONS) tests/integration

# The real Fluentd and categraf on our rendered configuration; each test skips, saying why, unless
# UNIMON_PEER_FLUENTD / UNIMON_PEER_CATEGRAF name them (docs/testing.md).
peers: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider -rs $(PYTEST_DURATIONS) tests/peers

# Last: stops the lab's API server in the middle of a run (the lab is restarted after it).
faults: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_DURATIONS) tests/faults

# Acceptance as a user runs it: site.yml, again without changes, verify, uninstall (molecule/lab).
molecule: collection lab-up
	cd $(COLL_DIR) && $(abspath $(BIN))/molecule test -s lab

# Speed, as ratios against kubectl measured in the same run (not part of make test).
bench: collection lab-up
	$(BIN)/python bench/scrape_targets.py
	$(BIN)/python bench/deploy.py

# Inventory speed: unimon.stack.cluster against kubevirt.core.kubevirt on 2,000 VMIs and 100 nodes.
.PHONY: bench-inventory
bench-inventory: collection lab-up
	$(BIN)/python bench/inventory.py

lab-build:
	lab/build.sh

lab-up: venv lab-build
	lab/up.sh

lab-down:
	lab/down.sh

# The two real nodes (kubelet, containerd, runc) start with lab-up; these restart or remove only them.
lab-real-up: lab-up
	python3 lab/labctl.py real-up

lab-real-down:
	python3 lab/labctl.py real-down

lab-status:
	lab/status.sh

demo: collection lab-up
	$(BIN)/ansible-playbook -i lab/inventory.yml playbooks/site.yml
	# The stack's pods run on the lab's real nodes: prove the stack works.
	$(BIN)/ansible-playbook -i lab/inventory.yml playbooks/verify.yml

clean:
	rm -rf $(COLL_ROOT) $(VENV)
