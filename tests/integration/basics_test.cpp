// The module loads, reports itself, takes configs, and refuses what it should.
#include "support/fixture.h"

#include <set>

using namespace testing_support;

class basics : public live {};

TEST_F(basics, info_reports_versions_backend_and_models) {
    auto r = cmd(c.get(), {"INFER.INFO"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    EXPECT_STREQ(map_get(r.get(), "module_version")->str, "0.1.0");
    EXPECT_NE(std::string(map_get(r.get(), "llama_cpp_version")->str).find("0.5.0"), std::string::npos);
    EXPECT_EQ(std::string(map_get(r.get(), "backend")->str).rfind("CPU (", 0), 0u);
    const redisReply * models = map_get(r.get(), "models");
    ASSERT_EQ(models->elements, 1u);
    EXPECT_STREQ(map_get(models->element[0], "name")->str, "tiny");
    EXPECT_EQ(map_get(models->element[0], "slots")->integer, 4);
}

TEST_F(basics, info_for_one_model_and_unknown_model) {
    auto r = cmd(c.get(), {"INFER.INFO", "tiny"});
    EXPECT_STREQ(map_get(r.get(), "state")->str, "ready");
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.INFO", "nope"}), "ERR no such model 'nope'"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.INFO", "a", "b"}), "ERR wrong number of arguments"));
}

TEST_F(basics, info_section_in_redis_info) {
    auto r = cmd(c.get(), {"INFO", "infer"});
    const std::string s(r->str, r->len);
    EXPECT_NE(s.find("# infer"), std::string::npos) << s;
    EXPECT_NE(s.find("infer_llama_cpp_version:"), std::string::npos) << s;
    EXPECT_NE(s.find("infer_model_tiny:state=ready,slots_busy=0,slots=4"), std::string::npos) << s;
}

TEST_F(basics, models_lists_facts) {
    auto r = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(r->elements, 1u);
    const redisReply * m = r->element[0];
    EXPECT_STREQ(map_get(m, "arch")->str, "qwen3");
    EXPECT_EQ(map_get(m, "vocab_size")->integer, 151936);
    EXPECT_EQ(map_get(m, "context")->integer, 512);
    EXPECT_EQ(map_get(m, "slots")->integer, 4);
    EXPECT_GT(map_get(m, "parameters")->integer, 1000000);
    EXPECT_NE(std::string(map_get(m, "path")->str).find("tiny-q8_0.gguf"), std::string::npos);
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.MODELS", "x"}), "ERR wrong number of arguments"));
}

TEST_F(basics, unknown_subcommand_is_an_error) {
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.FROB"}), "ERR unknown command"));
}

TEST_F(basics, configs_read_and_validate) {
    auto r = cmd(c.get(), {"CONFIG", "GET", "infer.model-dir"});
    ASSERT_EQ(r->elements, 2u);
    EXPECT_EQ(std::string(r->element[1]->str), model_dir());
    // Protected: not changeable at run time with Redis' default enable-protected-configs.
    EXPECT_TRUE(is_error(cmd(c.get(), {"CONFIG", "SET", "infer.model-dir", "/tmp"}), "ERR CONFIG SET failed"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"CONFIG", "SET", "infer.queue-size", "0"}), "ERR CONFIG SET failed"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"CONFIG", "SET", "infer.queue-size", "abc"}), "ERR CONFIG SET failed"));
    auto ok = cmd(c.get(), {"CONFIG", "SET", "infer.queue-size", "32"});
    EXPECT_EQ(ok->type, REDIS_REPLY_STATUS);
    r = cmd(c.get(), {"CONFIG", "GET", "infer.queue-size"});
    EXPECT_STREQ(r->element[1]->str, "32");
    cmd(c.get(), {"CONFIG", "SET", "infer.queue-size", "64"});
}

TEST_F(basics, commands_are_in_the_infer_acl_category) {
    auto r = cmd(c.get(), {"ACL", "CAT", "infer"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    std::set<std::string> names;
    for (size_t i = 0; i < r->elements; ++i) names.insert(r->element[i]->str);
    for (const char * n : {"infer.generate", "infer.load", "infer.tokenize", "infer.info"}) EXPECT_TRUE(names.count(n)) << n;
}

// The command table's flags as Redis reports them: LOAD/UNLOAD are admin (hidden from MONITOR,
// refused where admin commands are) and, like every blocking command, noscript; the ACL
// categories are set apart from the flags (SetCommandACLCategories), so the category test above
// cannot see a flag go missing.
TEST_F(basics, command_info_shows_the_table_flags) {
    const auto flags_of = [&](const std::string & name) {
        std::set<std::string> f;
        auto r = cmd(c.get(), {"COMMAND", "INFO", name});
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements > 2) {
            const redisReply * fl = r->element[0]->element[2];
            for (size_t i = 0; i < fl->elements; ++i) f.insert(str(fl->element[i]));
        }
        return f;
    };
    for (const char * n : {"infer.load", "infer.unload"}) {
        const auto f = flags_of(n);
        EXPECT_TRUE(f.count("admin")) << n;
        EXPECT_TRUE(f.count("noscript")) << n;
        EXPECT_TRUE(f.count("blocking")) << n;
    }
    for (const char * n : {"infer.generate", "infer.chat", "infer.tokenize", "infer.embed", "infer.rag"}) {
        const auto f = flags_of(n);
        EXPECT_FALSE(f.count("admin")) << n;
        EXPECT_TRUE(f.count("noscript")) << n;
    }
    EXPECT_TRUE(flags_of("infer.chat").count("denyoom"));
    EXPECT_TRUE(flags_of("infer.info").count("readonly"));
}

// model-dir can be changed at run time only when the operator allows protected configs, and
// only to an existing directory.
TEST(configs, model_dir_settable_when_protected_configs_allowed) {
    redis_server s({}, {"--enable-protected-configs", "yes"});
    auto c = s.connect();
    EXPECT_TRUE(is_error(cmd(c.get(), {"CONFIG", "SET", "infer.model-dir", "/nonexistent/dir"}), "ERR CONFIG SET failed"));
    auto err = cmd(c.get(), {"CONFIG", "SET", "infer.model-dir", "/nonexistent/dir"});
    EXPECT_NE(std::string(err->str).find("model-dir must be an existing directory - got '/nonexistent/dir'"), std::string::npos) << err->str;
    EXPECT_EQ(cmd(c.get(), {"CONFIG", "SET", "infer.model-dir", "/tmp"})->type, REDIS_REPLY_STATUS);
    EXPECT_STREQ(cmd(c.get(), {"CONFIG", "GET", "infer.model-dir"})->element[1]->str, "/tmp");
}

TEST(configs, bad_config_at_startup_refuses_to_start) {
    redis_server s({}, {"--infer.queue-size", "0"}, /*expect_start=*/false);
    EXPECT_FALSE(s.alive());
    EXPECT_NE(s.log().find("queue-size"), std::string::npos) << s.log();
}
