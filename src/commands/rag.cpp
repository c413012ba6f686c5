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
#include "commands/errors.h"
#include "commands/generate.h"
#include "commands/keyspace.h"
#include "commands/submit.h"
#include "redis/main_jobs.h"

#include <chrono>
#include <cstdlib>

namespace infer::cmd {
namespace {

constexpr long long k_max_k = 64;
// RAG's own options (the generation options come from generate.h's table).
constexpr option_def k_rag_options[] = {
    {"QUERY", 1, 0}, {"EMBED_MODEL", 1, 0}, {"K", 1, 0}, {"FILTER", 1, 0},
    {"SYSTEM_KEY", 1, REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS}, {"WITHPROMPT", 0, 0},
};
const char * const k_default_system =
    "Answer the question using the context below. If the context does not contain the answer, say so.";

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
    std::string embedder;  // the embedding model's name, for its errors
    std::unique_ptr<infer_request> gen_req;  // built by the handler, posted in stage 2
    infer_result embedded;
    std::vector<vsim_match> sources;
    double embed_ms = 0, search_ms = 0;
    bool meta = false, with_prompt = false;
};

// VSIM and the chunk keys, as the caller. Returns "" or the error reply; fills sources and the
// rag input.
std::string search(rag_call & call, rag_input & in) {
    std::string err = vsim_as_caller(call.who, call.vset, call.embedded.embedding, call.k, call.filter, call.sources);
    if (!err.empty()) return err;
    const model & m = *call.gen->weights;
    for (const vsim_match & s : call.sources) {
        std::vector<token> ids;
        err = read_chunk_as_caller(call.who, call.vset, s.element, m, call.gen->name, m.params().n_ctx, ids);
        if (!err.empty()) return err;
        in.chunks.push_back(std::move(ids));
    }
    return "";
}

// Stage 2, on the main thread. The call is owned by the blocked client's reply callback, so it
// lives until the client is unblocked and freed, whatever happens here.
void search_and_generate(void * p) {
    rag_call & call = *static_cast<rag_call *>(p);
    const rm::pending_reply pending = call.pending;
    auto fail = [&](std::string err) { pending.complete({}, std::move(err)); };
    try {
        if (call.embedded.error) return fail(error_text(call.embedded.error, call.embedder));
        if (call.gen_req->control->cancelled.load()) return fail("ERR request cancelled");
        const auto t0 = std::chrono::steady_clock::now();
        rag_input & in = *call.gen_req->rag;
        std::string err = search(call, in);
        call.search_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (!err.empty()) return fail(std::move(err));
        if (in.chunks.empty()) return fail("ERR no chunk in " + quote(call.vset) + " matched the query");
        auto req = std::move(call.gen_req);
        executor & sched = *call.gen->sched;
        complete_on_done(*req, sched, pending);
        const submit_status st = sched.submit(req);
        if (st != submit_status_ok) {
            req->on_done = nullptr;
            fail(submit_error_text(sched, st));
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
        declare_generation_keys(ctx, argv, argc, 3, k_rag_options);
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
            check_text_bytes("QUERY", q.size());
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
    call->embedder = emb->name;
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
            for (const vsim_match & s : view->sources) {
                RedisModule_ReplyWithArray(c, 2);
                RedisModule_ReplyWithStringBuffer(c, s.element.data(), s.element.size());
                RedisModule_ReplyWithDouble(c, s.score);
            }
            if (view->meta) {
                rm::reply_kv(c, "finish_reason", finish_reason_name(res.finish));
                rm::reply_kv(c, "prompt_tokens", (long long) res.prompt_tokens);
                rm::reply_kv(c, "completion_tokens", (long long) res.completion_tokens);
                rm::reply_kv(c, "cached_tokens", (long long) res.cached_tokens);
                rm::reply_kv(c, "dropped_utf8_bytes", (long long) res.dropped_utf8_bytes);
                rm::reply_kv(c, "embed_ms", view->embed_ms);
                rm::reply_kv(c, "search_ms", view->search_ms);
                rm::reply_kv(c, "queue_ms", res.queue_ms);
                rm::reply_kv(c, "prefill_ms", res.prefill_ms);
                rm::reply_kv(c, "decode_ms", res.decode_ms);
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
        const std::string err = submit_error_text(*emb->sched, st);
        call->pending.abort();
        throw rm::reply_error(err);
    }
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
