// One model's scheduler: a single thread that owns one llama_context with n_slots sequences and
// runs continuous batching over every request posted to it.
//
// Each step builds one llama_batch holding one decode token for every generating slot plus
// prefill chunks of newly admitted prompts (within the n_batch budget, so a long prompt is
// spread over several steps and never stalls the others), calls llama_decode once, then samples
// each slot that produced logits with its own sampler chain. Requests join and leave between
// steps. Tokenize/detokenize requests are served between steps too, without taking a slot.
//
// Threading: submit(), stop() and stats() are thread-safe; everything else runs on the
// scheduler thread.
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
#include "engine/worker_pool.h"
#include "engine/request.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace infer {

class scheduler final : public executor {
public:
    // Creates the llama_context and starts the thread. Slow (allocates the KV cache): call it off
    // the main thread. Throws std::runtime_error if the context cannot be created.
    scheduler(std::string name, std::shared_ptr<const model> m);  // slots start unpromised
    ~scheduler();  // stop(stop_mode_cancel), join, free the context

    scheduler(const scheduler &) = delete;
    scheduler & operator=(const scheduler &) = delete;

    submit_status submit(std::unique_ptr<infer_request> & req) override;
    void stop(stop_mode mode) override;
    scheduler_stats stats() const override;  // thread-safe
    const model & get_model() const override { return *model_; }
    const std::string & name() const override { return name_; }

private:
    struct slot;
    void run();
    void step(std::deque<std::unique_ptr<infer_request>> & intake);
    void serve_utility(infer_request & r);
    bool try_admit(std::unique_ptr<infer_request> & r);  // false = deferred, r untouched
    void finish(slot & s, finish_reason why);
    void emit(slot & s, bool final);
    void fail(slot & s, const std::string & error);
    void complete(infer_request & r, infer_result && res);
    size_t free_slots() const;

    const std::string name_;
    const std::shared_ptr<const model> model_;
    const uint32_t n_ctx_;    // per slot
    const uint32_t n_batch_;
    const uint32_t queue_max_;

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
    std::deque<std::unique_ptr<infer_request>> deferred_;  // waiting for another slot's prefill
    uint64_t finished_ = 0;  // requests finished, for slot::last_used

    // Shared state, under mu_.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<infer_request>> queue_;
    bool stopping_ = false;
    size_t unpromised_slots_ = 0;  // free slots not yet promised to a request taken off the queue
    stop_mode stop_mode_ = stop_mode_drain;

    // Counters written by the scheduler thread, read by stats().
    std::atomic<uint32_t> slots_busy_{0}, queue_depth_{0};
    std::atomic<uint64_t> requests_total_{0}, requests_failed_{0}, prompt_tokens_{0}, generated_tokens_{0}, steps_{0};
    std::atomic<uint64_t> busy_us_{0};
    std::atomic<uint64_t> prefix_hits_{0}, prefix_hit_tokens_{0}, prefix_evictions_{0}, prefix_copies_{0};

    std::mutex join_mu_;  // serialises stop() callers around join
    std::thread thread_;
};

}  // namespace infer
