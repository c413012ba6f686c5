// The sampling fast path and the worker pool that spreads sampling over threads.
#include "engine/backend.h"
#include "engine/model.h"
#include "engine/sampling.h"
#include "engine/worker_pool.h"
#include "support/test_models.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>

using namespace infer;
using namespace testing_support;

TEST(worker_pool, runs_every_item_once) {
    for (size_t helpers : {0u, 1u, 3u}) {
        worker_pool pool(helpers);
        for (int round = 0; round < 300; ++round) {
            const size_t n = size_t(round % 17);
            std::vector<std::atomic<int>> hits(n);
            pool.parallel_for(n, [&](size_t i) { hits[i].fetch_add(1); });
            for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << helpers << " " << round << " " << i;
        }
    }
}

// A throwing item reaches the caller once, after every item ran; the pool stays usable.
TEST(worker_pool, an_exception_reaches_the_caller_after_every_item_ran) {
    for (size_t helpers : {0u, 3u}) {
        worker_pool pool(helpers);
        for (int round = 0; round < 50; ++round) {
            std::atomic<int> ran{0};
            EXPECT_THROW(pool.parallel_for(16, [&](size_t i) {
                ran.fetch_add(1);
                if (i % 5 == 1) throw std::runtime_error("item failed");
            }), std::runtime_error);
            EXPECT_EQ(ran.load(), 16);
            std::atomic<int> after{0};
            pool.parallel_for(8, [&](size_t) { after.fetch_add(1); });
            EXPECT_EQ(after.load(), 8);
        }
    }
}

// The greedy fast path picks what llama.cpp's greedy sampler picks, ties included.
TEST(token_sampler, greedy_fast_path_equals_llama_greedy) {
    auto m = load_test_model(test_model_params("tiny-q8_0.gguf"));
    ASSERT_TRUE(m);
    const int n = m->info().n_vocab;
    sampling_params sp = sampling_default_params();
    sp.temperature = 0;
    token_sampler fast(sp, m->vocab());
    llama_sampler_ptr greedy(llama_sampler_init_greedy());
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> coarse(-50, 50);  // coarse values: many ties
    std::vector<float> logits(static_cast<size_t>(n));
    std::vector<llama_token_data> cur(static_cast<size_t>(n));
    for (int round = 0; round < 20; ++round) {
        for (auto & x : logits) x = float(coarse(rng)) / 4.0f;
        for (int i = 0; i < n; ++i) cur[size_t(i)] = {i, logits[size_t(i)], 0.0f};
        llama_token_data_array arr = {cur.data(), cur.size(), -1, false};
        llama_sampler_apply(greedy.get(), &arr);
        EXPECT_EQ(fast.sample(logits.data()), arr.data[arr.selected].id);
    }
}

// The vectorized argmax equals the plain first-maximum loop on every shape that matters: ties
// within and across blocks, the maximum in the tail or at 0, rows shorter than a block,
// constant rows, infinities.
TEST(argmax_first, equals_the_plain_loop) {
    const auto reference = [](const std::vector<float> & v) {
        int32_t best = 0;
        for (size_t i = 1; i < v.size(); ++i) {
            if (v[i] > v[size_t(best)]) best = int32_t(i);
        }
        return best;
    };
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> coarse(-30, 30);
    std::normal_distribution<float> fine;
    for (int32_t n : {1, 7, 31, 1023, 1024, 1025, 2048, 4096 + 17, 151936}) {
        for (int round = 0; round < 40; ++round) {
            std::vector<float> v(static_cast<size_t>(n));
            for (auto & x : v) x = round % 2 ? float(coarse(rng)) : fine(rng);
            if (round == 2) std::fill(v.begin(), v.end(), 1.5f);
            if (round == 3) v[size_t(n) - 1] = 1e30f;                 // the last element, in the tail
            if (round == 4) v[0] = 1e30f;
            if (round == 5) std::fill(v.begin(), v.end(), -INFINITY);
            if (round == 6) v[size_t(n) / 2] = INFINITY;
            ASSERT_EQ(argmax_first(v.data(), n), reference(v)) << "n " << n << " round " << round;
        }
    }
    std::vector<float> with_nan(3000, 0.0f);
    with_nan[10] = NAN;
    with_nan[2000] = 5.0f;
    const int32_t i = argmax_first(with_nan.data(), 3000);
    EXPECT_TRUE(i >= 0 && i < 3000);
}
