// What the command layer talks to for one loaded model: a thread that takes typed requests and
// completes each exactly once. Two kinds exist: the generation scheduler (continuous batching
// over KV slots) and the embedder (pooled vectors, many inputs per decode). Commands hold an
// executor and never know which one runs their request beyond what the model says it is.
//
// This base owns what both share: the bounded queue, the thread and its loop, the stop modes,
// complete-exactly-once, the counters, and tokenize/detokenize serving. A subclass brings its
// intake policy (take), its unit of work (step) and what it holds between steps (abandon).
#pragma once

#include "engine/memory.h"
#include "engine/model.h"
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

enum submit_status {
    submit_status_ok,          // queued; on_done will be called exactly once
    submit_status_queue_full,  // not taken: queue_max requests already wait beyond the free slots
    submit_status_stopped,     // not taken: the executor is stopping or stopped
};

enum stop_mode {
    stop_mode_drain,   // queued and running requests finish normally (REPLACE)
    stop_mode_cancel,  // queued and running requests end now with an error (UNLOAD, shutdown)
};

struct executor_stats {
    uint32_t slots_busy = 0;
    uint32_t slots_total = 0;
    uint32_t queue_depth = 0;
    uint32_t queue_max = 0;
    uint64_t requests_total = 0;     // finished requests of any kind, failed ones included
    uint64_t requests_failed = 0;
    uint64_t prompt_tokens = 0;      // prompt tokens prefilled (embedded, for the embedder)
    uint64_t generated_tokens = 0;   // tokens sampled
    uint64_t steps = 0;              // llama_decode calls
    double busy_seconds = 0;         // time spent in steps with work
    double tokens_per_sec = 0;       // generated_tokens / busy_seconds
    uint64_t prefix_hits = 0;        // requests that reused cached KV
    uint64_t prefix_hit_tokens = 0;  // prompt tokens not prefilled thanks to reuse
    uint64_t prefix_evictions = 0;   // cached prefixes dropped to make room
    uint64_t prefix_copies = 0;      // reuses that copied another slot's stream
};

class executor {
public:
    using request_ptr = std::unique_ptr<infer_request>;
    using request_list = std::deque<request_ptr>;

    virtual ~executor();  // the subclass's destructor must stop(stop_mode_cancel) first

    executor(const executor &) = delete;
    executor & operator=(const executor &) = delete;

    // Thread-safe. On submit_status_ok the request is moved out of `req`; otherwise `req` is
    // left untouched and its on_done is never called.
    submit_status submit(request_ptr & req);
    // Thread-safe, idempotent. Returns once the thread has exited and every request has had its
    // on_done called. A drain can be hurried into a cancel, never the reverse. Must not be called
    // from an on_done callback.
    void stop(stop_mode mode);
    executor_stats stats() const;  // thread-safe
    const model & get_model() const { return *model_; }
    // What llama.cpp allocated for this model (weights, KV, compute); fixed once the context
    // exists, so thread-safe to read.
    const memory_usage & memory() const { return memory_; }
    const std::string & name() const { return name_; }

protected:
    executor(std::string name, std::shared_ptr<const model> m);
    // Starts the thread; the subclass's constructor calls it last. spare: see spare_.
    void start(const char * thread_prefix, size_t spare);

    // Hooks, on the executor thread. idle() and take() run under the queue lock.
    // Nothing running or held back: the thread may sleep, or exit when stopping.
    virtual bool idle() const = 0;
    // Moves what the next step takes from queue into intake, and sets spare_.
    virtual void take(request_list & queue, request_list & intake) = 0;
    // One unit of work over the intake and whatever runs; leaves unhandled requests in intake.
    virtual void step(request_list & intake) = 0;
    // The executor is stopping (why: unloaded) or a step threw (why: internal): end what runs
    // and move what is held back into intake; the base then completes intake with why.
    virtual void abandon(request_list & intake, const engine_error & why) = 0;
    // Fills the subclass's fields of stats.
    virtual void add_stats(executor_stats & s) const = 0;

    // Calls r's on_done exactly once (a second call does nothing) and counts it.
    void complete(infer_request & r, infer_result && res);
    void fail(infer_request & r, error_code code);
    // Serves tokenize/detokenize requests; false if r is neither.
    bool serve_utility(infer_request & r);

    const std::string name_;
    const std::shared_ptr<const model> model_;
    const uint32_t queue_max_;
    // Under the queue lock: requests the next step takes at once (free slots, one decode's
    // inputs). A burst that size does not count against queue_max.
    size_t spare_ = 0;
    memory_usage memory_;  // set by the subclass's constructor, before start()
    std::atomic<uint64_t> prompt_tokens_{0}, steps_{0}, busy_us_{0};

private:
    void run(std::string thread_name);
    void complete_all(request_list & intake, const engine_error & why);

    mutable std::mutex mu_;
    std::condition_variable cv_;
    request_list queue_;
    bool stopping_ = false;
    stop_mode stop_mode_ = stop_mode_drain;
    std::atomic<uint32_t> queue_depth_{0};
    std::atomic<uint64_t> requests_total_{0}, requests_failed_{0};
    std::mutex join_mu_;  // serialises stop() callers around join
    std::thread thread_;
};

}  // namespace infer
