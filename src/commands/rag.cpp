// INFER.RAG: retrieval-augmented generation in one command, in three stages for one blocked
// client:
//   1. embedding model's thread: embed the question;
//   2. main thread (an event-loop one-shot): VSIM the Vector Set (NOTHREAD: we are already off
//      the command path, and RM_Call cannot block), read the top-K chunks' token keys as the
//      caller (ACL read permission per key), copy them;
//   3. generation model's thread: assemble system + chunks + question with the chat template
//      (engine/rag_prompt.h) and generate; the reply callback writes STORE/STREAM and replies.
// The client's cancellation (disconnect, CLIENT UNBLOCK) is shared by both engine requests.
#include "commands/commands.h"

#include "commands/args.h"
#include "commands/generate.h"
#include "commands/outputs.h"
#include "redis/blocking.h"
#include "redis/main_jobs.h"

#include <chrono>
#include <cstdlib>

namespace infer::cmd {
namespace {

constexpr long long k_max_k = 64;
const char * const k_default_system =
    "Answer the question using the context below. If the context does not contain the answer, say so.";

struct source {
    std::string element;
    double score = 0;
};

// Everything the stages share. Written and read on the main thread only (stage 1's result is
// handed over through the one-shot).
struct rag_call {
    rm::pending_reply pending{nullptr, nullptr};
    write_as who;
    std::string vset;
    long long k = 4;
    std::string filter;
    std::string question;
    std::shared_ptr<model_instance> gen;
    std::unique_ptr<infer_request> gen_req;  // built by the handler, posted in stage 2
    infer_result embedded;
    std::vector<source> sources;
    double embed_ms = 0, search_ms = 0;
    bool meta = false, with_prompt = false;
};

double parse_score(RedisModuleCallReply * r) {
    if (RedisModule_CallReplyType(r) == REDISMODULE_REPLY_DOUBLE) return RedisModule_CallReplyDouble(r);
    size_t n = 0;
    const char * p = RedisModule_CallReplyStringPtr(r, &n);
    return p ? std::strtod(std::string(p, n).c_str(), nullptr) : 0.0;
}

// VSIM and the chunk keys. Returns "" or the error reply; fills sources and the rag input.
std::string search(rag_call & call, rag_input & in) {
    const auto & v = call.embedded.embedding;
    std::string err = with_caller_key(call.who, call.vset, REDISMODULE_CMD_KEY_ACCESS, [&](RedisModuleCtx * g) {
        const char * blob = reinterpret_cast<const char *>(v.data());
        const size_t len = v.size() * sizeof(float);
        rm::rm_call_reply r(call.filter.empty()
            ? RedisModule_Call(g, "VSIM", "Ebcbcclc", call.vset.data(), call.vset.size(), "FP32", blob, len, "WITHSCORES",
                               "COUNT", call.k, "NOTHREAD")
            : RedisModule_Call(g, "VSIM", "Ebcbcclcbc", call.vset.data(), call.vset.size(), "FP32", blob, len, "WITHSCORES",
                               "COUNT", call.k, "FILTER", call.filter.data(), call.filter.size(), "NOTHREAD"));
        if (!r) return "ERR VSIM failed (errno " + std::to_string(errno) + ")";
        if (RedisModule_CallReplyType(r.get()) == REDISMODULE_REPLY_ERROR) {
            size_t n = 0;
            const char * p = RedisModule_CallReplyStringPtr(r.get(), &n);
            return std::string(p, n);
        }
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
            call.sources.push_back({std::string(p ? p : "", p ? len_name : 0), parse_score(score)});
        }
        return std::string();
    });
    if (!err.empty()) return err;

