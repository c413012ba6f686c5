#!/usr/bin/env bash
# ThreadSanitizer over the module in a live server:
#   scripts/tsan.sh ['gtest filter']      (default 'generate.*:outputs.*:rag.*')
# Builds build-tsan with g++ -fsanitize=thread (the module, the integration tests and the tools
# they need), runs the chosen integration tests against redis-server started with GCC's TSan
# runtime preloaded, then prints each distinct race report once, with how often it was seen.
# Exits non-zero if a report was found, or if the filter selects no test. Full reports: build-tsan/tsan/report.<pid>.
#
# How it works, and its limits (docs/robustness.md):
# - redis-server is not rebuilt. TSan needs its runtime in the process from the start, so a
#   wrapper (build-tsan/redis-server-tsan, passed as REDIS_SERVER) execs it with
#   LD_PRELOAD=libtsan.so.2; the module, compiled with -fsanitize=thread, is dlopen'ed later and
#   resolves its __tsan_* calls there. GCC's runtime, not clang 14's: clang's shared TSan runtime
#   crashes at start-up when preloaded (SEGV even for an empty program) on this kernel.
# - Only the module's own code is instrumented. Redis's and llama.cpp's (static, g++, no TSan)
#   memory accesses are invisible, so a race between the module and either of them cannot be
#   reported; their locks and condition variables are still seen (pthread calls are intercepted),
#   so happens-before through them is known. Atomics inside llama.cpp's thread pool are not.
# - Redis's fork (BGSAVE, replication) under TSan: the forked child may not start threads, so
#   suites that fork are not part of the default filter.
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-'generate.*:outputs.*:rag.*'}

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all

# shellcheck source=scripts/sanitizer-common.sh
source scripts/sanitizer-common.sh
libtsan=$(sanitizer_runtime libtsan.so libtsan2)

B=build-tsan
mkdir -p "$B"
sanitizer_wrapper "$B/redis-server-tsan" "$libtsan"

tsan_flags="-fsanitize=thread -fno-omit-frame-pointer"
# shellcheck disable=SC2046  # deps_cmake_flags is a list of flags
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(deps_cmake_flags) \
    -DCMAKE_C_FLAGS="$tsan_flags" -DCMAKE_CXX_FLAGS="$tsan_flags" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
    -DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=thread -DREDIS_SERVER="$PWD/$B/redis-server-tsan" >/dev/null
cmake --build "$B" -j "${REDIS_INFER_JOBS:-2}" --target redis_infer integration_tests

rm -rf "$B/tsan" "$B/canary" && mkdir -p "$B/tsan" "$B/canary"

# The canary first: a module with a deliberate race must be reported, or "no reports" below
# would mean nothing (tests/fuzz/tsan_canary.c).
gcc -fsanitize=thread -g -O1 -fPIC -shared -I"$REDIS_PREFIX/include" tests/fuzz/tsan_canary.c -o "$B/canary/canary.so"
sanitizer_canary "$B/redis-server-tsan" "$B/canary/canary.so" "$B/canary" TSANCANARY.RACE \
    TSAN_OPTIONS="log_path=$PWD/$B/canary/report"
if ! grep -qs 'SUMMARY: ThreadSanitizer: data race .*tsan_canary.c' "$B"/canary/report.*; then
    echo "tsan: the canary race was not reported: TSan does not work in this set-up" >&2
    exit 1
fi
echo "tsan: canary race reported (the set-up detects races in module code)"

# What the filter selects, counted before the run: a filter that matches nothing (a renamed
# suite) must fail, not report "no races" over 0 tests.
listed=$(sanitizer_listed "$B/tests/integration_tests" "$filter")
if [ "$listed" -eq 0 ]; then
    echo "tsan: the filter '$filter' selects no tests" >&2
    exit 1
fi
export TSAN_OPTIONS="log_path=$PWD/$B/tsan/report halt_on_error=0 second_deadlock_stack=1 history_size=4 suppressions=$PWD/tests/fuzz/tsan.supp"
set +e
"$B/tests/integration_tests" --gtest_filter="$filter" 2>&1 | tee "$B/tsan/tests.log" | grep -E '^\[ *(OK|FAILED|PASSED|RUN) *\]'
tests_rc=${PIPESTATUS[0]}
set -e
passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$B/tsan/tests.log" | tail -1)
echo "tsan: ${passed:-0} of $listed listed tests passed (a failure under TSan's slowdown is reported, not fatal)"

# One line per distinct report: its SUMMARY line and the first frame of each of its stacks.
reports=$(find "$B/tsan" -name 'report.*' | sort)
if [ -z "$reports" ]; then
    echo "tsan: no reports (integration tests exit code $tests_rc)"
    exit 0
fi
echo "tsan: reports (count, kind and location, first frames of the two accesses):"
for f in $reports; do
    awk '/^WARNING: ThreadSanitizer:/ { frames = ""; n = 0 }
         /^    #0 / { n++; if (n <= 2) frames = frames " | " $2 " " $3 }
         /^SUMMARY: ThreadSanitizer:/ { sub(/^SUMMARY: ThreadSanitizer: /, ""); print $0 frames }' "$f"
done | sort | uniq -c | sort -rn
echo "tsan: full reports in $B/tsan/ (integration tests exit code $tests_rc)"
exit 1
