// Embeddings: INFER.EMBED and INFER.INGEST. The text or token key is copied here, the vector is
// computed on the embedding model's thread (batched with other inputs), and the writes (SET of
// an FP32 blob, VADD into a Vector Set) run on the main thread in the reply callback, as the
// caller, replicated like the caller's own SET/VADD (keyspace.h).
#include "commands/commands.h"

#include "commands/args.h"
#include "commands/errors.h"
#include "commands/generate.h"
#include "commands/keyspace.h"
#include "commands/submit.h"

namespace infer::cmd {
namespace {

std::string checked_text(std::string_view t, const char * what) {
    if (t.empty()) throw rm::reply_error(std::string("ERR the input is empty - got 0 bytes of ") + what + ", expected at least 1");
    check_text_bytes(what, t.size());
    return std::string(t);
}

// Fails now, before any work, if the set cannot take vectors of this model's width.
void check_vector_set(RedisModuleCtx * ctx, const std::string & vset, const model & m) {
    long long dim = 0;
    if (std::string err = vector_set_dim(ctx, vset, dim); !err.empty()) throw rm::reply_error(err);
    if (dim != 0 && dim != m.info().n_embd) {
        throw rm::reply_error("ERR vector dimension mismatch for " + vset + " - got " + std::to_string(m.info().n_embd) +
                              " (model '" + std::string(m.info().description) + "'), the set has " + std::to_string(dim));
    }
}

}  // namespace

// INFER.EMBED model (TEXT text | PROMPT key) [NORMALIZE] [STORE key] [VADD vset element]
//   Embeds one input with an EMBEDDING model (the model's pooling). TEXT is tokenized with the
//   model's vocabulary (special tokens not parsed, the model's BOS/EOS added); PROMPT is a token
//   key in the model's vocabulary. NORMALIZE scales the vector to unit length. Concurrent
//   requests are embedded together, several inputs per decode.
//   STORE key: SET to the vector as an FP32 little-endian blob (what VADD ... FP32 and VSIM ...
//   FP32 take). VADD vset element: adds or updates element in the Vector Set vset (its own
//   quantization, Q8 for a new set); the set's dimension is checked first.
// Reply: the vector as an array of doubles; with STORE or VADD, its dimension (integer).
// Errors: ERR no such model (with how to load an embedding model); ERR model is not an
//   embedding model; ERR the input is empty; ERR embedding input too long (the model's CTX);
//   ERR TEXT too long (infer.max-prompt-bytes); token key errors as GENERATE; WRONGTYPE (STORE
//   key or vset of another type: nothing written); ERR vector dimension mismatch; READONLY on
//   a read-only replica with STORE/VADD;
//   ERR queue full; cannot run inside MULTI or scripts; ERR unknown option; wrong arity.
int cmd_embed(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) {
        for (int i = 2; i < argc; ++i) {
            const std::string_view a = rm::str(argv[i]);
            if (iequals(a, "TEXT") && i + 1 < argc) {
                ++i;
            } else if (iequals(a, "PROMPT") && i + 1 < argc) {
                RedisModule_KeyAtPosWithFlags(ctx, ++i, REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS);
            } else if (iequals(a, "STORE") && i + 1 < argc) {
                RedisModule_KeyAtPosWithFlags(ctx, ++i, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE);
            } else if (iequals(a, "VADD") && i + 2 < argc) {
                RedisModule_KeyAtPosWithFlags(ctx, ++i, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_INSERT);
                ++i;  // the element name is not a key
            }
        }
        return REDISMODULE_OK;
    }
    if (argc < 4) return RedisModule_WrongArity(ctx);
    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_embed;
    RedisModuleString * prompt_key = nullptr;
    bool have_input = false;
    std::string store, vset, element;
    arg_reader r(argv, argc, 2);
    while (!r.done()) {
        if (r.match("TEXT")) {
            if (have_input) throw rm::reply_error("ERR give either PROMPT or TEXT, once");
            have_input = true;
            req->text = checked_text(r.next_str("TEXT"), "TEXT");
        } else if (r.match("PROMPT")) {
            if (have_input) throw rm::reply_error("ERR give either PROMPT or TEXT, once");
            have_input = true;
            prompt_key = r.next_raw("PROMPT");
        } else if (r.match("NORMALIZE")) {
            req->normalize = true;
        } else if (r.match("STORE")) {
            store = std::string(r.next_str("STORE"));
        } else if (r.match("VADD")) {
            vset = std::string(r.next_str("VADD vector set"));
            element = std::string(r.next_str("VADD element"));
            if (element.empty()) throw rm::reply_error("ERR VADD element name is empty");
        } else {
            r.unknown_option("INFER.EMBED");
        }
    }
    if (!have_input) throw rm::reply_error("ERR missing PROMPT or TEXT");
    auto inst = ready_model_of_kind(rm::str(argv[1]), true);
    const model & m = *inst->weights;
    if (prompt_key) {
        read_token_key(ctx, prompt_key, m, m.params().n_ctx, req->prompt);
        if (req->prompt.empty()) throw rm::reply_error(error_text({error_code::input_empty}, inst->name));
    }
    const bool writes = !store.empty() || !vset.empty();
    if (writes) require_writable(ctx);
    if (!store.empty()) {
        if (std::string err = check_type_or_empty(ctx, store, REDISMODULE_KEYTYPE_STRING); !err.empty()) throw rm::reply_error(err);
    }
    if (!vset.empty()) check_vector_set(ctx, vset, m);
    rm::require_blocking_allowed(ctx, "INFER.EMBED");

