#!/usr/bin/env bash
# Benchmark (not a test) of the embedding and RAG path, printing markdown tables:
#   1. embedding throughput: INFER.EMBED against llama-server --embeddings (same pinned
#      llama.cpp, same GGUF, same inputs, same parallel sequences and threads), by concurrency;
#   2. ingest: redis-infer-ingest over a few MB of real text (Debian's license and copyright
#      files) - files, chunks, tokens, chunks/s, tokens/s - and a re-run (unchanged files);
#   3. RAG latency: INFER.RAG WITHMETA split into embed / search / prefill / decode, for new
#      questions with NO_CACHE (cold) and the same questions again (the prompt prefix of each
#      is still in one of the SLOTS slots, since nothing else runs).
#
#   scripts/bench-rag.sh
# Knobs: BENCH_SHAPE/BENCH_TYPE (generation model, default qwen3-0.6b q8_0), BENCH_EMBED_SHAPE
#        (bge-small), BENCH_CORPUS_KB (default 1024), BENCH_CHUNK (tokens, 128), BENCH_K (4),
#        BENCH_CONCURRENCY (embedding, "1 8 32"), BENCH_THREADS, BENCH_GPU_LAYERS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
cmake --build build --target redis-infer-ingest >&2
conc=${BENCH_CONCURRENCY:-1 8 32}
corpus_kb=${BENCH_CORPUS_KB:-1024}
chunk=${BENCH_CHUNK:-128}
K=${BENCH_K:-4}
eshape=${BENCH_EMBED_SHAPE:-bge-small}
emodel="$out/models/$eshape-f16.gguf"
if [ ! -f "$emodel" ]; then
    echo "[bench] generating $emodel" >&2
    build/make-test-model --shape "$eshape" --type f16 --vocab "$LLAMA_PREFIX/vocab/ggml-vocab-bert-bge.gguf" --out "$emodel" >&2
fi
maxc=$(printf '%s\n' $conc | sort -n | tail -1)
einput=126  # random ids per input; + [CLS] and [SEP] = 128 tokens

# --- 1. embedding throughput ---------------------------------------------------------------
"$REDIS_SERVER" --port "$port" --save "" --appendonly no --logfile "$out/redis-rag.log" \
    --loadmodule "$PWD/build/redis_infer.so" MODEL bench "$(basename "$model")" CTX 2048 SLOTS 8 BATCH "$batch" \
    THREADS "$threads" GPU_LAYERS "$ngl" MODEL embed "$(basename "$emodel")" EMBEDDING SLOTS "$maxc" CTX 512 \
    BATCH 2048 THREADS "$threads" GPU_LAYERS "$ngl" \
    --infer.model-dir "$PWD/$out/models" &
rpid=$!
trap 'kill $rpid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    [ "$("$REDIS_CLI" -p "$port" INFER.INFO embed 2>/dev/null | sed -n 4p)" = ready ] &&
        [ "$("$REDIS_CLI" -p "$port" INFER.INFO bench 2>/dev/null | sed -n 4p)" = ready ] && break
    sleep 0.5
done
csv="$out/embed.csv"
echo "target,concurrency,inputs,inputs_s,tokens_s,lat_p50_ms,lat_p99_ms,ping_p50_ms,ping_p99_ms,ping_max_ms" >"$csv"
for c in $conc; do
    build/bench --scenario embed --target redis --port "$port" --model embed --vocab 30522 --concurrency 1 --prompt "$einput" --requests 2 >/dev/null
    build/bench --scenario embed --target redis --port "$port" --model embed --vocab 30522 --concurrency "$c" \
        --prompt "$einput" --requests $(( 256 / c > 4 ? 256 / c : 4 )) | tee -a "$csv" >&2
done

# --- 2. ingest -----------------------------------------------------------------------------
corpus="$out/corpus"
rm -rf "$corpus"
mkdir -p "$corpus"
# Real English text that every Debian machine has; copied so the set is fixed for the run.
total=0
while IFS= read -r f; do
    [ "$total" -ge $(( corpus_kb * 1024 )) ] && break
    rel=${f#/usr/share/}
    mkdir -p "$corpus/$(dirname "$rel")"
    cp "$f" "$corpus/$rel"
    total=$(( total + $(stat -c %s "$f") ))
done < <(find /usr/share/common-licenses /usr/share/doc -type f \( -name 'copyright' -o -path '*/common-licenses/*' \) -size -200k 2>/dev/null | sort)
echo "[bench] corpus: $(find "$corpus" -type f | wc -l) files, $(( total / 1024 )) KiB" >&2
ingest() {
    build/redis-infer-ingest -p "$port" --model bench --embed-model embed --vset '{kb}:vectors' --prefix '{kb}:doc:' \
        --chunk-tokens "$chunk" --overlap 16 --pipeline 32 --quiet --summary-format kv "$corpus"
}
first=$(ingest)
again=$(ingest)
kv() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }

