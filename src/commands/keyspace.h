// The keyspace as the module touches it: token keys read on the command path, and everything a
// request reads or writes later, after its command returned (STORE, a chat session, EMBED's
// blob and VADD, RAG's VSIM and chunk keys, STREAM's XADDs in stream_sink.h).
//
// Those later accesses are Redis commands run on the main thread through one module-owned
// context, selected to the caller's database, after checking the caller's ACL key permissions
// for the key (so `-@all +@infer ~in:*` may write in:* keys); writes carry '!' (replicated and
// AOF'd like the client's own SET/VADD) and run as main_jobs write jobs (redis/main_jobs.h):
// never while Redis loads, flushes or runs a script, never while writes are paused.
#pragma once

#include "engine/model.h"
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

// "" for a reply that is not an error, else its text (an RM_Call that failed: errno's).
std::string reply_error_text(RedisModuleCallReply * r);

void keyspace_init(RedisModuleCtx * ctx);  // OnLoad
void keyspace_shutdown();                  // OnUnload

// Reads a token key on the main thread, as the command's own read: appends its validated ids to
// out, or throws (WRONGTYPE, missing key, bad length, id out of range, more than max_tokens).
void read_token_key(RedisModuleCtx * ctx, RedisModuleString * key, const model & m, size_t max_tokens,
                    std::vector<token> & out);

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

// A type check without writing: "" if key is absent or of `type` (REDISMODULE_KEYTYPE_STRING,
// _STREAM, ...), else WRONGTYPE.
std::string check_type_or_empty(RedisModuleCtx * ctx, const std::string & key, int type);

// SET key to the packed ids. A key of another type is left alone and WRONGTYPE returned.
// Returns "" or the error reply.
std::string store_tokens(const write_as & who, const std::string & key, const std::vector<token> & ids);

// A chat session's write: the key keeps the expiry it has now; if it expired or was deleted
// during the turn, it gets the absolute expiry it had when the turn started (expire_at_start,
// Unix ms, or -1 for none) - past, so it stays gone. A session never becomes immortal.
std::string store_session(const write_as & who, const std::string & key, const std::vector<token> & ids,
                          long long expire_at_start);

// One VSIM result: an element of the set and its similarity.
struct vsim_match {
    std::string element;
    double score = 0;
};

// VSIM vset FP32 <v> WITHSCORES COUNT k [FILTER filter], as the caller (ACL read permission on
// vset), in rank order. Returns "" or the error reply (VSIM's own, e.g. a bad FILTER).
std::string vsim_as_caller(const write_as & who, const std::string & vset, const std::vector<float> & v, long long k,
                           const std::string & filter, std::vector<vsim_match> & out);

// A RAG chunk: the token key named by an element of vset, read as the caller and checked against
// model m, loaded as model_name (ids in its vocabulary, at most max_tokens). In Cluster it must share vset's hash slot.
// Returns "" or the error reply.
std::string read_chunk_as_caller(const write_as & who, const std::string & vset, const std::string & element,
                                 const model & m, const std::string & model_name, size_t max_tokens,
                                 std::vector<token> & out);

}  // namespace infer::cmd
