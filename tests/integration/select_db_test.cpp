// SELECT: a command run in database n reads and writes database n. The module writes through one
// context of its own, long after the command returned (STREAM entries, STORE, the chat session,
// EMBED's STORE/VADD, INGEST, TOKENIZE STORE), and RAG reads its vector set and chunk keys the
// same way; each of these must select the caller's database first. Every other suite runs in
// db 0, where a forgotten select is invisible. Here each command runs in db 3 or 5, and the test
// asserts the key is there with the right content and that db 0 got nothing. For reads, db 0
// holds a decoy under the same name that would make the command fail if it were read.
#include "support/fixture.h"

#include <thread>

using namespace testing_support;

namespace {


// Concatenated `text` fields of a stream, and its last entry's fields.
struct stream_view {
    std::string text;
    std::vector<std::pair<std::string, std::string>> last;
    size_t entries = 0;
};

stream_view read_stream(redisContext * c, const std::string & key) {
    stream_view s;
    auto r = cmd(c, {"XRANGE", key, "-", "+"});
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i) {
        const redisReply * f = r->element[i]->element[1];
        s.last.clear();
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            s.last.emplace_back(str(f->element[j]), str(f->element[j + 1]));
            if (str(f->element[j]) == "text") s.text += str(f->element[j + 1]);
        }
        ++s.entries;
    }
    return s;
}

std::string field(const stream_view & s, const std::string & name) {
    for (const auto & [k, v] : s.last) {
        if (k == name) return v;
    }
    return "<absent>";
}

// 3 bytes: not a token key, so reading it by mistake is an error, never a silent success.
const std::string k_decoy = "abc";

const std::vector<std::string> & k_corpus = four_unrelated_sentences();

}  // namespace

class select_db : public live {
protected:
    static void SetUpTestSuite() {
        start_tiny_and_bert("1024");
    }

    void SetUp() override {
        live::SetUp();
        ASSERT_EQ(cmd(c.get(), {"DBSIZE"})->integer, 5) << "db 0 holds only the canary";
    }

    void TearDown() override {
        // Nothing the test ran in another db leaked into db 0 (the test removed its decoys).
        EXPECT_EQ(cmd(c.get(), {"DBSIZE"})->integer, 5) << "db 0 got a key";
        for (int db : {3, 5}) {
            auto d = in_db(db);
            cmd(d.get(), {"FLUSHDB"});
        }
        live::TearDown();
    }

    client_ptr in_db(int db) {
        auto d = server->connect();
        auto r = cmd(d.get(), {"SELECT", std::to_string(db)});
        EXPECT_EQ(str(r.get()), "OK");
        return d;
    }

    long long exists(redisContext * on, const std::string & key) { return cmd(on, {"EXISTS", key})->integer; }
};

TEST_F(select_db, generate_store_and_stream_are_written_in_the_selected_db) {
    auto d = in_db(3);
    auto r = cmd(d.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "8", "TEMPERATURE", "0",
                           "IGNORE_EOS", "STORE", "sel:o", "STREAM", "sel:s"});
    ASSERT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    const stream_view s = read_stream(d.get(), "sel:s");
    EXPECT_EQ(s.text, str(r.get()));
    EXPECT_EQ(field(s, "finish_reason"), "length");
    EXPECT_EQ(field(s, "completion_tokens"), "8");
    EXPECT_EQ(cmd(d.get(), {"STRLEN", "sel:o"})->integer, 8 * 4);
    EXPECT_EQ(str(cmd(d.get(), {"INFER.DETOKENIZE", "tiny", "sel:o"}).get()), str(r.get()));
    EXPECT_EQ(exists(c.get(), "sel:o"), 0);
    EXPECT_EQ(exists(c.get(), "sel:s"), 0);
}

TEST_F(select_db, generate_reads_its_prompt_keys_from_the_selected_db) {
    auto d = in_db(3);
    ASSERT_EQ(cmd(d.get(), {"INFER.TOKENIZE", "tiny", "Hello there", "STORE", "sel:p"})->type, REDIS_REPLY_INTEGER);
    cmd(c.get(), {"SET", "sel:p", k_decoy});
    auto from_key = cmd(d.get(), {"INFER.GENERATE", "tiny", "PROMPT", "sel:p", "MAX_TOKENS", "6", "TEMPERATURE", "0", "IGNORE_EOS"});
    ASSERT_EQ(from_key->type, REDIS_REPLY_STRING) << str(from_key.get());
    auto from_text = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "Hello there", "MAX_TOKENS", "6", "TEMPERATURE", "0", "IGNORE_EOS"});
    EXPECT_EQ(str(from_key.get()), str(from_text.get()));
    EXPECT_EQ(str(cmd(d.get(), {"INFER.DETOKENIZE", "tiny", "sel:p"}).get()), "Hello there");
    // The decoy is what db 0 would have given.
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "sel:p"}),
                                 "ERR token key 'sel:p' is not packed uint32 - got 3 bytes, expected a multiple of 4"));
    EXPECT_EQ(str(cmd(c.get(), {"GET", "sel:p"}).get()), k_decoy);
    cmd(c.get(), {"DEL", "sel:p"});
}

