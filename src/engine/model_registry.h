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
// an error, memory is returned, then the callback fires.
#pragma once

#include "engine/embedder.h"
#include "engine/model.h"
#include "engine/scheduler.h"

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

class model_registry {
public:
    using done_fn = std::function<void(const std::string & error)>;  // "" = success

    model_registry();
    ~model_registry();  // shutdown()

    std::shared_ptr<model_instance> find(const std::string & name) const;
    bool is_loading(const std::string & name) const;
    std::vector<model_entry_view> list() const;

    // Queues a load. Returns an error message right away if the name is taken (and replace is
    // false) or already loading; otherwise "" and `done` runs later on the loader thread.
    std::string load_async(const std::string & name, const model_params & params, bool replace, done_fn done);
    // Removes the name now; the scheduler stops (cancelling its work) on the loader thread.
    std::string unload_async(const std::string & name, done_fn done);

    // Stops every scheduler (cancelling work) and the loader thread. Idempotent.
    void shutdown();

private:
    struct job {
        enum { job_load, job_unload } kind;
        std::string name;
        model_params params;
        bool replace = false;
        std::shared_ptr<model_instance> victim;  // unload
        done_fn done;
    };
    void loader_main();
    void run_load(job & j);

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::string, std::shared_ptr<model_instance>> models_;
    std::map<std::string, model_params> loading_;
    std::deque<job> jobs_;
    bool shutting_down_ = false;
    std::thread loader_;
};

}  // namespace infer
