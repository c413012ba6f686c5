// RESP3: what a client that said HELLO 3 gets. Every other suite talks RESP2 through hiredis,
// where a map is a flat array and a double a bulk string, so a reply that lost its types (a map
// sent as an array, a double as a string, an integer as text) would pass them all. Here each
// reply's RESP3 type is asserted, field by field, with the raw client of support/resp3.h, and its
// values are compared with the RESP2 reply of the same command (greedy, so the text is the same).
// The parser itself is checked first against Redis's own DEBUG PROTOCOL, so a wrong type here is
// the module's, not the test client's.
#include "support/fixture.h"
#include "support/resp3.h"

#include <cmath>

using namespace testing_support;

namespace {


::testing::AssertionResult has_type(const resp3_value * v, resp3_type t, const std::string & what) {
    if (!v) return ::testing::AssertionFailure() << what << ": missing";
    if (v->type != t) {
        return ::testing::AssertionFailure() << what << ": " << resp3_type_name(v->type) << ", expected "
                                             << resp3_type_name(t) << " (" << v->describe(300) << ")";
    }
    return ::testing::AssertionSuccess();
}

// RESP2's flat array of a map: its keys, in order.
std::vector<std::string> resp2_keys(const redisReply * r) {
    std::vector<std::string> k;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) k.push_back(str(r->element[i]));
    return k;
}

// Asserts that a map has exactly these keys, in this order, each of the type given.
void expect_map_fields(const resp3_value & m, const std::vector<std::pair<std::string, resp3_type>> & fields,
                       const std::string & what) {
    ASSERT_TRUE(has_type(&m, resp3_type_map, what));
    std::vector<std::string> want;
    for (const auto & [k, t] : fields) want.push_back(k);
    EXPECT_EQ(m.keys(), want) << what << ": " << m.describe();
    for (const auto & [k, t] : fields) EXPECT_TRUE(has_type(m.get(k), t, what + "." + k));
}

const std::vector<std::pair<std::string, resp3_type>> k_generate_meta = {
    {"text", resp3_type_bulk_string},         {"finish_reason", resp3_type_bulk_string},
    {"prompt_tokens", resp3_type_integer},    {"completion_tokens", resp3_type_integer},
    {"cached_tokens", resp3_type_integer},    {"dropped_utf8_bytes", resp3_type_integer},
    {"queue_ms", resp3_type_double},          {"prefill_ms", resp3_type_double},
    {"decode_ms", resp3_type_double},         {"tokens_per_sec", resp3_type_double},
};

const std::vector<std::pair<std::string, resp3_type>> k_model_stats = {
    {"name", resp3_type_bulk_string},      {"state", resp3_type_bulk_string},   {"slots_busy", resp3_type_integer},
    {"slots", resp3_type_integer},         {"queue_depth", resp3_type_integer}, {"queue_max", resp3_type_integer},
    {"requests", resp3_type_integer},      {"requests_failed", resp3_type_integer},
    {"prompt_tokens", resp3_type_integer}, {"generated_tokens", resp3_type_integer},
    {"tokens_per_sec", resp3_type_double}, {"prefix_hits", resp3_type_integer},
    {"prefix_hit_tokens", resp3_type_integer}, {"prefix_evictions", resp3_type_integer},
    {"prefix_copies", resp3_type_integer},
    {"weights_cpu_bytes", resp3_type_integer}, {"weights_gpu_bytes", resp3_type_integer},
    {"kv_bytes", resp3_type_integer},          {"compute_bytes", resp3_type_integer},
    {"memory_bytes", resp3_type_integer},
};

const std::vector<std::string> & k_corpus = four_unrelated_sentences();

}  // namespace

class resp3 : public live {
protected:
    static void SetUpTestSuite() {
        start_tiny_and_bert("1024");
    }

    void SetUp() override {
        live::SetUp();
        r3 = std::make_unique<resp3_client>(server->port(), std::chrono::seconds(120));
        ASSERT_TRUE(r3->connected()) << r3->error();
        ASSERT_TRUE(r3->hello3()) << r3->error();
    }

