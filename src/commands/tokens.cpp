// Token keys: INFER.TOKENIZE and INFER.DETOKENIZE (the one reader of token keys is in
// keyspace.h). Tokenizing is CPU work, so it runs on the model's scheduler thread, not here.
#include "commands/commands.h"

#include "commands/args.h"
#include "commands/keyspace.h"
#include "commands/submit.h"

namespace infer::cmd {

// INFER.TOKENIZE model text [STORE key] [NO_SPECIAL] [WITHOFFSETS]
//   Tokenizes text with the model's vocabulary. Special tokens written as text (such as
//   <|im_start|>) become their control ids unless NO_SPECIAL; BOS is prepended when the model's
//   metadata asks for it.
// Reply: an array of integer ids; with WITHOFFSETS an array of two arrays, the ids and the byte
//   offset in text where each token's text starts (exact for byte-level BPE vocabularies such
//   as Qwen's; redis-infer-ingest chunks documents with it); with STORE, the key is set to the packed little-endian uint32
//   ids (a token key, replicated like any SET) and the reply is the number of tokens; a STORE
//   key holding another type is left alone and the reply is WRONGTYPE.
// Errors: ERR no such model; ERR model is still loading; ERR queue full; ERR unknown option;
//   ACL/OOM errors from the SET; cannot be called inside MULTI or scripts; wrong arity.
int cmd_tokenize(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) {
        for (int i = 3; i + 1 < argc; ++i) {
            if (iequals(rm::str(argv[i]), "STORE")) RedisModule_KeyAtPosWithFlags(ctx, i + 1, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE);
        }
        return REDISMODULE_OK;
    }
    if (argc < 3) return RedisModule_WrongArity(ctx);
    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_tokenize;
    req->text = std::string(rm::str(argv[2]));
    RedisModuleString * store = nullptr;
    arg_reader r(argv, argc, 3);
    while (!r.done()) {
        if (r.match("STORE")) store = r.next_raw("STORE");
        else if (r.match("NO_SPECIAL")) req->parse_special = false;
        else if (r.match("WITHOFFSETS")) req->with_offsets = true;
        else r.unknown_option("INFER.TOKENIZE");
    }
    if (store && req->with_offsets) throw rm::reply_error("ERR WITHOFFSETS cannot be combined with STORE");
    auto inst = ready_model(rm::str(argv[1]));
    rm::require_blocking_allowed(ctx, "INFER.TOKENIZE");
    if (!store) {
        const bool offsets = req->with_offsets;
        block_and_submit(ctx, *inst->sched, std::move(req), [offsets](RedisModuleCtx * c, infer_result & res) {
            if (offsets) RedisModule_ReplyWithArray(c, 2);
            RedisModule_ReplyWithArray(c, long(res.tokens.size()));
            for (token t : res.tokens) RedisModule_ReplyWithLongLong(c, t);
            if (offsets) {
                RedisModule_ReplyWithArray(c, long(res.offsets.size()));
                for (uint32_t o : res.offsets) RedisModule_ReplyWithLongLong(c, o);
            }
            return REDISMODULE_OK;
        });
        return REDISMODULE_OK;
    }
    // The key is written on the main thread before the reply, replicated (keyspace.h).
    block_and_submit(
        ctx, *inst->sched, std::move(req),
        [](RedisModuleCtx * c, infer_result & res) { return RedisModule_ReplyWithLongLong(c, (long long) res.tokens.size()); },
        [who = write_as::caller(ctx), key = std::string(rm::str(store))](const infer_result & res, const std::string & error) {
            return error.empty() ? store_tokens(who, key, res.tokens) : std::string();
        });
    return REDISMODULE_OK;
}

// INFER.DETOKENIZE model key
//   Turns a token key back into text (special tokens rendered).
// Reply: bulk string.
// Errors: ERR token key '<key>' does not exist; WRONGTYPE; ERR token key '<key>' is not packed
//   uint32; ERR token id out of range; ERR prompt too long (infer.max-prompt-bytes); ERR no such
//   model; cannot be called inside MULTI or scripts; wrong arity.
int cmd_detokenize(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    auto inst = ready_model(rm::str(argv[1]));
    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_detokenize;
    read_token_key(ctx, argv[2], *inst->weights, size_t(state().max_prompt_bytes / 4), req->prompt);
    rm::require_blocking_allowed(ctx, "INFER.DETOKENIZE");
    block_and_submit(ctx, *inst->sched, std::move(req), [](RedisModuleCtx * c, infer_result & res) {
        return RedisModule_ReplyWithStringBuffer(c, res.text.data(), res.text.size());
    });
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
