// Name -> loaded model (weights + scheduler). The registry is what commands talk to.
//
// Threading: every public method is thread-safe. Loads, replaces and unloads run on one loader
// thread owned by the registry (never the caller's, never a thread per request), and report
// through a callback on that thread. find() is a map lookup under a mutex: cheap enough for the
// Redis main thread.
//
// REPLACE: the new model is loaded next to the old one, then swapped in under the lock; new
// requests go to the new model while the old scheduler drains its queued and running requests
// and is then freed. UNLOAD: the name disappears at once, queued and running requests end with
// an error, memory is returned, then the callback fires. UNLOAD of a name being loaded (or
// replaced) cancels that load too: it stops at the next tensor, frees what it read, and its
// callback reports registry_status_load_cancelled.
//
// Shutdown is bounded: it cancels loads in progress (they stop at their next tensor), hurries a
// REPLACE's drain into a cancel, and stops every scheduler at once, so it waits for one tensor
// read (or, early in a load, the rest of llama.cpp's header and vocabulary parsing, which has no
// cancellation point: ~0.5 s for a 152k-token vocabulary) plus freeing what was read, and for
// the longest single decode step - never for a whole load or generation.
//
// Memory: a load is checked against infer.max-model-memory (the measured memory of the other
// loaded models plus the new one's GGUF estimate) and, for a load into host memory, against
// MemAvailable, before any weights are read. A REPLACE does not count the model it replaces:
// that one is freed once it drains, so for the drain's length both are in memory.
//
// Errors are typed (registry_status); the command layer words them.
#pragma once

#include "engine/embedder.h"
#include "engine/model.h"
#include "engine/scheduler.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace infer {

struct model_instance {
    std::string name;
    std::shared_ptr<const model> weights;
    std::unique_ptr<executor> sched;  // a scheduler, or an embedder for EMBEDDING models
};

struct model_entry_view {       // what INFER.MODELS / INFO show
    std::string name;
    std::string state;          // "ready" or "loading"
    std::shared_ptr<model_instance> instance;  // null while loading
    model_params params;        // requested params while loading
};

enum registry_status {
    registry_status_ok,
    registry_status_shutting_down,   // shutdown() has been called
    registry_status_name_taken,      // load without replace: the name is loaded
    registry_status_already_loading, // load: the name is being loaded already
    registry_status_no_such_model,   // unload: the name is neither loaded nor loading
    registry_status_load_failed,     // done: the load failed; error says why
    registry_status_load_cancelled,  // done: an unload of the name, or shutdown, cancelled the load
};

struct registry_result {
    registry_status status = registry_status_ok;
    engine_error error;  // registry_status_load_failed: why (model::load's, or an exception's)
};

class model_registry {
public:
    using done_fn = std::function<void(const registry_result & result)>;

    model_registry();
    ~model_registry();  // shutdown()

    std::shared_ptr<model_instance> find(const std::string & name) const;
    bool is_loading(const std::string & name) const;
    std::vector<model_entry_view> list() const;

    // Queues a load. Returns at once: registry_status_name_taken (loaded, replace false),
    // registry_status_already_loading or registry_status_shutting_down, and then `done` is
    // never called; or registry_status_ok, and `done` runs later on the loader thread with ok,
    // load_failed, load_cancelled or shutting_down (queued loads are dropped at shutdown).
    registry_status load_async(const std::string & name, const model_params & params, bool replace, done_fn done);
    // Removes the name now, loaded or loading: the scheduler stops (cancelling its work) and a
    // load of the name in progress or queued is cancelled. Returns registry_status_no_such_model
    // or registry_status_shutting_down (then `done` is never called) or registry_status_ok, and
    // `done` runs on the loader thread with ok once the memory is returned.
    registry_status unload_async(const std::string & name, done_fn done);

    // infer.max-model-memory: bytes all loaded models may take together, 0 = no limit. Read by
    // the loader thread before each load (see check_memory); thread-safe.
    void set_max_model_memory(uint64_t bytes) { max_model_memory_.store(bytes); }

    // Cancels loads, stops every scheduler (cancelling work) and the loader thread, and returns
    // once they have stopped (see the top of this file for how long that is). Idempotent.
    void shutdown();

private:
    struct pending_load {          // a queued or running load; shared by loading_ and its job
        model_params params;
        std::atomic<bool> cancel{false};  // set under mu_; read by model::load without it
    };
    struct job {
        enum { job_load, job_unload } kind;
        std::string name;
        std::shared_ptr<pending_load> load;       // load
        bool replace = false;
        std::shared_ptr<model_instance> victim;  // unload: null if only a load was cancelled
        done_fn done;
    };
    void loader_main();
    void run_load(job & j);
    // Before a load reads the weights: refuses (over_memory_limit, over_memory_available) a
    // model whose GGUF estimate does not fit. Empty when it fits or cannot be estimated.
    engine_error check_memory(const job & j) const;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::string, std::shared_ptr<model_instance>> models_;
    std::map<std::string, std::shared_ptr<pending_load>> loading_;
    std::deque<job> jobs_;
    std::shared_ptr<model_instance> draining_;  // REPLACE's previous version while it drains
    bool shutting_down_ = false;
    std::atomic<uint64_t> max_model_memory_{0};
    std::thread loader_;
};

}  // namespace infer
