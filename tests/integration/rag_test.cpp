// Embeddings, Vector Sets and RAG against a live server: INFER.EMBED, INFER.INGEST, INFER.RAG
// with the generated bert-tiny embedding model and the tiny generation model.
#include "support/fixture.h"

#include <cmath>
#include <cstring>

using namespace testing_support;

namespace {

std::vector<double> vec(const redisReply * r) {
    std::vector<double> v;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i) {
        const redisReply * e = r->element[i];
        v.push_back(std::stod(str(e)));  // RESP2: doubles arrive as bulk strings
    }
    return v;
}

// Distinct, unrelated chunks: each should retrieve itself.
const std::vector<std::string> k_chunks = {
    "The lighthouse keeper rowed to the island every morning before dawn.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "Redis keeps its whole dataset in memory and persists it with RDB or AOF.",
    "The orchestra tuned to the oboe's A before the symphony began.",
    "Volcanic soil near the crater grows unusually sweet tomatoes.",
    "A binary heap supports insert and extract-min in logarithmic time.",
    "The marathon route crossed five bridges and two city parks.",
    "Medieval scribes mixed iron gall ink from oak galls and vitriol.",
};

}  // namespace

class rag : public live {
protected:
    static void SetUpTestSuite() {
        start_tiny_and_bert("1024");
    }

    void ingest_corpus(const std::string & set) {
        for (size_t i = 0; i < k_chunks.size(); ++i) {
            auto r = cmd(c.get(), {"INFER.INGEST", "tiny", "bert", set, set + ":chunk:" + std::to_string(i), k_chunks[i]});
            ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
        }
    }
};

TEST_F(rag, embed_is_deterministic_and_model_wide) {
    auto a = vec(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "hello vector world"}).get());
    auto b = vec(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "hello vector world"}).get());
    ASSERT_EQ(a.size(), 64u);
    EXPECT_EQ(a, b);
    auto other = vec(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "something else entirely"}).get());
    EXPECT_NE(a, other);
    auto n = vec(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "hello vector world", "NORMALIZE"}).get());
    double sum = 0;
    for (double x : n) sum += x * x;
    EXPECT_NEAR(sum, 1.0, 1e-4);
    auto models = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(models->elements, 2u);
    for (size_t i = 0; i < 2; ++i) {
        const bool is_bert = str(map_get(models->element[i], "name")) == "bert";
        EXPECT_EQ(str(map_get(models->element[i], "kind")), is_bert ? "embedding" : "generation");
        if (is_bert) {
            EXPECT_EQ(map_get(models->element[i], "dimension")->integer, 64);
        }
    }
}

TEST_F(rag, embed_from_a_token_key_equals_embed_from_text) {
    // bert's TOKENIZE adds [CLS] ... [SEP], exactly what EMBED TEXT feeds the model.
    cmd(c.get(), {"INFER.TOKENIZE", "bert", "tokens in a key", "NO_SPECIAL", "STORE", "emb:toks"});
    auto a = vec(cmd(c.get(), {"INFER.EMBED", "bert", "PROMPT", "emb:toks"}).get());
    auto b = vec(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "tokens in a key"}).get());
    ASSERT_EQ(a.size(), 64u);
    EXPECT_EQ(a, b);
}

TEST_F(rag, embed_store_and_vadd_write_fp32) {
    auto v = vec(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "store me"}).get());
    auto r = cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "store me", "STORE", "emb:blob", "VADD", "emb:set", "e1"});
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    EXPECT_EQ(r->integer, 64);
    const std::string blob = str(cmd(c.get(), {"GET", "emb:blob"}).get());
    ASSERT_EQ(blob.size(), 64u * 4);
    for (size_t i = 0; i < 64; ++i) {
        float f;
        std::memcpy(&f, blob.data() + 4 * i, 4);
        EXPECT_FLOAT_EQ(f, float(v[i]));
    }
    EXPECT_EQ(cmd(c.get(), {"VDIM", "emb:set"})->integer, 64);
    EXPECT_EQ(cmd(c.get(), {"VCARD", "emb:set"})->integer, 1);
    auto sim = cmd(c.get(), {"VSIM", "emb:set", "FP32", blob, "WITHSCORES"});
    ASSERT_EQ(sim->elements, 2u);
    EXPECT_EQ(str(sim->element[0]), "e1");
}

