// One model's scheduler: a single thread that owns one llama_context with n_slots sequences and
// runs continuous batching over every request posted to it.
//
// Each step builds one llama_batch holding one decode token for every generating slot plus
// prefill chunks of newly admitted prompts (within the n_batch budget, so a long prompt is
// spread over several steps and never stalls the others), calls llama_decode once, then samples
// each slot that produced logits with its own sampler chain. Requests join and leave between
// steps. Tokenize/detokenize requests are served between steps too, without taking a slot.
//
// Prompts are assembled by engine/prompt.h on this thread before a request is placed; the
// scheduler itself only places, batches, samples and manages KV.
//
// Threading: submit(), stop() and stats() are thread-safe (executor.h); everything else runs on
// the scheduler thread.
//
// KV cache: one stream per slot (llama.cpp's non-unified mode), n_ctx cells each, so attention
// only ever spans a slot's own cells and an admitted request (bounded to n_ctx tokens, prompt
// plus output) can never run out of cells.
//
// Prefix reuse: a slot keeps its cells when its request ends, and the prefix_cache records
// which tokens each slot holds. A new request takes the idle slot holding the longest prefix of
// its prompt and prefills only the rest; if a busy slot holds it, the request copies that slot's
// stream into a free one (llama_memory_seq_cp across streams copies the buffer) and cuts it to
// the shared part. When no slot is running, a request whose match would destroy more of the
// holder's cache than it reuses copies the prefix into the least recently used slot instead, so
// a sequential client keeps up to SLOTS prefixes. Otherwise a request takes the idle slot next
// to the most running ones (filling a hole, else extending a run, lowest first), whose cached
// prefix is evicted: llama.cpp decodes a contiguous run of sequence ids in one pass over the
// weights, so keeping running slots contiguous beats least-recently-used eviction (measured:
// 0.54x of the engine at 64 clients with LRU scattering, see docs/benchmarks.md). Cells of running
// requests are never touched. A request whose prompt shares a much longer
// prefix with a slot still prefilling waits for that prefill instead of duplicating it (the RAG
// case: many concurrent requests with the same system prompt and chunks).
#pragma once

#include "engine/executor.h"
#include "engine/model.h"
#include "engine/prefix_cache.h"
#include "engine/prompt.h"
#include "engine/worker_pool.h"
#include "engine/request.h"

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace infer {

class scheduler final : public executor {
public:
    // Creates the llama_context and starts the thread. Slow (allocates the KV cache): call it off
    // the main thread. Throws std::runtime_error if the context cannot be created.
    scheduler(std::string name, std::shared_ptr<const model> m);
    ~scheduler() override;  // stop(stop_mode_cancel), join, free the context

private:
    struct slot;
    // A generate request taken off the queue, with its prompt once built (built once: a request
    // deferred behind another slot's prefill keeps its plan).
    struct admission {
        request_ptr req;
        prompt_plan plan;
        bool planned = false;
    };

    bool idle() const override;
    void take(request_list & queue, request_list & intake) override;
    void step(request_list & intake) override;
    void abandon(request_list & intake, const engine_error & why) override;
    void add_stats(executor_stats & s) const override;

    bool try_admit(admission & a);  // false = deferred, a untouched but planned
    void place(admission & a, size_t reuse, const prefix_cache::match & m);
    void decode_and_sample();
    void finish(slot & s, finish_reason why);
    void emit(slot & s, bool final);
    void fail_slot(slot & s, const engine_error & error);
    size_t free_slots() const;

    const uint32_t n_ctx_;    // per slot
    const uint32_t n_batch_;

    // Scheduler-thread state.
    llama_context_ptr ctx_;
    std::vector<std::unique_ptr<slot>> slots_;
    llama_batch batch_{};
    prefix_cache cache_;
    worker_pool pool_;
    std::vector<slot *> sampling_slots_;   // reused every step: no per-step allocation
    std::vector<const float *> sampling_rows_;
    std::vector<token> sampled_;
    std::vector<std::pair<slot *, int32_t>> chunks_;
    std::deque<admission> deferred_;  // waiting for another slot's prefill
    uint64_t finished_ = 0;  // requests finished, for slot::last_used

    // Counters written by the scheduler thread, read by stats().
    std::atomic<uint32_t> slots_busy_{0};
    std::atomic<uint64_t> generated_tokens_{0};
    std::atomic<uint64_t> prefix_hits_{0}, prefix_hit_tokens_{0}, prefix_evictions_{0}, prefix_copies_{0};
};

}  // namespace infer
