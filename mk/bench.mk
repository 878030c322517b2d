# mk/bench.mk — the benchmark suite (included from the main Makefile, after mk/tools.mk).
#
#   make bench         every case, 5 repetitions of 2 s each (under 10 minutes)
#   make bench-quick   the same cases, 3 repetitions of 0.5 s (under 2 minutes)
#   make bench-storage SQLite vs PostgreSQL (1 and 2 instances) vs the raw echo (bench/storage.py)
#   make bench-echo    the raw echo, sync thread pool vs grpc.aio, at 1/10/50 connections
#
# Both print the markdown table and write bench/results/latest.{json,md} (gitignored), with
# each process's log in bench/results/logs/. Load comes from ghz (pinned in mk/tools.mk) and
# bench/_loadgen.py; the registry's peer is Debian's etcd, started by the bench itself.

BENCH_TOOLS := tools-ghz tools-etcd

.PHONY: bench bench-quick bench-auth bench-storage
bench: $(STAMP) $(BENCH_TOOLS) ## Benchmarks: calls through discovery, the registry vs etcd, raw grpcio baselines
	$(PY) -m bench

bench-quick: $(STAMP) $(BENCH_TOOLS) ## The same benchmark cases, fewer and shorter repetitions (BENCH_QUICK=1)
	BENCH_QUICK=1 $(PY) -m bench

bench-auth: $(STAMP) ## Server CPU per call of authorization (HS256/RS256/ES256, cache warm), alone
	$(PY) -m bench.auth_cost

bench-storage: $(STAMP) tools-postgres ## SQLite vs PostgreSQL (1 and 2 instances) vs the raw echo, one run
	$(PY) -m bench.storage

.PHONY: bench-echo
bench-echo: $(STAMP) tools-ghz ## Raw echo: sync thread-pool server vs grpc.aio, ghz at 1, 10 and 50 connections
	$(PY) -m bench.echo_sweep

.PHONY: bench-obs
bench-obs: $(STAMP) ## Server CPU µs per GetUser with metrics, tracing and the access log each off and on
	$(PY) -m bench._obs_cost
