// See main_jobs.h.
#include "redis/main_jobs.h"

#include <deque>
#include <mutex>

namespace infer::rm {
namespace {

struct job {
    job_kind kind;
    std::function<void()> fn;
};

constexpr mstime_t k_retry_ms = 5;  // while loading or paused

std::mutex g_mu;
std::deque<job> g_jobs;     // guarded by g_mu
bool g_woken = false;       // guarded by g_mu: a one-shot or the timer will look at g_jobs
RedisModuleCtx * g_ctx = nullptr;  // detached, for the timer
bool g_timer_armed = false;        // main thread only
RedisModuleTimerID g_timer = 0;    // main thread only

void on_timer(RedisModuleCtx *, void *);

void arm(mstime_t ms) {
    if (g_timer_armed || !g_ctx) return;
    g_timer = RedisModule_CreateTimer(g_ctx, ms, on_timer, nullptr);
    g_timer_armed = true;
}

// Main thread, possibly inside processEventsWhileBlocked: only arm the timer.
void on_wake(void *) { arm(0); }

void on_timer(RedisModuleCtx *, void *) {
    g_timer_armed = false;
    const int flags = RedisModule_GetContextFlags(nullptr);
    const bool loading = flags & (REDISMODULE_CTX_FLAGS_LOADING | REDISMODULE_CTX_FLAGS_ASYNC_LOADING);
    const bool paused = RedisModule_AvoidReplicaTraffic();
    std::deque<job> jobs, keep;
    {
        std::lock_guard lk(g_mu);
        jobs.swap(g_jobs);
        g_woken = false;
    }
    for (auto & j : jobs) {
        if (loading || (paused && j.kind == job_kind::write)) {
            keep.push_back(std::move(j));
            continue;
        }
        try {
            j.fn();
        } catch (const std::exception & e) {
            log("warning", std::string("a main-thread job failed: ") + e.what());
        }
    }
    if (keep.empty()) return;
    {
        std::lock_guard lk(g_mu);
        // Older than anything posted meanwhile: in front.
        for (auto it = keep.rbegin(); it != keep.rend(); ++it) g_jobs.push_front(std::move(*it));
        g_woken = true;
    }
    arm(k_retry_ms);
}

}  // namespace

void main_jobs_init(RedisModuleCtx * ctx) { g_ctx = RedisModule_GetDetachedThreadSafeContext(ctx); }

void main_jobs_shutdown() {
    if (g_timer_armed) RedisModule_StopTimer(g_ctx, g_timer, nullptr);
    g_timer_armed = false;
    if (g_ctx) RedisModule_FreeThreadSafeContext(g_ctx);
    g_ctx = nullptr;
    std::lock_guard lk(g_mu);
    g_jobs.clear();
}

void post_main_job(job_kind kind, std::function<void()> fn) {
    bool wake = false;
    {
        std::lock_guard lk(g_mu);
        g_jobs.push_back({kind, std::move(fn)});
        wake = !g_woken;
        g_woken = true;
    }
    if (wake) RedisModule_EventLoopAddOneShot(on_wake, nullptr);
}

}  // namespace infer::rm
