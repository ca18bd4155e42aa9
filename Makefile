# herald - the README's commands. Everything is built by CMake under build/.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DHERALD_WERROR=ON
endif

.PHONY: all deps build run test test-asan bench fuzz clean install

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Quiet until herald's banner: the build prints one line, or its log when it
# fails. Ctrl-C (SIGINT) or SIGTERM stops herald gracefully; it exits 0 and
# make reports no error.
run: deps
	@mkdir -p $(BUILD)
	@{ cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) && \
	   cmake --build $(BUILD) -j $(JOBS); } >$(BUILD)/build.log 2>&1 || \
	 { cat $(BUILD)/build.log; echo "make run: the build failed (log: $(BUILD)/build.log)" >&2; exit 1; }
	@echo "built $(BUILD)/herald (log: $(BUILD)/build.log)"
	@scripts/run.sh $(BUILD)/herald

# Java and Maven (for the real Kafka broker) are required under CI; a developer
# who cannot install them gets the Kafka tests reported as skipped, with why.
test: build
	@scripts/deps.sh --test || [ "$(CI)" != true ] || exit 1
	cd $(BUILD) && ctest --output-on-failure -j 2 $(CTEST_ARGS)
	@grep -h '^SKIP:' $(BUILD)/Testing/Temporary/LastTest.log 2>/dev/null | sed 's/^SKIP:/skipped:/' || true
ifeq ($(CI),true)
	$(MAKE) test-asan
endif

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, except
# the slow Kafka fault and failover tests (they run in `make test`).
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j 2 -LE '^(fault|failover)$$' $(CTEST_ARGS)

# libFuzzer targets (tests/fuzz) built with clang in their own build dir, each
# run for FUZZ_SECONDS on a copy of its seed corpus; fails on a crash.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh --fuzz
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

# The binary, the man page, the systemd unit, a sample configuration (kept
# when one is installed already), the dashboard and the alert rules, under
# PREFIX and DESTDIR (cmake/install.cmake lists where each goes).
PREFIX ?= /usr/local
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

bench: build
	@scripts/bench.sh $(BUILD)/herald

clean:
	rm -rf $(BUILD) build-asan build-fuzz
