# Runyard's single entry point for building, running and testing.
GO       ?= go
BIN      := bin/runyard
# `work` is every package of every module in go.work.
PKGS     := work
TEST_FLAGS ?= -count=1 -timeout 9m

.PHONY: run build test test-race test-docker lint fmt tidy bench bench-large docker clean

## run: build and start the whole system in one process on :6789 (embedded NATS and store)
run: build
	./$(BIN) standalone

## build: build bin/runyard
build:
	$(GO) build -trimpath -o $(BIN) ./services/standalone

## test: every test of every module, on embedded NATS and an embedded MongoDB-wire server
test:
	$(GO) test $(TEST_FLAGS) $(PKGS)

## test-race: the tests under the race detector
test-race:
	$(GO) test -race $(TEST_FLAGS) $(PKGS)

## test-docker: the tests against MongoDB started by testcontainers (needs a Docker engine)
test-docker:
	RUNYARD_TEST_DOCKER=1 $(GO) test -tags docker $(TEST_FLAGS) $(PKGS)

## lint: formatting and vet
lint:
	@out=$$(gofmt -l libs services); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags docker ./libs/testenv/

## fmt: format the code
fmt:
	gofmt -w libs services

## tidy: tidy every module
tidy:
	for m in libs services/gateway services/executor services/syncworker services/notifier services/standalone services/bench; do (cd $$m && $(GO) mod tidy) || exit 1; done

## bench: the load tool on bin/runyard standalone (quick profile; table on stdout, figures in
## bench-results.json; see docs/performance.md), then the Go benchmarks of the hot paths and the
## end-to-end path (large-store reads on 20,000 runs; make bench-large for a million); then the
## Airflow sync of 1,000 DAGs / 50,000 runs / 250,000 task instances (BenchmarkSyncLarge, about
## 1 more minute; RUNYARD_BENCH_SYNC_DAGS scales it). All of it in under 5 minutes on 2 cores.
bench: build
	$(GO) build -trimpath -o bin/runyard-bench ./services/bench
	./bin/runyard-bench --profile quick --out bench-results.json
	RUNYARD_BENCH_RUNS=$${RUNYARD_BENCH_RUNS:-20000} $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 20m $(PKGS)
	RUNYARD_BENCH_SYNC=1 $(GO) test -run '^$$' -bench SyncLarge -benchtime 1x -count=1 -timeout 15m ./services/syncworker/

## bench-large: the large-store reads on 1,000,000 runs (several minutes to build the store)
bench-large:
	RUNYARD_BENCH_RUNS=1000000 $(GO) test -run '^$$' -bench LargeStore -benchtime 500x -count=1 -timeout 30m ./libs/sqlitestore/

## docker: build the container image
docker:
	docker build -f deployments/Dockerfile -t runyard:latest .

clean:
	rm -rf bin runyard-data bench-results.json
