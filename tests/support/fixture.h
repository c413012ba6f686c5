// A server per test suite with the tiny model loaded as "tiny" (CTX 512, SLOTS 4), ready.
// Suites that change global state (UNLOAD, configs) start their own servers instead.
#pragma once

#include "support/redis_server.h"

#include <gtest/gtest.h>

namespace testing_support {

// Waits until INFER.MODELS lists `name` as ready.
bool wait_model_ready(redisContext * c, const std::string & name);

// Writes the canary dataset every live test must leave untouched (a string, a hash, a list, a
// stream and a vector set), and returns its digest.
std::string canary_write(redisContext * c);
std::string canary_digest(redisContext * c);

// Asserts that r is an error reply whose text starts with `prefix`. For a test that names the
// whole message, use is_error_exactly: a prefix also passes when the message grew a wrong tail.
::testing::AssertionResult is_error(const reply_ptr & r, const std::string & prefix);
::testing::AssertionResult is_error(const redisReply * r, const std::string & prefix);
// Asserts that r is an error reply whose text is exactly `text`.
::testing::AssertionResult is_error_exactly(const reply_ptr & r, const std::string & text);
::testing::AssertionResult is_error_exactly(const redisReply * r, const std::string & text);

// Round-trip times of n PINGs on c, in milliseconds, sorted; empty if a PING got no +PONG.
std::vector<double> ping_times_ms(redisContext * c, int n);
// The p-th percentile (0..100) of sorted samples (nearest rank).
double percentile(const std::vector<double> & sorted, double p);

// Four sentences on unrelated topics: a RAG corpus where each question has one right chunk.
inline const std::vector<std::string> & four_unrelated_sentences() {
    static const std::vector<std::string> k = {
        "The lighthouse keeper rowed to the island every morning before dawn.",
        "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
        "Medieval scribes mixed iron gall ink from oak galls and vitriol.",
        "Volcanic soil near the crater grows unusually sweet tomatoes.",
    };
    return k;
}

class live : public ::testing::Test {
protected:
    static void SetUpTestSuite();
    // A suite that needs other models hides SetUpTestSuite and calls this; `ready` are awaited;
    // `extra` are server arguments (as for redis_server).
    static void start(const std::vector<std::string> & module_args, const std::vector<std::string> & ready,
                      const std::vector<std::string> & extra = {});
    // The common pair: tiny (CTX ctx, SLOTS 4) and bert as an embedding model.
    static void start_tiny_and_bert(const std::string & ctx) {
        start({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", ctx, "SLOTS", "4", "MODEL", "bert", "bert-tiny-f16.gguf",
               "EMBEDDING"},
              {"tiny", "bert"});
    }
    static void TearDownTestSuite();
    void SetUp() override;
    void TearDown() override;

    static std::unique_ptr<redis_server> server;
    static std::string canary;  // digest of the canary dataset
    client_ptr c;
};

}  // namespace testing_support
