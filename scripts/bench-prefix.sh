#!/usr/bin/env bash
# Prefix-reuse benchmark (not a test), on the generated qwen3-0.6b Q8_0 by default:
#   1. time to first token for a prompt whose first BENCH_PREFIX tokens an earlier request had,
#      cached vs cold;
#   2. BENCH_SHARED_CLIENTS concurrent requests sharing a BENCH_SHARED_PREFIX-token prefix,
#      with and without reuse;
#   3. a BENCH_TURNS-turn chat: prefilled tokens and latency per turn.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(deps_cmake_flags) >/dev/null
cmake --build build --target redis_infer bench make-test-model >&2

shape=${BENCH_SHAPE:-qwen3-0.6b}
type=${BENCH_TYPE:-q8_0}
ncpu=$(nproc)
threads=${BENCH_THREADS:-$(( ncpu > 1 ? ncpu - 1 : 1 ))}
ngl=${BENCH_GPU_LAYERS:-0}
clients=${BENCH_SHARED_CLIENTS:-8}
out=.bench
mkdir -p "$out/models"
model="$out/models/$shape-$type.gguf"
[ -f "$model" ] || build/make-test-model --shape "$shape" --type "$type" --vocab "$LLAMA_PREFIX/vocab/ggml-vocab-qwen2.gguf" --out "$model" >&2
port=$(( 20000 + RANDOM % 20000 ))
"$REDIS_SERVER" --port "$port" --save "" --appendonly no --logfile "$out/redis-prefix.log" \
    --loadmodule "$PWD/build/redis_infer.so" MODEL bench "$(basename "$model")" CTX 4096 SLOTS "$clients" \
    THREADS "$threads" GPU_LAYERS "$ngl" --infer.model-dir "$PWD/$out/models" &
rpid=$!
trap 'kill $rpid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    "$REDIS_CLI" -p "$port" INFER.INFO bench 2>/dev/null | grep -qx ready && break
    sleep 0.5
done
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu cores; $shape $type (random weights); threads $threads; GPU layers $ngl"
echo
build/bench --target redis --port "$port" --model bench --scenario prefix --prompt "${BENCH_PREFIX:-2000}" --requests 2
echo
build/bench --target redis --port "$port" --model bench --scenario shared --concurrency "$clients" \
    --prompt "${BENCH_SHARED_PREFIX:-1000}" --gen "${BENCH_SHARED_GEN:-16}"
echo
build/bench --target redis --port "$port" --model bench --scenario chat --requests "${BENCH_TURNS:-10}" --gen "${BENCH_CHAT_GEN:-32}"
"$REDIS_CLI" -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
