// The scheduler against llama.cpp itself, on the generated tiny model: greedy output equals a
// plain single-sequence llama.cpp loop token for token, concurrent requests give the same output
// as alone, and every early end (cancel, timeout, stop, queue full, unload) completes each
// request exactly once.
#include "engine/backend.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "support/test_models.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

using namespace infer;
using namespace testing_support;

namespace {

std::shared_ptr<model> load_tiny(uint32_t slots, uint32_t ctx = 512, uint32_t queue_max = 64, uint32_t batch = 0) {
    model_params p = test_model_params("tiny-q8_0.gguf");
    p.n_ctx = ctx;
    p.n_slots = slots;
    p.n_batch = batch;
    p.queue_max = queue_max;
    return load_test_model(p);
}

// Greedy decoding with nothing but llama.h: one sequence, argmax over the logits.
std::vector<token> reference_greedy(const model & m, const std::vector<token> & prompt, int n) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048;
    cp.n_batch = 2048;  // the whole prompt in one decode
    cp.n_seq_max = 1;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    llama_context_ptr ctx(llama_init_from_model(m.raw(), cp));
    std::vector<token> toks = prompt, out;
    llama_batch b = llama_batch_get_one(toks.data(), int32_t(toks.size()));
    EXPECT_EQ(llama_decode(ctx.get(), b), 0);
    const int n_vocab = m.info().n_vocab;
    for (int i = 0; i < n; ++i) {
        const float * logits = llama_get_logits_ith(ctx.get(), -1);
        token best = 0;
        for (token t = 1; t < n_vocab; ++t) if (logits[t] > logits[best]) best = t;
        if (m.is_eog(best)) break;
        out.push_back(best);
        token next = best;
        b = llama_batch_get_one(&next, 1);
        EXPECT_EQ(llama_decode(ctx.get(), b), 0);
    }
    return out;
}

std::unique_ptr<infer_request> greedy_request(std::vector<token> prompt, int max_tokens) {
    auto r = std::make_unique<infer_request>();
    r->prompt = std::move(prompt);
    r->max_tokens = max_tokens;
    r->sampling.temperature = 0;
    return r;
}

std::future<infer_result> post(scheduler & s, std::unique_ptr<infer_request> r) {
    auto done = std::make_shared<std::promise<infer_result>>();
    auto fut = done->get_future();
    r->on_done = [done](infer_result && res) { done->set_value(std::move(res)); };
    EXPECT_EQ(s.submit(r), submit_status_ok);
    return fut;
}

std::vector<token> prompt_of(const model & m, const std::string & text) { return m.tokenize(text, true, true); }

}  // namespace

TEST(scheduler, greedy_equals_plain_llama_loop) {
    auto m = load_tiny(1);
    scheduler s("t", m);
    const auto prompt = prompt_of(*m, "The quick brown fox jumps over the lazy dog.");
    const auto ref = reference_greedy(*m, prompt, 32);
    infer_result res = post(s, greedy_request(prompt, 32)).get();
    ASSERT_TRUE(res.error.empty()) << res.error;
    EXPECT_EQ(res.tokens, ref);
    EXPECT_EQ(res.prompt_tokens, int32_t(prompt.size()));
    EXPECT_EQ(res.completion_tokens, int32_t(res.tokens.size()));
    EXPECT_EQ(res.finish, ref.size() == 32 ? finish_reason_length : finish_reason_eos);
    std::string text;
    for (token t : res.tokens) text += m->piece(t);
    EXPECT_EQ(res.text, text);
}

// With 8 prompts generating at once, each output equals its output alone. The CPU backend may
// pick different kernels for different batch shapes; this measures whether that changes a
// greedy choice on this model (it did not on the machines we ran it on).
TEST(scheduler, concurrent_outputs_equal_single_outputs) {
    auto m = load_tiny(8);
    scheduler s("t", m);
    std::vector<std::vector<token>> prompts, alone;
    for (int i = 0; i < 8; ++i) {
        prompts.push_back(prompt_of(*m, "Prompt number " + std::to_string(i) + std::string(size_t(i) * 7, 'x') + " says"));
        alone.push_back(post(s, greedy_request(prompts.back(), 24)).get().tokens);
    }
    std::vector<std::future<infer_result>> futs;
    for (int i = 0; i < 8; ++i) futs.push_back(post(s, greedy_request(prompts[i], 24)));
    int same = 0;
    for (int i = 0; i < 8; ++i) {
        const auto res = futs[i].get();
        ASSERT_TRUE(res.error.empty()) << res.error;
        same += res.tokens == alone[i];
        EXPECT_EQ(res.tokens, alone[i]) << "prompt " << i;
    }
    RecordProperty("identical_outputs", same);
}

