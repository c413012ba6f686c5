// What the command layer talks to for one loaded model: a thread that takes typed requests and
// completes each exactly once. Two kinds exist: the generation scheduler (continuous batching
// over KV slots) and the embedder (pooled vectors, many inputs per decode). Commands hold an
// executor and never know which one runs their request beyond what the model says it is.
#pragma once

#include "engine/model.h"
#include "engine/request.h"

#include <cstdint>
#include <memory>
#include <string>

namespace infer {

enum submit_status {
    submit_status_ok,          // queued; on_done will be called exactly once
    submit_status_queue_full,  // not taken: queue_max requests already wait beyond the free slots
    submit_status_stopped,     // not taken: the scheduler is stopping or stopped
};

enum stop_mode {
    stop_mode_drain,   // queued and running requests finish normally (REPLACE)
    stop_mode_cancel,  // queued and running requests end now with an error (UNLOAD, shutdown)
};

struct scheduler_stats {
    uint32_t slots_busy = 0;
    uint32_t slots_total = 0;
    uint32_t queue_depth = 0;
    uint32_t queue_max = 0;
    uint64_t requests_total = 0;     // finished requests of any kind, failed ones included
    uint64_t requests_failed = 0;
    uint64_t prompt_tokens = 0;      // prompt tokens prefilled
    uint64_t generated_tokens = 0;   // tokens sampled
    uint64_t steps = 0;              // llama_decode calls
    double busy_seconds = 0;         // time spent in steps with at least one active slot
    double tokens_per_sec = 0;       // generated_tokens / busy_seconds
    uint64_t prefix_hits = 0;        // requests that reused cached KV
    uint64_t prefix_hit_tokens = 0;  // prompt tokens not prefilled thanks to reuse
    uint64_t prefix_evictions = 0;   // cached prefixes dropped to make room
    uint64_t prefix_copies = 0;      // reuses that copied another slot's stream
};

class executor {
public:
    virtual ~executor() = default;

    // Thread-safe. On submit_status_ok the request is moved out of `req`; otherwise `req` is
    // left untouched and its on_done is never called.
    virtual submit_status submit(std::unique_ptr<infer_request> & req) = 0;
    // Thread-safe, idempotent. Returns once the thread has exited and every request has had its
    // on_done called. Must not be called from an on_done callback.
    virtual void stop(stop_mode mode) = 0;
    virtual scheduler_stats stats() const = 0;  // thread-safe
    virtual const model & get_model() const = 0;
    virtual const std::string & name() const = 0;
};

}  // namespace infer
