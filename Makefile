# The two commands of the README are `make run` and `make test`; the rest are their parts.
#   make deps    install every Debian package the build and tests need (root, only missing ones)
#   make build   release build at build/plateau
#   make run     build, initialise ./data on first use, serve on loopback
#   make test    unit tests (ASan+UBSan), integration tests against the sanitized daemon, fuzz smoke
#   make fuzz    longer fuzz runs (FUZZ_SECONDS per target, default 60)
#   make bench   benchmarks against peer systems; figures go to docs/performance.md
#   make clean   remove build directories
SHELL := /bin/bash
DATA ?= $(CURDIR)/data
HTTP ?= 127.0.0.1:8080
MQTT ?= 127.0.0.1:1883
HANDLE ?= 127.0.0.1:2641
FUZZ_SECONDS ?= 60
PYTHON ?= /usr/bin/python3
JOBS ?= $(shell nproc)

.PHONY: deps build build-san build-fuzz run test unit tsan integration fuzz-smoke fuzz bench clean format

# Tests that exercise threads, run again under ThreadSanitizer.
TSAN_TESTS = tsdb_concurrency_test tsdb_wal_test store_test auth_test ident_server_test

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLATEAU_TESTS=OFF >/dev/null
	@ninja --quiet -C build plateau

build-san: deps
	@cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DPLATEAU_SANITIZE=ON >/dev/null
	@ninja --quiet -C build-san

build-fuzz: deps
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DPLATEAU_FUZZ=ON >/dev/null
	@ninja --quiet -C build-fuzz

run: build
	@bash scripts/run.sh "$(DATA)" "$(HTTP)" "$(MQTT)" "$(HANDLE)"

unit: build-san
	@cd build-san && ctest --output-on-failure -j $(JOBS)

tsan: deps
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DPLATEAU_TSAN=ON >/dev/null
	@ninja --quiet -C build-tsan $(TSAN_TESTS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -R '^($(subst $(eval) ,|,$(TSAN_TESTS)))$$'

integration: build-san
	@PLATEAU_BIN=$(CURDIR)/build-san/plateau $(PYTHON) -m pytest -q tests/integration

fuzz-smoke: build-fuzz
	@bash scripts/fuzz.sh 10

fuzz: build-fuzz
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

test: unit tsan integration fuzz-smoke

bench: build
	@bash bench/run.sh

format:
	@clang-format -i src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c

clean:
	@rm -rf build build-san build-fuzz build-tsan
