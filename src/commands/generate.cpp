// INFER.GENERATE and what INFER.CHAT shares with it: parse, read the prompt keys (one copy,
// under the GIL, then no locks), validate everything the engine relies on, block the client and
// post the request; the reply callback writes STORE/STREAM results and the reply.
#include "commands/generate.h"

#include "commands/args.h"
#include "commands/errors.h"
#include "commands/stream_sink.h"
#include "commands/submit.h"

#include <chrono>

namespace infer::cmd {
namespace {

// Every option of GENERATE/CHAT and how many values follow it; PROMPT takes keys up to the next
// option. Key declaration walks argv with this table, so a value such as TEXT "STORE" is never
// mistaken for an option.
constexpr int k_read = REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS;
constexpr option_def k_options[] = {
    {"PROMPT", -1, k_read}, {"TEXT", 1, 0},       {"SYSTEM", 1, 0},     {"USER", 1, 0},
    {"MAX_TOKENS", 1, 0},   {"TEMPERATURE", 1, 0}, {"TOP_K", 1, 0},     {"TOP_P", 1, 0},
    {"MIN_P", 1, 0},        {"REPEAT_PENALTY", 1, 0}, {"SEED", 1, 0},   {"STOP", 1, 0},
    {"TIMEOUT", 1, 0},      {"STORE", 1, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE},
    {"STREAM", 1, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_INSERT},
    {"WITHMETA", 0, 0},     {"IGNORE_EOS", 0, 0}, {"NO_CACHE", 0, 0},   {"TRUNCATE", 0, 0},
    {"NO_SPECIAL", 0, 0},
};
constexpr size_t k_max_stops = 16;
constexpr size_t k_max_stop_len = 256;

const option_def * find_in(std::span<const option_def> table, std::string_view a) {
    for (const auto & o : table) {
        if (iequals(a, o.name)) return &o;
    }
    return nullptr;
}

const option_def * find_option(std::string_view a) { return find_in(k_options, a); }

int reply_result(RedisModuleCtx * ctx, infer_result & r, bool meta) {
    if (!meta) return RedisModule_ReplyWithStringBuffer(ctx, r.text.data(), r.text.size());
    RedisModule_ReplyWithMap(ctx, 10);
    rm::reply_kv(ctx, "text", r.text);
    rm::reply_kv(ctx, "finish_reason", finish_reason_name(r.finish));
    rm::reply_kv(ctx, "prompt_tokens", (long long) r.prompt_tokens);
    rm::reply_kv(ctx, "completion_tokens", (long long) r.completion_tokens);
    rm::reply_kv(ctx, "cached_tokens", (long long) r.cached_tokens);
    rm::reply_kv(ctx, "dropped_utf8_bytes", (long long) r.dropped_utf8_bytes);
    rm::reply_kv(ctx, "queue_ms", r.queue_ms);
    rm::reply_kv(ctx, "prefill_ms", r.prefill_ms);
    rm::reply_kv(ctx, "decode_ms", r.decode_ms);
    rm::reply_kv(ctx, "tokens_per_sec", r.decode_ms > 0 ? (r.completion_tokens - 1) * 1000.0 / r.decode_ms : 0.0);
    return REDISMODULE_OK;
}

}  // namespace

void declare_generation_keys(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc, int from,
                             std::span<const option_def> extra) {
    const auto find = [&](std::string_view a) {
        const option_def * o = find_option(a);
        return o ? o : find_in(extra, a);
    };
    for (int i = from; i < argc;) {
        const option_def * o = find(rm::str(argv[i]));
        if (!o) {
            ++i;
            continue;
        }
        if (o->values < 0) {  // PROMPT key [key ...]
            for (++i; i < argc && !find(rm::str(argv[i])); ++i) RedisModule_KeyAtPosWithFlags(ctx, i, o->key_flags);
            continue;
        }
        for (int v = 1; v <= o->values && i + v < argc; ++v) {
            if (o->key_flags) RedisModule_KeyAtPosWithFlags(ctx, i + v, o->key_flags);
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

std::shared_ptr<model_instance> ready_generation_model(std::string_view name) {
    auto inst = ready_model(name);
    if (inst->weights->params().embedding) {
        throw rm::reply_error(error_text({error_code::not_a_generation_model}, inst->name));
    }
    return inst;
}

void check_prompt_fits(const infer_request & req, size_t prompt_tokens, size_t n_ctx) {
    if (prompt_tokens + size_t(req.max_tokens) > n_ctx) {
        throw rm::reply_error(prompt_over_context_text(prompt_tokens, req.max_tokens, n_ctx));
    }
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
    if (rm::readonly_replica(flags)) {
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
    // A target of the wrong type is known now: say so before generating, not after. (The write
    // checks again: the key may change while the request runs.)
    if (!out.store_key.empty()) {
        if (std::string err = check_type_or_empty(ctx, out.store_key, REDISMODULE_KEYTYPE_STRING); !err.empty()) {
            throw rm::reply_error("WRONGTYPE STORE key " + quote(out.store_key) + " holds another type - nothing generated");
        }
    }
    if (!out.stream_key.empty()) {
        if (std::string err = check_type_or_empty(ctx, out.stream_key, REDISMODULE_KEYTYPE_STREAM); !err.empty()) {
            throw rm::reply_error("WRONGTYPE STREAM key " + quote(out.stream_key) + " holds another type - nothing generated");
        }
    }
    const write_as who = write_as::caller(ctx);
    std::shared_ptr<stream_sink> sink;
    if (!out.stream_key.empty()) sink = stream_attach(who, out.stream_key, req);
    return [sink, who, store = out.store_key, session_key, session_expire_at](const infer_result & res,
                                                                              const std::string & error) {
        std::string err;
        if (sink) err = stream_finish(*sink, res, error);
        if (!error.empty() || res.finish == finish_reason_cancelled) return err;
        if (!store.empty() && err.empty()) err = store_tokens(who, store, res.tokens);
        if (!session_key.empty() && err.empty() && !res.session.empty()) {
            err = store_session(who, session_key, res.session, session_expire_at);
        }
        return err;
    };
}

bool is_generation_option(std::string_view arg) { return find_option(arg) != nullptr; }

void submit_generation(RedisModuleCtx * ctx, model_instance & inst, std::unique_ptr<infer_request> req,
                       const generation_outputs & out, const std::string & session_key, long long session_expire_at) {
    rm::require_blocking_allowed(ctx, req->chat.empty() ? "INFER.GENERATE" : "INFER.CHAT");
    rm::finalize_fn finalize = generation_writes(ctx, *req, out, session_key, session_expire_at);
    const bool meta = out.meta;
    block_and_submit(ctx, *inst.sched, std::move(req),
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
    // The two mistakes a newcomer makes first: the model name left out (TEXT taken as the model)
    // and the prompt option left out (the text taken as an option).
    if (argc >= 2 && is_generation_option(rm::str(argv[1])) && !state().registry.find(std::string(rm::str(argv[1])))) {
        throw rm::reply_error("ERR no such model " + quote(rm::str(argv[1])) +
                              " - the model comes first: INFER.GENERATE <model> TEXT <text>");
    }
    if (argc == 3 && !is_generation_option(rm::str(argv[2]))) {
        throw rm::reply_error("ERR missing PROMPT or TEXT - got " + quote(rm::str(argv[2])) +
                              ", expected INFER.GENERATE <model> TEXT <text> or PROMPT <key> [key ...]");
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
            check_text_bytes("TEXT", t.size());
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

    auto inst = ready_generation_model(rm::str(argv[1]));
    const model & m = *inst->weights;
    const size_t n_ctx = m.params().n_ctx;
    for (RedisModuleString * k : keys) read_token_key(ctx, k, m, n_ctx, req->prompt);
    if (!keys.empty()) {
        if (req->prompt.empty()) throw rm::reply_error(error_text({error_code::prompt_empty}, inst->name));
        check_prompt_fits(*req, req->prompt.size(), n_ctx);
    } else {
        check_max_tokens(*req, n_ctx);
    }
    submit_generation(ctx, *inst, std::move(req), out, "", -1);
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
