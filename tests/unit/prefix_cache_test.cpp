// The radix tree that finds the sequence holding the longest prefix of a prompt.
#include "engine/prefix_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

using namespace infer;

namespace {
const auto any = [](int32_t) { return true; };
}

TEST(prefix_cache, longest_match_across_entries) {
    prefix_cache c;
    c.insert(0, std::vector<token>{1, 2, 3, 4, 5});
    c.insert(1, std::vector<token>{1, 2, 3, 9});
    c.insert(2, std::vector<token>{7, 8});
    auto m = c.longest(std::vector<token>{1, 2, 3, 4, 6}, any);
    EXPECT_EQ(m.owner, 0);
    EXPECT_EQ(m.length, 4u);
    m = c.longest(std::vector<token>{1, 2, 3, 9, 9}, any);
    EXPECT_EQ(m.owner, 1);
    EXPECT_EQ(m.length, 4u);
    m = c.longest(std::vector<token>{1, 2}, any);  // query shorter than the entries
    EXPECT_EQ(m.length, 2u);
    m = c.longest(std::vector<token>{5}, any);
    EXPECT_EQ(m.owner, -1);
    EXPECT_EQ(m.length, 0u);
}

TEST(prefix_cache, erase_and_replace) {
    prefix_cache c;
    c.insert(0, std::vector<token>{1, 2, 3});
    c.insert(1, std::vector<token>{1, 2, 3, 4});
    c.erase(1);
    auto m = c.longest(std::vector<token>{1, 2, 3, 4}, any);
    EXPECT_EQ(m.owner, 0);
    EXPECT_EQ(m.length, 3u);
    c.insert(0, std::vector<token>{9});  // replaces owner 0's entry
    EXPECT_EQ(c.longest(std::vector<token>{1, 2}, any).owner, -1);
    EXPECT_EQ(c.held(0), 1u);
    c.erase(0);
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.longest(std::vector<token>{9}, any).owner, -1);
}

TEST(prefix_cache, usable_filter_and_split_edges) {
    prefix_cache c;
    c.insert(3, std::vector<token>{1, 2, 3, 4, 5, 6});
    c.insert(4, std::vector<token>{1, 2, 7});
    auto m = c.longest(std::vector<token>{1, 2, 3, 4}, [](int32_t o) { return o != 3; });
    EXPECT_EQ(m.owner, 4);
    EXPECT_EQ(m.length, 2u);
    c.erase(4);
    m = c.longest(std::vector<token>{1, 2, 3, 4}, any);
    EXPECT_EQ(m.owner, 3);
    EXPECT_EQ(m.length, 4u);
}

TEST(prefix_cache, many_entries_random_against_brute_force) {
    std::mt19937 rng(5);
    prefix_cache c;
    std::map<int32_t, std::vector<token>> truth;
    for (int round = 0; round < 2000; ++round) {
        const int32_t owner = int32_t(rng() % 16);
        if (rng() % 4 == 0) {
            c.erase(owner);
            truth.erase(owner);
        } else {
            std::vector<token> t(rng() % 12);
            for (auto & x : t) x = token(rng() % 3);
            c.insert(owner, t);
            if (t.empty()) truth.erase(owner); else truth[owner] = t;
        }
        std::vector<token> q(rng() % 12);
        for (auto & x : q) x = token(rng() % 3);
        size_t best = 0;
        for (auto & [o, t] : truth) {
            size_t l = 0;
            while (l < t.size() && l < q.size() && t[l] == q[l]) ++l;
            best = std::max(best, l);
        }
        const auto m = c.longest(q, any);
        ASSERT_EQ(m.length, best) << "round " << round;
        if (best > 0) {
            const auto & t = truth.at(m.owner);
            ASSERT_TRUE(std::equal(q.begin(), q.begin() + long(best), t.begin()));
        }
    }
}
