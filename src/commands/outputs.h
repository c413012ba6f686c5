// Where a generation's output goes besides the reply: STORE (the generated ids as a token key),
// STREAM (entries appended to a Redis Stream as tokens come) and a chat session key.
//
// Every write is a Redis command run on the main thread through one module-owned context,
// selected to the caller's database, after checking the caller's ACL key permissions for the
// key (so `-@all +@infer ~in:*` may write in:* keys), with '!' (replicated and AOF'd like the
// client's own XADD/SET). Every write runs as a main_jobs write job (redis/main_jobs.h): never
// while Redis loads, flushes or runs a script, never while writes are paused. Stream entries:
// the scheduler thread pushes text and ids into a stream_sink; the first push after a flush
// posts one job for that sink, so a busy model costs one main-thread wakeup per step, not one
// per token. The first failed write ends the stream: nothing is appended after it but an
// `error` entry, and the request's reply is that error.
#pragma once

#include "engine/request.h"
#include "redis/rm.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace infer::cmd {

// The caller, as writes must see it.
struct write_as {
    int db = 0;
    std::string user;  // ACL user name
    // The calling client (0 = none). While it exists it must still be `user`: Redis moves a
    // deleted user's clients to the default user before closing them, and the name may be
    // re-created meanwhile by another user, whom a lookup by name alone would write as.
    unsigned long long client_id = 0;
    static write_as caller(RedisModuleCtx * ctx);
};

class stream_sink;

void outputs_init(RedisModuleCtx * ctx);  // OnLoad
void outputs_shutdown();                  // OnUnload

// Installs req.on_stream so generated text and ids flow into the stream at `key`.
std::shared_ptr<stream_sink> stream_attach(const write_as & who, const std::string & key, infer_request & req);
// Writes what is still pending and the last entry (finish_reason and counts, or the error).
std::string stream_finish(stream_sink & sink, const infer_result & res);

// Runs fn with the module's own context selected to the caller's db, once the caller's ACL user
// has key_flags permission on key (REDISMODULE_CMD_KEY_ACCESS to read). For reads a request
// makes after its command returned (RAG's search and chunk keys). Main thread only.
std::string with_caller_key(const write_as & who, const std::string & key, int key_flags,
                            const std::function<std::string(RedisModuleCtx *)> & fn);

// A Vector Set's dimension: 0 if the key does not exist; an error if it is not a vector set.
std::string vector_set_dim(RedisModuleCtx * ctx, const std::string & key, long long & dim);

// VADD vset FP32 <v> element (added or updated; the set's own quantization, Q8 by default).
// Checks the set's dimension first, so a mismatch or a key of another type writes nothing.
std::string add_vector(const write_as & who, const std::string & vset, const std::string & element,
                       const std::vector<float> & v);

// SET key to a raw blob (an FP32 embedding); WRONGTYPE for a key of another type.
std::string store_blob(const write_as & who, const std::string & key, std::string_view blob);

// A STRING key's type check without writing: "" if key is absent or a string, else WRONGTYPE.
std::string check_string_or_empty(RedisModuleCtx * ctx, const std::string & key);

// SET key to the packed ids. A key of another type is left alone and WRONGTYPE returned.
// Returns "" or the error reply.
std::string store_tokens(const write_as & who, const std::string & key, const std::vector<token> & ids);

// A chat session's write: the key keeps the expiry it has now; if it expired or was deleted
// during the turn, it gets the absolute expiry it had when the turn started (expire_at_start,
// Unix ms, or -1 for none) - past, so it stays gone. A session never becomes immortal.
std::string store_session(const write_as & who, const std::string & key, const std::vector<token> & ids,
                          long long expire_at_start);

}  // namespace infer::cmd