    // The RESP3 reply of a command; a failed read fails the test with the client's reason.
    resp3_value call3(const std::vector<std::string> & args) {
        auto v = r3->call(args);
        EXPECT_TRUE(v) << args[0] << ": " << r3->error();
        return v ? *v : resp3_value{};
    }

    std::unique_ptr<resp3_client> r3;
};

// The test client against Redis's own encoder of every RESP3 type.
TEST_F(resp3, the_client_parses_every_type_redis_sends) {
    auto hello = call3({"HELLO", "3"});
    ASSERT_TRUE(has_type(&hello, resp3_type_map, "HELLO 3"));
    EXPECT_EQ(hello.get("proto")->integer, 3);
    EXPECT_TRUE(has_type(hello.get("modules"), resp3_type_array, "HELLO modules"));

    auto v = call3({"DEBUG", "PROTOCOL", "string"});
    ASSERT_TRUE(has_type(&v, resp3_type_bulk_string, "string"));
    EXPECT_EQ(v.str, "Hello World");
    v = call3({"DEBUG", "PROTOCOL", "integer"});
    ASSERT_TRUE(has_type(&v, resp3_type_integer, "integer"));
    EXPECT_EQ(v.integer, 12345);
    v = call3({"DEBUG", "PROTOCOL", "double"});
    ASSERT_TRUE(has_type(&v, resp3_type_double, "double"));
    EXPECT_DOUBLE_EQ(v.dbl, 3.141);
    v = call3({"DEBUG", "PROTOCOL", "bignum"});
    ASSERT_TRUE(has_type(&v, resp3_type_big_number, "bignum"));
    EXPECT_EQ(v.str, "1234567999999999999999999999999999999");
    v = call3({"DEBUG", "PROTOCOL", "null"});
    EXPECT_TRUE(has_type(&v, resp3_type_null, "null"));
    v = call3({"DEBUG", "PROTOCOL", "true"});
    ASSERT_TRUE(has_type(&v, resp3_type_boolean, "true"));
    EXPECT_TRUE(v.boolean);
    v = call3({"DEBUG", "PROTOCOL", "false"});
    ASSERT_TRUE(has_type(&v, resp3_type_boolean, "false"));
    EXPECT_FALSE(v.boolean);
    v = call3({"DEBUG", "PROTOCOL", "verbatim"});
    ASSERT_TRUE(has_type(&v, resp3_type_verbatim, "verbatim"));
    EXPECT_EQ(v.format, "txt");
    EXPECT_EQ(v.str, "This is a verbatim\nstring");
    for (const char * agg : {"array", "set"}) {
        v = call3({"DEBUG", "PROTOCOL", agg});
        ASSERT_TRUE(has_type(&v, std::string(agg) == "set" ? resp3_type_set : resp3_type_array, agg));
        ASSERT_EQ(v.elements.size(), 3u) << v.describe();
        for (int i = 0; i < 3; ++i) EXPECT_EQ(v.elements[size_t(i)].integer, i) << agg;
    }
    v = call3({"DEBUG", "PROTOCOL", "map"});
    ASSERT_TRUE(has_type(&v, resp3_type_map, "map"));
    ASSERT_EQ(v.elements.size(), 6u) << v.describe();
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(has_type(&v.elements[size_t(2 * i)], resp3_type_integer, "map key"));
        ASSERT_TRUE(has_type(&v.elements[size_t(2 * i + 1)], resp3_type_boolean, "map value"));
        EXPECT_EQ(v.elements[size_t(2 * i + 1)].boolean, i == 1);
    }
    v = call3({"DEBUG", "PROTOCOL", "attrib"});
    ASSERT_TRUE(has_type(&v, resp3_type_bulk_string, "attrib's reply"));
    EXPECT_EQ(v.str, "Some real reply following the attribute");
    ASSERT_EQ(v.attributes.size(), 2u) << "the attribute belongs to the reply after it";
    EXPECT_EQ(v.attributes[0].str, "key-popularity");
    // A push is not a reply: it comes with the command's own reply, before or after it (Redis
    // 7.2+ holds pushes made during a command until its reply is out).
    v = call3({"DEBUG", "PROTOCOL", "push"});
    auto second = r3->receive();
    ASSERT_TRUE(second) << r3->error();
    const resp3_value & push = v.is(resp3_type_push) ? v : *second;
    const resp3_value & reply = v.is(resp3_type_push) ? *second : v;
    ASSERT_TRUE(has_type(&push, resp3_type_push, "push"));
    ASSERT_EQ(push.elements.size(), 2u);
    EXPECT_EQ(push.elements[0].str, "server-cpu-usage");
    EXPECT_EQ(push.elements[1].integer, 42);
    ASSERT_TRUE(has_type(&reply, resp3_type_bulk_string, "the reply with the push"));
    EXPECT_EQ(reply.str, "Some real reply following the push reply");
    v = call3({"NO.SUCH.COMMAND"});
    ASSERT_TRUE(has_type(&v, resp3_type_error, "unknown command"));
    EXPECT_EQ(v.str.rfind("ERR unknown command 'NO.SUCH.COMMAND'", 0), 0u) << v.str;

    // The client's own limits: malformed or oversized input is an error, never a hang or a crash.
    resp3_value out;
    std::string why;
    size_t pos = 0;
    EXPECT_EQ(resp3_parse("$5\r\nabc", pos, out, &why), resp3_parse_incomplete);
    EXPECT_EQ(resp3_parse("$3\r\nabcd\r\n", pos, out, &why), resp3_parse_malformed);
    EXPECT_EQ(resp3_parse("#x\r\n", pos, out, &why), resp3_parse_malformed);
    EXPECT_EQ(resp3_parse(",1.5x\r\n", pos, out, &why), resp3_parse_malformed);
    EXPECT_EQ(resp3_parse("?\r\n", pos, out, &why), resp3_parse_malformed);
    EXPECT_EQ(resp3_parse("$99999999999\r\n", pos, out, &why), resp3_parse_malformed);
    EXPECT_EQ(resp3_parse("*3\r\n:1\r\n", pos, out, &why), resp3_parse_incomplete);
    std::string deep;
    for (int i = 0; i < 40; ++i) deep += "*1\r\n";
    deep += ":1\r\n";
    EXPECT_EQ(resp3_parse(deep, pos, out, &why), resp3_parse_malformed) << "nesting is bounded";
    EXPECT_EQ(pos, 0u);
    ASSERT_EQ(resp3_parse(",-inf\r\n:7\r\n", pos, out, &why), resp3_parse_ok);
    EXPECT_TRUE(std::isinf(out.dbl) && out.dbl < 0);
    ASSERT_EQ(resp3_parse(",-inf\r\n:7\r\n", pos, out, &why), resp3_parse_ok);
    EXPECT_EQ(out.integer, 7);
}

