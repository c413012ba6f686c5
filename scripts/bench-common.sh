# Shared by scripts/bench.sh and scripts/bench-prefix.sh: build what a benchmark needs, generate
# its model, start redis-server with the module. Source it from the repository root.
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(deps_cmake_flags) >/dev/null
cmake --build build --target redis_infer bench make-test-model >&2

shape=${BENCH_SHAPE:-qwen3-0.6b}
type=${BENCH_TYPE:-q8_0}
ncpu=$(nproc)
threads=${BENCH_THREADS:-$(( ncpu > 1 ? ncpu - 1 : 1 ))}  # our LOAD default: a core stays with Redis
ngl=${BENCH_GPU_LAYERS:-0}
batch=${BENCH_BATCH:-512}
out=.bench
mkdir -p "$out/models"
model="$out/models/$shape-$type.gguf"
if [ ! -f "$model" ]; then
    echo "[bench] generating $model" >&2
    build/make-test-model --shape "$shape" --type "$type" --vocab "$LLAMA_PREFIX/vocab/ggml-vocab-qwen2.gguf" --out "$model" >&2
fi
port=$(( 20000 + RANDOM % 20000 ))
# BENCH_MODULE=<path to a redis_infer.so>: benchmark that build instead of build/'s (before/after
# comparisons of a change: copy the old module aside first).
module=${BENCH_MODULE:-$PWD/build/redis_infer.so}

# bench_start_redis SLOTS CTX LOGFILE: redis-server with the model loaded as "bench"; sets rpid.
bench_start_redis() {
    "$REDIS_SERVER" --port "$port" --save "" --appendonly no --logfile "$3" \
        --loadmodule "$module" MODEL bench "$(basename "$model")" CTX "$2" SLOTS "$1" \
        BATCH "$batch" THREADS "$threads" GPU_LAYERS "$ngl" --infer.model-dir "$PWD/$out/models" &
    rpid=$!
    trap 'kill $rpid 2>/dev/null || true' EXIT
    for _ in $(seq 600); do
        "$REDIS_CLI" -p "$port" INFER.INFO bench 2>/dev/null | grep -qx ready && return 0
        sleep 0.5
    done
    echo "[bench] redis-server did not get the model ready; see $3" >&2
    return 1
}

# bench_start_llama_server LOGFILE ARGS...: llama-server on $port with ARGS, waits for /health;
# sets lpid (killed on exit).
bench_start_llama_server() {
    local log=$1
    shift
    "$LLAMA_PREFIX/bin/llama-server" --port "$port" --no-webui "$@" >"$log" 2>&1 &
    lpid=$!
    trap 'kill $lpid 2>/dev/null || true' EXIT
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q ' 200 ' <&3) 2>/dev/null && return 0
        sleep 0.5
    done
    echo "[bench] llama-server did not become healthy; see $log" >&2
    return 1
}

bench_machine() {
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu cores; model $shape $type (random weights); threads $threads; GPU layers $ngl"
}
