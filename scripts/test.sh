#!/usr/bin/env bash
# The whole test suite: checks every package-registry route from an empty directory (a warm cache
# must not hide a broken install), builds everything it needs (third-party parts cached outside
# the clone), checks the layering rule, runs unit, tool and integration tests with ctest, then the engine
# unit tests again under ASan+UBSan, the module under ASan+UBSan in a live server for the
# command suites and, with LeakSanitizer, the RDB/AOF/replication, start-up and ingest suites
# (scripts/asan.sh), then each libFuzzer target for 10 s from the seed corpus in tests/fuzz/corpus
# (scripts/fuzz.sh).
# A step that ran nothing fails: ctest --no-tests=error, asan.sh's test counts and canary,
# fuzz.sh's instrumentation check.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_packages
scripts/check-routes.sh
deps_all
# Which redis-server every test below starts (scripts/deps.sh: a system 8.x on PATH wins over the
# pinned build); the ctest list names it again (redis_server_used_by_the_tests_is_v<version>).
echo "test.sh: redis-server $REDIS_SERVER (v=${REDIS_SERVER_VERSION:-unknown}; pinned build: $REDIS_DEB_VERSION)"

# Configure quietly, but show CMake's output when it fails: configure <build-dir> <cmake args>.
configure() {
    local dir=$1; shift
    mkdir -p "$dir"
    cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log" >&2; return 1; }
}

# The engine never includes Redis (docs/architecture.md): it must stay usable and testable without it.
if grep -rn 'redismodule\.h' src/engine; then
    echo "src/engine must not include redismodule.h" >&2
    exit 1
fi

# The engine reports typed errors (src/engine/errors.h); only src/commands/errors.cpp words them.
# A string literal in the engine naming a command, an option or a reply code is a message
# written in the wrong layer. Log lines (log_msg) are the operator's, not a client's.
if grep -nE '"[^"]*(\bINFER\.[A-Z]|\bERR |\b(MAX_TOKENS|TRUNCATE|EMBEDDING|BATCH|CTX|SLOTS|GPU_LAYERS|PROMPT|TEXT|STORE|STREAM|TIMEOUT|WITHMETA|NO_CACHE|NO_SPECIAL)\b)' \
        src/engine/*.cpp src/engine/*.h | grep -vE '^[^:]+:[0-9]+:\s*//|log_msg\('; then
    echo "src/engine must not word client-facing messages (command or option names above): use engine_error" >&2
    exit 1
fi

# The tests are switched on explicitly (REDIS_INFER_TESTS is a cached option: a build folder once
# configured without them would stay that way), and the paths deps_all exported are passed too,
# so a cached REDIS_SERVER or LLAMA_PREFIX from an earlier run cannot linger.
# shellcheck disable=SC2046  # deps_cmake_flags is a list of flags
configure build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(deps_cmake_flags) -DREDIS_INFER_TESTS=ON \
    -DLLAMA_PREFIX="$LLAMA_PREFIX" -DREDIS_PREFIX="$REDIS_PREFIX" -DREDIS_SERVER="$REDIS_SERVER"
cmake --build build
# --no-tests=error: a build that registered no tests fails instead of passing with 0 of 0.
(cd build && ctest --output-on-failure --no-tests=error --timeout 600)

# build-asan is configured once, as scripts/asan.sh uses it (scripts/sanitizer-common.sh).
# shellcheck source=scripts/sanitizer-common.sh
source scripts/sanitizer-common.sh
asan_configure
cmake --build build-asan --target unit_tests
# The glob builds every unit test file; a floor (55 tests when it was set) catches the rest.
n_unit=$(build-asan/tests/unit_tests --gtest_list_tests | grep -c '^  ' || true)
[ "$n_unit" -ge 50 ] || { echo "test.sh: build-asan/tests/unit_tests lists $n_unit tests, expected at least 50" >&2; exit 1; }
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-asan/tests/unit_tests
# The module itself under ASan+UBSan inside redis-server: the suites that drive every command
# with good and bad input, then the persistence suites (RDB aux data, AOF, replication), start-up
# and ingest with leak checking on in the server. Each pass must run every test its filter lists.
scripts/asan.sh

# libFuzzer targets (token blobs, model paths, GGUF loading) for a bounded time each; longer by
# hand with scripts/fuzz.sh 600. scripts/tsan.sh runs the module under TSan (by hand).
scripts/fuzz.sh 10
