// Redis Cluster: three primaries made with `redis-cli --cluster create`, each with the module
// and the model. Commands declare their keys, so Redis routes them by slot; a prompt split over
// slots gets CROSSSLOT; keys sharing a hash tag work together on their node.
#include "support/fixture.h"

#include <cstdlib>

using namespace testing_support;

namespace {

// Runs a command on the node that owns its keys, following one MOVED redirect.
reply_ptr cluster_cmd(std::vector<std::unique_ptr<redis_server>> & nodes, const std::vector<std::string> & args) {
    auto c = nodes[0]->connect();
    auto r = cmd(c.get(), args);
    if (r && r->type == REDIS_REPLY_ERROR && std::string(r->str).rfind("MOVED", 0) == 0) {
        const std::string moved = r->str;
        const int port = std::atoi(moved.substr(moved.rfind(':') + 1).c_str());
        for (auto & n : nodes) {
            if (n->port() == port) {
                auto c2 = n->connect();
                return cmd(c2.get(), args);
            }
        }
    }
    return r;
}
}  // namespace

TEST(cluster, generation_is_routed_by_prompt_key_slot) {
    std::vector<std::unique_ptr<redis_server>> nodes;
    for (int i = 0; i < 3; ++i) {
        nodes.push_back(std::make_unique<redis_server>(std::vector<std::string>{"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "256",
                                                                                "MODEL", "bert", "bert-tiny-f16.gguf", "EMBEDDING"},
                                                       std::vector<std::string>{"--cluster-enabled", "yes",
                                                                                "--cluster-config-file", "nodes.conf"}));
    }
    std::string create = redis_server_path().substr(0, redis_server_path().rfind('/')) + "/redis-cli --cluster create";
    for (auto & n : nodes) create += " 127.0.0.1:" + std::to_string(n->port());
    create += " --cluster-yes >/dev/null 2>&1";
    ASSERT_EQ(std::system(create.c_str()), 0) << create;
    for (auto & n : nodes) {
        auto c = n->connect();
        ASSERT_TRUE(wait_for([&] { return str(cmd(c.get(), {"CLUSTER", "INFO"}).get()).find("cluster_state:ok") != std::string::npos; }));
        ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
        ASSERT_TRUE(wait_model_ready(c.get(), "bert"));
    }
    // Prompts under different hash tags land on different shards; each generates on its owner.
    int served_by_moved = 0;
    for (const char * tag : {"{user:1}", "{user:2}", "{user:3}", "{doc:9}"}) {
        const std::string key = std::string(tag) + "prompt";
        auto t = cluster_cmd(nodes, {"INFER.TOKENIZE", "tiny", "The quick brown fox", "STORE", key});
        ASSERT_EQ(t->type, REDIS_REPLY_INTEGER) << str(t.get());
        auto g = cluster_cmd(nodes, {"INFER.GENERATE", "tiny", "PROMPT", key, std::string(tag) + "prompt", "MAX_TOKENS", "8",
                                     "TEMPERATURE", "0", "STORE", std::string(tag) + "out"});
        ASSERT_EQ(g->type, REDIS_REPLY_STRING) << str(g.get());
        auto direct = nodes[0]->connect();
        served_by_moved += str(cmd(direct.get(), {"GET", std::string(tag) + "out"}).get()).rfind("MOVED", 0) == 0;
    }
    EXPECT_GT(served_by_moved, 0);  // some keys really live on other shards
    // A prompt whose keys are in different slots is refused by Redis itself.
    auto cross = cluster_cmd(nodes, {"INFER.GENERATE", "tiny", "PROMPT", "{user:1}prompt", "{user:2}prompt", "MAX_TOKENS", "4"});
    EXPECT_TRUE(is_error(cross, "CROSSSLOT"));
    // TEXT prompts have no keys: any node serves them.
    for (auto & n : nodes) {
        auto c = n->connect();
        EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    }

    // A RAG corpus under one hash tag: ingested and queried on the shard that owns the tag.
    for (int i = 0; i < 3; ++i) {
        auto r = cluster_cmd(nodes, {"INFER.INGEST", "tiny", "bert", "{kb}:vectors", "{kb}:doc:" + std::to_string(i),
                                     "chunk number " + std::to_string(i) + " of the clustered corpus"});
        ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    }
    EXPECT_TRUE(is_error(cluster_cmd(nodes, {"INFER.INGEST", "tiny", "bert", "{kb}:vectors", "{other}:doc", "x"}), "CROSSSLOT"));
    auto rag = cluster_cmd(nodes, {"INFER.RAG", "tiny", "{kb}:vectors", "QUERY", "chunk number 1", "K", "2", "MAX_TOKENS", "4"});
    ASSERT_EQ(rag->type, REDIS_REPLY_ARRAY) << str(rag.get());
    EXPECT_EQ(map_get(rag.get(), "sources")->elements, 2u);
    // An element naming a key in another slot cannot be read there: a clear error, not a skip.
    ASSERT_EQ(cluster_cmd(nodes, {"INFER.EMBED", "bert", "TEXT", "stray", "VADD", "{kb}:vectors", "{other}:doc"})->type,
              REDIS_REPLY_INTEGER);
    EXPECT_TRUE(is_error(cluster_cmd(nodes, {"INFER.RAG", "tiny", "{kb}:vectors", "QUERY", "stray", "K", "4", "MAX_TOKENS", "2"}),
                         "ERR chunk key '{other}:doc' is in another hash slot than '{kb}:vectors'"));
}
