// See outputs.h.
#include "commands/outputs.h"

#include "redis/blocking.h"
#include "redis/main_jobs.h"

#include <mutex>

namespace infer::cmd {
namespace {

RedisModuleCtx * g_ctx = nullptr;  // detached; used on the main thread only
constexpr long long k_keep_ttl = -2;  // set_token_key: SET ... KEEPTTL

// False once the calling client is no longer authenticated as who.user (its user was deleted; a
// user of the same name may exist again): while it is still connected, by its user now; once it
// has gone, by what its disconnect callback saw (blocking.h).
bool client_still_is(const write_as & who) {
    if (who.client_id == 0) return true;
    RedisModuleString * now = RedisModule_GetClientUserNameById(g_ctx, who.client_id);
    if (!now) return !rm::client_lost_its_user(who.client_id);  // gone: a plain disconnect still writes
    const bool same = rm::str(now) == who.user;
    RedisModule_FreeString(g_ctx, now);
    return same;
}

// Runs fn with g_ctx selected to the caller's db, once the caller's ACL user may write `key`
// (key permissions: the user needs @infer, not +set or +xadd). Main thread only.
template <class F>
std::string as_caller(const write_as & who, const std::string & key, int key_flags, F && fn) {
    if (key_flags != REDISMODULE_CMD_KEY_ACCESS) {
        // Writes run as main_jobs write jobs, which wait out a pause; this is the backstop.
        if (RedisModule_AvoidReplicaTraffic()) return "TRYAGAIN writes are paused - nothing written";
        // The node may have been demoted since the command arrived.
        const int flags = RedisModule_GetContextFlags(nullptr);
        if ((flags & REDISMODULE_CTX_FLAGS_SLAVE) && (flags & REDISMODULE_CTX_FLAGS_READONLY)) {
            return "READONLY You can't write against a read only replica.";
        }
    }
    rm::rm_string name(RedisModule_CreateString(nullptr, who.user.data(), who.user.size()), rm::string_freer{nullptr});
    RedisModuleUser * user = RedisModule_GetModuleUserFromUserName(name.get());
    if (!user) return "ERR the ACL user '" + who.user + "' no longer exists - nothing written";
    if (!client_still_is(who)) {
        RedisModule_FreeModuleUser(user);
        return "ERR the ACL user '" + who.user + "' no longer exists - nothing written";
    }
    rm::rm_string k(RedisModule_CreateString(nullptr, key.data(), key.size()), rm::string_freer{nullptr});
    const bool allowed = RedisModule_ACLCheckKeyPermissions(user, k.get(), key_flags) == REDISMODULE_OK;
    RedisModule_FreeModuleUser(user);
    if (!allowed) return "NOPERM No permissions to access a key";
    RedisModule_SelectDb(g_ctx, who.db);
    return fn();
}

std::string reply_error_text(RedisModuleCallReply * r) {
    if (!r) return "ERR the write failed (errno " + std::to_string(errno) + ")";
    if (RedisModule_CallReplyType(r) != REDISMODULE_REPLY_ERROR) return "";
    size_t n = 0;
    const char * p = RedisModule_CallReplyStringPtr(r, &n);
    return std::string(p, n);
}

}  // namespace

write_as write_as::caller(RedisModuleCtx * ctx) {
    write_as w;
    w.db = RedisModule_GetSelectedDb(ctx);
    w.client_id = RedisModule_GetClientId(ctx);
    if (RedisModuleString * u = RedisModule_GetCurrentUserName(ctx)) {
        w.user = std::string(rm::str(u));
        RedisModule_FreeString(ctx, u);
    } else {
        w.user = "default";
    }
    return w;
}

class stream_sink : public std::enable_shared_from_this<stream_sink> {
public:
    stream_sink(write_as who, std::string key) : who_(std::move(who)), key_(std::move(key)) {}

