#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer over the module in a live server:
#   scripts/asan.sh                          both passes below (what scripts/test.sh runs)
#   scripts/asan.sh 'gtest filter' [leaks]   one pass over the chosen tests; "leaks" turns
#                                            LeakSanitizer on in the server
# Passes (each must run at least its floor of tests, and exactly the tests its filter lists):
#   commands     the suites that drive every command with good and bad input; leak checking off
#   persistence  the suites that write and read the module's RDB aux data and the AOF (restart,
#                DEBUG RELOAD, replicas' full sync, loading), then start-up (models loaded from
#                the command line, the CPU check) and ingest, with LeakSanitizer on in the server
#                (about 3.5 minutes on a loaded 2-core machine; cluster and failover stay out:
#                they take long)
# Builds build-asan (-DREDIS_INFER_SANITIZE=ON: the module, the engine, the tests), then runs the
# chosen integration tests against redis-server with GCC's ASan runtime preloaded. Any report
# from the module (a bad read or write, use after free, undefined behaviour, a leak) fails the
# run; the reports are printed from build-asan/asan/. Exits non-zero on either.
#
# How it works (as scripts/tsan.sh): redis-server is not rebuilt; ASan's runtime must be in the
# process from the start, so a wrapper (build-asan/redis-server-asan, passed as REDIS_SERVER)
# execs it with LD_PRELOAD=libasan.so, and the instrumented module is dlopen'ed later. Only the
# module's own code is instrumented (Redis's and llama.cpp's are not).
#
# Leak checking in the server (the persistence pass): Redis allocates through its own jemalloc,
# which ASan neither sees nor scans, so what LeakSanitizer checks at exit is what the module and
# llama.cpp allocated with malloc/new. Suppressions: tests/fuzz/lsan-server.supp, each explained
# there; the matched ones are printed. The commands pass keeps leak checking off: its servers are
# often shut down mid-generation or crash-tested, and it ran without it before.
#
# The canary first (tests/fuzz/asan_canary.c): a module with a deliberate heap overflow and a
# deliberate leak, loaded through the same wrapper with the same suppressions; both must be
# reported, or "no reports" below would mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

