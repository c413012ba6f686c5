// See keyspace.h.
#include "commands/keyspace.h"

#include "commands/args.h"
#include "redis/blocking.h"

#include <cstdlib>


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
        if (rm::readonly_replica(flags)) {
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


}  // namespace

std::string reply_error_text(RedisModuleCallReply * r) {
    if (!r) return "ERR the write failed (errno " + std::to_string(errno) + ")";
    if (RedisModule_CallReplyType(r) != REDISMODULE_REPLY_ERROR) return "";
    size_t n = 0;
    const char * p = RedisModule_CallReplyStringPtr(r, &n);
    return std::string(p, n);
}

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

void keyspace_init(RedisModuleCtx * ctx) { g_ctx = RedisModule_GetDetachedThreadSafeContext(ctx); }

void keyspace_shutdown() {
    if (g_ctx) RedisModule_FreeThreadSafeContext(g_ctx);
    g_ctx = nullptr;
}

std::string with_caller_key(const write_as & who, const std::string & key, int key_flags,
                            const std::function<std::string(RedisModuleCtx *)> & fn) {
    return as_caller(who, key, key_flags, [&] { return fn(g_ctx); });
}

std::string check_type_or_empty(RedisModuleCtx * ctx, const std::string & key, int type) {
    rm::rm_string k(RedisModule_CreateString(ctx, key.data(), key.size()), rm::string_freer{ctx});
    rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(ctx, k.get(), REDISMODULE_READ)));
    const int have = RedisModule_KeyType(h.get());
    if (have != REDISMODULE_KEYTYPE_EMPTY && have != type) return "WRONGTYPE Operation against a key holding the wrong kind of value";
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
        if (std::string err = check_type_or_empty(g_ctx, key, REDISMODULE_KEYTYPE_STRING); !err.empty()) return err;
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

