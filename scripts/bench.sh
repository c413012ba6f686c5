#!/usr/bin/env bash
# Benchmark (not a test): the same workload against redis-infer and against llama.cpp's own
# llama-server (same pinned llama.cpp build, same GGUF, same slots, context per slot, batch and
# threads), plus llama-batched-bench as the engine's own limit. Prints a markdown table and
# writes the CSV to .bench/results.csv.
#
#   scripts/bench.sh                                   # qwen3-0.6b Q8_0, concurrency 1 4 8
#   BENCH_CONCURRENCY="1 8 32" BENCH_GPU_LAYERS=-1 REDIS_INFER_CUDA=1 scripts/bench.sh
# Knobs: BENCH_SHAPE, BENCH_TYPE, BENCH_PROMPT, BENCH_GEN, BENCH_REQUESTS (per client),
#        BENCH_THREADS (default cores-1, our LOAD default), BENCH_GPU_LAYERS,
#        BENCH_ONLY_REDIS=1 (our side only: the CSV, no peers; for quick before/after runs).
set -euo pipefail
cd "$(dirname "$0")/.."
conc=${BENCH_CONCURRENCY:-1 4 8}
P=${BENCH_PROMPT:-128}
G=${BENCH_GEN:-128}
reqs=${BENCH_REQUESTS:-3}
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
maxc=$(printf '%s\n' $conc | sort -n | tail -1)
ctx=$(( P + G + 16 ))
# BENCH_PEER_BACKEND_SAMPLING=1 also measures llama-server --backend-sampling (its best on GPU).
peer_bs=${BENCH_PEER_BACKEND_SAMPLING:-0}
csv="$out/results.csv"
echo "target,concurrency,requests,gen_tok_s,req_s,ttft_p50_ms,ttft_p99_ms,itl_p50_ms,itl_p99_ms,ping_p50_ms,ping_p99_ms,ping_max_ms" >"$csv"

echo "[bench] redis-infer: $shape $type, SLOTS $maxc, CTX $ctx, THREADS $threads, GPU_LAYERS $ngl" >&2
bench_start_redis "$maxc" "$ctx" "$out/redis.log"
for c in $conc; do
    # Warm-up request, then the measured run.
    build/bench --target redis --port "$port" --model bench --concurrency 1 --prompt "$P" --gen 8 --requests 1 >/dev/null
    build/bench --target redis --port "$port" --model bench --concurrency "$c" --prompt "$P" --gen "$G" --requests "$reqs" | tee -a "$csv" >&2
done
"$REDIS_CLI" -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait $rpid 2>/dev/null || true

run_peer() {  # label, extra llama-server arguments...
    local label=$1
    shift
    echo "[bench] llama-server $*: same model, -np $maxc, -c $(( ctx * maxc )), -b $batch, -t $threads, -ngl $ngl" >&2
    bench_start_llama_server "$out/llama-server-$label.log" -m "$model" -np "$maxc" -c $(( ctx * maxc )) \
        -t "$threads" -tb "$threads" -b "$batch" -ub "$(( batch < 512 ? batch : 512 ))" -ngl "$ngl" "$@"
    for c in $conc; do
        build/bench --target llama-server --port "$port" --concurrency 1 --prompt "$P" --gen 8 --requests 1 >/dev/null
        build/bench --target llama-server --port "$port" --concurrency "$c" --prompt "$P" --gen "$G" --requests "$reqs" |
            sed "s/^llama-server,/$label,/" | tee -a "$csv" >&2
    done
    kill $lpid; wait $lpid 2>/dev/null || true
}
if [ "${BENCH_ONLY_REDIS:-0}" = 1 ]; then cat "$csv"; exit 0; fi
run_peer llama-server
[ "$peer_bs" = 1 ] && run_peer llama-server-bs --backend-sampling

echo "[bench] llama-batched-bench" >&2
npl=$(printf '%s,' $conc); npl=${npl%,}
"$LLAMA_PREFIX/bin/llama-batched-bench" -m "$model" -c $(( ctx * maxc )) -b "$batch" -ub "$(( batch < 512 ? batch : 512 ))" \
    -npp "$P" -ntg "$G" -npl "$npl" -t "$threads" -tb "$threads" -ngl "$ngl" >"$out/batched-bench.log" 2>&1
# Columns: | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
# Generated tokens per second end to end (B * TG / T), as the clients see it, and S_TG (decode only).
awk -F'|' '/^\|[ ]+[0-9]/ { gsub(/ /, ""); printf "batched-bench,%s,,%.1f,%s\n", $4, $4 * $3 / $10, $9 }' "$out/batched-bench.log" >>"$csv"

echo
echo "$(bench_machine); prompt $P + $G generated tokens, greedy, no prompt cache"
echo
echo "| clients | redis-infer gen tok/s | llama-server gen tok/s | ratio | llama-server --backend-sampling | ratio | llama-batched-bench gen tok/s (end to end) | redis-infer / engine | redis-infer TTFT p50 / p99 ms | llama-server TTFT p50 / p99 ms | PING p50 / p99 / max ms during load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
for c in $conc; do
    row() { grep "^$1,$c," "$csv" | head -1 || true; }  # a missing row is not an error
    r=$(row redis); l=$(row llama-server); lb=$(row llama-server-bs); b=$(row batched-bench)
    IFS=, read -r _ _ _ rtok _ rt50 rt99 _ _ p50 p99 pmax <<<"$r"
    IFS=, read -r _ _ _ ltok _ lt50 lt99 _ _ _ _ _ <<<"$l"
    lbtok=""; [ -n "$lb" ] && IFS=, read -r _ _ _ lbtok _ <<<"$lb"
    IFS=, read -r _ _ _ btok _ <<<"$b"
    echo "| $c | $rtok | $ltok | $(ratio "$rtok" "$ltok") | ${lbtok:--} | $(ratio "$rtok" "${lbtok:-0}") | ${btok:--} | $(ratio "$rtok" "${btok:-0}") | $rt50 / $rt99 | $lt50 / $lt99 | $p50 / $p99 / $pmax |"
done