    if (!writes) {
        block_and_submit(ctx, *inst->sched, std::move(req), [](RedisModuleCtx * c, infer_result & res) {
            RedisModule_ReplyWithArray(c, long(res.embedding.size()));
            for (float v : res.embedding) RedisModule_ReplyWithDouble(c, double(v));
            return REDISMODULE_OK;
        });
        return REDISMODULE_OK;
    }
    block_and_submit(
        ctx, *inst->sched, std::move(req),
        [](RedisModuleCtx * c, infer_result & res) { return RedisModule_ReplyWithLongLong(c, (long long) res.embedding.size()); },
        [who = write_as::caller(ctx), store, vset, element](const infer_result & res, const std::string & error) {
            if (!error.empty()) return std::string();
            std::string err;
            if (!vset.empty()) err = add_vector(who, vset, element, res.embedding);
            if (!store.empty() && err.empty()) {
                err = store_blob(who, store, {reinterpret_cast<const char *>(res.embedding.data()), res.embedding.size() * sizeof(float)});
            }
            return err;
        });
    return REDISMODULE_OK;
}

// INFER.INGEST gen-model embed-model vset key text
//   Adds one document chunk to a RAG corpus (the layout in docs/architecture.md): key becomes the text's token
//   key in gen-model's vocabulary (special tokens not parsed, no BOS), and the text's embedding
//   by embed-model is added to the Vector Set vset with key as the element name. Both are
//   computed on the embedding model's thread; then VADD and SET run, VADD first, so a dimension
//   mismatch or a wrong type writes nothing. Ingesting the same chunk again rewrites the same
//   data. Cluster: key and vset must share a hash slot (use a hash tag, e.g. {kb}:doc... and
//   {kb}:vectors).
// Reply: the number of tokens stored in key.
// Errors: ERR no such model (for embed-model, with how to load one); ERR model is not an
//   embedding model / is an embedding model; ERR the input is empty; ERR embedding input too
//   long; ERR text too long (infer.max-prompt-bytes); WRONGTYPE; ERR vector dimension mismatch;
//   READONLY; OOM; ERR queue full; CROSSSLOT; cannot run inside MULTI or scripts; wrong arity.
int cmd_ingest(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (argc != 6) return RedisModule_WrongArity(ctx);
    auto gen = ready_model_of_kind(rm::str(argv[1]), false);
    auto emb = ready_model_of_kind(rm::str(argv[2]), true);
    const std::string vset(rm::str(argv[3])), key(rm::str(argv[4]));
    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_embed;
    req->text = checked_text(rm::str(argv[5]), "text");
    req->token_model = gen->weights;
    if (std::string err = check_type_or_empty(ctx, key, REDISMODULE_KEYTYPE_STRING); !err.empty()) throw rm::reply_error(err);
    check_vector_set(ctx, vset, *emb->weights);
    rm::require_blocking_allowed(ctx, "INFER.INGEST");
    block_and_submit(
        ctx, *emb->sched, std::move(req),
        [](RedisModuleCtx * c, infer_result & res) { return RedisModule_ReplyWithLongLong(c, (long long) res.tokens.size()); },
        [who = write_as::caller(ctx), vset, key](const infer_result & res, const std::string & error) {
            if (!error.empty()) return std::string();
            std::string err = add_vector(who, vset, key, res.embedding);
            if (err.empty()) err = store_tokens(who, key, res.tokens);
            return err;
        });
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