TEST_F(rag, embed_bad_inputs_change_nothing) {
    const std::string before = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "tiny", "TEXT", "x"}),
                                 "ERR model 'tiny' is not an embedding model - load one with INFER.LOAD ... EMBEDDING"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "bert", "TEXT", "x"}),
                                 "ERR model 'bert' is an embedding model - it cannot generate; use INFER.EMBED"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", ""}), "ERR the input is empty - got 0 bytes of TEXT, expected at least 1"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert"}), "ERR wrong number of arguments for 'infer.embed' command"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "x", "BOGUS"}), "ERR unknown option 'BOGUS' for INFER.EMBED"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert", "NORMALIZE", "STORE", "k"}), "ERR missing PROMPT or TEXT"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert", "PROMPT", "emb:missing"}), "ERR token key 'emb:missing' does not exist"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "nope", "TEXT", "x"}),
                                 "ERR no such model 'nope' - load an embedding model with INFER.LOAD <name> <file.gguf> EMBEDDING"));
    // bert's vocabulary has 30522 ids: a Qwen id is out of range.
    cmd(c.get(), {"SET", "emb:qwen", pack({151643})});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert", "PROMPT", "emb:qwen"}),
                                 "ERR token id out of range in key 'emb:qwen' at index 0 - got 151643, expected 0..30521"));
    // Longer than the model's CTX (512 tokens for bert-tiny): tokenized, then refused.
    std::string longtext;
    for (int i = 0; i < 700; ++i) longtext += "word ";
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", longtext}),
                                 "ERR embedding input too long - got 702 tokens, expected at most 512 (the model's CTX)"));
    // Writes are checked before any work: wrong types and dimensions write nothing.
    cmd(c.get(), {"HSET", "emb:hash", "f", "v"});
    cmd(c.get(), {"VADD", "emb:dim3", "VALUES", "3", "1", "2", "3", "x"});
    const std::string with_keys = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "x", "STORE", "emb:hash"}), "WRONGTYPE"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "x", "VADD", "emb:hash", "e"}), "WRONGTYPE"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.EMBED", "bert", "TEXT", "x", "VADD", "emb:dim3", "e"}),
                         "ERR vector dimension mismatch for emb:dim3 - got 64 (model '"));  // then llama.cpp's model description
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "emb:dim3", "emb:doc", "x"}),
                         "ERR vector dimension mismatch for emb:dim3 - got 64 (model '"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.INGEST", "bert", "bert", "emb:v", "emb:doc", "x"}),
                                 "ERR model 'bert' is an embedding model - it cannot generate"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.INGEST", "tiny", "tiny", "emb:v", "emb:doc", "x"}),
                                 "ERR model 'tiny' is not an embedding model - load one with INFER.LOAD ... EMBEDDING"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "emb:v", "emb:hash", "x"}), "WRONGTYPE"));
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), with_keys);
    cmd(c.get(), {"DEL", "emb:hash", "emb:dim3", "emb:qwen"});
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), before);
}

TEST_F(rag, ingest_stores_gen_tokens_and_the_vector) {
    const std::string text = "A chunk of a document, with <|im_end|> as plain text.";
    auto r = cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "ing:v", "ing:doc:1", text});
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    auto t = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text, "NO_SPECIAL"});
    ASSERT_EQ(size_t(r->integer), t->elements);
    std::vector<uint32_t> ids;
    for (size_t i = 0; i < t->elements; ++i) ids.push_back(uint32_t(t->element[i]->integer));
    EXPECT_EQ(str(cmd(c.get(), {"GET", "ing:doc:1"}).get()), pack(ids));
    EXPECT_EQ(cmd(c.get(), {"VCARD", "ing:v"})->integer, 1);
    // Again: same data, no new element.
    const std::string before = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "ing:v", "ing:doc:1", text});
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), before);
}

TEST_F(rag, tokenize_withoffsets_maps_tokens_to_bytes) {
    const std::string text = "héllo wörld, chunk me";
    auto r = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text, "NO_SPECIAL", "WITHOFFSETS"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(r->elements, 2u);
    const redisReply * ids = r->element[0];
    const redisReply * off = r->element[1];
    ASSERT_EQ(ids->elements, off->elements);
    EXPECT_EQ(off->element[0]->integer, 0);
    for (size_t i = 1; i < off->elements; ++i) EXPECT_GE(off->element[i]->integer, off->element[i - 1]->integer);
    // A suffix cut at a token offset tokenizes to the same ids (byte-level BPE).
    const size_t k = off->elements / 2;
    auto tail = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text.substr(size_t(off->element[k]->integer)), "NO_SPECIAL"});
    ASSERT_GT(tail->elements, 0u);
    EXPECT_EQ(tail->element[tail->elements - 1]->integer, ids->element[ids->elements - 1]->integer);
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "x", "WITHOFFSETS", "STORE", "k"}), "ERR WITHOFFSETS cannot be combined with STORE"));
}

