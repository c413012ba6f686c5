// See blocking.h.
#include "redis/blocking.h"

#include "redis/main_jobs.h"

#include <unordered_set>

namespace infer::rm {
namespace {

std::unordered_set<unsigned long long> g_lost_user_clients;  // main thread

std::string run_finalize(blocked_call & call) {
    if (!call.finalize) return "";
    auto f = std::move(call.finalize);
    call.finalize = nullptr;
    try {
        return f(call.result, call.error);
    } catch (const std::exception & e) {
        log("warning", std::string("writing a result failed: ") + e.what());
        return std::string("ERR writing the result failed - ") + e.what();
    }
}

int on_reply(RedisModuleCtx * ctx, RedisModuleString **, int) {
    auto * call = static_cast<blocked_call *>(RedisModule_GetBlockedClientPrivateData(ctx));
    return guard(ctx, [&] {
        const std::string err = call->finalize_error;
        if (!call->error.empty()) return RedisModule_ReplyWithError(ctx, call->error.c_str());
        if (!err.empty()) return RedisModule_ReplyWithError(ctx, err.c_str());
        return call->reply(ctx, call->result);
    });
}

int on_timeout(RedisModuleCtx * ctx, RedisModuleString **, int) {
    // Only CLIENT UNBLOCK gets here: BlockClient is called without a Redis-side timeout.
    if (auto * call = static_cast<blocked_call *>(RedisModule_GetBlockedClientPrivateData(ctx))) {
        call->control->cancelled.store(true);
    }
    return RedisModule_ReplyWithError(ctx, "ERR request cancelled - the client was unblocked");
}

void on_free(RedisModuleCtx *, void * privdata) {
    // The writes ran before the unblock (complete), whether the client is still there or not.
    auto * call = static_cast<blocked_call *>(privdata);
    if (call && call->user_lost) g_lost_user_clients.erase(call->client_id);
    delete call;
}

std::string current_user(RedisModuleCtx * ctx) {
    RedisModuleString * u = RedisModule_GetCurrentUserName(ctx);
    if (!u) return "";
    std::string name(str(u));
    RedisModule_FreeString(ctx, u);
    return name;
}

void on_disconnect(RedisModuleCtx * ctx, RedisModuleBlockedClient * bc) {
    if (auto * call = static_cast<blocked_call *>(RedisModule_BlockClientGetPrivateData(bc))) {
        call->control->cancelled.store(true);
        if (current_user(ctx) != call->user) {
            call->user_lost = true;
            g_lost_user_clients.insert(call->client_id);
        }
    }
}

}  // namespace

bool client_lost_its_user(unsigned long long client_id) { return g_lost_user_clients.count(client_id) != 0; }

void require_blocking_allowed(RedisModuleCtx * ctx, const char * command) {
    const int flags = RedisModule_GetContextFlags(ctx);
    if (flags & (REDISMODULE_CTX_FLAGS_MULTI | REDISMODULE_CTX_FLAGS_LUA | REDISMODULE_CTX_FLAGS_DENY_BLOCKING)) {
        throw reply_error(std::string("ERR ") + command +
                          " cannot run inside MULTI/EXEC, scripts or module calls - it blocks the client");
    }
}

pending_reply block_client(RedisModuleCtx * ctx, std::shared_ptr<request_control> control, reply_fn reply,
                           finalize_fn finalize) {
    auto call = std::make_unique<blocked_call>();
    call->control = std::move(control);
    call->reply = std::move(reply);
    call->finalize = std::move(finalize);
    call->user = current_user(ctx);
    call->client_id = RedisModule_GetClientId(ctx);
    RedisModuleBlockedClient * bc = RedisModule_BlockClient(ctx, on_reply, on_timeout, on_free, 0);
    if (!bc) throw reply_error("ERR cannot block this client");
    RedisModule_BlockClientSetPrivateData(bc, call.get());
    RedisModule_SetDisconnectCallback(bc, on_disconnect);
    return pending_reply(bc, call.release());  // Redis owns it now: on_free deletes it
}

void pending_reply::complete(infer_result && r, std::string error) const {
    call_->result = std::move(r);
    call_->error = std::move(error);
    if (!call_->finalize) {
        RedisModule_UnblockClient(bc_, call_);
        return;
    }
    // The result's writes run as a main-thread job (see main_jobs.h: never while Redis loads,
    // flushes or runs a script, never while writes are paused), then the client is unblocked:
    // its reply comes after them, and they happen even if it has gone.
    RedisModuleBlockedClient * bc = bc_;
    blocked_call * call = call_;
    post_main_job(job_kind::write, [bc, call] {
        call->finalize_error = call->user_lost
            ? "ERR the ACL user '" + call->user + "' no longer exists - nothing written"
            : run_finalize(*call);
        RedisModule_UnblockClient(bc, call);
    });
}

void pending_reply::abort() const {
    // AbortBlock unblocks without callbacks and clears the private data, so on_free never sees
    // call_: delete it here.
    RedisModule_AbortBlock(bc_);
    delete call_;
}

}  // namespace infer::rm