    const model & m = *call.gen->weights;
    const size_t n_ctx = m.params().n_ctx;
    const bool cluster = RedisModule_GetContextFlags(nullptr) & REDISMODULE_CTX_FLAGS_CLUSTER;
    for (const source & s : call.sources) {
        err = with_caller_key(call.who, s.element, REDISMODULE_CMD_KEY_ACCESS, [&](RedisModuleCtx * g) {
            rm::rm_string k(RedisModule_CreateString(g, s.element.data(), s.element.size()), rm::string_freer{g});
            rm::rm_string vk(RedisModule_CreateString(g, call.vset.data(), call.vset.size()), rm::string_freer{g});
            if (cluster && RedisModule_ClusterKeySlot(k.get()) != RedisModule_ClusterKeySlot(vk.get())) {
                return "ERR chunk key " + quote(s.element) + " is in another hash slot than " + quote(call.vset) +
                       " - give the corpus keys and the vector set one hash tag";
            }
            rm::rm_key h(static_cast<RedisModuleKey *>(RedisModule_OpenKey(g, k.get(), REDISMODULE_READ)));
            const int type = RedisModule_KeyType(h.get());
            if (type == REDISMODULE_KEYTYPE_EMPTY) {
                return "ERR chunk key " + quote(s.element) + " in " + quote(call.vset) +
                       " does not exist - re-ingest it or VREM it from the set";
            }
            if (type != REDISMODULE_KEYTYPE_STRING) {
                return "ERR chunk key " + quote(s.element) + " is not a token key (it holds another type)";
            }
            size_t len = 0;
            const char * p = RedisModule_StringDMA(h.get(), &len, REDISMODULE_READ);
            std::vector<token> ids;
            const blob_check c = tokens_append_blob({p, len}, m.info().n_vocab, n_ctx, ids);
            if (c.status == blob_status_too_long) {
                return "ERR chunk key " + quote(s.element) + " is longer than the context of the model";
            }
            if (c.status != blob_status_ok) {
                return "ERR chunk key " + quote(s.element) + " is not a valid token key for model " +
                       quote(call.gen->name) + " (ingested with another model?)";
            }
            in.chunks.push_back(std::move(ids));
            return std::string();
        });
        if (!err.empty()) return err;
    }
    return "";
}

// Stage 2, on the main thread. The call is owned by the blocked client's reply callback, so it
// lives until the client is unblocked and freed, whatever happens here.
void search_and_generate(void * p) {
    rag_call & call = *static_cast<rag_call *>(p);
    const rm::pending_reply pending = call.pending;
    auto fail = [&](std::string err) {
        infer_result r;
        r.error = std::move(err);
        pending.complete(std::move(r));
    };
    try {
        if (!call.embedded.error.empty()) return fail(call.embedded.error);
        if (call.gen_req->control->cancelled.load()) return fail("ERR request cancelled");
        const auto t0 = std::chrono::steady_clock::now();
        rag_input & in = *call.gen_req->rag;
        std::string err = search(call, in);
        call.search_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (!err.empty()) return fail(std::move(err));
        if (in.chunks.empty()) return fail("ERR no chunk in " + quote(call.vset) + " matched the query");
        auto req = std::move(call.gen_req);
        req->on_done = [pending](infer_result && r) { pending.complete(std::move(r)); };
        executor & sched = *call.gen->sched;
        const submit_status st = sched.submit(req);
        if (st != submit_status_ok) {
            req->on_done = nullptr;
            fail(rm::submit_error_text(sched, st));
        }
    } catch (const std::exception & e) {
        fail(std::string("ERR ") + e.what());
    }
}

}  // namespace