TEST_F(resp3, generate_withmeta_is_a_map_of_typed_fields) {
    const std::vector<std::string> call = {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "12",
                                           "TEMPERATURE", "0", "IGNORE_EOS", "WITHMETA"};
    auto m = call3(call);
    expect_map_fields(m, k_generate_meta, "GENERATE WITHMETA");
    ASSERT_TRUE(m.is(resp3_type_map));
    EXPECT_EQ(m.get("finish_reason")->str, "length");
    EXPECT_EQ(m.get("completion_tokens")->integer, 12);
    EXPECT_EQ(m.get("prompt_tokens")->integer, (long long) cmd(c.get(), {"INFER.TOKENIZE", "tiny", "The quick brown fox"})->elements);
    EXPECT_GT(m.get("decode_ms")->dbl, 0.0);
    EXPECT_GE(m.get("queue_ms")->dbl, 0.0);
    EXPECT_GT(m.get("prefill_ms")->dbl, 0.0);
    EXPECT_NEAR(m.get("tokens_per_sec")->dbl, 11 * 1000.0 / m.get("decode_ms")->dbl, 1e-6 * m.get("tokens_per_sec")->dbl);

    // The same request over RESP2: the same fields in the same order, doubles as bulk strings
    // that hold numbers, the same greedy text.
    auto r2 = cmd(c.get(), call);
    ASSERT_EQ(r2->type, REDIS_REPLY_ARRAY) << str(r2.get());
    EXPECT_EQ(resp2_keys(r2.get()), m.keys());
    EXPECT_EQ(str(map_get(r2.get(), "text")), m.get("text")->str);
    EXPECT_EQ(map_get(r2.get(), "completion_tokens")->type, REDIS_REPLY_INTEGER);
    ASSERT_EQ(map_get(r2.get(), "decode_ms")->type, REDIS_REPLY_STRING);
    EXPECT_GT(std::stod(str(map_get(r2.get(), "decode_ms"))), 0.0);

    // Without WITHMETA: a bulk string, the same text.
    auto plain = call3({"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "12", "TEMPERATURE", "0",
                        "IGNORE_EOS"});
    ASSERT_TRUE(has_type(&plain, resp3_type_bulk_string, "GENERATE"));
    EXPECT_EQ(plain.str, m.get("text")->str);
    EXPECT_FALSE(plain.str.empty());

    // CHAT WITHMETA: the same map.
    auto chat = call3({"INFER.CHAT", "tiny", "r3:chat", "USER", "hi", "MAX_TOKENS", "6", "TEMPERATURE", "0", "IGNORE_EOS",
                       "WITHMETA"});
    expect_map_fields(chat, k_generate_meta, "CHAT WITHMETA");
    if (chat.is(resp3_type_map)) {
        EXPECT_EQ(chat.get("completion_tokens")->integer, 6);
    }
    cmd(c.get(), {"DEL", "r3:chat"});
}