commands_filter='generate.*:outputs.*:rag.*:tokens.*:chat.*:models.*:malformed_gguf.*:command_fuzz.*:lifecycle.*:server_state.*:content_safety.*'
# A leading * also matches a parameterised suite's instantiation prefix (prefix/lifecycle_aof.*).
persistence_filter='*registry.*:*replication.*:*lifecycle_aof.*:*lifecycle_loading.*:*models_startup.*:*cpu_isa_startup.*:*ingest.*'
# pass name | gtest filter | leak checking in the server | the fewest tests it may run
if [ $# -ge 1 ]; then
    passes=("custom|$1|$([ "${2:-}" = leaks ] && echo 1 || echo 0)|1")
else
    passes=("commands|$commands_filter|0|60" "persistence|$persistence_filter|1|20")
fi

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all

# shellcheck source=scripts/sanitizer-common.sh
source scripts/sanitizer-common.sh
libasan=$(sanitizer_runtime libasan.so libasan8)

B=build-asan
mkdir -p "$B"
rm -rf "$B/asan" "$B/canary" && mkdir -p "$B/asan" "$B/canary"
# REDIS_INFER_ASAN_LEAKS=1 turns LeakSanitizer on, REDIS_INFER_ASAN_LOG moves the reports: the
# integration tests pass their environment on to the servers they start.
sanitizer_wrapper "$B/redis-server-asan" "$libasan" \
    "+log=\${REDIS_INFER_ASAN_LOG:-$PWD/$B/asan/redis}" \
    "ASAN_OPTIONS=\"detect_leaks=\${REDIS_INFER_ASAN_LEAKS:-0}:halt_on_error=1:log_path=\$log\"" \
    "LSAN_OPTIONS=\"suppressions=$PWD/tests/fuzz/lsan-server.supp:print_suppressions=1\"" \
    "UBSAN_OPTIONS=\"halt_on_error=1:print_stacktrace=1:log_path=\$log\""

asan_configure
cmake --build "$B" -j "${REDIS_INFER_JOBS:-2}" --target redis_infer integration_tests

# The canary: one server per bug (the overflow stops the server before any leak check).
gcc -fsanitize=address -fno-omit-frame-pointer -g -O1 -fPIC -shared -I"$REDIS_PREFIX/include" \
    tests/fuzz/asan_canary.c -o "$B/canary/canary.so"
canary() {  # canary <command>: runs it in a fresh server with leak checking on
    sanitizer_canary "$B/redis-server-asan" "$B/canary/canary.so" "$B/canary" "$1" \
        REDIS_INFER_ASAN_LEAKS=1 REDIS_INFER_ASAN_LOG="$PWD/$B/canary/report"
}
canary ASANCANARY.OVERFLOW
canary ASANCANARY.LEAK
if ! grep -qs 'ERROR: AddressSanitizer: heap-buffer-overflow' "$B"/canary/report.* ||
   ! grep -qs -A8 'ERROR: LeakSanitizer: detected memory leaks' "$B"/canary/report.* ||
   ! grep -qs 'in leak_one .*asan_canary.c' "$B"/canary/report.*; then
    echo "asan: the canary's overflow and leak were not both reported: ASan does not work in this set-up" >&2
    grep -hs -E '^(ERROR|SUMMARY)|asan_canary' "$B"/canary/report.* >&2 || true
    exit 1
fi
echo "asan: canary overflow and leak reported (the set-up detects both in module code)"

failed=0
for p in "${passes[@]}"; do
    IFS='|' read -r name filter leaks floor <<<"$p"
    # What the filter selects, counted before the run: a renamed suite must not mean 0 tests.
    listed=$(sanitizer_listed "$B/tests/integration_tests" "$filter")
    echo "asan: pass '$name' ($listed tests, leak checking $([ "$leaks" = 1 ] && echo on || echo off)): $filter"
    if [ "$listed" -lt "$floor" ]; then
        echo "asan: pass '$name' selects $listed tests, fewer than its floor of $floor: a suite was renamed or removed?" >&2
        failed=1
        continue
    fi
    log="$B/asan/tests-$name.log"
    start=$SECONDS
    set +e
    REDIS_INFER_ASAN_LEAKS=$leaks ASAN_OPTIONS=detect_leaks=0 "$B/tests/integration_tests" --gtest_filter="$filter" \
        --gtest_brief=1 2>&1 | tee "$log" | grep -E '^\[ *(FAILED|PASSED) *\]|tests? from .* ran'
    rc=${PIPESTATUS[0]}
    set -e
    ran=$(sed -n 's/^\[==========\] \([0-9]*\) tests\? from .* ran\..*/\1/p' "$log" | tail -1)
    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$log" | tail -1)
    echo "asan: pass '$name': ${ran:-0} ran, ${passed:-0} passed of $listed listed, exit code $rc, $((SECONDS - start)) s"
    if [ "$rc" -ne 0 ] || [ "${ran:-0}" -ne "$listed" ] || [ "${passed:-0}" -ne "$listed" ]; then
        failed=1
    fi
done

# Reports: a file holds a finding if it has an error or a runtime error; the persistence pass's
# files may hold only the list of suppressions matched, printed as information.
findings=$(grep -l -E '^(ERROR: |SUMMARY: )|runtime error' "$B"/asan/redis.* 2>/dev/null | sort || true)
if grep -qs '^Suppressions used:' "$B"/asan/redis.*; then
    echo "asan: leak suppressions matched (tests/fuzz/lsan-server.supp; count, bytes, suppression):"
    grep -h -A20 '^Suppressions used:' "$B"/asan/redis.* | awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ {n[$3] += $1; b[$3] += $2}
        END {for (s in n) printf "  %6d %9d %s\n", n[s], b[s], s}'
fi
if [ -n "$findings" ]; then
    echo "asan: reports from the server (full text in $B/asan/):"
    # shellcheck disable=SC2086  # one file name per word
    grep -h -E '^SUMMARY|runtime error' $findings | sort | uniq -c
    exit 1
fi
echo "asan: no reports from the server"
exit "$failed"
