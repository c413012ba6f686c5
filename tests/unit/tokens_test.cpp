// Token-key validation: the guard between client bytes and llama.cpp's asserts.
#include "engine/tokens.h"

#include <gtest/gtest.h>

using namespace infer;

static std::string le(std::initializer_list<uint32_t> ids) {
    std::string s;
    for (uint32_t v : ids) for (int b = 0; b < 4; ++b) s.push_back(char((v >> (8 * b)) & 0xff));
    return s;
}

TEST(tokens, round_trip) {
    std::vector<token> out;
    const std::string blob = le({0, 1, 151935, 65536});
    ASSERT_EQ(tokens_append_blob(blob, 151936, 100, out).status, blob_status_ok);
    EXPECT_EQ(out, (std::vector<token>{0, 1, 151935, 65536}));
    EXPECT_EQ(tokens_to_blob(out), blob);
}

TEST(tokens, appends_in_order) {
    std::vector<token> out{7};
    ASSERT_EQ(tokens_append_blob(le({8, 9}), 10, 100, out).status, blob_status_ok);
    EXPECT_EQ(out, (std::vector<token>{7, 8, 9}));
}

TEST(tokens, rejects_bad_length_and_leaves_output) {
    std::vector<token> out{1};
    EXPECT_EQ(tokens_append_blob(std::string(7, 'a'), 10, 100, out).status, blob_status_bad_length);
    EXPECT_EQ(out.size(), 1u);
}

TEST(tokens, rejects_out_of_range_ids) {
    for (uint32_t bad : {10u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
        std::vector<token> out;
        const blob_check c = tokens_append_blob(le({1, 2, bad, 3}), 10, 100, out);
        EXPECT_EQ(c.status, blob_status_bad_token);
        EXPECT_EQ(c.index, 2u);
        EXPECT_EQ(c.value, bad);
        EXPECT_TRUE(out.empty());
    }
}

TEST(tokens, rejects_too_long_before_copying) {
    std::vector<token> out{1, 2};
    EXPECT_EQ(tokens_append_blob(le({1, 2, 3}), 10, 4, out).status, blob_status_too_long);
    EXPECT_EQ(out.size(), 2u);
    EXPECT_EQ(tokens_append_blob(le({1, 2}), 10, 4, out).status, blob_status_ok);
}

TEST(tokens, empty_blob_is_valid_and_adds_nothing) {
    std::vector<token> out;
    EXPECT_EQ(tokens_append_blob("", 10, 4, out).status, blob_status_ok);
    EXPECT_TRUE(out.empty());
}

TEST(tokens, non_positive_vocab_rejects_every_id) {
    std::vector<infer::token> out;
    const std::string blob("\x00\x00\x00\x80", 4);  // 2^31: would pass a signed comparison
    EXPECT_EQ(infer::tokens_append_blob(blob, 0, 16, out).status, infer::blob_status_bad_token);
    EXPECT_EQ(infer::tokens_append_blob(blob, -5, 16, out).status, infer::blob_status_bad_token);
    EXPECT_TRUE(out.empty());
}
