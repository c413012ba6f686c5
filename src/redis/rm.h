// The only way the module includes redismodule.h, plus the thin RAII layer over the module API.
//
// redismodule.h declares its API as function-pointer globals; rm.cpp is the one translation unit
// that defines them (everywhere else they are extern).
//
// Invariants kept here:
// - Every C handle has an owner (rm_key, rm_string, rm_call_reply).
// - No exception crosses into Redis: every callback body runs inside rm_guard(), which turns a
//   reply_error into that error reply and anything else into "ERR internal error".
#pragma once

#ifndef REDISMODULE_API
#define REDISMODULE_API extern
#endif
#define REDISMODULE_ATTR
#include <redismodule.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace infer::rm {

// Thrown by command code to answer the client with an error; the text is the whole reply
// ("ERR ..." or another code such as "WRONGTYPE ...").
struct reply_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct key_closer {
    void operator()(RedisModuleKey * k) const { RedisModule_CloseKey(k); }
};
using rm_key = std::unique_ptr<RedisModuleKey, key_closer>;

struct string_freer {
    RedisModuleCtx * ctx = nullptr;
    void operator()(RedisModuleString * s) const { RedisModule_FreeString(ctx, s); }
};
using rm_string = std::unique_ptr<RedisModuleString, string_freer>;

struct call_reply_freer {
    void operator()(RedisModuleCallReply * r) const { RedisModule_FreeCallReply(r); }
};
using rm_call_reply = std::unique_ptr<RedisModuleCallReply, call_reply_freer>;

inline std::string_view str(const RedisModuleString * s) {
    size_t n = 0;
    const char * p = RedisModule_StringPtrLen(s, &n);
    return {p, n};
}

// One key/value pair of a map reply (a RESP3 map; a flat array under RESP2).
inline void reply_kv(RedisModuleCtx * ctx, const char * k, std::string_view v) {
    RedisModule_ReplyWithCString(ctx, k);
    RedisModule_ReplyWithStringBuffer(ctx, v.data(), v.size());
}
inline void reply_kv(RedisModuleCtx * ctx, const char * k, long long v) {
    RedisModule_ReplyWithCString(ctx, k);
    RedisModule_ReplyWithLongLong(ctx, v);
}
inline void reply_kv(RedisModuleCtx * ctx, const char * k, double v) {
    RedisModule_ReplyWithCString(ctx, k);
    RedisModule_ReplyWithDouble(ctx, v);
}

// A replica that refuses writes (replica-read-only yes), from RedisModule_GetContextFlags.
inline bool readonly_replica(int ctx_flags) {
    return (ctx_flags & REDISMODULE_CTX_FLAGS_SLAVE) && (ctx_flags & REDISMODULE_CTX_FLAGS_READONLY);
}

// Logs through Redis from any thread (a NULL context is allowed off the main thread).
void log(const char * level, const std::string & msg);

// Runs f() and turns exceptions into error replies. Returns REDISMODULE_OK like a handler.
template <class F>
int guard(RedisModuleCtx * ctx, F && f) noexcept {
    try {
        return f();
    } catch (const reply_error & e) {
        return RedisModule_ReplyWithError(ctx, e.what());
    } catch (const std::bad_alloc &) {
        return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    } catch (const std::exception & e) {
        log("warning", std::string("internal error: ") + e.what());
        return RedisModule_ReplyWithError(ctx, (std::string("ERR internal error - ") + e.what()).c_str());
    } catch (...) {
        return RedisModule_ReplyWithError(ctx, "ERR internal error");
    }
}

// Command handler adapter: template <auto Fn> with Fn(ctx, argv, argc) -> int, guarded.
template <int (*Fn)(RedisModuleCtx *, RedisModuleString **, int)>
int guarded_command(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    return guard(ctx, [&] { return Fn(ctx, argv, argc); });
}

}  // namespace infer::rm
