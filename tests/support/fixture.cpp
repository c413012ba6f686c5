// See fixture.h.
#include "support/fixture.h"

#include <algorithm>

namespace testing_support {

std::unique_ptr<redis_server> live::server;
std::string live::canary;

std::string canary_digest(redisContext * c) {
    auto r = cmd(c, {"DEBUG", "DIGEST-VALUE", "canary:s", "canary:h", "canary:l", "canary:x", "canary:v"});
    std::string d;
    for (size_t i = 0; r && i < r->elements; ++i) d += std::string(r->element[i]->str, r->element[i]->len) + ",";
    return d;
}

std::string canary_write(redisContext * c) {
    cmd(c, {"SET", "canary:s", "the data store must not change"});
    cmd(c, {"HSET", "canary:h", "a", "1", "b", "2"});
    cmd(c, {"RPUSH", "canary:l", "x", "y", "z"});
    cmd(c, {"XADD", "canary:x", "1-1", "f", "v"});
    cmd(c, {"VADD", "canary:v", "VALUES", "3", "0.1", "0.2", "0.3", "e1"});
    return canary_digest(c);
}

bool wait_model_ready(redisContext * c, const std::string & name) {
    return wait_for([&] {
        auto r = cmd(c, {"INFER.INFO", name});
        const redisReply * st = map_get(r.get(), "state");
        return st && std::string(st->str, st->len) == "ready";
    });
}

::testing::AssertionResult is_error(const reply_ptr & r, const std::string & prefix) {
    if (!r) return ::testing::AssertionFailure() << "no reply";
    if (r->type != REDIS_REPLY_ERROR) return ::testing::AssertionFailure() << "not an error reply (type " << r->type << ")";
    const std::string text(r->str, r->len);
    if (text.rfind(prefix, 0) != 0) return ::testing::AssertionFailure() << "error is '" << text << "', expected prefix '" << prefix << "'";
    return ::testing::AssertionSuccess();
}

void live::SetUpTestSuite() { start({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "512", "SLOTS", "4"}, {"tiny"}); }

void live::start(const std::vector<std::string> & module_args, const std::vector<std::string> & ready) {
    server = std::make_unique<redis_server>(module_args);
    auto c = server->connect();
    ASSERT_TRUE(c);
    for (const auto & m : ready) ASSERT_TRUE(wait_model_ready(c.get(), m)) << server->log();
    canary = canary_write(c.get());
    ASSERT_EQ(std::count(canary.begin(), canary.end(), ','), 5) << canary;
    ASSERT_EQ(canary.find(std::string(40, '0')), std::string::npos) << "a canary key is missing: " << canary;
}

void live::TearDownTestSuite() { server.reset(); }

void live::SetUp() {
    ASSERT_TRUE(server && server->alive());
    c = server->connect();
    ASSERT_TRUE(c);
}

void live::TearDown() {
    // Every test must leave the server healthy: the same process, answering PING within 10 ms,
    // nothing left blocked, and the canary dataset unchanged.
    ASSERT_TRUE(server->alive()) << server->log();
    auto probe = server->connect();
    ASSERT_TRUE(probe);
    const std::string info = std::string(cmd(probe.get(), {"INFO", "server"})->str);
    EXPECT_NE(info.find("process_id:" + std::to_string(server->pid())), std::string::npos);
    double best_ms = 1e9;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(cmd(probe.get(), {"PING"})->type, REDIS_REPLY_STATUS);
        best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    EXPECT_LT(best_ms, 10.0);
    EXPECT_EQ(canary_digest(probe.get()), canary) << "the canary dataset changed";
    EXPECT_TRUE(wait_for([&] {
        auto r = cmd(probe.get(), {"INFO", "clients"});
        return r && r->type == REDIS_REPLY_STRING && std::string(r->str, r->len).find("blocked_clients:0") != std::string::npos;
    }, std::chrono::seconds(20))) << "a client stayed blocked";
}

}  // namespace testing_support
