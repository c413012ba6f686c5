// What INFER.GENERATE and INFER.CHAT share: generation options, output targets, key
// declaration for Cluster/ACL, and submission with the reply and the writes. Main thread only.
#pragma once

#include "commands/args.h"
#include "commands/commands.h"
#include "commands/keyspace.h"
#include "redis/blocking.h"

#include <span>
#include <string>

namespace infer::cmd {

struct generation_outputs {
    bool meta = false;        // WITHMETA
    std::string store_key;    // STORE
    std::string stream_key;   // STREAM
};

// Consumes one generation option (sampling, limits, STOP, TIMEOUT, STORE, STREAM, NO_CACHE,
// IGNORE_EOS, WITHMETA) if the reader is at one; false if it is not.
bool parse_generation_option(arg_reader & r, infer_request & req, generation_outputs & out);

// An option of a command: how many values follow it (-1: keys up to the next option) and, if
// they are keys, their getkeys flags (0: not keys).
struct option_def {
    const char * name;
    int values;
    int key_flags;
};

// getkeys-api: declares the keys the options of GENERATE/CHAT (PROMPT keys read, STORE
// overwritten, STREAM appended) and `extra` options name, from argv[from] on, walking option
// values so that TEXT "STORE" is never mistaken for an option.
void declare_generation_keys(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc, int from,
                             std::span<const option_def> extra = {});

// The model GENERATE/CHAT run on: ready and a generation model (an embedding model is refused
// here, before the client blocks).
std::shared_ptr<model_instance> ready_generation_model(std::string_view name);

// MAX_TOKENS must leave room for at least one prompt token in the per-slot context.
void check_max_tokens(const infer_request & req, size_t n_ctx);

// Throws READONLY on a read-only replica and OOM over maxmemory: for commands about to write.
void require_writable(RedisModuleCtx * ctx);

// STORE/STREAM (and a chat session) for req: attaches the stream sink and returns the writes to
// run before the reply (nullptr if none). Throws as require_writable when there are writes.
// session_expire_at: the session key's absolute expiry (Unix ms) when the turn started, or -1.
rm::finalize_fn generation_writes(RedisModuleCtx * ctx, infer_request & req, const generation_outputs & out,
                                  const std::string & session_key, long long session_expire_at = -1);

// Whether arg names an option of GENERATE/CHAT.
bool is_generation_option(std::string_view arg);

// The context left for a prompt of prompt_tokens with req's MAX_TOKENS: throws the context
// error when they do not fit n_ctx (the engine checks again when it knows the length only later).
void check_prompt_fits(const infer_request & req, size_t prompt_tokens, size_t n_ctx);

// Blocks the client and posts req; when it is done, STREAM's last entry, STORE and (for chat)
// the session key are written, then the client gets its reply. Throws reply_error if it cannot
// block or post.
void submit_generation(RedisModuleCtx * ctx, model_instance & inst, std::unique_ptr<infer_request> req,
                       const generation_outputs & out, const std::string & session_key, long long session_expire_at);

}  // namespace infer::cmd
