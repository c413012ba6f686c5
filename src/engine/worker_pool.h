// A few long-lived helper threads for data-parallel work inside a scheduler step (sampling
// many slots at once). The calling thread works too, so a pool of 0 helpers runs inline.
// parallel_for is meant to be called from one thread at a time (the owning scheduler).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace infer {

class worker_pool {
public:
    explicit worker_pool(size_t helpers);
    ~worker_pool();

    // Runs fn(i) for every i in [0, n); returns when all calls have returned. If calls throw,
    // the first exception is rethrown here once every call has returned (on a helper thread
    // it would terminate the process; on this one it would leave helpers using a dead fn).
    void parallel_for(size_t n, const std::function<void(size_t)> & fn);

private:
    void run_items();

    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable start_cv_, done_cv_;
    const std::function<void(size_t)> * fn_ = nullptr;
    size_t n_ = 0;
    std::atomic<size_t> next_{0};
    size_t busy_ = 0;        // helpers still working on the current job
    uint64_t generation_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;  // the current job's first exception, under mu_
};

}  // namespace infer
