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
COLL_ROOT := build/collections
COLL_DIR := $(COLL_ROOT)/ansible_collections/unimon/stack
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLL_ROOT)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: test demo venv yamllint lint sanity unit render integration collection lab-build lab-up lab-down lab-status clean

venv: $(STAMP)
$(STAMP): requirements-dev.txt requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*; touch $@

# The checkout placed where Ansible looks for unimon.stack (ansible-test insists on this path).
collection: venv
	rm -rf $(COLL_DIR); mkdir -p $(COLL_DIR)
	git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' | xargs -0 cp --parents -t $(COLL_DIR)

test: yamllint lint sanity unit render integration
	@echo "make test: all tiers passed"

yamllint: venv
	$(BIN)/yamllint --strict .

lint: collection
	cd $(COLL_DIR) && $(CURDIR)/$(BIN)/ansible-lint --profile production --offline -q

sanity: collection
	cd $(COLL_DIR) && $(CURDIR)/$(BIN)/ansible-test sanity --python 3.11 --color no \
	  --skip-test pylint --skip-test validate-modules --skip-test import --skip-test mypy
	cd $(COLL_DIR) && $(CURDIR)/$(BIN)/ansible-test sanity --python 3.11 --color no --requirements \
	  --test validate-modules --test import

unit: collection
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

render: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider tests/render

integration: collection lab-build
	$(BIN)/pytest -q -p no:cacheprovider tests/integration

lab-build:
	lab/build.sh

lab-up: venv lab-build
	lab/up.sh

lab-down:
	lab/down.sh

lab-status:
	lab/status.sh

demo: collection lab-up
	$(BIN)/ansible-playbook -i lab/inventory.yml playbooks/site.yml
	$(BIN)/ansible-playbook -i lab/inventory.yml playbooks/verify.yml

clean:
	rm -rf build $(VENV)
