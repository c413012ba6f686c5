// INFER.TOKENIZE / INFER.DETOKENIZE and token-key validation over RESP.
#include "support/fixture.h"

using namespace testing_support;

class tokens : public live {};

TEST_F(tokens, special_tokens_parsed_by_default) {
    const std::string chat = "<|im_start|>user\nWhat is Redis?<|im_end|>\n<|im_start|>assistant\n";
    auto with = cmd(c.get(), {"INFER.TOKENIZE", "tiny", chat});
    auto without = cmd(c.get(), {"INFER.TOKENIZE", "tiny", chat, "NO_SPECIAL"});
    ASSERT_EQ(with->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(with->element[0]->integer, 151644);  // <|im_start|>
    EXPECT_LT(with->elements, without->elements);  // as text, each marker is several tokens
    EXPECT_NE(without->element[0]->integer, 151644);
}

TEST_F(tokens, store_then_detokenize_round_trips) {
    const std::string text = "Redis keeps the data; the model lives next to it. <|im_end|>";
    auto n = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text, "STORE", "tok:1"});
    ASSERT_EQ(n->type, REDIS_REPLY_INTEGER);
    auto len = cmd(c.get(), {"STRLEN", "tok:1"});
    EXPECT_EQ(len->integer, n->integer * 4);
    auto ids = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text});
    auto blob = cmd(c.get(), {"GET", "tok:1"});
    std::vector<uint32_t> v;
    for (size_t i = 0; i < ids->elements; ++i) v.push_back(uint32_t(ids->element[i]->integer));
    EXPECT_EQ(std::string(blob->str, blob->len), pack(v));
    auto back = cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "tok:1"});
    EXPECT_EQ(std::string(back->str, back->len), text);
}

TEST_F(tokens, store_overwrites_and_keys_are_declared) {
    cmd(c.get(), {"SET", "tok:str", "old"});
    EXPECT_EQ(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "hi", "STORE", "tok:str"})->type, REDIS_REPLY_INTEGER);
    EXPECT_NE(std::string(cmd(c.get(), {"GET", "tok:str"})->str), "old");
    cmd(c.get(), {"LPUSH", "tok:list", "x"});
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "hi", "STORE", "tok:list"}), "WRONGTYPE"));
    EXPECT_STREQ(cmd(c.get(), {"TYPE", "tok:list"})->str, "list");
    auto keys = cmd(c.get(), {"COMMAND", "GETKEYS", "INFER.TOKENIZE", "tiny", "hi", "STORE", "out"});
    ASSERT_EQ(keys->elements, 1u);
    EXPECT_STREQ(keys->element[0]->str, "out");
    keys = cmd(c.get(), {"COMMAND", "GETKEYS", "INFER.DETOKENIZE", "tiny", "k"});
    ASSERT_EQ(keys->elements, 1u);
    EXPECT_STREQ(keys->element[0]->str, "k");
}

TEST_F(tokens, detokenize_errors) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "nokey"}), "ERR token key 'nokey' does not exist"));
    cmd(c.get(), {"HSET", "h", "f", "v"});
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "h"}), "WRONGTYPE"));
    cmd(c.get(), {"SET", "odd", "abcdefg"});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "odd"}),
                                 "ERR token key 'odd' is not packed uint32 - got 7 bytes, expected a multiple of 4"));
    for (uint32_t bad : {151936u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
        cmd(c.get(), {"SET", "bad", pack({1, 2, bad})});
        EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "bad"}),
                                     "ERR token id out of range in key 'bad' at index 2 - got " + std::to_string(bad) +
                                 ", expected 0..151935"));
    }
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.DETOKENIZE", "nomodel", "bad"}), "ERR no such model 'nomodel'"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.DETOKENIZE", "tiny"}), "ERR wrong number of arguments for 'infer.detokenize' command"));
}

TEST_F(tokens, tokenize_errors) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "x", "BOGUS"}), "ERR unknown option 'BOGUS' for INFER.TOKENIZE"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "x", "STORE"}), "ERR missing value for STORE"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.TOKENIZE", "nomodel", "x"}), "ERR no such model 'nomodel'"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.TOKENIZE", "tiny"}), "ERR wrong number of arguments for 'infer.tokenize' command"));
}

TEST_F(tokens, odd_text_is_fine) {
    for (const std::string & t : {std::string("\xff\xfe invalid utf8 \xc3"), std::string("nul\0inside", 10), std::string(1 << 20, 'a')}) {
        auto r = cmd(c.get(), {"INFER.TOKENIZE", "tiny", t});
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
        EXPECT_GT(r->elements, 0u);
    }
}