TEST_F(resp3, models_and_info_are_maps_with_integer_counts) {
    auto models = call3({"INFER.MODELS"});
    ASSERT_TRUE(has_type(&models, resp3_type_array, "INFER.MODELS"));
    ASSERT_EQ(models.elements.size(), 2u);
    const std::vector<std::pair<std::string, resp3_type>> model_fields = {
        {"name", resp3_type_bulk_string},    {"state", resp3_type_bulk_string},  {"path", resp3_type_bulk_string},
        {"arch", resp3_type_bulk_string},    {"description", resp3_type_bulk_string},
        {"parameters", resp3_type_integer},  {"size_bytes", resp3_type_integer}, {"vocab_size", resp3_type_integer},
        {"context", resp3_type_integer},     {"context_train", resp3_type_integer}, {"slots", resp3_type_integer},
        {"batch", resp3_type_integer},       {"threads", resp3_type_integer},    {"gpu_layers", resp3_type_integer},
        {"kind", resp3_type_bulk_string},    {"dimension", resp3_type_integer},
    };
    auto models2 = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(models2->elements, 2u);
    for (size_t i = 0; i < 2; ++i) {
        const resp3_value & m = models.elements[i];
        expect_map_fields(m, model_fields, "INFER.MODELS[" + std::to_string(i) + "]");
        if (!m.is(resp3_type_map)) continue;
        const redisReply * m2 = models2->element[i];
        EXPECT_EQ(m.get("name")->str, str(map_get(m2, "name")));
        EXPECT_EQ(m.get("vocab_size")->integer, map_get(m2, "vocab_size")->integer);
        EXPECT_EQ(m.get("kind")->str, m.get("name")->str == "bert" ? "embedding" : "generation");
        if (m.get("name")->str == "tiny") {
            EXPECT_EQ(m.get("context")->integer, 1024);
        }
    }

    // Something for tokens_per_sec to measure.
    call3({"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "4", "TEMPERATURE", "0", "IGNORE_EOS"});
    auto info = call3({"INFER.INFO"});
    expect_map_fields(info, {{"module_version", resp3_type_bulk_string}, {"llama_cpp_version", resp3_type_bulk_string},
                             {"backend", resp3_type_bulk_string}, {"model_dir", resp3_type_bulk_string},
                             {"models", resp3_type_array}},
                      "INFER.INFO");
    ASSERT_TRUE(info.is(resp3_type_map));
    ASSERT_EQ(info.get("models")->elements.size(), 2u);
    for (const auto & m : info.get("models")->elements) expect_map_fields(m, k_model_stats, "INFER.INFO models[]");
    EXPECT_EQ(resp2_keys(cmd(c.get(), {"INFER.INFO"}).get()), info.keys());

    auto tiny = call3({"INFER.INFO", "tiny"});
    expect_map_fields(tiny, k_model_stats, "INFER.INFO tiny");
    ASSERT_TRUE(tiny.is(resp3_type_map));
    EXPECT_EQ(tiny.get("name")->str, "tiny");
    EXPECT_EQ(tiny.get("state")->str, "ready");
    EXPECT_EQ(tiny.get("slots")->integer, 4);
    EXPECT_EQ(tiny.get("slots_busy")->integer, 0);
    EXPECT_GE(tiny.get("generated_tokens")->integer, 4);
    EXPECT_GT(tiny.get("tokens_per_sec")->dbl, 0.0);
    auto tiny2 = cmd(c.get(), {"INFER.INFO", "tiny"});
    EXPECT_EQ(resp2_keys(tiny2.get()), tiny.keys());
    EXPECT_EQ(map_get(tiny2.get(), "requests")->integer, tiny.get("requests")->integer);

    // INFO under RESP3 is Redis's verbatim string, with the module's section in it.
    auto section = call3({"INFO", "infer"});
    ASSERT_TRUE(has_type(&section, resp3_type_verbatim, "INFO infer"));
    EXPECT_EQ(section.format, "txt");
    EXPECT_NE(section.str.find("infer_model_tiny:state=ready,slots_busy=0,slots=4,"), std::string::npos) << section.str;
}

TEST_F(resp3, tokenize_gives_integers_and_detokenize_a_bulk_string) {
    const std::string text = "Hello there, tokens";
    auto ids = call3({"INFER.TOKENIZE", "tiny", text});
    ASSERT_TRUE(has_type(&ids, resp3_type_array, "TOKENIZE"));
    auto ids2 = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text});
    ASSERT_EQ(ids.elements.size(), ids2->elements);
    ASSERT_GT(ids.elements.size(), 2u);
    std::vector<uint32_t> packed;
    for (size_t i = 0; i < ids.elements.size(); ++i) {
        ASSERT_TRUE(has_type(&ids.elements[i], resp3_type_integer, "TOKENIZE[" + std::to_string(i) + "]"));
        EXPECT_EQ(ids.elements[i].integer, ids2->element[i]->integer);
        packed.push_back(uint32_t(ids.elements[i].integer));
    }

    auto off = call3({"INFER.TOKENIZE", "tiny", text, "WITHOFFSETS"});
    ASSERT_TRUE(has_type(&off, resp3_type_array, "TOKENIZE WITHOFFSETS"));
    ASSERT_EQ(off.elements.size(), 2u);
    for (const auto & part : off.elements) {
        ASSERT_TRUE(has_type(&part, resp3_type_array, "WITHOFFSETS part"));
        ASSERT_EQ(part.elements.size(), ids.elements.size());
        for (const auto & e : part.elements) EXPECT_TRUE(has_type(&e, resp3_type_integer, "WITHOFFSETS element"));
    }
    EXPECT_EQ(off.elements[1].elements[0].integer, 0);

    auto n = call3({"INFER.TOKENIZE", "tiny", text, "STORE", "r3:toks"});
    ASSERT_TRUE(has_type(&n, resp3_type_integer, "TOKENIZE STORE"));
    EXPECT_EQ(n.integer, (long long) ids.elements.size());
    EXPECT_EQ(str(cmd(c.get(), {"GET", "r3:toks"}).get()), pack(packed));

    auto back = call3({"INFER.DETOKENIZE", "tiny", "r3:toks"});
    ASSERT_TRUE(has_type(&back, resp3_type_bulk_string, "DETOKENIZE"));
    EXPECT_EQ(back.str, text);
    EXPECT_EQ(back.str, str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "r3:toks"}).get()));
    cmd(c.get(), {"DEL", "r3:toks"});
}