# --- 3. RAG latency ------------------------------------------------------------------------
questions=("What does the license permit?" "Who holds the copyright?" "Can I redistribute modified versions?"
           "Is there any warranty?" "What are the conditions for distribution in binary form?")
ragcsv="$out/rag.csv"
echo "pass,question,embed_ms,search_ms,queue_ms,prefill_ms,decode_ms,prompt_tokens,cached_tokens,total_ms" >"$ragcsv"
for pass in cold cached; do
    nocache=(); [ "$pass" = cold ] && nocache=(NO_CACHE)
    for q in "${questions[@]}"; do
        t0=$(date +%s%N)
        r=$("$REDIS_CLI" -p "$port" INFER.RAG bench '{kb}:vectors' QUERY "$q" K "$K" MAX_TOKENS 32 TEMPERATURE 0 IGNORE_EOS WITHMETA "${nocache[@]}")
        t1=$(date +%s%N)
        get() { awk -v k="$1" 'prev == k { print; exit } { prev = $0 }' <<<"$r"; }
        echo "$pass,\"$q\",$(get embed_ms),$(get search_ms),$(get queue_ms),$(get prefill_ms),$(get decode_ms),$(get prompt_tokens),$(get cached_tokens),$(( (t1 - t0) / 1000000 ))" >>"$ragcsv"
    done
done
"$REDIS_CLI" -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait $rpid 2>/dev/null || true

# --- 1b. the peer: llama-server --embeddings ------------------------------------------------
echo "[bench] llama-server --embeddings: -np $maxc, -c $(( 512 * maxc )), -t $threads, -ngl $ngl" >&2
bench_start_llama_server "$out/llama-server-embed.log" -m "$emodel" --embeddings --pooling mean -np "$maxc" \
    -c $(( 512 * maxc )) -b 2048 -ub 2048 -t "$threads" -tb "$threads" -ngl "$ngl"
for c in $conc; do
    build/bench --scenario embed --target llama-server --port "$port" --vocab 30522 --concurrency 1 --prompt "$einput" --requests 2 >/dev/null
    build/bench --scenario embed --target llama-server --port "$port" --vocab 30522 --concurrency "$c" \
        --prompt "$einput" --requests $(( 256 / c > 4 ? 256 / c : 4 )) | tee -a "$csv" >&2
done
kill $lpid; wait $lpid 2>/dev/null || true

# --- tables --------------------------------------------------------------------------------
echo
echo "$(bench_machine); embedding model $eshape f16 (random weights, mean pooling)"
echo
echo "Embedding throughput, $(( einput + 2 ))-token inputs:"
echo
echo "| clients | redis-infer inputs/s | llama-server inputs/s | ratio | redis-infer latency p50 / p99 ms | llama-server latency p50 / p99 ms | PING p99 / max ms |"
echo "|---|---|---|---|---|---|---|"
for c in $conc; do
    r=$(grep "^redis,$c," "$csv" | head -1 || true); l=$(grep "^llama-server,$c," "$csv" | head -1 || true)
    IFS=, read -r _ _ _ ri _ r50 r99 _ p99 pmax <<<"$r"
    IFS=, read -r _ _ _ li _ l50 l99 _ _ _ <<<"$l"
    echo "| $c | $ri | $li | $(awk -v a="$ri" -v b="$li" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }') | $r50 / $r99 | $l50 / $l99 | $p99 / $pmax |"
done
echo
echo "Ingest (redis-infer-ingest, $chunk-token chunks, overlap 16, pipeline 32):"
echo
echo "| run | files | chunks | tokens | seconds | chunks/s | tokens/s |"
echo "|---|---|---|---|---|---|---|"
echo "| first | $(kv "$first" files_ingested) | $(kv "$first" chunks) | $(kv "$first" tokens) | $(kv "$first" seconds) | $(kv "$first" chunks_per_s) | $(kv "$first" tokens_per_s) |"
echo "| again (unchanged) | $(kv "$again" files_unchanged) unchanged | $(kv "$again" chunks) | $(kv "$again" tokens) | $(kv "$again" seconds) | - | - |"
echo
echo "INFER.RAG latency (K $K, 32 generated tokens, medians of ${#questions[@]} questions), ms:"
echo
echo "| pass | embed | search | queue | prefill | decode | prompt tokens | cached tokens | total (client) |"
echo "|---|---|---|---|---|---|---|---|---|"
for pass in cold cached; do
    med() { grep "^$pass," "$ragcsv" | awk -F'"' '{ print $3 }' | cut -d, -f"$1" | sort -g | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] }'; }
    echo "| $pass | $(med 2) | $(med 3) | $(med 4) | $(med 5) | $(med 6) | $(med 7) | $(med 8) | $(med 9) |"
done