TEST_F(rag, a_chunk_retrieves_itself_first) {
    ingest_corpus("self");
    ASSERT_EQ(cmd(c.get(), {"VCARD", "self"})->integer, long(k_chunks.size()));
    for (size_t i = 0; i < k_chunks.size(); ++i) {
        auto r = cmd(c.get(), {"INFER.RAG", "tiny", "self", "QUERY", k_chunks[i], "K", "3", "MAX_TOKENS", "1"});
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
        const redisReply * src = map_get(r.get(), "sources");
        ASSERT_TRUE(src);
        ASSERT_EQ(src->elements, 3u);
        EXPECT_EQ(str(src->element[0]->element[0]), "self:chunk:" + std::to_string(i));
    }
}

TEST_F(rag, answer_equals_generate_over_the_assembled_prompt) {
    ingest_corpus("kb");
    auto r = cmd(c.get(), {"INFER.RAG", "tiny", "kb", "QUERY", "How is ink made?", "K", "3", "MAX_TOKENS", "16",
                           "TEMPERATURE", "0", "WITHPROMPT", "WITHMETA"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    const std::string prompt = str(map_get(r.get(), "prompt"));
    ASSERT_GT(prompt.size(), 0u);
    // Every source's tokens appear in the prompt, in rank order.
    const redisReply * src = map_get(r.get(), "sources");
    ASSERT_EQ(src->elements, 3u);
    size_t at = 0;
    for (size_t i = 0; i < src->elements; ++i) {
        const std::string chunk = str(cmd(c.get(), {"GET", str(src->element[i]->element[0])}).get());
        const size_t found = prompt.find(chunk, at);
        ASSERT_NE(found, std::string::npos) << "chunk " << i << " missing from the prompt";
        EXPECT_EQ(found % 4, 0u);
        at = found + chunk.size();
    }
    cmd(c.get(), {"SET", "kb:prompt", prompt});
    const std::string text = str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "kb:prompt"}).get());
    EXPECT_NE(text.find("<|im_start|>system\n"), std::string::npos) << text;
    EXPECT_NE(text.find("Question: How is ink made?<|im_end|>\n<|im_start|>assistant\n"), std::string::npos) << text;
    auto g = cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "kb:prompt", "MAX_TOKENS", "16", "TEMPERATURE", "0"});
    EXPECT_EQ(str(map_get(r.get(), "answer")), str(g.get()));
    EXPECT_EQ(map_get(r.get(), "prompt_tokens")->integer, long(prompt.size() / 4));
    EXPECT_GT(std::stod(str(map_get(r.get(), "embed_ms"))), 0.0);
    EXPECT_GT(std::stod(str(map_get(r.get(), "search_ms"))), 0.0);

    // Other questions in between, then the same one again: its whole prompt is still cached in
    // one of the slots (with nothing running, a new prompt takes the least recently used slot).
    for (const char * q : {"Who rowed to the island?", "What grows near the crater?"}) {
        ASSERT_EQ(cmd(c.get(), {"INFER.RAG", "tiny", "kb", "QUERY", q, "K", "3", "MAX_TOKENS", "4"})->type, REDIS_REPLY_ARRAY);
    }
    auto again = cmd(c.get(), {"INFER.RAG", "tiny", "kb", "QUERY", "How is ink made?", "K", "3", "MAX_TOKENS", "4",
                               "TEMPERATURE", "0", "WITHMETA"});
    EXPECT_EQ(map_get(again.get(), "cached_tokens")->integer, map_get(again.get(), "prompt_tokens")->integer - 1);
}