// INFER.RAG model vset QUERY text [EMBED_MODEL m] [K n] [FILTER expr] [SYSTEM text | SYSTEM_KEY key]
//     [WITHPROMPT] [generation options as INFER.GENERATE: MAX_TOKENS, TEMPERATURE, ..., STORE,
//     STREAM, TIMEOUT, NO_CACHE, WITHMETA]
//   Embeds the question with EMBED_MODEL (default: the one loaded embedding model), runs
//   VSIM vset ... COUNT K (default 4, at most 64) [FILTER expr] as the caller, reads the matching
//   elements' token keys (the chunks, in model's vocabulary), and generates from the model's
//   chat template around: system (SYSTEM text, the tokens of SYSTEM_KEY, or a default), then a
//   user message "Context:\n" + chunks separated by blank lines + "Question: " + text. The
//   same chunks in the same order give the same prompt prefix, so the prefix cache reuses it.
//   Chunk keys come from the set, not argv: in Cluster they must share the set's hash slot.
// Reply: a map: answer, sources (array of [element, score] in rank order); with WITHMETA also
//   finish_reason, prompt_tokens, completion_tokens, cached_tokens, embed_ms, search_ms,
//   queue_ms, prefill_ms, decode_ms; with WITHPROMPT also prompt (the packed token ids run,
//   a token key's format).
// Errors: ERR no such model; ERR model is (not) an embedding model; ERR no embedding model is
//   loaded (none, no EMBED_MODEL); ERR EMBED_MODEL is required (several loaded, none named);
//   ERR no such vector set; ERR vector dimension mismatch; ERR chunk key '<k>' ... does not
//   exist / is not a token key / is in another hash slot; ERR no chunk matched; VSIM's own
//   errors (a bad FILTER); NOPERM for a set or chunk the caller may not read; the prompt and
//   generation errors of INFER.GENERATE; cannot run inside MULTI or scripts; wrong arity.
int cmd_rag(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) {
        if (argc > 2) RedisModule_KeyAtPosWithFlags(ctx, 2, REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS);
        for (int i = 3; i < argc;) {
            const std::string_view a = rm::str(argv[i]);
            if (iequals(a, "SYSTEM_KEY") && i + 1 < argc) {
                RedisModule_KeyAtPosWithFlags(ctx, i + 1, REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS);
                i += 2;
            } else if (iequals(a, "QUERY") || iequals(a, "EMBED_MODEL") || iequals(a, "K") || iequals(a, "FILTER") ||
                       iequals(a, "SYSTEM")) {
                i += 2;
            } else if (const int v = generation_option_values(a); v >= 0) {
                if (i + 1 < argc && iequals(a, "STORE")) {
                    RedisModule_KeyAtPosWithFlags(ctx, i + 1, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE);
                } else if (i + 1 < argc && iequals(a, "STREAM")) {
                    RedisModule_KeyAtPosWithFlags(ctx, i + 1, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_INSERT);
                }
                i += 1 + v;
            } else {
                ++i;
            }
        }
        return REDISMODULE_OK;
    }
    if (argc < 5) return RedisModule_WrongArity(ctx);

    auto call = std::make_shared<rag_call>();
    call->vset = std::string(rm::str(argv[2]));
    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_generate;
    req->rag = std::make_shared<rag_input>();
    req->rag->system = k_default_system;
    generation_outputs out;
    std::string embed_model;
    RedisModuleString * system_key = nullptr;
    bool have_query = false, have_system = false;
    arg_reader r(argv, argc, 3);
    while (!r.done()) {
        if (r.match("QUERY")) {
            const std::string_view q = r.next_str("QUERY");
            if (q.empty()) throw rm::reply_error("ERR QUERY is empty - got 0 bytes, expected at least 1");
            if (q.size() > size_t(state().max_prompt_bytes)) {
                throw rm::reply_error("ERR QUERY too long - got " + std::to_string(q.size()) + " bytes, expected at most " +
                                      std::to_string(state().max_prompt_bytes) + " (infer.max-prompt-bytes)");
            }
            call->question = std::string(q);
            have_query = true;
        } else if (r.match("EMBED_MODEL")) {
            embed_model = std::string(r.next_str("EMBED_MODEL"));
        } else if (r.match("K")) {
            call->k = r.next_int("K", 1, k_max_k);
        } else if (r.match("FILTER")) {
            call->filter = std::string(r.next_str("FILTER"));
        } else if (r.match("SYSTEM")) {
            if (have_system) throw rm::reply_error("ERR give either SYSTEM or SYSTEM_KEY, once");
            have_system = true;
            req->rag->system = std::string(r.next_str("SYSTEM"));
        } else if (r.match("SYSTEM_KEY")) {
            if (have_system) throw rm::reply_error("ERR give either SYSTEM or SYSTEM_KEY, once");
            have_system = true;
            system_key = r.next_raw("SYSTEM_KEY");
        } else if (r.match("WITHPROMPT")) {
            call->with_prompt = true;
        } else if (!parse_generation_option(r, *req, out)) {
            r.unknown_option("INFER.RAG");
        }
    }
    if (!have_query) throw rm::reply_error("ERR missing QUERY");

    call->gen = ready_model_of_kind(rm::str(argv[1]), false);
    std::shared_ptr<model_instance> emb;
    if (!embed_model.empty()) {
        emb = ready_model_of_kind(embed_model, true);
    } else {
        int n = 0;
        for (const auto & e : state().registry.list()) {
            if (e.instance && e.instance->weights->params().embedding) {
                emb = e.instance;
                ++n;
            }
        }
        if (n == 0) {
            throw rm::reply_error(
                "ERR no embedding model is loaded - INFER.RAG embeds the question with one: load it with "
                "INFER.LOAD <name> <file.gguf> EMBEDDING (the model the corpus was ingested with)");
        }
        if (n > 1) {
            throw rm::reply_error("ERR EMBED_MODEL is required - " + std::to_string(n) + " embedding models are loaded");
        }
    }
    long long dim = 0;
    if (std::string err = vector_set_dim(ctx, call->vset, dim); !err.empty()) throw rm::reply_error(err);
    if (dim == 0) throw rm::reply_error("ERR no such vector set " + quote(call->vset));
    if (dim != emb->weights->info().n_embd) {
        throw rm::reply_error("ERR vector dimension mismatch for " + call->vset + " - embedding model " + quote(emb->name) +
                              " gives " + std::to_string(emb->weights->info().n_embd) + ", the set has " + std::to_string(dim));
    }
    const model & m = *call->gen->weights;
    if (system_key) read_token_key(ctx, system_key, m, m.params().n_ctx, req->rag->system_tokens);
    if (system_key && req->rag->system_tokens.empty()) throw rm::reply_error("ERR SYSTEM_KEY holds no tokens");
    check_max_tokens(*req, m.params().n_ctx);
    req->rag->question = call->question;
    req->return_prompt = call->with_prompt;
    rm::require_blocking_allowed(ctx, "INFER.RAG");

    call->who = write_as::caller(ctx);
    call->meta = out.meta;
    rm::finalize_fn finalize = generation_writes(ctx, *req, out, "");
    auto embed_req = std::make_unique<infer_request>();
    embed_req->kind = request_kind_embed;
    embed_req->text = call->question;
    embed_req->control = req->control;
    call->pending = rm::block_client(
        ctx, req->control,
        [call](RedisModuleCtx * c, infer_result & res) {
            const rag_call * view = call.get();
            RedisModule_ReplyWithMap(c, 2 + (view->meta ? 10 : 0) + (view->with_prompt ? 1 : 0));
            RedisModule_ReplyWithCString(c, "answer");
            RedisModule_ReplyWithStringBuffer(c, res.text.data(), res.text.size());
            RedisModule_ReplyWithCString(c, "sources");
            RedisModule_ReplyWithArray(c, long(view->sources.size()));
            for (const source & s : view->sources) {
                RedisModule_ReplyWithArray(c, 2);
                RedisModule_ReplyWithStringBuffer(c, s.element.data(), s.element.size());
                RedisModule_ReplyWithDouble(c, s.score);
            }
            if (view->meta) {
                auto kv = [c](const char * k, double v) {
                    RedisModule_ReplyWithCString(c, k);
                    RedisModule_ReplyWithDouble(c, v);
                };
                auto ki = [c](const char * k, long long v) {
                    RedisModule_ReplyWithCString(c, k);
                    RedisModule_ReplyWithLongLong(c, v);
                };
                RedisModule_ReplyWithCString(c, "finish_reason");
                RedisModule_ReplyWithCString(c, finish_reason_name(res.finish));
                ki("prompt_tokens", res.prompt_tokens);
                ki("completion_tokens", res.completion_tokens);
                ki("cached_tokens", res.cached_tokens);
                ki("dropped_utf8_bytes", res.dropped_utf8_bytes);
                kv("embed_ms", view->embed_ms);
                kv("search_ms", view->search_ms);
                kv("queue_ms", res.queue_ms);
                kv("prefill_ms", res.prefill_ms);
                kv("decode_ms", res.decode_ms);
            }
            if (view->with_prompt) {
                const std::string blob = tokens_to_blob(res.prompt);
                RedisModule_ReplyWithCString(c, "prompt");
                RedisModule_ReplyWithStringBuffer(c, blob.data(), blob.size());
            }
            return REDISMODULE_OK;
        },
        std::move(finalize));
    call->gen_req = std::move(req);
    // Stage 1 -> 2: the embedding's completion hands the call to the main thread.
    rag_call * raw = call.get();
    embed_req->on_done = [raw](infer_result && res) {
        raw->embed_ms = res.queue_ms + res.prefill_ms;
        raw->embedded = std::move(res);
        // VSIM and the chunk reads touch the keyspace: a main_jobs read job, never while Redis
        // loads or flushes (an event-loop one-shot could run in the middle of either).
        rm::post_main_job(rm::job_kind::read, [raw] { search_and_generate(raw); });
    };
    const submit_status st = emb->sched->submit(embed_req);
    if (st != submit_status_ok) {
        const std::string err = rm::submit_error_text(*emb->sched, st);
        call->pending.abort();
        throw rm::reply_error(err);
    }
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
