# The two commands a newcomer needs: `make demo` and `make test` (both set the machine up first).
FT_PREFIX ?= /opt/failover-toolkit
FT_VOLTTRON_USER ?= volttron
VENV := $(FT_PREFIX)/venv
PY := $(VENV)/bin/python
SYSTEM ?= agent
PYTEST_ARGS ?=
export FT_PREFIX FT_VOLTTRON_USER
export FT_PLATFORM_VENV := $(FT_PREFIX)/platform-venv

# demo module per system (labs/, run from the repo root): make demo SYSTEM=core|agent|vrrp|docker|valet
DEMO_core := labs.core_demo
DEMO_agent := labs.agent_demo
DEMO_vrrp := labs.vrrp_demo
DEMO_docker := labs.docker_demo
DEMO_valet := labs.valet_demo

.PHONY: setup demo test lint bench clean-venv

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m $(DEMO_$(SYSTEM))

test: setup
	$(PY) -m ruff check .
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .

# make bench BENCH=vrrp (runs bench/vrrp.py as the module bench.vrrp, so the repo root and labs/ import);
# BENCH=chaos: 30-minute seeded fault schedules per system and mode (labs.chaos, docs/chaos.md); options through
# BENCH_ARGS, e.g. make bench BENCH=chaos BENCH_ARGS='--systems agent --modes simple --duration 600'
BENCH ?= failoveragent
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench.$(BENCH) $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV) $(FT_PREFIX)/platform-venv
