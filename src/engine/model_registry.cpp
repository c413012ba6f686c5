// See model_registry.h.
#include "engine/model_registry.h"

#include "engine/backend.h"

#include <pthread.h>

namespace infer {

model_registry::model_registry() : loader_([this] { loader_main(); }) {}

model_registry::~model_registry() { shutdown(); }

std::shared_ptr<model_instance> model_registry::find(const std::string & name) const {
    std::lock_guard lk(mu_);
    auto it = models_.find(name);
    return it == models_.end() ? nullptr : it->second;
}

bool model_registry::is_loading(const std::string & name) const {
    std::lock_guard lk(mu_);
    return loading_.count(name) != 0;
}

std::vector<model_entry_view> model_registry::list() const {
    std::lock_guard lk(mu_);
    std::vector<model_entry_view> out;
    for (const auto & [name, inst] : models_) out.push_back({name, "ready", inst, inst->weights->params()});
    for (const auto & [name, load] : loading_) {
        if (!models_.count(name)) out.push_back({name, "loading", nullptr, load->params});
    }
    return out;
}

registry_status model_registry::load_async(const std::string & name, const model_params & params, bool replace,
                                           done_fn done) {
    {
        std::lock_guard lk(mu_);
        if (shutting_down_) return registry_status_shutting_down;
        if (loading_.count(name)) return registry_status_already_loading;
        if (models_.count(name) && !replace) return registry_status_name_taken;
        auto load = std::make_shared<pending_load>();
        load->params = params;
        loading_[name] = load;
        jobs_.push_back(job{job::job_load, name, std::move(load), replace, nullptr, std::move(done)});
    }
    cv_.notify_one();
    return registry_status_ok;
}

registry_status model_registry::unload_async(const std::string & name, done_fn done) {
    {
        std::lock_guard lk(mu_);
        if (shutting_down_) return registry_status_shutting_down;
        auto it = models_.find(name);
        auto ld = loading_.find(name);
        if (it == models_.end() && ld == loading_.end()) return registry_status_no_such_model;
        std::shared_ptr<model_instance> victim;
        if (it != models_.end()) {
            victim = std::move(it->second);
            models_.erase(it);
        }
        if (ld != loading_.end()) {
            // The load's job sees the flag at its next tensor (or before it starts) and frees
            // what it has; this unload's job is queued behind it on the same thread, so `done`
            // fires once that memory is returned too.
            ld->second->cancel.store(true);
            loading_.erase(ld);
        }
        jobs_.push_back(job{job::job_unload, name, nullptr, false, std::move(victim), std::move(done)});
    }
    cv_.notify_one();
    return registry_status_ok;
}

engine_error model_registry::check_memory(const job & j) const {
    engine_error err;
    memory_estimate est;
    std::string why;
    if (!memory_estimate_gguf(j.load->params, est, why)) {
        // model::load reads the same header and reports the real cause.
        log_msg(log_level::debug, "model %s: no memory estimate (%s)", j.name.c_str(), why.c_str());
        return err;
    }
    err.got = int64_t(est.total());
    err.weights = int64_t(est.weights);
    err.kv = int64_t(est.kv);
    err.compute = int64_t(est.compute);
    if (const uint64_t limit = max_model_memory_.load(); limit != 0) {
        uint64_t used = 0;
        {
            std::lock_guard lk(mu_);
            for (const auto & [name, inst] : models_) {
                if (!(j.replace && name == j.name)) used += inst->sched->memory().total();
            }
        }
        if (used + est.total() > limit) {
            err.code = error_code::over_memory_limit;
            err.limit = int64_t(limit);
            err.used = int64_t(used);
            return err;
        }
    }
    // GPU_LAYERS with a GPU puts (part of) the weights and KV in device memory, which
    // MemAvailable does not describe.
    if (j.load->params.n_gpu_layers == 0 || !memory_has_gpu()) {
        const int64_t avail = memory_available();
        if (avail >= 0 && err.got > avail) {
            err.code = error_code::over_memory_available;
            err.limit = avail;
            return err;
        }
    }
    return engine_error{};
}

void model_registry::run_load(job & j) {
    pending_load & load = *j.load;
    engine_error err;
    std::shared_ptr<model_instance> inst;
    std::shared_ptr<model> weights;
    try {
        err = check_memory(j);
        // model::load reports its own errors in err, but the vocabulary probing it does can
        // throw (a tokenize error, a refused llama.cpp assert): on this worker thread an
        // escaping exception would terminate Redis.
        if (!err) weights = model::load(load.params, err, &load.cancel);
        if (weights && !load.cancel.load()) {
            inst = std::make_shared<model_instance>();
            inst->name = j.name;
            inst->weights = weights;
            if (weights->params().embedding) inst->sched = std::make_unique<embedder>(j.name, weights);
            else inst->sched = std::make_unique<scheduler>(j.name, weights);
        }
    } catch (const std::exception & e) {
        err = {};
        err.code = error_code::load_failed;
        err.detail = e.what();
        inst.reset();
    }
    std::shared_ptr<model_instance> old;
    bool cancelled;
    {
        std::lock_guard lk(mu_);
        // An unload may have dropped this load's entry and a new load of the name taken it.
        auto it = loading_.find(j.name);
        if (it != loading_.end() && it->second == j.load) loading_.erase(it);
        cancelled = load.cancel.load() || shutting_down_;  // the flag is set under mu_ too
        if (inst && !cancelled) {
            auto & sl = models_[j.name];
            old = std::move(sl);
            sl = inst;
            if (old) draining_ = old;
        }
    }
    if (cancelled) {
        // Not a failure: nothing to warn about. The weights (and a context, if the cancel came
        // after the load) are freed here, on this thread, before the unload's callback runs.
        if (inst) inst->sched->stop(stop_mode_cancel);
        inst.reset();
        weights.reset();
        log_msg(log_level::info, "model %s: load of %s cancelled", j.name.c_str(), load.params.path.c_str());
        if (j.done) j.done({registry_status_load_cancelled, {}});
        return;
    }
    if (inst) {
        log_msg(log_level::info, "model %s: loaded %s (%s, ctx %u x %u slots, batch %u, %d threads)", j.name.c_str(),
                load.params.path.c_str(), weights->info().description.c_str(), weights->params().n_ctx,
                weights->params().n_slots, weights->params().n_batch, weights->params().n_threads);
        if (j.done) j.done({registry_status_ok, {}});
    } else {
        log_msg(log_level::warning, "model %s: load of %s failed: %s", j.name.c_str(), load.params.path.c_str(),
                err.describe().c_str());
        if (j.done) j.done({registry_status_load_failed, err});
    }
    if (old) {
        old->sched->stop(stop_mode_drain);  // in-flight requests finish on the old model (shutdown hurries it)
        {
            std::lock_guard lk(mu_);
            draining_.reset();
        }
        old.reset();
        log_msg(log_level::info, "model %s: previous version drained and freed", j.name.c_str());
    }
}

void model_registry::loader_main() {
    pthread_setname_np(pthread_self(), "infer:loader");
    for (;;) {
        job j;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return shutting_down_ || !jobs_.empty(); });
            if (jobs_.empty()) return;  // shutting down with nothing left
            j = std::move(jobs_.front());
            jobs_.pop_front();
        }
        if (j.kind == job::job_load) {
            bool skip;
            {
                std::lock_guard lk(mu_);
                skip = shutting_down_;
                auto it = loading_.find(j.name);
                if (skip && it != loading_.end() && it->second == j.load) loading_.erase(it);
            }
            if (skip) {
                if (j.done) j.done({registry_status_shutting_down, {}});
                continue;
            }
            run_load(j);
        } else {
            if (j.victim) {
                j.victim->sched->stop(stop_mode_cancel);
                j.victim.reset();
            }
            log_msg(log_level::info, "model %s: unloaded", j.name.c_str());
            if (j.done) j.done({registry_status_ok, {}});
        }
    }
}