TEST_F(resp3, embed_is_an_array_of_doubles) {
    auto v = call3({"INFER.EMBED", "bert", "TEXT", "hello vector world"});
    ASSERT_TRUE(has_type(&v, resp3_type_array, "EMBED"));
    ASSERT_EQ(v.elements.size(), 64u);
    auto v2 = cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "hello vector world"});
    ASSERT_EQ(v2->elements, 64u);
    bool nonzero = false;
    for (size_t i = 0; i < 64; ++i) {
        ASSERT_TRUE(has_type(&v.elements[i], resp3_type_double, "EMBED[" + std::to_string(i) + "]"));
        // RESP2 sends the same double as a bulk string; both are exact (17 significant digits).
        ASSERT_EQ(v2->element[i]->type, REDIS_REPLY_STRING);
        EXPECT_EQ(v.elements[i].dbl, std::stod(str(v2->element[i]))) << i;
        nonzero = nonzero || v.elements[i].dbl != 0.0;
    }
    EXPECT_TRUE(nonzero);
    auto dim = call3({"INFER.EMBED", "bert", "TEXT", "hello vector world", "STORE", "r3:vec"});
    ASSERT_TRUE(has_type(&dim, resp3_type_integer, "EMBED STORE"));
    EXPECT_EQ(dim.integer, 64);
    cmd(c.get(), {"DEL", "r3:vec"});
}