    // Scheduler thread.
    void push(const std::vector<token> & ids, const std::string & text);
    // Main thread (main_jobs write jobs).
    void flush();
    std::string finish(const infer_result & res);

private:
    write_as who_;
    std::string key_;
    std::mutex mu_;
    std::string text_;
    std::string ids_;    // comma-separated
    bool queued_ = false;
    std::string error_;  // main thread: the first write that failed; nothing is appended after it
};

void stream_sink::push(const std::vector<token> & ids, const std::string & text) {
    {
        std::lock_guard lk(mu_);
        text_ += text;
        for (token t : ids) {
            if (!ids_.empty()) ids_ += ',';
            ids_ += std::to_string(t);
        }
        if (queued_) return;
        queued_ = true;
    }
    // One job per sink per main-thread turn, however many steps pushed meanwhile.
    rm::post_main_job(rm::job_kind::write, [self = shared_from_this()] { self->flush(); });
}

void stream_sink::flush() {
    std::string text, ids;
    {
        std::lock_guard lk(mu_);
        text.swap(text_);
        ids.swap(ids_);
        queued_ = false;
    }
    // A stream with a hole must not look whole: after a failed write nothing more is appended.
    if (!error_.empty() || (text.empty() && ids.empty())) return;
    error_ = as_caller(who_, key_, REDISMODULE_CMD_KEY_INSERT, [&] {
        rm::rm_call_reply r(RedisModule_Call(g_ctx, "XADD", "!Ebccbcb", key_.data(), key_.size(), "*", "text",
                                             text.data(), text.size(), "tokens", ids.data(), ids.size()));
        return reply_error_text(r.get());
    });
}

std::string stream_sink::finish(const infer_result & res) {
    flush();
    // After a failed write the last entry carries that error (if it can be written at all), and
    // the reply is that error: the stream ended early, whatever the generation did.
    const std::string & error = error_.empty() ? res.error : error_;
    const std::string err = as_caller(who_, key_, REDISMODULE_CMD_KEY_INSERT, [&] {
        rm::rm_call_reply r;
        if (!error.empty()) {
            r.reset(RedisModule_Call(g_ctx, "XADD", "!Ebccb", key_.data(), key_.size(), "*", "error", error.data(),
                                     error.size()));
        } else {
            r.reset(RedisModule_Call(g_ctx, "XADD", "!Ebcccclclcl", key_.data(), key_.size(), "*", "finish_reason",
                                     finish_reason_name(res.finish), "prompt_tokens", (long long) res.prompt_tokens,
                                     "completion_tokens", (long long) res.completion_tokens, "cached_tokens",
                                     (long long) res.cached_tokens));
        }
        return reply_error_text(r.get());
    });
    return error_.empty() ? err : error_;
}

void outputs_init(RedisModuleCtx * ctx) { g_ctx = RedisModule_GetDetachedThreadSafeContext(ctx); }

void outputs_shutdown() {
    if (g_ctx) RedisModule_FreeThreadSafeContext(g_ctx);
    g_ctx = nullptr;
}

std::shared_ptr<stream_sink> stream_attach(const write_as & who, const std::string & key, infer_request & req) {
    auto sink = std::make_shared<stream_sink>(who, key);
    req.on_stream = [sink](const std::vector<token> & ids, const std::string & text) { sink->push(ids, text); };
    return sink;
}

std::string stream_finish(stream_sink & sink, const infer_result & res) { return sink.finish(res); }

std::string with_caller_key(const write_as & who, const std::string & key, int key_flags,
                            const std::function<std::string(RedisModuleCtx *)> & fn) {
    return as_caller(who, key, key_flags, [&] { return fn(g_ctx); });
}

std::string check_string_or_empty(RedisModuleCtx * ctx, const std::string & key) {
    rm::rm_string k(RedisModule_CreateString(ctx, key.data(), key.size()), rm::string_freer{ctx});
    rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(ctx, k.get(), REDISMODULE_READ)));
    const int type = RedisModule_KeyType(h.get());
    if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_STRING) {
        return "WRONGTYPE Operation against a key holding the wrong kind of value";
    }
    return "";
}

std::string vector_set_dim(RedisModuleCtx * ctx, const std::string & key, long long & dim) {
    dim = 0;
    rm::rm_string k(RedisModule_CreateString(ctx, key.data(), key.size()), rm::string_freer{ctx});
    rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(ctx, k.get(), REDISMODULE_READ)));
    const int type = RedisModule_KeyType(h.get());
    h.reset();
    if (type == REDISMODULE_KEYTYPE_EMPTY) return "";
    if (type != REDISMODULE_KEYTYPE_MODULE) return "WRONGTYPE Operation against a key holding the wrong kind of value";
    rm::rm_call_reply r(RedisModule_Call(ctx, "VDIM", "b", key.data(), key.size()));
    if (!r || RedisModule_CallReplyType(r.get()) != REDISMODULE_REPLY_INTEGER) {
        return "WRONGTYPE Operation against a key holding the wrong kind of value";
    }
    dim = RedisModule_CallReplyInteger(r.get());
    return "";
}

