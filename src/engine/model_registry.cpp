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
    for (const auto & [name, params] : loading_) {
        if (!models_.count(name)) out.push_back({name, "loading", nullptr, params});
    }
    return out;
}

std::string model_registry::load_async(const std::string & name, const model_params & params, bool replace,
                                       done_fn done) {
    {
        std::lock_guard lk(mu_);
        if (shutting_down_) return "ERR the module is shutting down";
        if (loading_.count(name)) return "ERR model '" + name + "' is already being loaded";
        if (models_.count(name) && !replace) {
            return "ERR model '" + name + "' is already loaded - use REPLACE to swap it";
        }
        loading_[name] = params;
        jobs_.push_back(job{job::job_load, name, params, replace, nullptr, std::move(done)});
    }
    cv_.notify_one();
    return "";
}

std::string model_registry::unload_async(const std::string & name, done_fn done) {
    {
        std::lock_guard lk(mu_);
        if (shutting_down_) return "ERR the module is shutting down";
        auto it = models_.find(name);
        if (it == models_.end()) {
            return loading_.count(name) ? "ERR model '" + name + "' is still loading" : "ERR no such model '" + name + "'";
        }
        jobs_.push_back(job{job::job_unload, name, {}, false, it->second, std::move(done)});
        models_.erase(it);
    }
    cv_.notify_one();
    return "";
}

void model_registry::run_load(job & j) {
    std::string err;
    std::shared_ptr<model_instance> inst;
    std::shared_ptr<model> weights;
    try {
        // model::load reports its own errors in err, but the vocabulary probing it does can
        // throw (a tokenize error, a refused llama.cpp assert): on this worker thread an
        // escaping exception would terminate Redis.
        weights = model::load(j.params, err);
        if (weights) {
            inst = std::make_shared<model_instance>();
            inst->name = j.name;
            inst->weights = weights;
            if (weights->params().embedding) inst->sched = std::make_unique<embedder>(j.name, weights);
            else inst->sched = std::make_unique<scheduler>(j.name, weights);
        }
    } catch (const std::exception & e) {
        err = e.what();
        inst.reset();
    }
    std::shared_ptr<model_instance> old;
    {
        std::lock_guard lk(mu_);
        loading_.erase(j.name);
        if (inst) {
            auto & sl = models_[j.name];
            old = std::move(sl);
            sl = inst;
        }
    }
    if (inst) {
        log_msg(log_level::info, "model %s: loaded %s (%s, ctx %u x %u slots, batch %u, %d threads)", j.name.c_str(),
                j.params.path.c_str(), weights->info().description.c_str(), weights->params().n_ctx,
                weights->params().n_slots, weights->params().n_batch, weights->params().n_threads);
        if (j.done) j.done("");
    } else {
        log_msg(log_level::warning, "model %s: load of %s failed: %s", j.name.c_str(), j.params.path.c_str(), err.c_str());
        if (j.done) j.done("ERR cannot load model '" + j.name + "' - " + err);
    }
    if (old) {
        old->sched->stop(stop_mode_drain);  // in-flight requests finish on the old model
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
                if (skip) loading_.erase(j.name);
            }
            if (skip) {
                if (j.done) j.done("ERR the module is shutting down");
                continue;
            }
            run_load(j);
        } else {
            j.victim->sched->stop(stop_mode_cancel);
            j.victim.reset();
            log_msg(log_level::info, "model %s: unloaded", j.name.c_str());
            if (j.done) j.done("");
        }
    }
}

void model_registry::shutdown() {
    std::map<std::string, std::shared_ptr<model_instance>> victims;
    {
        std::lock_guard lk(mu_);
        if (shutting_down_ && !loader_.joinable()) return;
        shutting_down_ = true;
    }
    cv_.notify_one();
    if (loader_.joinable()) loader_.join();
    {
        std::lock_guard lk(mu_);
        victims.swap(models_);
    }
    for (auto & [name, inst] : victims) inst->sched->stop(stop_mode_cancel);
}

}  // namespace infer
