# vla_deployment: one-command set-up, build, test and demo. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ENV := source $(ROOT)/tools/env.sh
READY := $(ROOT)/.ws/devel/.vla_built
LINT_PATHS := $(wildcard tools bench test vla_*/src vla_*/test vla_*/scripts)
TARGET ?= red cube

.PHONY: setup build test unit rostest lint demo bench train-policy evaluate clean help

help:
	@echo "make setup | build | test | lint | demo [TARGET='blue ball'] [MODEL=file] | bench | train-policy | evaluate | clean"

setup:
	@bash tools/setup.sh

# Set-up only when something is missing; a ready machine goes straight on.
$(READY):
	@bash tools/setup.sh

build: setup

test: $(READY)
	@bash tools/setup.sh >/dev/null
	@$(ENV) && python tools/run_tests.py

unit: $(READY)
	@$(ENV) && python tools/run_tests.py --only-unit

rostest: $(READY)
	@$(ENV) && python tools/run_tests.py --only-rostest

lint: $(READY)
	@$(ENV) && ruff check $(LINT_PATHS)
	@# Every imported module comes from ros-deps.txt, requirements.txt, the stdlib or the project.
	@$(ENV) && python tools/check_deps.py
	@$(ENV) && { catkin_lint -W2 --strict --offline -q $(addprefix .ws/src/,$(wildcard vla_*)) 2>&1; } \
		| { grep -v 'rosdep' || true; }
	@# The root package's folder holds every other package, whose node executables catkin_lint
	@# would blame on the root; each package installs its own, checked just above.
	@$(ENV) && { catkin_lint -W2 --strict --offline -q --ignore uninstalled_script .ws/src/vla_deployment 2>&1; } \
		| { grep -v 'rosdep' || true; }

demo: $(READY)
	@bash tools/setup.sh >/dev/null
	@$(ENV) && python tools/demo.py --target "$(TARGET)" $(if $(MODEL),--model "$(MODEL)")

bench: $(READY)
	@$(ENV) && for b in bench/bench_*.py bench/cloud_server_bench.py; do echo "== $$b"; python "$$b" || exit 1; done
	@# the optimised variants, built afresh (long: about 50 episodes x 2 phrasings per model)
	@$(ENV) && d="$$(mktemp -d)" && echo "== bench/optimize_variants.py --dir $$d/variants" \
		&& python bench/optimize_variants.py --dir "$$d/variants"

train-policy: $(READY)
	@$(ENV) && python -m vla_sim.train

evaluate: $(READY)
	@$(ENV) && python -m vla_sim.evaluate --episodes 50 --first-seed 100000

clean:
	rm -rf .ws .pytest_cache .ruff_cache