TEST_F(rag, store_stream_and_system_options) {
    ingest_corpus("opt");
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", "You answer in one word.", "NO_SPECIAL", "STORE", "opt:sys"});
    auto r = cmd(c.get(), {"INFER.RAG", "tiny", "opt", "QUERY", "What grows on volcanoes?", "SYSTEM_KEY", "opt:sys",
                           "EMBED_MODEL", "bert", "MAX_TOKENS", "6", "TEMPERATURE", "0", "STORE", "opt:answer",
                           "STREAM", "opt:stream", "WITHPROMPT"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    cmd(c.get(), {"SET", "opt:prompt", str(map_get(r.get(), "prompt"))});
    EXPECT_NE(str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "opt:prompt"}).get()).find("system\nYou answer in one word.<|im_end|>"),
              std::string::npos);
    EXPECT_EQ(str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "opt:answer"}).get()), str(map_get(r.get(), "answer")));
    EXPECT_GE(cmd(c.get(), {"XLEN", "opt:stream"})->integer, 2);
    auto s = cmd(c.get(), {"INFER.RAG", "tiny", "opt", "QUERY", "q", "SYSTEM", "Be brief.", "MAX_TOKENS", "2", "WITHPROMPT"});
    cmd(c.get(), {"SET", "opt:prompt2", str(map_get(s.get(), "prompt"))});
    EXPECT_NE(str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", "opt:prompt2"}).get()).find("system\nBe brief.<|im_end|>"),
              std::string::npos);
}

TEST_F(rag, bad_inputs_give_clear_errors) {
    ingest_corpus("bad");
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "nosuchset", "QUERY", "q"}), "ERR no such vector set 'nosuchset'"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "K", "2"}), "ERR missing QUERY"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q", "K", "0"}), "ERR K out of range - got 0, expected 1..64"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q", "K", "1000"}), "ERR K out of range - got 1000, expected 1..64"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q", "EMBED_MODEL", "tiny"}),
                                 "ERR model 'tiny' is not an embedding model - load one with INFER.LOAD ... EMBEDDING"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "bert", "bad", "QUERY", "q"}),
                                 "ERR model 'bert' is an embedding model - it cannot generate"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q", "NOPE"}), "ERR unknown option 'NOPE' for INFER.RAG"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q", "FILTER", "(((", "MAX_TOKENS", "2"}),
                                 "ERR syntax error in FILTER expression near: ((("));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q", "MAX_TOKENS", "5000"}),
                                 "ERR MAX_TOKENS exceeds the context - got 5000, expected at most 1023"));
    cmd(c.get(), {"VADD", "bad:dim3", "VALUES", "3", "1", "2", "3", "x"});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad:dim3", "QUERY", "q"}),
                                 "ERR vector dimension mismatch for bad:dim3 - embedding model 'bert' gives 64, the set has 3"));
    // A chunk key deleted behind the set's back is reported, not skipped.
    cmd(c.get(), {"DEL", "bad:chunk:3"});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", k_chunks[3], "K", "8", "MAX_TOKENS", "2"}),
                                 "ERR chunk key 'bad:chunk:3' in 'bad' does not exist - re-ingest it or VREM it from the set"));
    cmd(c.get(), {"HSET", "bad:chunk:3", "f", "v"});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", k_chunks[3], "K", "8", "MAX_TOKENS", "2"}),
                                 "ERR chunk key 'bad:chunk:3' is not a token key (it holds another type)"));
    // Inside MULTI: refused, nothing left blocked.
    cmd(c.get(), {"MULTI"});
    cmd(c.get(), {"INFER.RAG", "tiny", "bad", "QUERY", "q"});
    auto ex = cmd(c.get(), {"EXEC"});
    ASSERT_EQ(ex->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(ex->elements, 1u);
    EXPECT_TRUE(is_error_exactly(ex->element[0], "ERR INFER.RAG cannot run inside MULTI/EXEC, scripts or module calls - it blocks the client"));
}

