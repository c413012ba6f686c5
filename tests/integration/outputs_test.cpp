// STORE, STREAM and prefix reuse over RESP.
#include "support/fixture.h"

#include <map>

using namespace testing_support;

namespace {

// All entries of a stream as (field -> value) maps, in order.
std::vector<std::map<std::string, std::string>> entries(redisContext * c, const std::string & key) {
    auto r = cmd(c, {"XRANGE", key, "-", "+"});
    std::vector<std::map<std::string, std::string>> out;
    for (size_t i = 0; r && i < r->elements; ++i) {
        const redisReply * fields = r->element[i]->element[1];
        std::map<std::string, std::string> m;
        for (size_t j = 0; j + 1 < fields->elements; j += 2) m[str(fields->element[j])] = str(fields->element[j + 1]);
        out.push_back(m);
    }
    return out;
}

}  // namespace

class outputs : public live {};

TEST_F(outputs, stream_carries_the_text_ids_and_a_last_entry) {
    auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "24", "TEMPERATURE",
                           "0", "STREAM", "s:1", "STORE", "o:1", "WITHMETA"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    const auto es = entries(c.get(), "s:1");
    ASSERT_GE(es.size(), 2u);
    std::string text, ids;
    for (size_t i = 0; i + 1 < es.size(); ++i) {
        text += es[i].at("text");
        ids += (ids.empty() || es[i].at("tokens").empty() ? "" : ",") + es[i].at("tokens");
    }
    EXPECT_EQ(text, str(map_get(r.get(), "text")));
    const auto & last = es.back();
    EXPECT_EQ(last.at("finish_reason"), str(map_get(r.get(), "finish_reason")));
    EXPECT_EQ(last.at("completion_tokens"), std::to_string(map_get(r.get(), "completion_tokens")->integer));
    EXPECT_EQ(last.at("prompt_tokens"), "4");
    // STORE holds the same ids the stream listed, and detokenizes to the text.
    auto blob = cmd(c.get(), {"GET", "o:1"});
    std::vector<uint32_t> v;
    size_t pos = 0;
    while (pos < ids.size()) {
        const size_t comma = ids.find(',', pos);
        v.push_back(uint32_t(std::stoul(ids.substr(pos, comma - pos))));
        pos = comma == std::string::npos ? ids.size() : comma + 1;
    }
    EXPECT_EQ(str(blob.get()), pack(v));
    EXPECT_EQ(str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "o:1"}).get()), str(map_get(r.get(), "text")));
}

TEST_F(outputs, a_late_reader_sees_the_whole_stream) {
    auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "10", "TEMPERATURE", "0", "STREAM", "s:late"});
    auto late = server->connect();
    auto x = cmd(late.get(), {"XREAD", "COUNT", "1000", "STREAMS", "s:late", "0"});
    ASSERT_EQ(x->type, REDIS_REPLY_ARRAY);
    const redisReply * list = x->element[0]->element[1];
    std::string text;
    for (size_t i = 0; i < list->elements; ++i) {
        const redisReply * f = list->element[i]->element[1];
        if (str(f->element[0]) == "text") text += str(f->element[1]);
    }
    EXPECT_EQ(text, str(r.get()));
    EXPECT_EQ(str(list->element[list->elements - 1]->element[1]->element[0]), "finish_reason");
}

// A reader blocked on XREAD sees entries before the generation ends.
TEST_F(outputs, a_blocked_reader_gets_entries_while_generating) {
    auto reader = server->connect();
    redisAppendCommand(reader.get(), "XREAD BLOCK 20000 STREAMS s:live $");
    redisBufferWrite(reader.get(), nullptr);
    ASSERT_TRUE(wait_for([&] { return cmd(c.get(), {"INFO", "clients"}) && str(cmd(c.get(), {"INFO", "clients"}).get()).find("blocked_clients:1") != std::string::npos; }));
    auto gen = server->connect();
    redisAppendCommand(gen.get(), "INFER.GENERATE tiny TEXT hello MAX_TOKENS 400 TEMPERATURE 0 IGNORE_EOS STREAM s:live WITHMETA");
    redisBufferWrite(gen.get(), nullptr);
    void * raw = nullptr;
    ASSERT_EQ(redisGetReply(reader.get(), &raw), REDIS_OK);
    reply_ptr first(static_cast<redisReply *>(raw));
    ASSERT_EQ(first->type, REDIS_REPLY_ARRAY);
    // The generation is still running when the first entry is readable.
    EXPECT_EQ(map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer, 1);
    ASSERT_EQ(redisGetReply(gen.get(), &raw), REDIS_OK);
    reply_ptr done(static_cast<redisReply *>(raw));
    EXPECT_EQ(map_get(done.get(), "completion_tokens")->integer, 400);
}

