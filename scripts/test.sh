#!/usr/bin/env bash
# The whole test suite: checks every package-registry route from an empty directory (a warm cache
# must not hide a broken install), builds everything it needs (third-party parts cached outside
# the clone), checks the layering rule, runs unit, tool and integration tests with ctest, then the engine
# unit tests again under ASan+UBSan, the module under ASan+UBSan in a live server for the
# command suites (scripts/asan.sh), then each libFuzzer target for 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_packages
scripts/check-routes.sh
deps_all

# The engine never includes Redis (DESIGN.md): it must stay usable and testable without it.
if grep -rn 'redismodule\.h' src/engine; then
    echo "src/engine must not include redismodule.h" >&2
    exit 1
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(deps_cmake_flags) >/dev/null
cmake --build build
(cd build && ctest --output-on-failure --timeout 600)

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DREDIS_INFER_SANITIZE=ON >/dev/null
cmake --build build-asan --target unit_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-asan/tests/unit_tests
# The module itself under ASan+UBSan inside redis-server, for the suites that drive every
# command with good and bad input (about 2 minutes).
scripts/asan.sh

# libFuzzer targets (token blobs, model paths, GGUF loading) for a bounded time each; longer by
# hand with scripts/fuzz.sh 600. scripts/tsan.sh runs the module under TSan (by hand).
scripts/fuzz.sh 10
