// Handing a request to a model's executor for a blocked client: the one path every command that
// waits for the engine takes, so an engine error always becomes its reply text in one place
// (errors.h) and a request that cannot be posted never leaves a client blocked.
#pragma once

#include "engine/executor.h"
#include "redis/blocking.h"

#include <memory>

namespace infer::cmd {

// Blocks the client and submits req to sched. On any failure the client is not left blocked and
// a reply_error is thrown. `reply` formats the result; `finalize` writes it (blocking.h).
void block_and_submit(RedisModuleCtx * ctx, executor & sched, std::unique_ptr<infer_request> req, rm::reply_fn reply,
                      rm::finalize_fn finalize = nullptr);

// req's on_done for a blocked client waiting on sched: the result, with the error worded.
void complete_on_done(infer_request & req, const executor & sched, const rm::pending_reply & pending);

}  // namespace infer::cmd