TEST_F(select_db, tokenize_store_is_written_in_the_selected_db) {
    auto d = in_db(5);
    auto ids = cmd(c.get(), {"INFER.TOKENIZE", "tiny", "hello selected world"});
    auto n = cmd(d.get(), {"INFER.TOKENIZE", "tiny", "hello selected world", "STORE", "sel:t"});
    ASSERT_EQ(n->type, REDIS_REPLY_INTEGER) << str(n.get());
    ASSERT_EQ(size_t(n->integer), ids->elements);
    std::vector<uint32_t> v;
    for (size_t i = 0; i < ids->elements; ++i) v.push_back(uint32_t(ids->element[i]->integer));
    EXPECT_EQ(str(cmd(d.get(), {"GET", "sel:t"}).get()), pack(v));
    EXPECT_EQ(exists(c.get(), "sel:t"), 0);
}

TEST_F(select_db, chat_reads_and_writes_its_session_in_the_selected_db) {
    auto d = in_db(3);
    cmd(c.get(), {"SET", "sel:chat", k_decoy});
    auto first = cmd(d.get(), {"INFER.CHAT", "tiny", "sel:chat", "USER", "hi", "MAX_TOKENS", "4", "TEMPERATURE", "0",
                               "WITHMETA", "STORE", "sel:co", "STREAM", "sel:cs"});
    ASSERT_EQ(first->type, REDIS_REPLY_ARRAY) << str(first.get());
    const std::string answer = str(map_get(first.get(), "text"));
    const std::string session = str(cmd(d.get(), {"INFER.DETOKENIZE", "tiny", "sel:chat"}).get());
    EXPECT_EQ(session, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" + answer + "<|im_end|>\n");
    EXPECT_EQ(read_stream(d.get(), "sel:cs").text, answer);
    EXPECT_EQ(str(cmd(d.get(), {"INFER.DETOKENIZE", "tiny", "sel:co"}).get()), answer);

    // The second turn reads the db-3 session (the db-0 decoy would be an error): its prompt is
    // that session plus the new turn, the same size as the first turn's.
    const long long session_tokens = cmd(d.get(), {"STRLEN", "sel:chat"})->integer / 4;
    auto second = cmd(d.get(), {"INFER.CHAT", "tiny", "sel:chat", "USER", "hi", "MAX_TOKENS", "4", "TEMPERATURE", "0",
                                "WITHMETA"});
    ASSERT_EQ(second->type, REDIS_REPLY_ARRAY) << str(second.get());
    EXPECT_EQ(map_get(second.get(), "prompt_tokens")->integer,
              session_tokens + map_get(first.get(), "prompt_tokens")->integer);
    EXPECT_GT(map_get(second.get(), "cached_tokens")->integer, 0);
    EXPECT_EQ(str(cmd(c.get(), {"GET", "sel:chat"}).get()), k_decoy);
    for (const char * k : {"sel:co", "sel:cs"}) EXPECT_EQ(exists(c.get(), k), 0) << k;
    cmd(c.get(), {"DEL", "sel:chat"});
}

TEST_F(select_db, embed_reads_prompt_and_writes_store_and_vadd_in_the_selected_db) {
    auto d = in_db(5);
    ASSERT_EQ(cmd(d.get(), {"INFER.TOKENIZE", "bert", "embed me", "NO_SPECIAL", "STORE", "sel:bp"})->type, REDIS_REPLY_INTEGER);
    cmd(c.get(), {"SET", "sel:bp", k_decoy});
    auto from_key = cmd(d.get(), {"INFER.EMBED", "bert", "PROMPT", "sel:bp"});
    auto from_text = cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "embed me"});
    ASSERT_EQ(from_key->type, REDIS_REPLY_ARRAY) << str(from_key.get());
    ASSERT_EQ(from_key->elements, 64u);
    for (size_t i = 0; i < 64; ++i) EXPECT_EQ(str(from_key->element[i]), str(from_text->element[i])) << i;

    auto r = cmd(d.get(), {"INFER.EMBED", "bert", "TEXT", "embed me", "STORE", "sel:v", "VADD", "sel:vs", "e1"});
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    EXPECT_EQ(r->integer, 64);
    const std::string blob = str(cmd(d.get(), {"GET", "sel:v"}).get());
    EXPECT_EQ(blob.size(), 64u * 4);
    EXPECT_EQ(cmd(d.get(), {"VCARD", "sel:vs"})->integer, 1);
    auto sim = cmd(d.get(), {"VSIM", "sel:vs", "FP32", blob, "COUNT", "1"});
    ASSERT_EQ(sim->elements, 1u);
    EXPECT_EQ(str(sim->element[0]), "e1");
    EXPECT_EQ(exists(c.get(), "sel:v"), 0);
    EXPECT_EQ(exists(c.get(), "sel:vs"), 0);
    cmd(c.get(), {"DEL", "sel:bp"});
}