TEST_F(outputs, stream_text_stops_before_a_stop_string) {
    auto full = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "16", "TEMPERATURE", "0"});
    const std::string f = str(full.get());
    ASSERT_GE(f.size(), 8u);
    const std::string stop = f.substr(f.size() / 2, 3);
    auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "16", "TEMPERATURE", "0",
                           "STOP", stop, "STREAM", "s:stop"});
    std::string text;
    for (const auto & e : entries(c.get(), "s:stop")) {
        if (e.count("text")) text += e.at("text");
    }
    EXPECT_EQ(text, str(r.get()));
    EXPECT_EQ(entries(c.get(), "s:stop").back().at("finish_reason"), "stop");
}

TEST_F(outputs, store_into_another_type_is_wrongtype_and_writes_nothing) {
    cmd(c.get(), {"RPUSH", "o:list", "a"});
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "3", "STORE", "o:list"}), "WRONGTYPE"));
    EXPECT_EQ(str(cmd(c.get(), {"TYPE", "o:list"}).get()), "list");
    cmd(c.get(), {"SET", "s:str", "x"});
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "3", "STREAM", "s:str"}), "WRONGTYPE"));
    EXPECT_EQ(str(cmd(c.get(), {"GET", "s:str"}).get()), "x");
}

TEST_F(outputs, keys_are_declared_for_cluster_and_acl) {
    auto k = cmd(c.get(), {"COMMAND", "GETKEYS", "INFER.GENERATE", "tiny", "TEXT", "STORE", "STORE", "{a}out", "STREAM", "{a}s", "WITHMETA"});
    ASSERT_EQ(k->elements, 2u);
    EXPECT_EQ(str(k->element[0]), "{a}out");
    EXPECT_EQ(str(k->element[1]), "{a}s");
    k = cmd(c.get(), {"COMMAND", "GETKEYS", "INFER.CHAT", "tiny", "{a}sess", "USER", "STREAM", "STREAM", "{a}s"});
    ASSERT_EQ(k->elements, 2u);
    EXPECT_EQ(str(k->element[0]), "{a}sess");
    EXPECT_EQ(str(k->element[1]), "{a}s");
}

TEST_F(outputs, acl_user_cannot_store_outside_its_keys) {
    cmd(c.get(), {"ACL", "SETUSER", "app", "on", ">pw", "-@all", "+@infer", "+xrange", "~in:*"});
    auto u = server->connect();
    ASSERT_EQ(cmd(u.get(), {"AUTH", "app", "pw"})->type, REDIS_REPLY_STATUS);
    auto ok = cmd(u.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "3", "STORE", "in:out", "STREAM", "in:s"});
    EXPECT_EQ(ok->type, REDIS_REPLY_STRING) << str(ok.get());
    EXPECT_TRUE(is_error(cmd(u.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "3", "STORE", "other:out"}), "NOPERM"));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "other:out"})->integer, 0);
}

TEST_F(outputs, prefix_reuse_is_reported_and_gives_the_same_output) {
    std::string sys;
    for (int i = 0; i < 40; ++i) sys += "Shared system prompt sentence number " + std::to_string(i) + ". ";
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", sys, "STORE", "p:sys"});
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", " Question A?", "STORE", "p:qa"});
    auto cold = cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "p:sys", "p:qa", "MAX_TOKENS", "12", "TEMPERATURE", "0", "NO_CACHE", "WITHMETA"});
    auto warm = cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "p:sys", "p:qa", "MAX_TOKENS", "12", "TEMPERATURE", "0", "WITHMETA"});
    EXPECT_EQ(map_get(cold.get(), "cached_tokens")->integer, 0);
    EXPECT_EQ(map_get(warm.get(), "cached_tokens")->integer, map_get(warm.get(), "prompt_tokens")->integer - 1);
    EXPECT_EQ(str(map_get(warm.get(), "text")), str(map_get(cold.get(), "text")));
    auto info = cmd(c.get(), {"INFER.INFO", "tiny"});
    EXPECT_GE(map_get(info.get(), "prefix_hits")->integer, 1);
    EXPECT_GE(map_get(info.get(), "prefix_hit_tokens")->integer, map_get(warm.get(), "cached_tokens")->integer);
    EXPECT_NE(str(cmd(c.get(), {"INFO", "infer"}).get()).find("prefix_hits="), std::string::npos);
}
