// See stream_sink.h.
#include "commands/stream_sink.h"

#include "redis/main_jobs.h"

#include <mutex>

namespace infer::cmd {

class stream_sink : public std::enable_shared_from_this<stream_sink> {
public:
    stream_sink(write_as who, std::string key) : who_(std::move(who)), key_(std::move(key)) {}

    // Scheduler thread.
    void push(const std::vector<token> & ids, const std::string & text);
    // Main thread (main_jobs write jobs).
    void flush();
    std::string finish(const infer_result & res, const std::string & error);

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
    error_ = with_caller_key(who_, key_, REDISMODULE_CMD_KEY_INSERT, [&](RedisModuleCtx * g) {
        rm::rm_call_reply r(RedisModule_Call(g, "XADD", "!Ebccbcb", key_.data(), key_.size(), "*", "text",
                                             text.data(), text.size(), "tokens", ids.data(), ids.size()));
        return reply_error_text(r.get());
    });
}

std::string stream_sink::finish(const infer_result & res, const std::string & request_error) {
    flush();
    // After a failed write the last entry carries that error (if it can be written at all), and
    // the reply is that error: the stream ended early, whatever the generation did.
    const std::string & error = error_.empty() ? request_error : error_;
    const std::string err = with_caller_key(who_, key_, REDISMODULE_CMD_KEY_INSERT, [&](RedisModuleCtx * g) {
        rm::rm_call_reply r;
        if (!error.empty()) {
            r.reset(RedisModule_Call(g, "XADD", "!Ebccb", key_.data(), key_.size(), "*", "error", error.data(),
                                     error.size()));
        } else {
            r.reset(RedisModule_Call(g, "XADD", "!Ebcccclclcl", key_.data(), key_.size(), "*", "finish_reason",
                                     finish_reason_name(res.finish), "prompt_tokens", (long long) res.prompt_tokens,
                                     "completion_tokens", (long long) res.completion_tokens, "cached_tokens",
                                     (long long) res.cached_tokens));
        }
        return reply_error_text(r.get());
    });
    return error_.empty() ? err : error_;
}

std::shared_ptr<stream_sink> stream_attach(const write_as & who, const std::string & key, infer_request & req) {
    auto sink = std::make_shared<stream_sink>(who, key);
    req.on_stream = [sink](const std::vector<token> & ids, const std::string & text) { sink->push(ids, text); };
    return sink;
}

std::string stream_finish(stream_sink & sink, const infer_result & res, const std::string & error) {
    return sink.finish(res, error);
}

}  // namespace infer::cmd