void read_token_key(RedisModuleCtx * ctx, RedisModuleString * key, const model & m, size_t max_tokens,
                    std::vector<token> & out) {
    rm::rm_key k(static_cast<RedisModuleKey *>(RedisModule_OpenKey(ctx, key, REDISMODULE_READ)));
    const int type = RedisModule_KeyType(k.get());
    if (type == REDISMODULE_KEYTYPE_EMPTY) throw rm::reply_error("ERR token key " + quote(rm::str(key)) + " does not exist");
    if (type != REDISMODULE_KEYTYPE_STRING) {
        throw rm::reply_error("WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    size_t len = 0;
    const char * p = RedisModule_StringDMA(k.get(), &len, REDISMODULE_READ);
    const blob_check c = tokens_append_blob({p, len}, m.info().n_vocab, max_tokens, out);
    switch (c.status) {
        case blob_status_ok: return;
        case blob_status_bad_length:
            throw rm::reply_error("ERR token key " + quote(rm::str(key)) + " is not packed uint32 - got " +
                                  std::to_string(len) + " bytes, expected a multiple of 4");
        case blob_status_bad_token:
            throw rm::reply_error("ERR token id out of range in key " + quote(rm::str(key)) + " at index " +
                                  std::to_string(c.index) + " - got " + std::to_string(c.value) + ", expected 0.." +
                                  std::to_string(m.info().n_vocab - 1));
        case blob_status_too_long:
            throw rm::reply_error("ERR prompt too long - got " + std::to_string(out.size() + len / 4) +
                                  " tokens, expected at most " + std::to_string(max_tokens));
    }
}

namespace {

double parse_score(RedisModuleCallReply * r) {
    if (RedisModule_CallReplyType(r) == REDISMODULE_REPLY_DOUBLE) return RedisModule_CallReplyDouble(r);
    size_t n = 0;
    const char * p = RedisModule_CallReplyStringPtr(r, &n);
    return p ? std::strtod(std::string(p, n).c_str(), nullptr) : 0.0;
}

}  // namespace

std::string vsim_as_caller(const write_as & who, const std::string & vset, const std::vector<float> & v, long long k,
                           const std::string & filter, std::vector<vsim_match> & out) {
    return with_caller_key(who, vset, REDISMODULE_CMD_KEY_ACCESS, [&](RedisModuleCtx * g) {
        const char * blob = reinterpret_cast<const char *>(v.data());
        const size_t len = v.size() * sizeof(float);
        // NOTHREAD: this runs off the command path already, and RM_Call cannot block.
        rm::rm_call_reply r(filter.empty()
            ? RedisModule_Call(g, "VSIM", "Ebcbcclc", vset.data(), vset.size(), "FP32", blob, len, "WITHSCORES",
                               "COUNT", k, "NOTHREAD")
            : RedisModule_Call(g, "VSIM", "Ebcbcclcbc", vset.data(), vset.size(), "FP32", blob, len, "WITHSCORES",
                               "COUNT", k, "FILTER", filter.data(), filter.size(), "NOTHREAD"));
        if (!r) return "ERR VSIM failed (errno " + std::to_string(errno) + ")";
        if (RedisModule_CallReplyType(r.get()) == REDISMODULE_REPLY_ERROR) return reply_error_text(r.get());
        const size_t n = RedisModule_CallReplyLength(r.get());
        const bool map = RedisModule_CallReplyType(r.get()) == REDISMODULE_REPLY_MAP;
        for (size_t i = 0; map ? i < n : i + 1 < n; i += map ? 1 : 2) {
            RedisModuleCallReply *name = nullptr, *score = nullptr;
            if (map) {
                RedisModule_CallReplyMapElement(r.get(), i, &name, &score);
            } else {
                name = RedisModule_CallReplyArrayElement(r.get(), i);
                score = RedisModule_CallReplyArrayElement(r.get(), i + 1);
            }
            size_t len_name = 0;
            const char * p = RedisModule_CallReplyStringPtr(name, &len_name);
            out.push_back({std::string(p ? p : "", p ? len_name : 0), parse_score(score)});
        }
        return std::string();
    });
}

std::string read_chunk_as_caller(const write_as & who, const std::string & vset, const std::string & element,
                                 const model & m, const std::string & model_name, size_t max_tokens,
                                 std::vector<token> & out) {
    const bool cluster = RedisModule_GetContextFlags(nullptr) & REDISMODULE_CTX_FLAGS_CLUSTER;
    return with_caller_key(who, element, REDISMODULE_CMD_KEY_ACCESS, [&](RedisModuleCtx * g) {
        rm::rm_string k(RedisModule_CreateString(g, element.data(), element.size()), rm::string_freer{g});
        rm::rm_string vk(RedisModule_CreateString(g, vset.data(), vset.size()), rm::string_freer{g});
        if (cluster && RedisModule_ClusterKeySlot(k.get()) != RedisModule_ClusterKeySlot(vk.get())) {
            return "ERR chunk key " + quote(element) + " is in another hash slot than " + quote(vset) +
                   " - give the corpus keys and the vector set one hash tag";
        }
        rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(g, k.get(), REDISMODULE_READ)));
        const int type = RedisModule_KeyType(h.get());
        if (type == REDISMODULE_KEYTYPE_EMPTY) {
            return "ERR chunk key " + quote(element) + " in " + quote(vset) + " does not exist - re-ingest it or VREM it from the set";
        }
        if (type != REDISMODULE_KEYTYPE_STRING) return "ERR chunk key " + quote(element) + " is not a token key (it holds another type)";
        size_t len = 0;
        const char * p = RedisModule_StringDMA(h.get(), &len, REDISMODULE_READ);
        const blob_check c = tokens_append_blob({p, len}, m.info().n_vocab, max_tokens, out);
        if (c.status == blob_status_too_long) return "ERR chunk key " + quote(element) + " is longer than the context of the model";
        if (c.status != blob_status_ok) {
            return "ERR chunk key " + quote(element) + " is not a valid token key for model " + quote(model_name) +
                   " (ingested with another model?)";
        }
        return std::string();
    });
}

}  // namespace infer::cmd
