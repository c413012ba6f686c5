// See worker_pool.h.
#include "engine/worker_pool.h"

#include <utility>

namespace infer {

worker_pool::worker_pool(size_t helpers) {
    for (size_t i = 0; i < helpers; ++i) {
        threads_.emplace_back([this] {
            uint64_t seen = 0;
            for (;;) {
                {
                    std::unique_lock lk(mu_);
                    start_cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
                    if (stop_) return;
                    seen = generation_;
                }
                run_items();
                std::lock_guard lk(mu_);
                if (--busy_ == 0) done_cv_.notify_one();
            }
        });
    }
}

worker_pool::~worker_pool() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    start_cv_.notify_all();
    for (auto & t : threads_) t.join();
}

void worker_pool::run_items() {
    for (size_t i; (i = next_.fetch_add(1)) < n_;) {
        try {
            (*fn_)(i);
        } catch (...) {
            std::lock_guard lk(mu_);
            if (!error_) error_ = std::current_exception();
        }
    }
}

void worker_pool::parallel_for(size_t n, const std::function<void(size_t)> & fn) {
    if (threads_.empty() || n < 2) {
        std::exception_ptr first;
        for (size_t i = 0; i < n; ++i) {
            try {
                fn(i);
            } catch (...) {
                if (!first) first = std::current_exception();
            }
        }
        if (first) std::rethrow_exception(first);
        return;
    }
    {
        std::lock_guard lk(mu_);
        fn_ = &fn;
        n_ = n;
        next_ = 0;
        error_ = nullptr;
        busy_ = threads_.size();
        ++generation_;
    }
    start_cv_.notify_all();
    run_items();
    std::unique_lock lk(mu_);
    done_cv_.wait(lk, [&] { return busy_ == 0; });
    fn_ = nullptr;
    if (auto e = std::exchange(error_, nullptr)) std::rethrow_exception(e);
}

}  // namespace infer
