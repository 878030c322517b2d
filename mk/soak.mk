# mk/soak.mk — the long reliability run. Include it from the main Makefile, or run
#   make -f Makefile -f mk/soak.mk soak SOAK_SECONDS=60
# It uses PY and STAMP from the main Makefile.

SOAK_SECONDS           ?= 600
SOAK_FAULT_INTERVAL    ?= 30
SOAK_DURABILITY_ROUNDS ?= 100

.PHONY: soak
soak: $(STAMP) ## Soak: mixed load + a fault every 30 s (SOAK_SECONDS=600), then 100 SIGKILL-durability rounds and the flood p99 check
	$(PY) -u -m tests.reliability.soak --seconds $(SOAK_SECONDS) --fault-interval $(SOAK_FAULT_INTERVAL)
	SOAK_DURABILITY_ROUNDS=$(SOAK_DURABILITY_ROUNDS) $(PY) -m pytest -q -p no:cacheprovider \
	  -o timeout=1800 tests/reliability/test_durability.py
	SWITCHBOARD_FLOOD_P99_RATIO=2 $(PY) -m pytest -q -p no:cacheprovider tests/reliability/test_floods.py