TEST_F(resp3, rag_withmeta_is_a_map_with_double_scores_and_timings) {
    for (size_t i = 0; i < k_corpus.size(); ++i) {
        auto r = cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "r3:kb", "r3:kb:" + std::to_string(i), k_corpus[i]});
        ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    }
    const std::vector<std::string> call = {"INFER.RAG", "tiny", "r3:kb", "QUERY", k_corpus[2], "K", "2", "MAX_TOKENS",
                                           "8", "TEMPERATURE", "0", "WITHMETA", "WITHPROMPT"};
    auto m = call3(call);
    expect_map_fields(m,
                      {{"answer", resp3_type_bulk_string}, {"sources", resp3_type_array},
                       {"finish_reason", resp3_type_bulk_string}, {"prompt_tokens", resp3_type_integer},
                       {"completion_tokens", resp3_type_integer}, {"cached_tokens", resp3_type_integer},
                       {"dropped_utf8_bytes", resp3_type_integer}, {"embed_ms", resp3_type_double},
                       {"search_ms", resp3_type_double}, {"queue_ms", resp3_type_double},
                       {"prefill_ms", resp3_type_double}, {"decode_ms", resp3_type_double},
                       {"prompt", resp3_type_bulk_string}},
                      "RAG WITHMETA WITHPROMPT");
    ASSERT_TRUE(m.is(resp3_type_map));
    const resp3_value & sources = *m.get("sources");
    ASSERT_EQ(sources.elements.size(), 2u);
    for (const auto & s : sources.elements) {
        ASSERT_TRUE(has_type(&s, resp3_type_array, "source"));
        ASSERT_EQ(s.elements.size(), 2u);
        EXPECT_TRUE(has_type(&s.elements[0], resp3_type_bulk_string, "source element"));
        EXPECT_TRUE(has_type(&s.elements[1], resp3_type_double, "source score"));
    }
    EXPECT_GE(sources.elements[0].elements[1].dbl, sources.elements[1].elements[1].dbl) << "rank order";
    EXPECT_EQ(sources.elements[0].elements[0].str, "r3:kb:2");
    EXPECT_GT(m.get("embed_ms")->dbl, 0.0);
    EXPECT_EQ(m.get("prompt")->str.size() % 4, 0u);
    EXPECT_EQ(m.get("prompt_tokens")->integer, (long long) m.get("prompt")->str.size() / 4);

    auto r2 = cmd(c.get(), call);
    ASSERT_EQ(r2->type, REDIS_REPLY_ARRAY) << str(r2.get());
    EXPECT_EQ(resp2_keys(r2.get()), m.keys());
    EXPECT_EQ(str(map_get(r2.get(), "answer")), m.get("answer")->str);
    EXPECT_EQ(str(map_get(r2.get(), "prompt")), m.get("prompt")->str);
    const redisReply * s2 = map_get(r2.get(), "sources");
    ASSERT_EQ(s2->elements, 2u);
    EXPECT_EQ(str(s2->element[0]->element[0]), sources.elements[0].elements[0].str);
    EXPECT_EQ(std::stod(str(s2->element[0]->element[1])), sources.elements[0].elements[1].dbl);

    // Without WITHMETA: still a map, of answer and sources.
    auto plain = call3({"INFER.RAG", "tiny", "r3:kb", "QUERY", k_corpus[2], "K", "2", "MAX_TOKENS", "8", "TEMPERATURE",
                        "0"});
    expect_map_fields(plain, {{"answer", resp3_type_bulk_string}, {"sources", resp3_type_array}}, "RAG");
    if (plain.is(resp3_type_map)) {
        EXPECT_EQ(plain.get("answer")->str, m.get("answer")->str);
    }
    cmd(c.get(), {"DEL", "r3:kb", "r3:kb:0", "r3:kb:1", "r3:kb:2", "r3:kb:3"});
}

