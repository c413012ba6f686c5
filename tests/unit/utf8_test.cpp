// Generated text stays valid UTF-8 however tokens split characters: utf8_append repairs invalid
// bytes as they come and keeps only an incomplete last character pending; utf8_incomplete_tail
// finds that character (streams hold it back, a finished generation drops it).
#include "engine/utf8.h"

#include <gtest/gtest.h>

#include <random>

using namespace infer;

namespace {
const std::string k_fffd = "\xEF\xBF\xBD";
}

TEST(utf8, incomplete_tail_of_each_length) {
    EXPECT_EQ(utf8_incomplete_tail(""), 0u);
    EXPECT_EQ(utf8_incomplete_tail("abc"), 0u);
    EXPECT_EQ(utf8_incomplete_tail("a\xC3"), 1u);                  // é cut after 1 of 2
    EXPECT_EQ(utf8_incomplete_tail("a\xC3\xA9"), 0u);              // é whole
    EXPECT_EQ(utf8_incomplete_tail("\xE4\xB8"), 2u);               // 中 cut after 2 of 3
    EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x8D"), 3u);           // 🍕 cut after 3 of 4
    EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x8D\x95"), 0u);       // 🍕 whole
    EXPECT_EQ(utf8_incomplete_tail(" parts\xd8\xba\xd8\xb6\xf0\x9f\x8d"), 3u);  // the reported reply
}

TEST(utf8, pieces_splitting_characters_join_up) {
    const std::string want = "h\xC3\xA9llo \xE4\xB8\xAD \xF0\x9F\x8D\x95!";
    for (size_t cut = 0; cut <= want.size(); ++cut) {
        std::string text;
        utf8_append(text, want.substr(0, cut));
        utf8_append(text, want.substr(cut));
        EXPECT_EQ(text, want) << "cut at " << cut;
    }
    std::string bytewise;
    for (char c : want) utf8_append(bytewise, std::string(1, c));
    EXPECT_EQ(bytewise, want);
}

TEST(utf8, invalid_bytes_become_replacement_characters) {
    std::string t;
    utf8_append(t, "a\x80" "b");  // stray continuation byte
    EXPECT_EQ(t, "a" + k_fffd + "b");
    t.clear();
    utf8_append(t, "\xC0\xAF");  // overlong '/'
    EXPECT_EQ(t, k_fffd + k_fffd);
    t.clear();
    utf8_append(t, "\xED\xA0\x80");  // a surrogate
    EXPECT_EQ(t, k_fffd + k_fffd + k_fffd);
    t.clear();
    utf8_append(t, "\xF4\x90\x80\x80");  // above U+10FFFF
    EXPECT_EQ(t, k_fffd + k_fffd + k_fffd + k_fffd);
    t.clear();
    utf8_append(t, "\xE4\xB8");  // pending ...
    utf8_append(t, "x");         // ... then cut short by a byte that cannot continue it
    EXPECT_EQ(t, k_fffd + "x");
    EXPECT_TRUE(utf8_valid(t));
}

TEST(utf8, repair_replaces_an_incomplete_end) {
    EXPECT_EQ(utf8_repair("ok\xF0\x9F\x8D"), "ok" + k_fffd);
    EXPECT_EQ(utf8_repair("\xFF"), k_fffd);
    EXPECT_EQ(utf8_repair("fine \xC3\xA9"), "fine \xC3\xA9");
}

TEST(utf8, random_bytes_always_end_valid_but_for_the_pending_tail) {
    std::mt19937 rng(7);
    for (int round = 0; round < 2000; ++round) {
        std::string text;
        const int pieces = 1 + int(rng() % 8);
        for (int p = 0; p < pieces; ++p) {
            std::string piece(rng() % 5, '\0');
            for (auto & c : piece) c = char(rng() % 3 == 0 ? 0x80 + rng() % 0x80 : rng() % 256);
            utf8_append(text, piece);
            const size_t tail = utf8_incomplete_tail(text);
            ASSERT_TRUE(utf8_valid(std::string_view(text).substr(0, text.size() - tail))) << round;
        }
        EXPECT_TRUE(utf8_valid(utf8_repair(text)));
    }
}
