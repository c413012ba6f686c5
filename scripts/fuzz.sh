#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang in build-fuzz and runs each for a while:
#   scripts/fuzz.sh [seconds-per-target]      (default 20; scripts/test.sh runs it with 10)
# Prints executions, new corpus units and crashes per target; exits non-zero on any crash
# (an invariant failure, a sanitizer report, a leak, a timeout or an out-of-memory).
#
# Invariants:
# - clang and its sanitizer runtimes come from Debian (clang, libclang-rt-<ver>-dev), installed
#   only when missing and never with REDIS_INFER_NO_APT=1, as scripts/deps.sh does.
# - Only build-fuzz is touched. Each run starts from the seed corpus kept in the repository
#   (tests/fuzz/corpus/<gguf|tokens|path>: generated files only - gguf_seed's micro models, the
#   token-blob and model-path seeds; a few KB each) plus the crash reproductions and the test
#   models cut to 1 and 4 KiB (build-fuzz/seeds); what it finds grows build-fuzz/corpus/<target>
#   from run to run; crash inputs land in build-fuzz/artifacts. Reproduce one with:
#   build-fuzz/tests/fuzz/<target> <file>. The micro models in tests/fuzz/corpus/gguf must be
#   what gguf_seed writes today (checked each run; the message says how to refresh them). The
#   token-blob and model-path seeds are the hand-written ones plus units merged from longer runs:
#   build-fuzz/tests/fuzz/<target> -merge=1 tests/fuzz/corpus/<dir> build-fuzz/corpus/<target>
#   (keep the whole corpus to a few hundred KB; never pass tests/fuzz/corpus first otherwise).
# - llama.cpp's GGUF parsers are instrumented from LLAMA_SRC (tests/fuzz/CMakeLists.txt): without
#   them the fuzzer gets no coverage from the code it mutates input for and ASan does not check
#   its reads. A missing LLAMA_SRC fails the run; REDIS_INFER_FUZZ_UNINSTRUMENTED=1 lets it go on
#   uninstrumented (by hand, with a warning in the summary).
# - llama.cpp asserts raised where the module guards them (loading, tokenizing) are refused,
#   not crashes; fuzz_gguf_load lists them by site. tests/fuzz/crashes/README.md has the inputs
#   that aborted Redis before the guard.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [seconds-per-target]" >&2; exit 2; }

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all

fuzz_log() { printf '[fuzz] %s\n' "$*" >&2; }

# True if clang++ can link a libFuzzer binary with ASan and UBSan.
fuzz_toolchain_ok() {
    command -v clang++ >/dev/null || return 1
    local d; d=$(mktemp -d)
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' >"$d/t.cpp"
    clang++ -fsanitize=fuzzer,address,undefined "$d/t.cpp" -o "$d/t" 2>/dev/null
    local rc=$?
    rm -rf "$d"
    return $rc
}

fuzz_packages() {
    fuzz_toolchain_ok && return 0
    if [ "${REDIS_INFER_NO_APT:-0}" = 1 ]; then
        fuzz_log "clang++ with libFuzzer is missing and REDIS_INFER_NO_APT=1: install clang and libclang-rt-<ver>-dev"
        return 1
    fi
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    if ! command -v clang++ >/dev/null; then
        fuzz_log "installing Debian package clang"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang >/dev/null
    fi
    local ver; ver=$(clang++ -dumpversion | cut -d. -f1)
    fuzz_log "installing Debian package libclang-rt-$ver-dev (libFuzzer and sanitizer runtimes)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "libclang-rt-$ver-dev" >/dev/null
    fuzz_toolchain_ok || { fuzz_log "clang++ still cannot link -fsanitize=fuzzer"; return 1; }
}
fuzz_packages

B=build-fuzz
mkdir -p "$B"
instrumented=1
if [ ! -f "${LLAMA_SRC:-}/ggml/src/gguf.cpp" ] || [ ! -f "${LLAMA_SRC:-}/src/llama-vocab.cpp" ]; then
    instrumented=0
    fuzz_log "WARNING: LLAMA_SRC ('${LLAMA_SRC:-}') holds no llama.cpp source: its GGUF parsers would run uninstrumented"
    fuzz_log "(no coverage feedback from the code the fuzzer mutates input for, no ASan checks of its reads)"
    if [ "${REDIS_INFER_FUZZ_UNINSTRUMENTED:-0}" != 1 ]; then
        fuzz_log "failing: scripts/deps.sh's deps_llama keeps the source next to the build; set REDIS_INFER_FUZZ_UNINSTRUMENTED=1 to fuzz anyway"
        exit 1
    fi
fi
# LLAMA_SRC is passed explicitly: it is a cached CMake variable, so a build folder first
# configured without it would otherwise keep running the parsers uninstrumented.
# shellcheck disable=SC2046  # deps_cmake_flags is a list of flags
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    $(deps_cmake_flags) -DREDIS_INFER_TESTS=OFF -DREDIS_INFER_FUZZ=ON -DLLAMA_SRC="$([ $instrumented = 1 ] && echo "$LLAMA_SRC")" \
    >"$B/configure.log" 2>&1 || { cat "$B/configure.log" >&2; exit 1; }
grep -h '^-- fuzz:' "$B/configure.log" | sed 's/^-- /[fuzz] /' >&2
bin="$B/tests/fuzz"
if ! grep -qs fuzz_gguf_load "$B/build.ninja"; then
    fuzz_log "no fuzz targets: the top-level CMakeLists.txt must have add_subdirectory(tests/fuzz)"
    exit 1
fi
if [ "$instrumented" = 1 ] && ! grep -qs 'fuzz_llama_parsers' "$B/build.ninja"; then
    fuzz_log "LLAMA_SRC=$LLAMA_SRC is set but build-fuzz does not compile llama.cpp's parsers: see $B/configure.log"
    exit 1