// The remaining error texts each name their cause, and none of them writes anything.
TEST_F(rag, every_other_error_names_its_cause) {
    ingest_corpus("err");
    const auto blob = [](const std::vector<uint32_t> & ids) {
        std::string b;
        for (uint32_t id : ids) b.append(reinterpret_cast<const char *>(&id), 4);  // little-endian host
        return b;
    };
    const std::vector<std::string> all = {"K", "8", "MAX_TOKENS", "2"};
    const auto rag_q = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = {"INFER.RAG", "tiny", "err", "QUERY", k_chunks[3]};
        a.insert(a.end(), all.begin(), all.end());
        a.insert(a.end(), extra.begin(), extra.end());
        return cmd(c.get(), a);
    };

    // SYSTEM_KEY naming an empty string.
    cmd(c.get(), {"SET", "err:sys", ""});
    const std::string digest = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    EXPECT_TRUE(is_error_exactly(rag_q({"SYSTEM_KEY", "err:sys"}), "ERR SYSTEM_KEY holds no tokens"));
    // A FILTER no element matches.
    EXPECT_TRUE(is_error_exactly(rag_q({"FILTER", ".lang == \"xx\""}), "ERR no chunk in 'err' matched the query"));
    // Two embedding models: which one embeds the question must be said.
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "bert2", "bert-tiny-f16.gguf", "EMBEDDING"})->type, REDIS_REPLY_STATUS);
    ASSERT_TRUE(wait_model_ready(c.get(), "bert2"));
    EXPECT_TRUE(is_error_exactly(rag_q({}), "ERR EMBED_MODEL is required - 2 embedding models are loaded"));
    EXPECT_EQ(rag_q({"EMBED_MODEL", "bert"})->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(cmd(c.get(), {"INFER.UNLOAD", "bert2"})->type, REDIS_REPLY_STATUS);
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), digest) << "a failed RAG wrote something";

    // A chunk key holding ids outside the generation model's vocabulary (another model's?).
    cmd(c.get(), {"SET", "err:chunk:3", blob({1, 2, 0xFFFFFFFFu})});
    EXPECT_TRUE(is_error_exactly(rag_q({}), "ERR chunk key 'err:chunk:3' is not a valid token key for model 'tiny' (ingested with another model?)"));
    // A chunk key longer than the generation model's context (CTX 1024).
    cmd(c.get(), {"SET", "err:chunk:3", blob(std::vector<uint32_t>(1100, 42))});
    const std::string edited = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    EXPECT_TRUE(is_error_exactly(rag_q({"STORE", "err:answer"}), "ERR chunk key 'err:chunk:3' is longer than the context of the model"));
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), edited) << "a failed RAG with STORE wrote something";
}

// A server with a generation model only, as scripts/run.sh starts one for a real model without
// INFER_EMBED_MODEL: every command that needs an embedding model says how to load one, and
// doing what it says makes INGEST and RAG work.
class rag_without_embedding_model : public live {
protected:
    static void SetUpTestSuite() { start({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "1024"}, {"tiny"}); }
};

TEST_F(rag_without_embedding_model, rag_ingest_and_embed_say_how_to_load_one) {
    const std::string how = "load an embedding model with INFER.LOAD <name> <file.gguf> EMBEDDING";
    const std::string digest = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "kb", "QUERY", "q", "MAX_TOKENS", "2"}),
                                 "ERR no embedding model is loaded - INFER.RAG embeds the question with one: load it with "
                                 "INFER.LOAD <name> <file.gguf> EMBEDDING (the model the corpus was ingested with)"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.RAG", "tiny", "kb", "QUERY", "q", "EMBED_MODEL", "embed"}),
                                 "ERR no such model 'embed' - " + how));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.INGEST", "tiny", "embed", "kb", "kb:1", k_chunks[0]}),
                                 "ERR no such model 'embed' - " + how));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "embed", "TEXT", "x"}), "ERR no such model 'embed' - " + how));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.EMBED", "tiny", "TEXT", "x"}),
                                 "ERR model 'tiny' is not an embedding model - load one with INFER.LOAD ... EMBEDDING"));
    // The generation model's own name is still the plain error (it is not an embedding role).
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.INGEST", "nope", "embed", "kb", "kb:1", "x"}), "ERR no such model 'nope'"));
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), digest) << "a failed command wrote something";

    // Following the advice works.
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "embed", "bert-tiny-f16.gguf", "EMBEDDING"})->type, REDIS_REPLY_STATUS);
    ASSERT_TRUE(wait_model_ready(c.get(), "embed"));
    for (size_t i = 0; i < 2; ++i) {
        auto r = cmd(c.get(), {"INFER.INGEST", "tiny", "embed", "kb", "kb:" + std::to_string(i), k_chunks[i]});
        ASSERT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    }
    auto r = cmd(c.get(), {"INFER.RAG", "tiny", "kb", "QUERY", k_chunks[1], "K", "1", "MAX_TOKENS", "2"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    EXPECT_EQ(str(map_get(r.get(), "sources")->element[0]->element[0]), "kb:1");
    ASSERT_EQ(cmd(c.get(), {"INFER.UNLOAD", "embed"})->type, REDIS_REPLY_STATUS);
}
