// INFER.CHAT: the session key is the chat template applied to the whole conversation.
#include "support/fixture.h"

using namespace testing_support;

namespace {
std::string turn(const std::string & role, const std::string & content) {
    return "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
}
}  // namespace

class chat : public live {};

TEST_F(chat, five_turns_equal_the_template_over_the_whole_conversation) {
    std::string expected = turn("system", "You are terse.");
    int cached_later = 0;
    for (int i = 0; i < 5; ++i) {
        const std::string q = "question " + std::to_string(i) + "?";
        std::vector<std::string> args = {"INFER.CHAT", "tiny", "chat:1"};
        if (i == 0) args.insert(args.end(), {"SYSTEM", "You are terse."});
        args.insert(args.end(), {"USER", q, "MAX_TOKENS", "12", "TEMPERATURE", "0", "WITHMETA"});
        auto r = cmd(c.get(), args);
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
        expected += turn("user", q) + "<|im_start|>assistant\n" + str(map_get(r.get(), "text")) + "<|im_end|>\n";
        if (i > 0) cached_later += map_get(r.get(), "cached_tokens")->integer > 0;
    }
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", expected, "STORE", "chat:expected"});
    EXPECT_EQ(str(cmd(c.get(), {"GET", "chat:1"}).get()), str(cmd(c.get(), {"GET", "chat:expected"}).get()));
    EXPECT_EQ(str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "chat:1"}).get()), expected);
    EXPECT_EQ(cached_later, 4);  // every later turn reused the previous turns' KV
}

TEST_F(chat, keeps_the_ttl_and_streams) {
    cmd(c.get(), {"INFER.CHAT", "tiny", "chat:ttl", "USER", "hi", "MAX_TOKENS", "4"});
    cmd(c.get(), {"EXPIRE", "chat:ttl", "5000"});
    auto r = cmd(c.get(), {"INFER.CHAT", "tiny", "chat:ttl", "USER", "again", "MAX_TOKENS", "4", "TEMPERATURE", "0", "STREAM", "chat:s"});
    EXPECT_GT(cmd(c.get(), {"TTL", "chat:ttl"})->integer, 4000);
    auto x = cmd(c.get(), {"XLEN", "chat:s"});
    EXPECT_GE(x->integer, 2);
}

TEST_F(chat, too_long_is_an_error_or_truncated_at_message_boundaries) {
    const std::string big(300, 'w');  // ~ a hundred tokens per turn
    for (int i = 0; i < 3; ++i) {
        auto r = cmd(c.get(), {"INFER.CHAT", "tiny", "chat:long", "USER", big + std::to_string(i), "MAX_TOKENS", "8"});
        ASSERT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    }
    const auto before = cmd(c.get(), {"STRLEN", "chat:long"})->integer;
    auto err = cmd(c.get(), {"INFER.CHAT", "tiny", "chat:long", "USER", big, "MAX_TOKENS", "200"});
    EXPECT_TRUE(is_error(err, "ERR chat session too long - got "));
    EXPECT_EQ(cmd(c.get(), {"STRLEN", "chat:long"})->integer, before);  // unchanged
    auto ok = cmd(c.get(), {"INFER.CHAT", "tiny", "chat:long", "USER", big, "MAX_TOKENS", "200", "TRUNCATE", "WITHMETA"});
    ASSERT_EQ(ok->type, REDIS_REPLY_ARRAY) << str(ok.get());
    const std::string text = str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "chat:long"}).get());
    EXPECT_EQ(text.rfind("<|im_start|>", 0), 0u) << text.substr(0, 40);  // starts at a message
    EXPECT_EQ(text.find(big + "0"), std::string::npos);                    // the oldest turn is gone
    EXPECT_LE(cmd(c.get(), {"STRLEN", "chat:long"})->integer / 4, 512);
}

TEST_F(chat, errors) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "chat:e", "SYSTEM", "x", "MAX_TOKENS", "3"}), "ERR USER is required"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "chat:e", "USER"}), "ERR wrong number of arguments for 'infer.chat' command"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "chat:e", "USER", "x", "BOGUS"}), "ERR unknown option 'BOGUS' for INFER.CHAT"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "nomodel", "chat:e", "USER", "x"}), "ERR no such model 'nomodel'"));
    cmd(c.get(), {"HSET", "chat:h", "f", "v"});
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.CHAT", "tiny", "chat:h", "USER", "x"}), "WRONGTYPE"));
    cmd(c.get(), {"SET", "chat:bad", pack({1, 999999})});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "chat:bad", "USER", "x"}), "ERR token id out of range in key 'chat:bad' at index 1 - got 999999, expected 0..151935"));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "chat:e"})->integer, 0);
}