fi
cmake --build "$B" -j "${REDIS_INFER_JOBS:-2}" --target fuzz_tokens_blob fuzz_model_path fuzz_gguf_load fuzz_gguf_seed test_models

# The kept corpus must match the seed writer, or a change to gguf_seed.cpp never reaches it.
rm -rf "$B/seeds" && mkdir -p "$B/seeds/gguf" "$B/seeds/micro" "$B/artifacts"
"$bin/fuzz_gguf_seed" "$B/seeds/micro" 2>/dev/null
for f in "$B"/seeds/micro/*.gguf; do
    if ! cmp -s "$f" "tests/fuzz/corpus/gguf/$(basename "$f" .gguf)"; then
        fuzz_log "tests/fuzz/corpus/gguf/$(basename "$f" .gguf) differs from what fuzz_gguf_seed writes now; refresh with:"
        fuzz_log "  for f in $B/seeds/micro/*.gguf; do cp \"\$f\" tests/fuzz/corpus/gguf/\$(basename \"\$f\" .gguf); done"
        exit 1
    fi
done
# Seeds made each run, not kept (the test models' vocabularies are llama.cpp's, not ours): the
# test models cut to their first 1 and 4 KiB (header, hparams, the start of the tokenizer), and
# the GGUF crash reproductions (each reaches one guarded assert).
for m in "$B/models/tiny-q8_0.gguf" "$B/models/bert-tiny-f16.gguf"; do
    for k in 1 4; do head -c $((k * 1024)) "$m" >"$B/seeds/gguf/$(basename "$m" .gguf)-${k}k.gguf"; done
done
cp tests/fuzz/crashes/repro-* "$B/seeds/gguf/"

# target | -max_len | extra flags | extra ASAN_OPTIONS (fuzz_gguf_load: full allocation stacks,
# so that tests/fuzz/lsan.supp can name the llama.cpp function that leaks, not just ggml_init;
# that costs most of its executions per second. For long runs by hand,
# REDIS_INFER_FUZZ_FAST_UNWIND=1 keeps the fast unwinder and uses tests/fuzz/lsan-fast.supp,
# whose broader pattern is the price: both files say why.)
supp=tests/fuzz/lsan.supp gguf_asan=fast_unwind_on_malloc=0
if [ "${REDIS_INFER_FUZZ_FAST_UNWIND:-0}" = 1 ]; then
    supp=tests/fuzz/lsan-fast.supp gguf_asan=""
    fuzz_log "REDIS_INFER_FUZZ_FAST_UNWIND=1: fast unwinding, broader leak suppressions ($supp)"
fi
targets=(
    "fuzz_tokens_blob|4105||"
    "fuzz_model_path|4200|-dict=tests/fuzz/path.dict|"
    "fuzz_gguf_load|65536||$gguf_asan"
)
seed_dir() { case "$1" in fuzz_tokens_blob) echo tokens;; fuzz_model_path) echo path;; *) echo gguf;; esac; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export LSAN_OPTIONS="suppressions=$PWD/$supp:print_suppressions=0"  # each one explained there
failed=0
summary=()
for t in "${targets[@]}"; do
    IFS='|' read -r name max_len extra asan_extra <<<"$t"
    corpus="$B/corpus/$name"
    mkdir -p "$corpus"
    log="$B/artifacts/$name.log"
    rm -f "$B/artifacts/$name"-* "$B/artifacts/$name.known"
    fuzz_log "$name: ${secs}s"
    set +e
    seeds=("tests/fuzz/corpus/$(seed_dir "$name")")
    [ "$name" = fuzz_gguf_load ] && seeds+=("$B/seeds/gguf")
    # shellcheck disable=SC2086  # $extra is a list of flags
    ASAN_OPTIONS="$ASAN_OPTIONS${asan_extra:+:$asan_extra}" \
    timeout $((secs + 120)) "$bin/$name" "$corpus" "${seeds[@]}" -max_total_time="$secs" \
        -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$B/artifacts/$name-" $extra >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    crashes=$(find "$B/artifacts" -name "$name-*" ! -name '*.log' | wc -l)
    known=$(grep -c '^fuzz_gguf_load: refused' "$log" || true)
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        fuzz_log "$name: CRASH (exit $rc); input(s): $(find "$B/artifacts" -name "$name-*" ! -name '*.log' | tr '\n' ' ')"
        grep -E 'ERROR|SUMMARY|invariant failed|not a load error|GGML_ASSERT|runtime error|^    #[0-9]+ ' "$log" | head -40 >&2 || true
    fi
    summary+=("$(printf '%-18s %10s %9s %6s %8s %6s' "$name" "${execs:-?}" "${rate:-?}" "${added:-?}" \
        "$(find "$corpus" -type f | wc -l)" "$crashes")")
    [ "$known" -gt 0 ] && grep '^fuzz_gguf_load: refused' "$log" | sed 's/^fuzz_gguf_load: /  /' >"$B/artifacts/$name.known"
done

printf '\n%-18s %10s %9s %6s %8s %6s\n' target executions exec/s new corpus crashes
printf '%s\n' "${summary[@]}"
[ "$instrumented" = 1 ] || echo "WARNING: llama.cpp's GGUF parsers ran uninstrumented (REDIS_INFER_FUZZ_UNINSTRUMENTED=1, no LLAMA_SRC)"
if [ -f "$B/artifacts/fuzz_gguf_load.known" ]; then
    echo "llama.cpp asserts refused by the module's abort guard (each would have aborted Redis without it):"
    cat "$B/artifacts/fuzz_gguf_load.known"
fi
exit $failed