void model_registry::shutdown() {
    std::vector<std::shared_ptr<model_instance>> victims;
    {
        std::lock_guard lk(mu_);
        if (shutting_down_ && !loader_.joinable()) return;
        shutting_down_ = true;
        // A load in progress stops at its next tensor; queued ones are skipped by the loader.
        for (auto & [name, load] : loading_) load->cancel.store(true);
        for (auto & [name, inst] : models_) victims.push_back(std::move(inst));
        models_.clear();
        // A REPLACE's previous version may be draining on the loader thread: turn the drain
        // into a cancel (stop() from here hurries it along and returns once it has stopped).
        if (draining_) victims.push_back(draining_);
    }
    cv_.notify_one();
    // Each stop waits for its scheduler's current step: do them side by side, so shutdown waits
    // for the longest step, not the sum. Unloads still queued on the loader run meanwhile.
    std::vector<std::thread> stoppers;
    for (auto & inst : victims) {
        try {
            stoppers.emplace_back([inst] { inst->sched->stop(stop_mode_cancel); });
        } catch (const std::exception &) {
            inst->sched->stop(stop_mode_cancel);  // no thread to spare: one after the other
        }
    }
    if (loader_.joinable()) loader_.join();
    for (auto & t : stoppers) t.join();
}

}  // namespace infer
