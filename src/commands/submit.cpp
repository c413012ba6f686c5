// See submit.h.
#include "commands/submit.h"

#include "commands/errors.h"

namespace infer::cmd {

void complete_on_done(infer_request & req, const executor & sched, const rm::pending_reply & pending) {
    req.on_done = [pending, model = sched.name()](infer_result && r) {
        std::string error = error_text(r.error, model);
        pending.complete(std::move(r), std::move(error));
    };
}

void block_and_submit(RedisModuleCtx * ctx, executor & sched, std::unique_ptr<infer_request> req, rm::reply_fn reply,
                      rm::finalize_fn finalize) {
    const rm::pending_reply pending = rm::block_client(ctx, req->control, std::move(reply), std::move(finalize));
    complete_on_done(*req, sched, pending);
    const submit_status st = sched.submit(req);
    if (st == submit_status_ok) return;
    pending.abort();
    throw rm::reply_error(submit_error_text(sched, st));
}

}  // namespace infer::cmd
