// Prompt assembly on its own (engine/prompt.h), on the generated tiny model: what TEXT, a chat
// turn and a RAG request become, the context limits with their numbers, chat truncation at
// message boundaries, and the scheduler keeping a deferred chat request's prompt as built once.
#include "engine/backend.h"
#include "engine/prompt.h"
#include "engine/rag_prompt.h"
#include "engine/scheduler.h"
#include "support/test_models.h"

#include <gtest/gtest.h>

#include <future>

using namespace infer;
using namespace testing_support;

namespace {

std::shared_ptr<model> tiny(uint32_t slots = 1) {
    model_params p = test_model_params("tiny-q8_0.gguf");
    p.n_ctx = 512;
    p.n_slots = slots;
    return load_test_model(p);
}

std::vector<token> templated(const model & m, const std::vector<chat_message> & msgs, bool add_assistant) {
    std::string s;
    EXPECT_TRUE(m.chat_apply(msgs, add_assistant, s));
    return m.tokenize(s, true, true);
}

infer_request chat_request(std::vector<token> session, std::vector<chat_message> turn, int max_tokens) {
    infer_request r;
    r.prompt = std::move(session);
    r.chat = std::move(turn);
    r.max_tokens = max_tokens;
    return r;
}

}  // namespace

TEST(prompt, text_is_tokenized_as_the_model_tokenizes_it) {
    auto m = tiny();
    infer_request r;
    r.text = "Hello <|im_start|> world";
    r.max_tokens = 8;
    prompt_plan plan;
    ASSERT_TRUE(prompt_build(*m, r, 512, plan).empty());
    EXPECT_EQ(plan.tokens, m->tokenize("Hello <|im_start|> world", true, true));
    EXPECT_FALSE(plan.chat);

    infer_request plain;
    plain.text = "Hello <|im_start|> world";
    plain.parse_special = false;
    prompt_plan p2;
    ASSERT_TRUE(prompt_build(*m, plain, 512, p2).empty());
    EXPECT_EQ(p2.tokens, m->tokenize("Hello <|im_start|> world", false, true));
    EXPECT_NE(p2.tokens, plan.tokens);
}

TEST(prompt, limits_are_typed_with_their_numbers) {
    auto m = tiny();
    infer_request empty;
    prompt_plan plan;
    EXPECT_EQ(prompt_build(*m, empty, 512, plan).code, error_code::prompt_empty);

    infer_request big;
    big.prompt.assign(100, 42);
    big.max_tokens = 30;
    const engine_error e = prompt_build(*m, big, 128, plan);
    EXPECT_EQ(e.code, error_code::prompt_over_context);
    EXPECT_EQ(e.got, 100);
    EXPECT_EQ(e.max_tokens, 30);
    EXPECT_EQ(e.limit, 128);

    infer_request fits;
    fits.prompt.assign(100, 42);
    fits.max_tokens = 28;
    EXPECT_TRUE(prompt_build(*m, fits, 128, plan).empty());
    EXPECT_EQ(plan.tokens.size(), 100u);

    infer_request bad;
    bad.text = "ok \xf4\x90\x80\x80 ok";  // above U+10FFFF: llama.cpp's BPE pre-tokenizer throws
    const engine_error t = prompt_build(*m, bad, 512, plan);
    EXPECT_EQ(t.code, error_code::tokenize_failed);
    EXPECT_NE(t.detail.find("invalid codepoint"), std::string::npos) << t;
}

