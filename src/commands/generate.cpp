// INFER.GENERATE and what INFER.CHAT shares with it: parse, read the prompt keys (one copy,
// under the GIL, then no locks), validate everything the engine relies on, block the client and
// post the request; the reply callback writes STORE/STREAM results and the reply.
#include "commands/generate.h"

#include "commands/args.h"
#include "redis/blocking.h"

#include <chrono>

namespace infer::cmd {
namespace {

// Every option of GENERATE/CHAT and how many values follow it; PROMPT takes keys up to the next
// option. Key declaration walks argv with this table, so a value such as TEXT "STORE" is never
// mistaken for an option.
struct option_def {
    const char * name;
    int values;
};
constexpr option_def k_options[] = {
    {"PROMPT", -1},    {"TEXT", 1},     {"SYSTEM", 1},     {"USER", 1},        {"MAX_TOKENS", 1},
    {"TEMPERATURE", 1}, {"TOP_K", 1},   {"TOP_P", 1},      {"MIN_P", 1},       {"REPEAT_PENALTY", 1},
    {"SEED", 1},       {"STOP", 1},     {"TIMEOUT", 1},    {"STORE", 1},       {"STREAM", 1},
    {"WITHMETA", 0},   {"IGNORE_EOS", 0}, {"NO_CACHE", 0}, {"TRUNCATE", 0},   {"NO_SPECIAL", 0},
};
constexpr size_t k_max_stops = 16;
constexpr size_t k_max_stop_len = 256;

const option_def * find_option(std::string_view a) {
    for (const auto & o : k_options) {
        if (iequals(a, o.name)) return &o;
    }
    return nullptr;
}

int reply_result(RedisModuleCtx * ctx, infer_result & r, bool meta) {
    if (!meta) return RedisModule_ReplyWithStringBuffer(ctx, r.text.data(), r.text.size());
    RedisModule_ReplyWithMap(ctx, 10);
    RedisModule_ReplyWithCString(ctx, "text");
    RedisModule_ReplyWithStringBuffer(ctx, r.text.data(), r.text.size());
    RedisModule_ReplyWithCString(ctx, "finish_reason");
    RedisModule_ReplyWithCString(ctx, finish_reason_name(r.finish));
    RedisModule_ReplyWithCString(ctx, "prompt_tokens");
    RedisModule_ReplyWithLongLong(ctx, r.prompt_tokens);
    RedisModule_ReplyWithCString(ctx, "completion_tokens");
    RedisModule_ReplyWithLongLong(ctx, r.completion_tokens);
    RedisModule_ReplyWithCString(ctx, "cached_tokens");
    RedisModule_ReplyWithLongLong(ctx, r.cached_tokens);
    RedisModule_ReplyWithCString(ctx, "dropped_utf8_bytes");
    RedisModule_ReplyWithLongLong(ctx, r.dropped_utf8_bytes);
    RedisModule_ReplyWithCString(ctx, "queue_ms");
    RedisModule_ReplyWithDouble(ctx, r.queue_ms);
    RedisModule_ReplyWithCString(ctx, "prefill_ms");
    RedisModule_ReplyWithDouble(ctx, r.prefill_ms);
    RedisModule_ReplyWithCString(ctx, "decode_ms");
    RedisModule_ReplyWithDouble(ctx, r.decode_ms);
    RedisModule_ReplyWithCString(ctx, "tokens_per_sec");
    RedisModule_ReplyWithDouble(ctx, r.decode_ms > 0 ? (r.completion_tokens - 1) * 1000.0 / r.decode_ms : 0.0);
    return REDISMODULE_OK;
}

}  // namespace

void declare_generation_keys(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc, int from) {
    for (int i = from; i < argc;) {
        const option_def * o = find_option(rm::str(argv[i]));
        if (!o) {
            ++i;
            continue;
        }
        if (o->values < 0) {  // PROMPT key [key ...]
            for (++i; i < argc && !find_option(rm::str(argv[i])); ++i) {
                RedisModule_KeyAtPosWithFlags(ctx, i, REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS);
            }
            continue;
        }
        if (i + 1 < argc && iequals(o->name, "STORE")) {
            RedisModule_KeyAtPosWithFlags(ctx, i + 1, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE);
        } else if (i + 1 < argc && iequals(o->name, "STREAM")) {
            RedisModule_KeyAtPosWithFlags(ctx, i + 1, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_INSERT);
        }
        i += 1 + o->values;
    }
}

bool parse_generation_option(arg_reader & r, infer_request & req, generation_outputs & out) {
    if (r.match("MAX_TOKENS")) {
        req.max_tokens = int32_t(r.next_int("MAX_TOKENS", 1, 1 << 20));
    } else if (r.match("TEMPERATURE")) {
        req.sampling.temperature = float(r.next_double("TEMPERATURE", 0, 100));
    } else if (r.match("TOP_K")) {
        req.sampling.top_k = int32_t(r.next_int("TOP_K", 0, 1 << 20));
    } else if (r.match("TOP_P")) {
        req.sampling.top_p = float(r.next_double("TOP_P", 0, 1));
    } else if (r.match("MIN_P")) {
        req.sampling.min_p = float(r.next_double("MIN_P", 0, 1));
    } else if (r.match("REPEAT_PENALTY")) {
        req.sampling.repeat_penalty = float(r.next_double("REPEAT_PENALTY", 0.01, 100));
    } else if (r.match("SEED")) {
        req.sampling.seed = uint32_t(r.next_int("SEED", 0, 0xFFFFFFFEll));
    } else if (r.match("STOP")) {
        const std::string_view s = r.next_str("STOP");
        if (s.empty() || s.size() > k_max_stop_len) {
            throw rm::reply_error("ERR STOP string length out of range - got " + std::to_string(s.size()) +
                                  ", expected 1.." + std::to_string(k_max_stop_len));
        }
        if (req.stop.size() == k_max_stops) {
            throw rm::reply_error("ERR too many STOP strings - got more than " + std::to_string(k_max_stops));
        }
        req.stop.emplace_back(s);
    } else if (r.match("TIMEOUT")) {
        const long long ms = r.next_int("TIMEOUT", 1, 86400000);
        req.deadline = clock_type::now() + std::chrono::milliseconds(ms);
    } else if (r.match("STORE")) {
        out.store_key = std::string(r.next_str("STORE"));
    } else if (r.match("STREAM")) {
        out.stream_key = std::string(r.next_str("STREAM"));
    } else if (r.match("NO_CACHE")) {
        req.use_cache = false;
    } else if (r.match("IGNORE_EOS")) {
        req.ignore_eos = true;
    } else if (r.match("WITHMETA")) {
        out.meta = true;
    } else {
        return false;
    }
    return true;
}

void check_max_tokens(const infer_request & req, size_t n_ctx) {
    if (size_t(req.max_tokens) >= n_ctx) {
        throw rm::reply_error("ERR MAX_TOKENS exceeds the context - got " + std::to_string(req.max_tokens) +
                              ", expected at most " + std::to_string(n_ctx - 1));
    }
}

namespace {

std::string maxmemory_policy(RedisModuleCtx * ctx) {
    rm::rm_call_reply r(RedisModule_Call(ctx, "CONFIG", "cc", "GET", "maxmemory-policy"));
    if (!r || RedisModule_CallReplyLength(r.get()) < 2) return "";
    RedisModuleCallReply * v = RedisModule_CallReplyArrayElement(r.get(), 1);
    size_t n = 0;
    const char * p = v ? RedisModule_CallReplyStringPtr(v, &n) : nullptr;
    return p ? std::string(p, n) : std::string();
}

}  // namespace

void require_writable(RedisModuleCtx * ctx) {
    const int flags = RedisModule_GetContextFlags(ctx);
    if ((flags & REDISMODULE_CTX_FLAGS_SLAVE) && (flags & REDISMODULE_CTX_FLAGS_READONLY)) {
        throw rm::reply_error("READONLY You can't write against a read only replica.");
    }
    // Over maxmemory with nothing to evict (noeviction), a write command is refused here, up
    // front, as deny-oom refuses a client's - not half-way through its writes. Under an eviction
    // policy Redis has started evicting before this command (and lets writes through while it
    // catches up), so the request runs and its writes evict like a client's.
    if ((flags & REDISMODULE_CTX_FLAGS_OOM) && maxmemory_policy(ctx) == "noeviction") {
        throw rm::reply_error("OOM command not allowed when used memory > 'maxmemory'.");
    }
}

rm::finalize_fn generation_writes(RedisModuleCtx * ctx, infer_request & req, const generation_outputs & out,
                                  const std::string & session_key, long long session_expire_at) {
    const bool writes = !out.store_key.empty() || !out.stream_key.empty() || !session_key.empty();
    if (!writes) return nullptr;
    require_writable(ctx);
    const write_as who = write_as::caller(ctx);
    std::shared_ptr<stream_sink> sink;
    if (!out.stream_key.empty()) sink = stream_attach(who, out.stream_key, req);
    return [sink, who, store = out.store_key, session_key, session_expire_at](RedisModuleCtx *, infer_result & res) {
        std::string err;
        if (sink) err = stream_finish(*sink, res);
        if (!res.error.empty() || res.finish == finish_reason_cancelled) return err;
        if (!store.empty() && err.empty()) err = store_tokens(who, store, res.tokens);
        if (!session_key.empty() && err.empty() && !res.session.empty()) {
            err = store_session(who, session_key, res.session, session_expire_at);
        }
        return err;
    };
}

int generation_option_values(std::string_view arg) {
    const option_def * o = find_option(arg);
    return o ? o->values : -2;
}

void submit_generation(RedisModuleCtx * ctx, model_instance & inst, std::unique_ptr<infer_request> req,
                       const generation_outputs & out, const std::string & session_key, long long session_expire_at) {
    rm::require_blocking_allowed(ctx, req->chat.empty() ? "INFER.GENERATE" : "INFER.CHAT");
    rm::finalize_fn finalize = generation_writes(ctx, *req, out, session_key, session_expire_at);
    const bool meta = out.meta;
    rm::block_and_submit(ctx, *inst.sched, std::move(req),
                         [meta](RedisModuleCtx * c, infer_result & res) { return reply_result(c, res, meta); },
                         std::move(finalize));
}

// INFER.GENERATE model (PROMPT key [key ...] | TEXT text) [MAX_TOKENS n] [TEMPERATURE t]
//     [TOP_K k] [TOP_P p] [MIN_P p] [REPEAT_PENALTY r] [SEED s] [STOP str]... [TIMEOUT ms]
//     [STORE key] [STREAM key] [IGNORE_EOS] [NO_CACHE] [NO_SPECIAL] [WITHMETA]
//   PROMPT keys are token keys (packed little-endian uint32), concatenated in order; they are
//   read once, when the command arrives. TEXT is tokenized with special tokens parsed and BOS
//   added when the model asks for it; NO_SPECIAL tokenizes it as plain text, so untrusted text
//   writing "<|im_start|>" stays text and never becomes a control token. Defaults: MAX_TOKENS 256, TEMPERATURE 0.8 (0 = greedy),
//   TOP_K 40, TOP_P 0.95, MIN_P 0.05, REPEAT_PENALTY 1 (off), SEED random, no STOP (up to 16),
//   no TIMEOUT. On TIMEOUT the text so far is returned with finish_reason "timeout".
//   IGNORE_EOS generates exactly MAX_TOKENS tokens (as llama-server's ignore_eos; benchmarks).
//   The longest prefix of the prompt whose KV is still cached (an earlier request, another
//   slot's prompt, the previous chat turn) is reused instead of prefilled; NO_CACHE prefills
//   everything.
//   STORE key: the generated ids are SET there as a token key (not on cancel or error).
//   STREAM key: entries are XADDed as tokens come: `text <piece> tokens <id,id,...>`, then a
//   last entry `finish_reason <r> prompt_tokens <n> completion_tokens <n> cached_tokens <n>`
//   (or `error <text>`), written before the reply. Text that could still become a STOP string
//   or is a partial UTF-8 character is held back until it is settled.
// Reply: the generated text; with WITHMETA a map: text, finish_reason
//   (eos|length|stop|timeout|cancelled), prompt_tokens, completion_tokens, cached_tokens,
//   dropped_utf8_bytes (the bytes of a last character generation cut short: the text is always
//   valid UTF-8, invalid bytes a model produces become U+FFFD),
//   queue_ms, prefill_ms, decode_ms, tokens_per_sec.
// Errors: ERR no such model; ERR model is still loading; ERR token key '<k>' does not exist;
//   WRONGTYPE (a prompt key, or a STORE key holding another type: then nothing is written);
//   ERR token key '<k>' is not packed uint32; ERR token id out of range; ERR the prompt is
//   empty; ERR prompt too long; ERR prompt plus MAX_TOKENS exceeds the context; range and type
//   errors for every number (NaN and infinities refused); ERR unknown option; ERR queue full for
//   model; cannot be called inside MULTI or scripts; wrong arity; OOM and ACL errors of the
//   writes.
int cmd_generate(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) {
        declare_generation_keys(ctx, argv, argc, 2);
        return REDISMODULE_OK;
    }
    if (argc < 4) return RedisModule_WrongArity(ctx);

    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_generate;
    generation_outputs out;
    bool have_prompt = false, no_special = false;
    std::vector<RedisModuleString *> keys;
    arg_reader r(argv, argc, 2);
    while (!r.done()) {
        if (r.match("PROMPT")) {
            if (have_prompt) throw rm::reply_error("ERR give either PROMPT or TEXT, once");
            have_prompt = true;
            while (!r.done() && !find_option(r.peek())) keys.push_back(r.next_raw("PROMPT"));
            if (keys.empty()) throw rm::reply_error("ERR PROMPT needs at least one key");
        } else if (r.match("TEXT")) {
            if (have_prompt) throw rm::reply_error("ERR give either PROMPT or TEXT, once");
            have_prompt = true;
            const std::string_view t = r.next_str("TEXT");
            if (t.size() > size_t(state().max_prompt_bytes)) {
                throw rm::reply_error("ERR TEXT too long - got " + std::to_string(t.size()) + " bytes, expected at most " +
                                      std::to_string(state().max_prompt_bytes) + " (infer.max-prompt-bytes)");
            }
            if (t.empty()) throw rm::reply_error("ERR the prompt is empty - got 0 bytes of TEXT, expected at least 1");
            req->text = std::string(t);
        } else if (r.match("NO_SPECIAL")) {
            no_special = true;
        } else if (!parse_generation_option(r, *req, out)) {
            r.unknown_option("INFER.GENERATE");
        }
    }
    if (!have_prompt) throw rm::reply_error("ERR missing PROMPT or TEXT");
    if (no_special && !keys.empty()) {
        throw rm::reply_error("ERR NO_SPECIAL applies to TEXT - PROMPT keys are token ids already");
    }
    req->parse_special = !no_special;

    auto inst = ready_model(rm::str(argv[1]));
    const model & m = *inst->weights;
    const size_t n_ctx = m.params().n_ctx;
    for (RedisModuleString * k : keys) read_token_key(ctx, k, m, n_ctx, req->prompt);
    if (!keys.empty()) {
        if (req->prompt.empty()) throw rm::reply_error("ERR the prompt is empty - got 0 tokens, expected at least 1");
        if (req->prompt.size() + size_t(req->max_tokens) > n_ctx) {
            throw rm::reply_error("ERR prompt plus MAX_TOKENS exceeds the context - got " +
                                  std::to_string(req->prompt.size()) + "+" + std::to_string(req->max_tokens) +
                                  " tokens, expected at most " + std::to_string(n_ctx));
        }
    } else {
        check_max_tokens(*req, n_ctx);
    }
    submit_generation(ctx, *inst, std::move(req), out, "", -1);
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