std::string add_vector(const write_as & who, const std::string & vset, const std::string & element,
                       const std::vector<float> & v) {
    return as_caller(who, vset, REDISMODULE_CMD_KEY_INSERT, [&] {
        long long dim = 0;
        if (std::string err = vector_set_dim(g_ctx, vset, dim); !err.empty()) return err;
        if (dim != 0 && dim != (long long) v.size()) {
            return "ERR vector dimension mismatch for " + std::string(vset) + " - got " + std::to_string(v.size()) +
                   ", the set has " + std::to_string(dim) + " (embedded with another model?)";
        }
        static_assert(sizeof(float) == 4, "FP32 blobs");
        rm::rm_call_reply r(RedisModule_Call(g_ctx, "VADD", "!Ebcbb", vset.data(), vset.size(), "FP32",
                                             reinterpret_cast<const char *>(v.data()), v.size() * sizeof(float),
                                             element.data(), element.size()));
        return reply_error_text(r.get());
    });
}

std::string store_blob(const write_as & who, const std::string & key, std::string_view blob) {
    return as_caller(who, key, REDISMODULE_CMD_KEY_UPDATE, [&] {
        if (std::string err = check_string_or_empty(g_ctx, key); !err.empty()) return err;
        rm::rm_call_reply r(RedisModule_Call(g_ctx, "SET", "!Ebb", key.data(), key.size(), blob.data(), blob.size()));
        return reply_error_text(r.get());
    });
}

namespace {

// SET key blob [extra], after checking the key holds a string or nothing (WRONGTYPE otherwise).
// No 'M' flag: the command that asked for this write was admitted (deny-oom commands are refused
// up front); under an eviction policy a write over maxmemory is caught up with by eviction, as
// after a client's own write, instead of failing half-way through a request.
std::string set_token_key(const std::string & key, const std::string & blob, long long pxat) {
    rm::rm_string k(RedisModule_CreateString(g_ctx, key.data(), key.size()), rm::string_freer{g_ctx});
    rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(g_ctx, k.get(), REDISMODULE_READ)));
    const int type = RedisModule_KeyType(h.get());
    h.reset();
    if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_STRING) {
        return std::string("WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    rm::rm_call_reply r;
    if (pxat == k_keep_ttl && type != REDISMODULE_KEYTYPE_EMPTY) {
        r.reset(RedisModule_Call(g_ctx, "SET", "!Ebbc", key.data(), key.size(), blob.data(), blob.size(), "KEEPTTL"));
    } else if (pxat >= 0) {
        r.reset(RedisModule_Call(g_ctx, "SET", "!Ebbcl", key.data(), key.size(), blob.data(), blob.size(), "PXAT", pxat));
    } else {
        r.reset(RedisModule_Call(g_ctx, "SET", "!Ebb", key.data(), key.size(), blob.data(), blob.size()));
    }
    return reply_error_text(r.get());
}

}  // namespace

std::string store_tokens(const write_as & who, const std::string & key, const std::vector<token> & ids) {
    const std::string blob = tokens_to_blob(ids);
    return as_caller(who, key, REDISMODULE_CMD_KEY_UPDATE, [&] { return set_token_key(key, blob, -1); });
}

std::string store_session(const write_as & who, const std::string & key, const std::vector<token> & ids,
                          long long expire_at_start) {
    const std::string blob = tokens_to_blob(ids);
    return as_caller(who, key, REDISMODULE_CMD_KEY_UPDATE, [&] {
        // Still there: keep whatever expiry it has now (an EXPIRE or PERSIST during the turn
        // wins). Gone (expired or deleted during the turn): the expiry it had when the turn
        // started - already past, SET does not create it, so an expiring session stays expired.
        rm::rm_string k(RedisModule_CreateString(g_ctx, key.data(), key.size()), rm::string_freer{g_ctx});
        rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(g_ctx, k.get(), REDISMODULE_READ)));
        const bool exists = RedisModule_KeyType(h.get()) != REDISMODULE_KEYTYPE_EMPTY;
        h.reset();
        return set_token_key(key, blob, exists ? k_keep_ttl : expire_at_start);
    });
}

}  // namespace infer::cmd