TEST(scheduler, long_prompt_is_chunked_and_matches_reference) {
    // BATCH 64 spreads a ~400-token prompt over 7 steps; the output must equal one big prefill.
    auto m = load_tiny(2, 512, 64, 64);
    ASSERT_TRUE(m);
    scheduler s("t", m);
    std::string text;
    for (int i = 0; i < 150; ++i) text += "word" + std::to_string(i % 17) + " ";
    const auto prompt = prompt_of(*m, text);
    ASSERT_GT(prompt.size(), 300u);
    ASSERT_LT(prompt.size(), 500u);
    const auto res = post(s, greedy_request(prompt, 8)).get();
    ASSERT_TRUE(res.error.empty()) << res.error;
    EXPECT_EQ(res.tokens, reference_greedy(*m, prompt, 8));
    EXPECT_GE(s.stats().steps, 7u);
}

TEST(scheduler, stop_string_cuts_text) {
    auto m = load_tiny(1);
    scheduler s("t", m);
    const auto prompt = prompt_of(*m, "hello world");
    const auto full = post(s, greedy_request(prompt, 16)).get();
    ASSERT_GE(full.text.size(), 4u);
    auto r = greedy_request(prompt, 16);
    const std::string stop = full.text.substr(full.text.size() / 2, 2);
    r->stop = {stop};
    const auto cut = post(s, std::move(r)).get();
    EXPECT_EQ(cut.finish, finish_reason_stop);
    EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

// A timeout returns what was generated: the start of the same greedy request without a deadline,
// token for token, with its text, and some text once tokens were generated.
TEST(scheduler, timeout_returns_partial_text) {
    auto m = load_tiny(1, 4096);
    scheduler s("t", m);
    const auto prompt = prompt_of(*m, "hello");
    auto r = greedy_request(prompt, 4000);
    r->ignore_eos = true;
    r->deadline = clock_type::now() + std::chrono::milliseconds(200);
    const auto res = post(s, std::move(r)).get();
    ASSERT_TRUE(res.error.empty()) << res.error;
    EXPECT_EQ(res.finish, finish_reason_timeout);
    EXPECT_LT(res.completion_tokens, 4000);
    EXPECT_EQ(res.completion_tokens, int32_t(res.tokens.size()));
    if (!res.tokens.empty()) EXPECT_FALSE(res.text.empty()) << res.tokens.size() << " tokens";
    auto whole_req = greedy_request(prompt, int(res.tokens.size()) + 16);
    whole_req->ignore_eos = true;
    const auto whole = post(s, std::move(whole_req)).get();
    ASSERT_TRUE(whole.error.empty()) << whole.error;
    ASSERT_GT(whole.tokens.size(), res.tokens.size());
    EXPECT_EQ(std::vector<token>(whole.tokens.begin(), whole.tokens.begin() + long(res.tokens.size())), res.tokens);
    EXPECT_EQ(whole.text.rfind(res.text, 0), 0u) << "'" << res.text << "' is not a prefix of '" << whole.text << "'";
}

TEST(scheduler, cancel_frees_the_slot) {
    auto m = load_tiny(1, 4096);
    scheduler s("t", m);
    auto r = greedy_request(prompt_of(*m, "hello"), 4000);
    auto control = r->control;
    auto fut = post(s, std::move(r));
    ASSERT_TRUE([&] {
        for (int i = 0; i < 500 && s.stats().slots_busy == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return s.stats().slots_busy == 1;
    }());
    control->cancelled = true;
    const auto res = fut.get();
    EXPECT_EQ(res.finish, finish_reason_cancelled);
    EXPECT_EQ(s.stats().slots_busy, 0u);
    // The slot is reusable and its KV cells were freed: the next request matches the reference.
    const auto prompt = prompt_of(*m, "after cancel");
    EXPECT_EQ(post(s, greedy_request(prompt, 8)).get().tokens, reference_greedy(*m, prompt, 8));
}

// What a cancel (a client disconnect, CLIENT KILL) does to the KV cells: the slot is free at the
// next step, and its cells - the prompt and every generated token that was decoded, all but the
// last one sampled - stay as a cached prefix, as after any finished request. Observed on the
// cells themselves: a request continuing the cancelled text (prompt + the tokens the cancel
// returned) reuses exactly all but its last token, and its greedy output equals the reference
// computed from scratch, which it would not if the kept cells were stale or cut short.
TEST(scheduler, cancel_keeps_the_decoded_cells_as_a_valid_prefix) {
    auto m = load_tiny(1, 4096);
    scheduler s("t", m);
    const auto prompt = prompt_of(*m, "cancel me after a few tokens");
    auto r = greedy_request(prompt, 4000);
    r->ignore_eos = true;
    auto control = r->control;
    auto fut = post(s, std::move(r));
    for (int i = 0; i < 5000 && s.stats().generated_tokens < 6; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_GE(s.stats().generated_tokens, 6u);
    control->cancelled = true;
    const auto cancelled = fut.get();
    ASSERT_EQ(cancelled.finish, finish_reason_cancelled);
    ASSERT_GE(cancelled.tokens.size(), 6u);
    EXPECT_EQ(s.stats().slots_busy, 0u);
    auto continued = prompt;
    continued.insert(continued.end(), cancelled.tokens.begin(), cancelled.tokens.end());
    const auto next = post(s, greedy_request(continued, 8)).get();
    ASSERT_TRUE(next.error.empty()) << next.error;
    EXPECT_EQ(next.cached_tokens, int32_t(continued.size()) - 1);
    EXPECT_EQ(next.tokens, reference_greedy(*m, continued, 8));
}

TEST(scheduler, queue_full_is_immediate) {
    auto m = load_tiny(1, 4096, 2);
    scheduler s("t", m);
    std::vector<std::future<infer_result>> futs;
    std::vector<std::shared_ptr<request_control>> controls;
    int rejected = 0;
    for (int i = 0; i < 6; ++i) {
        auto r = greedy_request(prompt_of(*m, "hello"), 2000);
        controls.push_back(r->control);
        auto done = std::make_shared<std::promise<infer_result>>();
        auto fut = done->get_future();
        r->on_done = [done](infer_result && res) { done->set_value(std::move(res)); };
        const auto st = s.submit(r);
        if (st == submit_status_queue_full) {
            ++rejected;
            EXPECT_TRUE(r);  // not taken
        } else {
            futs.push_back(std::move(fut));
        }
    }
    EXPECT_GE(rejected, 3);
    for (auto & c : controls) c->cancelled = true;
    for (auto & f : futs) EXPECT_TRUE(f.get().error.empty());
}

TEST(scheduler, cancel_stop_fails_queued_and_running_with_error) {
    auto m = load_tiny(1, 4096);
    scheduler s("victim", m);
    auto running = post(s, greedy_request(prompt_of(*m, "a"), 4000));
    for (int i = 0; i < 1000 && s.stats().slots_busy == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(s.stats().slots_busy, 1u);
    auto queued = post(s, greedy_request(prompt_of(*m, "b"), 4000));
    s.stop(stop_mode_cancel);
    const auto ran = running.get(), waited = queued.get();
    EXPECT_EQ(ran.error.code, error_code::unloaded);
    EXPECT_TRUE(ran.error.during_generation);
    EXPECT_EQ(waited.error.code, error_code::unloaded);
    EXPECT_FALSE(waited.error.during_generation);
    auto r = greedy_request(prompt_of(*m, "c"), 4);
    EXPECT_EQ(s.submit(r), submit_status_stopped);
}

TEST(scheduler, drain_stop_finishes_everything) {
    auto m = load_tiny(2);
    scheduler s("t", m);
    std::vector<std::future<infer_result>> futs;
    for (int i = 0; i < 5; ++i) futs.push_back(post(s, greedy_request(prompt_of(*m, "x" + std::to_string(i)), 16)));
    s.stop(stop_mode_drain);
    for (auto & f : futs) {
        const auto res = f.get();
        EXPECT_TRUE(res.error.empty());
        EXPECT_TRUE(res.finish == finish_reason_length || res.finish == finish_reason_eos);
    }
}

TEST(scheduler, prompt_over_context_is_an_error) {
    auto m = load_tiny(1, 64);
    scheduler s("t", m);
    auto r = std::make_unique<infer_request>();
    r->text = std::string(400, 'a') + " b c d e f g";
    r->max_tokens = 60;
    const auto res = post(s, std::move(r)).get();
    EXPECT_EQ(res.error.code, error_code::prompt_over_context) << res.error;
    EXPECT_GT(res.error.got + res.error.max_tokens, res.error.limit);
    EXPECT_EQ(res.error.max_tokens, 60);
    EXPECT_EQ(res.error.limit, 64);
}

TEST(scheduler, tokenize_and_detokenize_round_trip) {
    auto m = load_tiny(1);
    scheduler s("t", m);
    auto t = std::make_unique<infer_request>();
    t->kind = request_kind_tokenize;
    t->text = "<|im_start|>user\nhi<|im_end|>";
    const auto ids = post(s, std::move(t)).get().tokens;
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 151644);  // <|im_start|> parsed as the control token
    auto d = std::make_unique<infer_request>();
    d->kind = request_kind_detokenize;
    d->prompt = ids;
    EXPECT_EQ(post(s, std::move(d)).get().text, "<|im_start|>user\nhi<|im_end|>");
}

// ---- prefix reuse --------------------------------------------------------------------------

namespace {

std::vector<token> long_prompt(const model & m, const std::string & tail) {
    std::string text;
    for (int i = 0; i < 120; ++i) text += "shared context line " + std::to_string(i % 13) + ". ";
    return prompt_of(m, text + tail);
}

std::unique_ptr<infer_request> nocache(std::unique_ptr<infer_request> r) {
    r->use_cache = false;
    return r;
}

}  // namespace

TEST(prefix_reuse, cached_and_uncached_give_the_same_greedy_output) {
    auto m = load_tiny(2, 1024);
    scheduler s("t", m);
    const auto prompt = long_prompt(*m, "question one?");
    const auto cold = post(s, nocache(greedy_request(prompt, 16))).get();
    EXPECT_EQ(cold.cached_tokens, 0);
    const auto warm = post(s, greedy_request(prompt, 16)).get();
    EXPECT_EQ(warm.cached_tokens, int32_t(prompt.size()) - 1);  // one token is always decoded
    EXPECT_EQ(warm.tokens, cold.tokens);
    EXPECT_EQ(warm.tokens, reference_greedy(*m, prompt, 16));
    EXPECT_GE(s.stats().prefix_hits, 1u);
}

TEST(prefix_reuse, shared_prefix_with_a_different_question) {
    auto m = load_tiny(2, 1024);
    scheduler s("t", m);
    const auto p1 = long_prompt(*m, "question one?");
    const auto p2 = long_prompt(*m, "and now a different question two?");
    post(s, greedy_request(p1, 4)).get();
    const auto r = post(s, greedy_request(p2, 12)).get();
    size_t common = 0;
    while (common < p1.size() && p1[common] == p2[common]) ++common;
    EXPECT_GE(r.cached_tokens, int32_t(common) - 1);
    EXPECT_LE(r.cached_tokens, int32_t(common) + 4);
    EXPECT_EQ(r.tokens, reference_greedy(*m, p2, 12));
}

// The prefix lives in a slot that is busy generating: it is copied into a free slot.
TEST(prefix_reuse, copies_from_a_busy_slot) {
    auto m = load_tiny(2, 2048);
    scheduler s("t", m);
    const auto p1 = long_prompt(*m, "long running one");
    const auto p2 = long_prompt(*m, "second asks something else");
    auto busy = greedy_request(p1, 1000);
    auto control = busy->control;
    auto fut = post(s, std::move(busy));
    for (int i = 0; i < 2000 && s.stats().generated_tokens < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto r = post(s, greedy_request(p2, 12)).get();
    control->cancelled = true;
    fut.get();
    EXPECT_GT(r.cached_tokens, 100);
    EXPECT_EQ(s.stats().prefix_copies, 1u);
    EXPECT_EQ(r.tokens, reference_greedy(*m, p2, 12));
}

// Four requests sharing a long prefix arrive together: the prefix is prefilled once.
TEST(prefix_reuse, concurrent_requests_prefill_a_shared_prefix_once) {
    auto m = load_tiny(4, 1024, 64, 64);  // a small batch: the first prefill takes several steps
    scheduler s("t", m);
    std::vector<std::vector<token>> prompts;
    std::vector<std::future<infer_result>> futs;
    for (int i = 0; i < 4; ++i) prompts.push_back(long_prompt(*m, "q" + std::to_string(i) + "?"));
    for (int i = 0; i < 4; ++i) futs.push_back(post(s, greedy_request(prompts[size_t(i)], 6)));
    size_t total_prompt = 0;
    for (int i = 0; i < 4; ++i) {
        const auto r = futs[size_t(i)].get();
        ASSERT_TRUE(r.error.empty()) << r.error;
        EXPECT_EQ(r.tokens, reference_greedy(*m, prompts[size_t(i)], 6)) << i;
        total_prompt += prompts[size_t(i)].size();
    }
    const auto st = s.stats();
    EXPECT_EQ(st.prefix_hits, 3u);
    // Prefilled tokens: one full prompt plus the three distinct tails.
    EXPECT_LT(st.prompt_tokens, prompts[0].size() + 3 * 16);
    RecordProperty("prefilled", std::to_string(st.prompt_tokens) + " of " + std::to_string(total_prompt));
}

// With GPU_LAYERS set, sampling runs on the worker pool; outputs must not change: greedy ones
// equal the reference, and seeded ones equal the same requests on a scheduler without the pool.
// (On a CPU-only build the layers stay on the CPU, but the pooled sampling path is the same.)
TEST(scheduler, pooled_sampling_gives_the_same_outputs) {
    backend_init();
    const auto run_all = [](int32_t gpu_layers, std::vector<std::vector<token>> & prompts) {
        model_params p = model_default_params();
        p.path = std::string(REDIS_INFER_MODEL_DIR) + "/tiny-q8_0.gguf";
        p.n_ctx = 512;
        p.n_slots = 8;
        p.n_threads = 2;
        p.n_gpu_layers = gpu_layers;
        engine_error err;
        auto m = model::load(p, err);
        EXPECT_TRUE(m) << err;
        std::vector<infer_result> out;
        if (!m) return out;
        scheduler s("t", m);
        std::vector<std::future<infer_result>> futs;
        prompts.clear();
        for (int i = 0; i < 8; ++i) {
            prompts.push_back(prompt_of(*m, "pooled prompt " + std::to_string(i) + std::string(size_t(i) * 3, 'q')));
            auto r = greedy_request(prompts.back(), 16);
            if (i % 2) {  // half of them through a sampler chain (seeded, so reproducible)
                r->sampling.temperature = 0.9f;
                r->sampling.seed = 77 + uint32_t(i);
            }
            futs.push_back(post(s, std::move(r)));
        }
        for (auto & f : futs) out.push_back(f.get());
        if (gpu_layers != 0) {
            for (int i = 0; i < 8; i += 2) EXPECT_EQ(out[size_t(i)].tokens, reference_greedy(*m, prompts[size_t(i)], 16)) << i;
        }
        return out;
    };
    std::vector<std::vector<token>> prompts;
    const auto pooled = run_all(-1, prompts);
    const auto unpooled = run_all(0, prompts);
    ASSERT_EQ(pooled.size(), 8u);
    ASSERT_EQ(unpooled.size(), 8u);
    for (size_t i = 0; i < 8; ++i) {
        ASSERT_TRUE(pooled[i].error.empty()) << pooled[i].error;
        EXPECT_EQ(pooled[i].tokens, unpooled[i].tokens) << "request " << i << (i % 2 ? " (seeded)" : " (greedy)");
        EXPECT_EQ(pooled[i].text, unpooled[i].text) << i;
        EXPECT_GT(pooled[i].completion_tokens, 0) << i;
    }
}