// INGEST writes the set and the chunk in db 5; RAG there reads them from db 5 (db 0 holds a set
// of another dimension and undecodable chunks under the same names) and writes STORE and STREAM
// there.
TEST_F(select_db, ingest_and_rag_use_the_selected_db) {
    auto d = in_db(5);
    for (size_t i = 0; i < k_corpus.size(); ++i) {
        auto r = cmd(d.get(), {"INFER.INGEST", "tiny", "bert", "sel:kb", "sel:kb:" + std::to_string(i), k_corpus[i]});
        ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
        EXPECT_EQ(exists(c.get(), "sel:kb:" + std::to_string(i)), 0);
    }
    EXPECT_EQ(cmd(d.get(), {"VCARD", "sel:kb"})->integer, long(k_corpus.size()));
    EXPECT_EQ(exists(c.get(), "sel:kb"), 0);
    auto ids = cmd(c.get(), {"INFER.TOKENIZE", "tiny", k_corpus[1], "NO_SPECIAL"});
    std::vector<uint32_t> v;
    for (size_t i = 0; i < ids->elements; ++i) v.push_back(uint32_t(ids->element[i]->integer));
    EXPECT_EQ(str(cmd(d.get(), {"GET", "sel:kb:1"}).get()), pack(v));

    // Decoys in db 0.
    cmd(c.get(), {"VADD", "sel:kb", "VALUES", "3", "1", "2", "3", "sel:kb:1"});
    for (size_t i = 0; i < k_corpus.size(); ++i) cmd(c.get(), {"SET", "sel:kb:" + std::to_string(i), k_decoy});

    auto r = cmd(d.get(), {"INFER.RAG", "tiny", "sel:kb", "QUERY", k_corpus[1], "K", "2", "MAX_TOKENS", "6", "TEMPERATURE",
                           "0", "IGNORE_EOS", "WITHPROMPT", "STORE", "sel:ro", "STREAM", "sel:rs"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    const redisReply * sources = map_get(r.get(), "sources");
    ASSERT_TRUE(sources);
    ASSERT_EQ(sources->elements, 2u);
    EXPECT_EQ(str(sources->element[0]->element[0]), "sel:kb:1");
    EXPECT_NE(str(map_get(r.get(), "prompt")).find(pack(v)), std::string::npos) << "the db-5 chunk's tokens are in the prompt";
    const std::string answer = str(map_get(r.get(), "answer"));
    EXPECT_EQ(read_stream(d.get(), "sel:rs").text, answer);
    EXPECT_EQ(field(read_stream(d.get(), "sel:rs"), "finish_reason"), "length");
    EXPECT_EQ(str(cmd(d.get(), {"INFER.DETOKENIZE", "tiny", "sel:ro"}).get()), answer);
    EXPECT_EQ(exists(c.get(), "sel:ro"), 0);
    EXPECT_EQ(exists(c.get(), "sel:rs"), 0);
    // What db 0 would have given.
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.RAG", "tiny", "sel:kb", "QUERY", k_corpus[1], "K", "2", "MAX_TOKENS", "6"}),
                         "ERR vector dimension mismatch for sel:kb"));
    cmd(c.get(), {"DEL", "sel:kb", "sel:kb:0", "sel:kb:1", "sel:kb:2", "sel:kb:3"});
}

// Two generations in two dbs at once, streaming to the same key name: the module's one write
// context switches db for every write, and each stream gets only its own request's entries.
TEST_F(select_db, concurrent_generations_in_two_dbs_stream_to_their_own_db) {
    auto d3 = in_db(3);
    auto d5 = in_db(5);
    send(d3.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "40", "TEMPERATURE", "0",
                    "IGNORE_EOS", "STREAM", "sel:s", "STORE", "sel:o"});
    send(d5.get(), {"INFER.GENERATE", "tiny", "TEXT", "Once upon a time, far away", "MAX_TOKENS", "40", "TEMPERATURE",
                    "0", "IGNORE_EOS", "STREAM", "sel:s", "STORE", "sel:o"});
    auto a = receive(d3.get());
    auto b = receive(d5.get());
    ASSERT_TRUE(a && a->type == REDIS_REPLY_STRING) << str(a.get());
    ASSERT_TRUE(b && b->type == REDIS_REPLY_STRING) << str(b.get());
    ASSERT_NE(str(a.get()), str(b.get())) << "the two prompts must give different texts for this test to mean anything";
    const stream_view s3 = read_stream(d3.get(), "sel:s"), s5 = read_stream(d5.get(), "sel:s");
    EXPECT_EQ(s3.text, str(a.get()));
    EXPECT_EQ(s5.text, str(b.get()));
    EXPECT_EQ(field(s3, "completion_tokens"), "40");
    EXPECT_EQ(field(s5, "completion_tokens"), "40");
    EXPECT_EQ(str(cmd(d3.get(), {"INFER.DETOKENIZE", "tiny", "sel:o"}).get()), str(a.get()));
    EXPECT_EQ(str(cmd(d5.get(), {"INFER.DETOKENIZE", "tiny", "sel:o"}).get()), str(b.get()));
    EXPECT_EQ(exists(c.get(), "sel:s"), 0);
    EXPECT_EQ(exists(c.get(), "sel:o"), 0);
}
