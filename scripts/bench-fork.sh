#!/usr/bin/env bash
# Fork cost of a loaded model (issue #7): BGSAVE's fork time (INFO latest_fork_usec) on one
# redis-server with 1M small keys, first without a model, then with the benchmark model loaded
# (its weights are read into process memory, not mmapped, so the fork copies their page tables),
# then with a generation running during the fork. Prints a markdown table.
#   scripts/bench-fork.sh            (BENCH_SHAPE / BENCH_TYPE as in scripts/bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
log="$PWD/$out/fork-redis.log"
"$REDIS_SERVER" --port "$port" --save "" --appendonly no --logfile "$log" --dir "$PWD/$out" \
    --dbfilename fork-bench.rdb --enable-debug-command local --loadmodule "$PWD/build/redis_infer.so" --infer.model-dir "$PWD/$out/models" &
rpid=$!
trap 'kill $rpid 2>/dev/null || true; rm -f "$out/fork-bench.rdb"' EXIT
cli() { "$REDIS_CLI" -p "$port" "$@"; }
for _ in $(seq 100); do cli PING >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(cli DEBUG POPULATE 1000000 key 32)" = OK ] || { echo "DEBUG POPULATE failed" >&2; exit 1; }

# forks LABEL: five BGSAVEs, prints "| LABEL | rss | median fork ms | max fork ms |"
forks() {
    local times=()
    for _ in 1 2 3 4 5; do
        cli BGSAVE >/dev/null
        while cli INFO persistence | grep -q 'rdb_bgsave_in_progress:1'; do sleep 0.05; done
        times+=("$(cli INFO stats | sed -n 's/^latest_fork_usec:\([0-9]*\).*/\1/p')")
    done
    local sorted; sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    local rss; rss=$(cli INFO memory | sed -n 's/^used_memory_rss_human:\(.*\)\r$/\1/p')
    printf '| %s | %s | %.2f | %.2f |\n' "$1" "$rss" "$(echo "$sorted" | sed -n 3p | awk '{print $1/1000}')" \
        "$(echo "$sorted" | tail -1 | awk '{print $1/1000}')"
}

echo "$(bench_machine)"
echo "| state | RSS | fork p50 (ms) | fork max (ms) |"
echo "|---|---|---|---|"
forks "1M keys, no model"
cli INFER.LOAD bench "$(basename "$model")" CTX 1024 SLOTS 4 THREADS "$threads" GPU_LAYERS "$ngl" >/dev/null
forks "1M keys + $shape $type loaded"
cli INFER.GENERATE bench TEXT hello MAX_TOKENS 1000 IGNORE_EOS TIMEOUT 60000 >/dev/null &
gen=$!
sleep 2
forks "the same, generating"
kill $gen 2>/dev/null || true
wait $gen 2>/dev/null || true
