// The mistakes a new user makes first, each answered with what to do instead: tried as a
// newcomer would (issue 20) and kept here so a reworded error cannot lose the hint.
#include "support/fixture.h"

using namespace testing_support;

namespace {

class usability : public live {};

long long requests(redisContext * c) {
    auto r = cmd(c, {"INFER.INFO", "tiny"});
    for (size_t i = 0; r && i + 1 < r->elements; i += 2) {
        if (std::string(r->element[i]->str, r->element[i]->len) == "requests") return r->element[i + 1]->integer;
    }
    return -1;
}

}  // namespace

TEST_F(usability, the_model_name_left_out_says_the_model_comes_first) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "TEXT", "Hello", "tiny"}),
                                 "ERR no such model 'TEXT' - the model comes first: INFER.GENERATE <model> TEXT <text>"));
}

TEST_F(usability, the_prompt_option_left_out_asks_for_prompt_or_text) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "Hello"}),
                                 "ERR missing PROMPT or TEXT - got 'Hello', expected INFER.GENERATE <model> TEXT <text> or "
                                 "PROMPT <key> [key ...]"));
}

TEST_F(usability, chat_without_a_session_key_says_so_and_writes_nothing) {
    const std::string want = "ERR the session key comes before USER: INFER.CHAT <model> <session-key> USER <text> - got "
                             "'USER' as the session key";
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "USER", "hi"}), want));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "USER", "hi", "MAX_TOKENS", "3"}), want));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "USER"})->integer, 0);
    // A session key that happens to be named USER still works when the turn follows it.
    auto ok = cmd(c.get(), {"INFER.CHAT", "tiny", "USER", "USER", "hi", "MAX_TOKENS", "3"});
    EXPECT_EQ(ok->type, REDIS_REPLY_STRING) << (ok->str ? ok->str : "");
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "USER"})->integer, 1);
    cmd(c.get(), {"DEL", "USER"});
}

TEST_F(usability, a_model_name_typo_names_the_loaded_model) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiyn", "TEXT", "x"}),
                                 "ERR no such model 'tiyn' - did you mean 'tiny'? loaded: tiny"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "TINY", "TEXT", "x"}),
                                 "ERR no such model 'TINY' - did you mean 'tiny'? loaded: tiny"));
    // Nothing close: no guess.
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "qwen3-8b", "TEXT", "x"}), "ERR no such model 'qwen3-8b'"));
}

// A STREAM or STORE target of another type is refused before anything is generated, naming it.
TEST_F(usability, a_wrong_type_output_key_is_refused_before_generating) {
    cmd(c.get(), {"SET", "u:str", "x"});
    cmd(c.get(), {"RPUSH", "u:list", "a"});
    const long long before = requests(c.get());
    ASSERT_GE(before, 0);
    EXPECT_TRUE(is_error_exactly(
        cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "400", "IGNORE_EOS", "STREAM", "u:str"}),
        "WRONGTYPE STREAM key 'u:str' holds another type - nothing generated"));
    EXPECT_TRUE(is_error_exactly(
        cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "400", "IGNORE_EOS", "STORE", "u:list"}),
        "WRONGTYPE STORE key 'u:list' holds another type - nothing generated"));
    EXPECT_EQ(requests(c.get()), before) << "nothing reached the model";
    auto v = cmd(c.get(), {"GET", "u:str"});
    EXPECT_EQ(std::string(v->str, v->len), "x");
    cmd(c.get(), {"DEL", "u:str", "u:list"});
}
