// INFER.CHAT: a conversation kept as a token key. Each call templates the new messages with the
// model's chat template, generates the answer from session + turn (the previous turns' KV is
// usually still cached, so only the new turn is prefilled) and writes the grown session back.
#include "commands/generate.h"

namespace infer::cmd {

// INFER.CHAT model session-key [SYSTEM text] USER text [TRUNCATE] [generation options]
//   session-key is a token key holding the chat-templated conversation so far (absent = a new
//   conversation); it can be read with INFER.DETOKENIZE, copied, EXPIREd, replicated. The new
//   messages (SYSTEM, then USER) are templated with the model's chat template (chatml if the
//   GGUF has none) ending with the assistant header; the answer is generated; then the session
//   key is set to session + turn + answer + the template's end of message, tokenized, keeping
//   its TTL (a session that expired during the turn stays expired: see store_session). It equals the template applied to the whole conversation. Generation options are
//   those of INFER.GENERATE (MAX_TOKENS, TEMPERATURE, ..., STORE, STREAM, WITHMETA).
//   When session + turn + MAX_TOKENS exceeds the context: an error, or with TRUNCATE the
//   oldest whole messages are dropped (from the session key too). One turn at a time per
//   session: concurrent turns on one key race, the last to finish wins.
// Reply: the answer text, or with WITHMETA the map INFER.GENERATE gives.
// Errors: those of INFER.GENERATE; ERR USER is required; ERR chat session too long - got
//   <session>+<turn>+<max> tokens ...; ERR the model's chat template is not supported by
//   llama.cpp; WRONGTYPE if session-key holds another type (nothing is written).
int cmd_chat(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) {
        if (argc > 2) {
            RedisModule_KeyAtPosWithFlags(ctx, 2, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_ACCESS |
                                                      REDISMODULE_CMD_KEY_UPDATE);
        }
        declare_generation_keys(ctx, argv, argc, 3);
        return REDISMODULE_OK;
    }
    // INFER.CHAT tiny USER hi: the session key left out, USER taken as it, the text as an option.
    const bool key_is_option = argc >= 4 && (iequals(rm::str(argv[2]), "USER") || iequals(rm::str(argv[2]), "SYSTEM"));
    const auto no_session_key = [&] {
        return rm::reply_error("ERR the session key comes before " + std::string(rm::str(argv[2])) +
                               ": INFER.CHAT <model> <session-key> USER <text> - got " + quote(rm::str(argv[2])) +
                               " as the session key");
    };
    if (key_is_option && argc == 4) throw no_session_key();
    if (argc < 5) return RedisModule_WrongArity(ctx);
    auto req = std::make_unique<infer_request>();
    req->kind = request_kind_generate;
    generation_outputs out;
    std::string system, user;
    bool have_user = false;
    arg_reader r(argv, argc, 3);
    while (!r.done()) {
        if (r.match("SYSTEM")) {
            system = std::string(r.next_str("SYSTEM"));
        } else if (r.match("USER")) {
            user = std::string(r.next_str("USER"));
            have_user = true;
        } else if (r.match("TRUNCATE")) {
            req->chat_truncate = true;
        } else if (!parse_generation_option(r, *req, out)) {
            if (key_is_option && r.pos() == 3) throw no_session_key();
            r.unknown_option("INFER.CHAT");
        }
    }
    if (!have_user) throw rm::reply_error("ERR USER is required");
    check_text_bytes("SYSTEM plus USER", system.size() + user.size());
    if (!system.empty()) req->chat.push_back({"system", system});
    req->chat.push_back({"user", user});

    auto inst = ready_generation_model(rm::str(argv[1]));
    const model & m = *inst->weights;
    check_max_tokens(*req, m.params().n_ctx);
    // The session so far (absent = new). Read in full: TRUNCATE may cut it to fit.
    long long expire_at = -1;  // the session's expiry when the turn starts (store_session)
    {
        rm::rm_key k(static_cast<RedisModuleKey *>(RedisModule_OpenKey(ctx, argv[2], REDISMODULE_READ)));
        const bool exists = RedisModule_KeyType(k.get()) != REDISMODULE_KEYTYPE_EMPTY;
        if (exists) {
            const mstime_t at = RedisModule_GetAbsExpire(k.get());
            expire_at = at == REDISMODULE_NO_EXPIRE ? -1 : at;
        }
        k.reset();
        if (exists) read_token_key(ctx, argv[2], m, size_t(state().max_prompt_bytes / 4), req->prompt);
    }
    submit_generation(ctx, *inst, std::move(req), out, std::string(rm::str(argv[2])), expire_at);
    return REDISMODULE_OK;
}

}  // namespace infer::cmd
