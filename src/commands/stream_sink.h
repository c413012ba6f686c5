// STREAM: entries appended to a Redis Stream as tokens come, batched from the model's thread to
// the main thread. The scheduler thread pushes text and ids into a stream_sink; the first push
// after a flush posts one main_jobs write job for that sink, so a busy model costs one
// main-thread wakeup per step, not one per token. Every XADD runs as the caller
// (keyspace.h: its db, its ACL key permissions, replicated like its own XADD). The first failed
// write ends the stream: nothing is appended after it but an `error` entry, and the request's
// reply is that error.
#pragma once

#include "commands/keyspace.h"
#include "engine/request.h"

#include <memory>
#include <string>

namespace infer::cmd {

class stream_sink;

// Installs req.on_stream so generated text and ids flow into the stream at `key`.
std::shared_ptr<stream_sink> stream_attach(const write_as & who, const std::string & key, infer_request & req);
// Writes what is still pending and the last entry: finish_reason and counts, or `error` (the
// request's error reply, "" if it succeeded). Returns "" or the error to reply with.
std::string stream_finish(stream_sink & sink, const infer_result & res, const std::string & error);

}  // namespace infer::cmd