// A new conversation is the template over its messages; the session after the answer is the
// template over the whole conversation, answer included.
TEST(prompt, chat_turn_and_session_equal_the_template_over_the_conversation) {
    auto m = tiny();
    infer_request r = chat_request({}, {{"system", "Be brief."}, {"user", "Hi there"}}, 16);
    prompt_plan plan;
    ASSERT_TRUE(prompt_build(*m, r, 512, plan).empty());
    EXPECT_TRUE(plan.chat);
    EXPECT_EQ(plan.chat_kept, 0u);
    EXPECT_TRUE(r.chat.empty()) << "the turn is consumed: building again must not append it twice";
    EXPECT_EQ(plan.tokens, templated(*m, {{"system", "Be brief."}, {"user", "Hi there"}}, true));

    const auto session = chat_session(*m, plan, "Hello!");
    EXPECT_EQ(session, templated(*m, {{"system", "Be brief."}, {"user", "Hi there"}, {"assistant", "Hello!"}}, false));

    // The next turn on that session keeps it whole at the front.
    infer_request next = chat_request(session, {{"user", "And now?"}}, 16);
    prompt_plan p2;
    ASSERT_TRUE(prompt_build(*m, next, 512, p2).empty());
    EXPECT_EQ(p2.chat_kept, session.size());
    EXPECT_TRUE(std::equal(session.begin(), session.end(), p2.tokens.begin()));
    EXPECT_EQ(chat_session(*m, p2, "Fine."),
              templated(*m, {{"system", "Be brief."}, {"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "And now?"},
                             {"assistant", "Fine."}}, false));
}

TEST(prompt, chat_truncation_drops_whole_oldest_messages_or_reports_the_numbers) {
    auto m = tiny();
    ASSERT_GE(m->chat_message_start(), 0);
    std::vector<chat_message> conv;
    for (int i = 0; i < 6; ++i) {
        conv.push_back({"user", "question number " + std::to_string(i) + " with some words in it"});
        conv.push_back({"assistant", "answer number " + std::to_string(i) + " with some words too"});
    }
    const auto session = templated(*m, conv, false);
    const size_t n_ctx = session.size() + 10;  // the turn and MAX_TOKENS 16 do not fit beside it

    infer_request strict = chat_request(session, {{"user", "last"}}, 16);
    prompt_plan plan;
    const engine_error e = prompt_build(*m, strict, n_ctx, plan);
    ASSERT_EQ(e.code, error_code::chat_too_long);
    EXPECT_EQ(e.got, int64_t(session.size()));
    EXPECT_GT(e.turn, 0);
    EXPECT_EQ(e.max_tokens, 16);
    EXPECT_EQ(e.limit, int64_t(n_ctx));
    EXPECT_FALSE(e.truncating);

    infer_request trunc = chat_request(session, {{"user", "last"}}, 16);
    trunc.chat_truncate = true;
    prompt_plan cut;
    ASSERT_TRUE(prompt_build(*m, trunc, n_ctx, cut).empty());
    EXPECT_LE(cut.tokens.size() + 16, n_ctx);
    ASSERT_GT(cut.chat_kept, 0u);
    EXPECT_LT(cut.chat_kept, session.size());
    // What is kept is the session's tail from a message start: whole messages only.
    EXPECT_EQ(cut.tokens.front(), m->chat_message_start());
    EXPECT_TRUE(std::equal(cut.tokens.begin(), cut.tokens.begin() + long(cut.chat_kept),
                           session.end() - long(cut.chat_kept)));
}

// RAG: system, chunks (verbatim ids, in rank order) and the question inside the template; two
// questions over the same chunks share everything before the question.
TEST(prompt, rag_layout_keeps_chunk_ids_and_shares_the_prefix) {
    auto m = tiny();
    const auto chunk1 = m->tokenize("Redis keeps data in memory.", false, false);
    const auto chunk2 = m->tokenize("Vector sets index embeddings.", false, false);
    const auto build = [&](const std::string & q) {
        infer_request r;
        r.rag = std::make_shared<rag_input>();
        r.rag->system = "Use the context.";
        r.rag->chunks = {chunk1, chunk2};
        r.rag->question = q;
        r.max_tokens = 8;
        prompt_plan plan;
        EXPECT_TRUE(prompt_build(*m, r, 512, plan).empty());
        EXPECT_FALSE(r.rag) << "consumed";
        return plan.tokens;
    };
    const auto a = build("Where is the data?"), b = build("What do vector sets hold?");
    const auto find = [](const std::vector<token> & hay, const std::vector<token> & needle) {
        return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) - hay.begin();
    };
    const auto at1 = find(a, chunk1), at2 = find(a, chunk2);
    ASSERT_LT(size_t(at1), a.size());
    ASSERT_LT(size_t(at2), a.size());
    EXPECT_LT(at1, at2);
    size_t shared = 0;
    while (shared < a.size() && shared < b.size() && a[shared] == b[shared]) ++shared;
    EXPECT_GE(shared, size_t(at2) + chunk2.size()) << "the chunks are inside the shared prefix";
    std::string whole;
    ASSERT_TRUE(m->chat_apply({{"system", "Use the context."},
                               {"user", "Context:\nRedis keeps data in memory.\n\nVector sets index embeddings.\n\n"
                                        "Question: Where is the data?"}},
                              true, whole));
    EXPECT_EQ(m->detokenize(a), m->detokenize(m->tokenize(whole, true, true)));
}

// A chat request that waits behind another slot's prefill of the same long session is built
// once: its prompt holds its turn once, and its session grows by that turn and its answer only.
TEST(prompt, a_deferred_chat_request_keeps_the_prompt_it_was_built_with) {
    auto m = tiny(2);
    std::vector<chat_message> conv;
    for (int i = 0; i < 8; ++i) {
        conv.push_back({"user", "tell me fact " + std::to_string(i) + " about the sea and the sky"});
        conv.push_back({"assistant", "fact " + std::to_string(i) + " is that both are big and blue"});
    }
    const auto session = templated(*m, conv, false);
    ASSERT_GT(session.size(), 100u);
    scheduler s("t", m);
    const auto post = [&](const std::string & user) {
        auto r = std::make_unique<infer_request>();
        r->prompt = session;
        r->chat = {{"user", user}};
        r->max_tokens = 4;
        r->sampling.temperature = 0;
        auto done = std::make_shared<std::promise<infer_result>>();
        auto fut = done->get_future();
        r->on_done = [done](infer_result && res) { done->set_value(std::move(res)); };
        EXPECT_EQ(s.submit(r), submit_status_ok);
        return fut;
    };
    auto first = post("FIRST-QUESTION");
    auto second = post("SECOND-QUESTION");  // same intake: waits for the first one's prefill
    const auto a = first.get(), b = second.get();
    ASSERT_TRUE(a.error.empty()) << a.error;
    ASSERT_TRUE(b.error.empty()) << b.error;
    const std::string text = m->detokenize(b.session);
    const size_t at = text.find("SECOND-QUESTION");
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(text.find("SECOND-QUESTION", at + 1), std::string::npos) << "the turn went in twice: " << text;
    auto with_answer = conv;
    with_answer.push_back({"user", "SECOND-QUESTION"});
    with_answer.push_back({"assistant", b.text});
    EXPECT_EQ(b.session, templated(*m, with_answer, false));
    auto asked = conv;
    asked.push_back({"user", "SECOND-QUESTION"});
    EXPECT_EQ(size_t(b.prompt_tokens), templated(*m, asked, true).size());
}
