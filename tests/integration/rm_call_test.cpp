// INFER.* reached through RedisModule_Call, from a module loaded next to ours
// (tests/support/rm_call_module.c). A blocking command cannot block the caller of RM_Call (Redis
// marks that client deny-blocking, and BlockClient would park a fake client nobody answers), so
// each blocking command must answer with the one clear error instead: no generation is started,
// no client stays blocked (the fixture checks blocked_clients), and non-blocking commands answer
// as usual. EVAL's and FCALL's redis.call stop earlier, at Redis's deny-script flag
// (generate.refused_inside_multi_and_scripts, lifecycle.functions_cannot_call_blocking_commands);
// only a module caller reaches the module's own refusal (rm::require_blocking_allowed).
#include "support/fixture.h"

using namespace testing_support;

namespace {

std::string refusal(const std::string & command) {
    return "ERR " + command + " cannot run inside MULTI/EXEC, scripts or module calls - it blocks the client";
}

}  // namespace

class rm_call : public live {
protected:
    static void SetUpTestSuite() {
        start({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "128", "SLOTS", "2", "MODEL", "emb", "bert-tiny-f16.gguf", "EMBEDDING",
               "SLOTS", "2"},
              {"tiny", "emb"}, {"--loadmodule", REDIS_INFER_RM_CALL_MODULE});
    }
    long requests(const std::string & model) {
        auto info = cmd(c.get(), {"INFER.INFO", model});
        const redisReply * v = map_get(info.get(), "requests");
        return v ? v->integer : -1;
    }
};

TEST_F(rm_call, blocking_commands_answer_a_module_caller_with_a_clear_error) {
    cmd(c.get(), {"SET", "rc:p", pack({9707, 1879})});
    const long tiny_before = requests("tiny"), emb_before = requests("emb");
    struct call { std::vector<std::string> args; std::string command; };
    const std::vector<call> calls = {
        {{"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "4"}, "INFER.GENERATE"},
        {{"INFER.GENERATE", "tiny", "PROMPT", "rc:p", "MAX_TOKENS", "4", "STORE", "rc:out"}, "INFER.GENERATE"},
        {{"INFER.CHAT", "tiny", "rc:chat", "USER", "hi", "MAX_TOKENS", "4"}, "INFER.CHAT"},
        {{"INFER.TOKENIZE", "tiny", "hello", "STORE", "rc:tok"}, "INFER.TOKENIZE"},
        {{"INFER.DETOKENIZE", "tiny", "rc:p"}, "INFER.DETOKENIZE"},
        {{"INFER.EMBED", "emb", "TEXT", "hello"}, "INFER.EMBED"},
        {{"INFER.LOAD", "other", "tiny-q8_0.gguf", "CTX", "64"}, "INFER.LOAD"},
        {{"INFER.UNLOAD", "tiny"}, "INFER.UNLOAD"},
    };
    for (const auto & k : calls) {
        std::vector<std::string> args = {"RMCALL.CALL", "E"};
        args.insert(args.end(), k.args.begin(), k.args.end());
        const auto t0 = std::chrono::steady_clock::now();
        auto r = cmd(c.get(), args);
        std::string line;
        for (const auto & a : k.args) line += a + " ";
        EXPECT_TRUE(is_error_exactly(r, refusal(k.command))) << line;
        // Answered at once, not after a generation or a load (seconds on this machine).
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2)) << line;
    }
    // Nothing reached an engine, nothing was written, the registry is unchanged.
    EXPECT_EQ(requests("tiny"), tiny_before);
    EXPECT_EQ(requests("emb"), emb_before);
    for (const char * k : {"rc:out", "rc:chat", "rc:tok"}) EXPECT_EQ(cmd(c.get(), {"EXISTS", k})->integer, 0) << k;
    auto models = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(models->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(models->elements, 2u);
    EXPECT_TRUE(wait_model_ready(c.get(), "tiny"));
    // The module path itself works: a non-blocking command answers through RM_Call as directly.
    auto info = cmd(c.get(), {"RMCALL.CALL", "E", "INFER.INFO", "tiny"});
    ASSERT_EQ(info->type, REDIS_REPLY_ARRAY) << str(info.get());
    EXPECT_EQ(str(map_get(info.get(), "state")), "ready");
    // And generation still works for a normal client afterwards.
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
}

// RM_Call in script mode ("S") is refused by Redis at the deny-script flag, as EVAL is, before
// the module's command runs.
TEST_F(rm_call, script_mode_calls_are_refused_by_redis) {
    const long before = requests("tiny");
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"RMCALL.CALL", "SE", "INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "4"}),
                                 "ERR command 'infer.generate' is not allowed on script mode"));
    EXPECT_EQ(requests("tiny"), before);
}
