// Keyspace work that other threads hand to the Redis main thread: stream entries, STORE, chat
// sessions, RAG's VSIM and chunk reads, and the unblocking of a client whose result writes keys.
//
// The invariant (docs/architecture.md): no keyspace read or write of the module runs while Redis
// empties a database (a replica's full sync, FLUSHALL), loads data (DEBUG RELOAD, a replica's
// RDB, the AOF), or runs a script or function past busy-reply-threshold - and no write runs while
// writes are paused (CLIENT PAUSE WRITE, a failover). Redis runs event-loop one-shots, and file
// events generally, inside processEventsWhileBlocked during all three; an XADD from there once
// crashed a replica in the middle of its flush and broke a script's atomicity. Time events never
// run there. So a job is woken by a one-shot (thread-safe, from any thread) that only arms a
// module timer, and the timer callback, which runs from the main event loop alone, checks the
// server's state and runs the jobs it may: all of them, or the reads only while writes are
// paused, or none while loading (then it looks again a few milliseconds later).
#pragma once

#include "redis/rm.h"

#include <functional>

namespace infer::rm {

enum class job_kind {
    read,   // reads keys (may run while writes are paused)
    write,  // writes keys (waits out a pause; order among writes is kept)
};

void main_jobs_init(RedisModuleCtx * ctx);  // OnLoad
void main_jobs_shutdown();                  // OnUnload

// Runs fn on the main thread when the server's state allows it. Any thread. Jobs of one kind run
// in the order they were posted. fn must not throw (a throw is logged and swallowed).
void post_main_job(job_kind kind, std::function<void()> fn);

}  // namespace infer::rm
