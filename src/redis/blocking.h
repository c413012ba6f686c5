// The blocked-client protocol, in one place, for every command that hands work to the engine.
//
//   handler (main thread): parse + validate, then block_client() (commands/submit.h posts the
//     request with it):
//     - refuses inside MULTI/EXEC, Lua/functions and RM_Call without blocking permission,
//     - BlockClient with reply, timeout and free callbacks and a disconnect callback,
//     - if the request cannot be posted (queue full, model stopping), abort(): no leaked
//       blocked client, the handler answers with an error itself.
//   engine (scheduler thread): fills the typed result; complete() hands it over with the error
//     reply text the command layer made of it, if any.
//   result writes (main thread, a main_jobs write job): STORE, STREAM's end, a session; then
//     the client is unblocked.
//   reply callback (main thread): the only place RESP is written.
//   timeout callback: only CLIENT UNBLOCK reaches it (the engine enforces TIMEOUT itself, so a
//     timed-out request still returns its partial text); it cancels the request.
//   disconnect callback: cancels the request, which frees its slot at the next step. A client
//     closed because its ACL user was deleted (Redis has moved it to the default user by then)
//     gets no result writes at all: they would run as whoever holds the name now.
#pragma once

#include "engine/request.h"
#include "redis/rm.h"

#include <functional>
#include <memory>
#include <string>

namespace infer::rm {

// Keyspace writes a request makes with its result (STORE, STREAM's last entry, a chat session),
// on the main thread as a main_jobs write job, before the client is unblocked (so they happen
// even if it disconnected). `error` is the request's error reply, "" if it succeeded. Returns ""
// or an error reply (e.g. WRONGTYPE) to send instead. Writes go through the module's own
// context (commands/keyspace.h).
using finalize_fn = std::function<std::string(const infer_result &, const std::string & error)>;

struct blocked_call {
    std::shared_ptr<request_control> control;
    infer_result result;
    std::string error;  // the request failed: this is the reply
    // Writes the reply from the result; runs on the main thread in the reply callback.
    std::function<int(RedisModuleCtx *, infer_result &)> reply;
    finalize_fn finalize;  // may be empty; runs at most once
    std::string finalize_error;  // what finalize returned: the reply, if the result itself is fine
    std::string user;        // the client's ACL user when it blocked
    unsigned long long client_id = 0;
    bool user_lost = false;  // main thread: disconnected because its user was deleted - finalize never runs
};

// Main thread. True for a blocked client that was closed because its ACL user was deleted, until
// its blocked call is freed: writes for it that are still queued (stream entries) must not run
// as whoever holds the name now.
bool client_lost_its_user(unsigned long long client_id);

// Throws reply_error if the caller cannot be blocked (MULTI, scripts, RM_Call).
void require_blocking_allowed(RedisModuleCtx * ctx, const char * command);

using reply_fn = std::function<int(RedisModuleCtx *, infer_result &)>;

// A blocked client waiting for one result. complete() may be called from any thread, exactly
// once; abort() (main thread, before any complete()) unblocks without a reply so the handler
// can answer with an error itself.
class pending_reply {
public:
    pending_reply(RedisModuleBlockedClient * bc, blocked_call * call) : bc_(bc), call_(call) {}
    // error: the reply when the request failed ("" when it succeeded).
    void complete(infer_result && r, std::string error = {}) const;
    void abort() const;

private:
    RedisModuleBlockedClient * bc_;
    blocked_call * call_;
};

// Blocks the client; `control` is cancelled on disconnect or CLIENT UNBLOCK.
pending_reply block_client(RedisModuleCtx * ctx, std::shared_ptr<request_control> control, reply_fn reply,
                           finalize_fn finalize = nullptr);

}  // namespace infer::rm