// Errors are simple errors with the same text under both protocols, whether the handler replies
// at once or the blocked client's reply callback does.
TEST_F(resp3, errors_are_simple_errors_with_the_resp2_text) {
    // The engine's error comes after tokenization, from the reply callback.
    std::string long_text;
    for (int i = 0; i < 20; ++i) long_text += "word" + std::to_string(i) + " ";
    const size_t p = cmd(c.get(), {"INFER.TOKENIZE", "tiny", long_text})->elements;
    ASSERT_GT(p, 24u);
    cmd(c.get(), {"RPUSH", "r3:list", "x"});
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"INFER.GENERATE", "nosuch", "TEXT", "hi"}, "ERR no such model 'nosuch'"},
        {{"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "0"}, "ERR MAX_TOKENS out of range - got 0, expected 1..1048576"},
        {{"INFER.GENERATE", "tiny", "TEXT", "hi", "BOGUS"}, "ERR unknown option 'BOGUS' for INFER.GENERATE"},
        {{"INFER.GENERATE", "tiny", "TEXT", long_text, "MAX_TOKENS", "1000"},
         "ERR prompt plus MAX_TOKENS exceeds the context - got " + std::to_string(p) + "+1000 tokens, expected at most 1024"},
        {{"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "2", "STORE", "r3:list"},
         "WRONGTYPE STORE key 'r3:list' holds another type - nothing generated"},
        {{"INFER.EMBED", "tiny", "TEXT", "x"}, "ERR model 'tiny' is not an embedding model - load one with INFER.LOAD ... EMBEDDING"},
        {{"INFER.EMBED", "bert"}, "ERR wrong number of arguments for 'infer.embed' command"},
        {{"INFER.DETOKENIZE", "tiny", "r3:missing"}, "ERR token key 'r3:missing' does not exist"},
        {{"INFER.INFO", "nosuch"}, "ERR no such model 'nosuch'"},
        {{"INFER.RAG", "tiny", "r3:nokb", "QUERY", "q"}, "ERR no such vector set 'r3:nokb'"},
    };
    for (const auto & [call, text] : cases) {
        auto e = call3(call);
        ASSERT_TRUE(has_type(&e, resp3_type_error, call[0] + " " + call.back()));
        EXPECT_EQ(e.str, text);
        EXPECT_TRUE(is_error_exactly(cmd(c.get(), call), text)) << call[0] << " " << call.back();
    }
    EXPECT_EQ(str(cmd(c.get(), {"TYPE", "r3:list"}).get()), "list");
    cmd(c.get(), {"DEL", "r3:list"});
    // The connection is still in RESP3 and usable after the errors.
    auto after = call3({"INFER.INFO", "tiny"});
    EXPECT_TRUE(has_type(&after, resp3_type_map, "INFER.INFO after errors"));
}
