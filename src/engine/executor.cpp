// See executor.h.
#include "engine/executor.h"

#include "engine/backend.h"
#include "engine/utf8.h"

#include <pthread.h>

namespace infer {

executor::executor(std::string name, std::shared_ptr<const model> m)
    : name_(std::move(name)), model_(std::move(m)), queue_max_(model_->params().queue_max) {}

executor::~executor() = default;

void executor::start(const char * thread_prefix, size_t spare) {
    spare_ = spare;
    thread_ = std::thread([this, n = std::string(thread_prefix) + name_] { run(n); });
}

submit_status executor::submit(request_ptr & req) {
    {
        std::lock_guard lk(mu_);
        if (stopping_) return submit_status_stopped;
        // queue_max bounds requests *waiting*: a burst the next step takes does not count.
        if (queue_.size() >= queue_max_ + spare_) return submit_status_queue_full;
        req->posted = clock_type::now();
        queue_.push_back(std::move(req));
        queue_depth_.store(uint32_t(queue_.size()), std::memory_order_relaxed);
    }
    cv_.notify_one();
    return submit_status_ok;
}

void executor::stop(stop_mode mode) {
    {
        std::lock_guard lk(mu_);
        if (!stopping_) {
            stopping_ = true;
            stop_mode_ = mode;
        } else if (mode == stop_mode_cancel) {
            stop_mode_ = stop_mode_cancel;  // a drain can be hurried along, never the reverse
        }
    }
    cv_.notify_one();
    std::lock_guard jl(join_mu_);
    if (thread_.joinable()) thread_.join();
}

executor_stats executor::stats() const {
    executor_stats s;
    s.queue_depth = queue_depth_.load(std::memory_order_relaxed);
    s.queue_max = queue_max_;
    s.requests_total = requests_total_.load(std::memory_order_relaxed);
    s.requests_failed = requests_failed_.load(std::memory_order_relaxed);
    s.prompt_tokens = prompt_tokens_.load(std::memory_order_relaxed);
    s.steps = steps_.load(std::memory_order_relaxed);
    s.busy_seconds = double(busy_us_.load(std::memory_order_relaxed)) / 1e6;
    add_stats(s);
    s.tokens_per_sec = s.busy_seconds > 0 ? double(s.generated_tokens) / s.busy_seconds : 0.0;
    return s;
}

void executor::complete(infer_request & r, infer_result && res) {
    auto done = std::move(r.on_done);
    r.on_done = nullptr;
    if (!done) return;  // completed already
    requests_total_.fetch_add(1, std::memory_order_relaxed);
    if (res.error) requests_failed_.fetch_add(1, std::memory_order_relaxed);
    try {
        done(std::move(res));
    } catch (const std::exception & e) {
        log_msg(log_level::error, "model %s: completion callback threw: %s", name_.c_str(), e.what());
    }
}

void executor::fail(infer_request & r, error_code code) {
    infer_result res;
    res.error.code = code;
    complete(r, std::move(res));
}

bool executor::serve_utility(infer_request & r) {
    infer_result res;
    if (r.kind == request_kind_tokenize) {
        try {
            res.tokens = model_->tokenize(r.text, r.parse_special, /*add_bos=*/true);
        } catch (const tokenize_error & e) {
            res.error.code = error_code::tokenize_failed;
            res.error.detail = e.what();
        }
        if (r.with_offsets) res.offsets = model_->token_offsets(res.tokens, r.text.size());
    } else if (r.kind == request_kind_detokenize) {
        res.text = utf8_repair(model_->detokenize(r.prompt));
    } else {
        return false;
    }
    complete(r, std::move(res));
    return true;
}

void executor::complete_all(request_list & intake, const engine_error & why) {
    for (auto & r : intake) {
        if (!r) continue;
        infer_result res;
        res.error = why;
        complete(*r, std::move(res));
    }
    intake.clear();
}

void executor::run(std::string thread_name) {
    pthread_setname_np(pthread_self(), thread_name.substr(0, 15).c_str());
    request_list intake;
    for (;;) {
        bool cancel_all = false;
        {
            std::unique_lock lk(mu_);
            if (idle()) cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_ && stop_mode_ == stop_mode_cancel) {
                cancel_all = true;
                while (!queue_.empty()) {
                    intake.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            } else if (stopping_ && queue_.empty() && idle()) {
                break;
            } else {
                take(queue_, intake);
            }
            queue_depth_.store(uint32_t(queue_.size()), std::memory_order_relaxed);
        }
        if (cancel_all) {
            engine_error why;
            why.code = error_code::unloaded;
            abandon(intake, why);
            complete_all(intake, why);
            break;
        }
        try {
            step(intake);
        } catch (const std::exception & e) {
            // Our own bookkeeping (allocation) or llama.cpp can throw here: end what is running
            // and answer every request still in the intake, each exactly once.
            log_msg(log_level::error, "model %s: step failed: %s", name_.c_str(), e.what());
            engine_error why;
            why.code = error_code::internal;
            why.detail = e.what();
            abandon(intake, why);
            complete_all(intake, why);
        }
    }
}

}  // namespace infer
