#!/usr/bin/env bash
# Prefix-reuse benchmark (not a test), on the generated qwen3-0.6b Q8_0 by default:
#   1. time to first token for a prompt whose first BENCH_PREFIX tokens an earlier request had,
#      cached vs cold;
#   2. BENCH_SHARED_CLIENTS concurrent requests sharing a BENCH_SHARED_PREFIX-token prefix,
#      with and without reuse;
#   3. a BENCH_TURNS-turn chat: prefilled tokens and latency per turn.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${BENCH_SHARED_CLIENTS:-8}
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
bench_start_redis "$clients" 4096 "$out/redis-prefix.log"
bench_machine
echo
build/bench --target redis --port "$port" --model bench --scenario prefix --prompt "${BENCH_PREFIX:-2000}" --requests 2
echo
build/bench --target redis --port "$port" --model bench --scenario shared --concurrency "$clients" \
    --prompt "${BENCH_SHARED_PREFIX:-1000}" --gen "${BENCH_SHARED_GEN:-16}"
echo
build/bench --target redis --port "$port" --model bench --scenario chat --requests "${BENCH_TURNS:-10}" --gen "${BENCH_CHAT_GEN:-32}"
"$REDIS_CLI" -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
