// Where a generation's output goes besides the reply: STORE (the generated ids as a token key),
// STREAM (entries appended to a Redis Stream as tokens come) and a chat session key.
//
// Every write is a Redis command run on the main thread through one module-owned context,
// selected to the caller's database, after checking the caller's ACL key permissions for the
// key (so `-@all +@infer ~in:*` may write in:* keys), with '!' (replicated and
// AOF'd like the client's own XADD/SET) and 'M' (refused under OOM). Stream entries: the
// scheduler thread pushes text and ids into a stream_sink; the first push after a flush
// schedules one event-loop one-shot, which writes every pending sink, so a busy model costs
// one main-thread wakeup per step, not one per token.
#pragma once

#include "engine/request.h"
#include "redis/rm.h"

#include <memory>
#include <string>
#include <vector>

namespace infer::cmd {

// The caller, as writes must see it.
struct write_as {
    int db = 0;
    std::string user;  // ACL user name
    static write_as caller(RedisModuleCtx * ctx);
};

class stream_sink;

void outputs_init(RedisModuleCtx * ctx);  // OnLoad
void outputs_shutdown();                  // OnUnload

// Installs req.on_stream so generated text and ids flow into the stream at `key`.
std::shared_ptr<stream_sink> stream_attach(const write_as & who, const std::string & key, infer_request & req);
// Writes what is still pending and the last entry (finish_reason and counts, or the error).
std::string stream_finish(stream_sink & sink, const infer_result & res);

// SET key to the packed ids (KEEPTTL when keep_ttl). A key of another type is left alone and
// WRONGTYPE returned. Returns "" or the error reply.
std::string store_tokens(const write_as & who, const std::string & key, const std::vector<token> & ids, bool keep_ttl);

}  // namespace infer::cmd
