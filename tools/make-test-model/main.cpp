// make-test-model: writes GGUF models with seeded random weights and a real tokenizer.
//
// Why it exists: tests and benchmarks need models with the exact shapes, tensor layout and
// vocabulary of the real thing (so llama.cpp runs the same kernels and the same tokenizer),
// but the project may not download weights. Random weights make the text meaningless and
// everything else real.
//
// Invariants:
// - Same arguments (shape, type, seed) -> byte-identical file. Every chunk of rows draws from
//   its own generator seeded by (seed, tensor name, chunk index), so the worker-thread count
//   never changes the bytes; metadata is written in a fixed order with no timestamps.
// - Tensors are generated, quantized and streamed to disk chunk by chunk: a 4B model never
//   has to fit in memory twice.
// - The tokenizer (every tokenizer.* key) is copied from one of llama.cpp's vocab-only GGUFs;
//   the token list is padded with [PAD<n>] tokens up to the shape's vocabulary size, as
//   convert_hf_to_gguf.py does for Qwen.
//
// Usage: make-test-model --shape tiny|qwen3-0.6b|qwen3-4b|bert-tiny|bge-small --type f16|q8_0|q4_0|q4_k
//                        --vocab path/to/ggml-vocab-*.gguf --out file.gguf [--seed n] [--threads n]

#include <ggml.h>
#include <gguf.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct model_shape {
    const char * name;
    const char * arch;        // "qwen3" or "bert"
    int64_t n_vocab;          // tokens in the embedding (tokenizer padded up to this)
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
    int64_t n_ff;
    int64_t n_ctx_train;
};

// Real dimensions for the benchmark shapes (Qwen3-0.6B and Qwen3-4B config.json); tiny ones
// for tests. The qwen3 shapes tie output to token_embd, as the real 0.6B and 4B do.
const model_shape k_shapes[] = {
    {"tiny",       "qwen3", 151936,   64,  2,  4, 2,  16,  192, 40960},
    {"qwen3-0.6b", "qwen3", 151936, 1024, 28, 16, 8, 128, 3072, 40960},
    {"qwen3-4b",   "qwen3", 151936, 2560, 36, 32, 8, 128, 9728, 40960},
    {"bert-tiny",  "bert",       0,   64,  2,  4, 4,  16,  128,   512},  // n_vocab 0 = the vocab file's
    {"bge-small",  "bert",       0,  384, 12, 12, 12, 32, 1536,   512},  // bge-small-en-v1.5's shape
};

struct options {
    std::string shape = "tiny";
    std::string type  = "q8_0";
    std::string vocab;
    std::string out;
    uint64_t    seed    = 42;
    int         threads = 0;
};

[[noreturn]] void die(const std::string & msg) {
    fprintf(stderr, "make-test-model: %s\n", msg.c_str());
    exit(1);
}

uint64_t splitmix64(uint64_t & x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string & s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) { h ^= c; h *= 0x100000001b3ull; }
    return h;
}

// How a tensor's values are drawn: uniform with the given standard deviation around `mean`.
struct tensor_spec {
    std::string name;
    int64_t ne0, ne1;       // ne1 == 1 for vectors
    float mean, stddev;
    bool quantizable;       // 2-D weights follow --type; vectors stay F32
};

ggml_type type_from_name(const std::string & t) {
    if (t == "f16")  return GGML_TYPE_F16;
    if (t == "q8_0") return GGML_TYPE_Q8_0;
    if (t == "q4_0") return GGML_TYPE_Q4_0;
    if (t == "q4_k") return GGML_TYPE_Q4_K;
    die("unknown --type " + t + ", expected f16, q8_0, q4_0 or q4_k");
}

int32_t ftype_for(ggml_type t) {  // llama_ftype values, for general.file_type
    switch (t) {
        case GGML_TYPE_F16:  return 1;
        case GGML_TYPE_Q4_0: return 2;
        case GGML_TYPE_Q8_0: return 7;
        case GGML_TYPE_Q4_K: return 14;  // all 2-D weights Q4_K: LLAMA_FTYPE_MOSTLY_Q4_K_S
        default:             return 0;
    }
}

std::vector<tensor_spec> tensors_for(const model_shape & s) {
    std::vector<tensor_spec> v;
    const float w = 0.02f;
    auto blk = [](int i, const char * n) { return "blk." + std::to_string(i) + "." + n; };
    if (std::strcmp(s.arch, "qwen3") == 0) {
        const int64_t q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
        v.push_back({"token_embd.weight", s.n_embd, s.n_vocab, 0, w, true});
        v.push_back({"output_norm.weight", s.n_embd, 1, 1, 0, false});
        for (int i = 0; i < s.n_layer; ++i) {
            v.push_back({blk(i, "attn_norm.weight"),   s.n_embd, 1, 1, 0, false});
            v.push_back({blk(i, "attn_q.weight"),      s.n_embd, q, 0, w, true});
            v.push_back({blk(i, "attn_k.weight"),      s.n_embd, kv, 0, w, true});
            v.push_back({blk(i, "attn_v.weight"),      s.n_embd, kv, 0, w, true});
            v.push_back({blk(i, "attn_output.weight"), q, s.n_embd, 0, w, true});
            v.push_back({blk(i, "attn_q_norm.weight"), s.head_dim, 1, 1, 0, false});
            v.push_back({blk(i, "attn_k_norm.weight"), s.head_dim, 1, 1, 0, false});
            v.push_back({blk(i, "ffn_norm.weight"),    s.n_embd, 1, 1, 0, false});
            v.push_back({blk(i, "ffn_gate.weight"),    s.n_embd, s.n_ff, 0, w, true});
            v.push_back({blk(i, "ffn_up.weight"),      s.n_embd, s.n_ff, 0, w, true});
            v.push_back({blk(i, "ffn_down.weight"),    s.n_ff, s.n_embd, 0, w, true});
        }
    } else {  // bert
        v.push_back({"token_embd.weight",      s.n_embd, s.n_vocab, 0, w, true});
        v.push_back({"token_types.weight",     s.n_embd, 2, 0, w, false});
        v.push_back({"position_embd.weight",   s.n_embd, s.n_ctx_train, 0, w, false});
        v.push_back({"token_embd_norm.weight", s.n_embd, 1, 1, 0, false});
        v.push_back({"token_embd_norm.bias",   s.n_embd, 1, 0, 0, false});
        for (int i = 0; i < s.n_layer; ++i) {
            for (const char * m : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
                v.push_back({blk(i, m) + ".weight", s.n_embd, s.n_embd, 0, w, true});
                v.push_back({blk(i, m) + ".bias",   s.n_embd, 1, 0, w, false});
            }
            v.push_back({blk(i, "attn_output_norm.weight"),  s.n_embd, 1, 1, 0, false});
            v.push_back({blk(i, "attn_output_norm.bias"),    s.n_embd, 1, 0, 0, false});
            v.push_back({blk(i, "ffn_up.weight"),            s.n_embd, s.n_ff, 0, w, true});
            v.push_back({blk(i, "ffn_up.bias"),              s.n_ff, 1, 0, w, false});
            v.push_back({blk(i, "ffn_down.weight"),          s.n_ff, s.n_embd, 0, w, true});
            v.push_back({blk(i, "ffn_down.bias"),            s.n_embd, 1, 0, w, false});
            v.push_back({blk(i, "layer_output_norm.weight"), s.n_embd, 1, 1, 0, false});
            v.push_back({blk(i, "layer_output_norm.bias"),   s.n_embd, 1, 0, 0, false});
        }
    }
    return v;
}

struct gguf_deleter { void operator()(gguf_context * c) const { gguf_free(c); } };
using gguf_ptr = std::unique_ptr<gguf_context, gguf_deleter>;
struct file_closer { void operator()(FILE * f) const { if (f) fclose(f); } };

// Copies the tokenizer.* keys of the vocab file and pads the token list to n_vocab.
// Returns the resulting vocabulary size.
int64_t copy_tokenizer(gguf_context * dst, const std::string & vocab_path, int64_t n_vocab) {
    gguf_init_params ip = {/*no_alloc =*/ true, /*ctx =*/ nullptr};
    gguf_ptr src(gguf_init_from_file(vocab_path.c_str(), ip));
    if (!src) die("cannot read vocab file " + vocab_path);
    gguf_ptr tmp(gguf_init_empty());
    gguf_set_kv(tmp.get(), src.get());

    const int64_t tok_id = gguf_find_key(src.get(), "tokenizer.ggml.tokens");
    if (tok_id < 0) die("vocab file has no tokenizer.ggml.tokens: " + vocab_path);
    const int64_t n_src = (int64_t) gguf_get_arr_n(src.get(), tok_id);
    if (n_vocab == 0) n_vocab = n_src;
    if (n_vocab < n_src) die("shape's vocabulary is smaller than the vocab file's");

    // Keys in the order the vocab file has them; only the tokenizer's.
    for (int64_t i = 0; i < gguf_get_n_kv(tmp.get()); ++i) {
        const std::string key = gguf_get_key(tmp.get(), i);
        if (key.rfind("tokenizer.", 0) != 0) continue;
        if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.token_type" ||
            key == "tokenizer.ggml.scores") {
            continue;  // rewritten below, padded
        }
        const gguf_type t = gguf_get_kv_type(tmp.get(), i);
        switch (t) {
            case GGUF_TYPE_STRING: gguf_set_val_str(dst, key.c_str(), gguf_get_val_str(tmp.get(), i)); break;
            case GGUF_TYPE_UINT32: gguf_set_val_u32(dst, key.c_str(), gguf_get_val_u32(tmp.get(), i)); break;
            case GGUF_TYPE_INT32:  gguf_set_val_i32(dst, key.c_str(), gguf_get_val_i32(tmp.get(), i)); break;
            case GGUF_TYPE_BOOL:   gguf_set_val_bool(dst, key.c_str(), gguf_get_val_bool(tmp.get(), i)); break;
            case GGUF_TYPE_FLOAT32: gguf_set_val_f32(dst, key.c_str(), gguf_get_val_f32(tmp.get(), i)); break;
            case GGUF_TYPE_ARRAY: {
                const gguf_type at = gguf_get_arr_type(tmp.get(), i);
                const size_t n = gguf_get_arr_n(tmp.get(), i);
                if (at == GGUF_TYPE_STRING) {
                    std::vector<const char *> strs(n);
                    for (size_t j = 0; j < n; ++j) strs[j] = gguf_get_arr_str(tmp.get(), i, j);
                    gguf_set_arr_str(dst, key.c_str(), strs.data(), n);
                } else {
                    gguf_set_arr_data(dst, key.c_str(), at, gguf_get_arr_data(tmp.get(), i), n);
                }
                break;
            }
            default: die("unsupported tokenizer key type for " + key);
        }
    }

    std::vector<std::string> pads;
    for (int64_t i = n_src; i < n_vocab; ++i) pads.push_back("[PAD" + std::to_string(i) + "]");
    std::vector<const char *> toks;
    std::vector<int32_t> types;
    const int64_t type_id = gguf_find_key(src.get(), "tokenizer.ggml.token_type");
    for (int64_t i = 0; i < n_vocab; ++i) {
        if (i < n_src) {
            toks.push_back(gguf_get_arr_str(src.get(), tok_id, i));
            types.push_back(type_id >= 0 ? ((const int32_t *) gguf_get_arr_data(src.get(), type_id))[i] : 1);
        } else {
            toks.push_back(pads[i - n_src].c_str());
            types.push_back(5);  // LLAMA_TOKEN_TYPE_UNUSED
        }
    }
    gguf_set_arr_str(dst, "tokenizer.ggml.tokens", toks.data(), toks.size());
    gguf_set_arr_data(dst, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
    const int64_t score_id = gguf_find_key(src.get(), "tokenizer.ggml.scores");
    if (score_id >= 0) {
        std::vector<float> scores(n_vocab, -1000.0f);
        std::memcpy(scores.data(), gguf_get_arr_data(src.get(), score_id), n_src * sizeof(float));
        gguf_set_arr_data(dst, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), scores.size());
    }
    return n_vocab;
}

void set_hparams(gguf_context * g, const model_shape & s, ggml_type wtype) {
    const std::string a = s.arch;
    gguf_set_val_str(g, "general.architecture", s.arch);
    gguf_set_val_str(g, "general.name", (std::string("redis-infer random ") + s.name).c_str());
    gguf_set_val_u32(g, "general.quantization_version", GGML_QNT_VERSION);
    gguf_set_val_u32(g, "general.file_type", (uint32_t) ftype_for(wtype));
    gguf_set_val_u32(g, (a + ".context_length").c_str(), (uint32_t) s.n_ctx_train);
    gguf_set_val_u32(g, (a + ".embedding_length").c_str(), (uint32_t) s.n_embd);
    gguf_set_val_u32(g, (a + ".block_count").c_str(), (uint32_t) s.n_layer);
    gguf_set_val_u32(g, (a + ".feed_forward_length").c_str(), (uint32_t) s.n_ff);
    gguf_set_val_u32(g, (a + ".attention.head_count").c_str(), (uint32_t) s.n_head);
    gguf_set_val_u32(g, (a + ".attention.head_count_kv").c_str(), (uint32_t) s.n_head_kv);
    if (a == "qwen3") {
        gguf_set_val_u32(g, "qwen3.attention.key_length", (uint32_t) s.head_dim);
        gguf_set_val_u32(g, "qwen3.attention.value_length", (uint32_t) s.head_dim);
        gguf_set_val_f32(g, "qwen3.rope.freq_base", 1000000.0f);
        gguf_set_val_f32(g, "qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
    } else {
        gguf_set_val_f32(g, "bert.attention.layer_norm_epsilon", 1e-12f);
        gguf_set_val_bool(g, "bert.attention.causal", false);
        // Mean pooling: with random weights the CLS output barely depends on the other tokens
        // (cosine 0.99997 between unrelated texts), so retrieval tests could not tell chunks apart.
        gguf_set_val_u32(g, "bert.pooling_type", 1);
    }
}

// Fills rows [r0, r1) of a tensor, quantized to `type`, into dst.
void make_rows(const tensor_spec & t, ggml_type type, uint64_t seed, int64_t r0, int64_t r1, uint8_t * dst) {
    std::vector<float> f((size_t) ((r1 - r0) * t.ne0));
    uint64_t state = seed ^ fnv1a(t.name) ^ (uint64_t) r0 * 0x2545F4914F6CDD1Dull;
    const float a = t.stddev * std::sqrt(3.0f);  // uniform(-a, a) has this standard deviation
    for (float & x : f) {
        const double u = (double) (splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
        x = t.mean + (float) ((2.0 * u - 1.0) * a);
    }
    if (type == GGML_TYPE_F32) {
        std::memcpy(dst, f.data(), f.size() * sizeof(float));
    } else {
        ggml_quantize_chunk(type, f.data(), dst, 0, r1 - r0, t.ne0, nullptr);
    }
}

options parse(int argc, char ** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) die("missing value after " + a);
            return argv[++i];
        };
        if (a == "--shape") o.shape = next();
        else if (a == "--type") o.type = next();
        else if (a == "--vocab") o.vocab = next();
        else if (a == "--out") o.out = next();
        else if (a == "--seed") o.seed = std::stoull(next());
        else if (a == "--threads") o.threads = std::stoi(next());
        else die("unknown argument " + a);
    }
    if (o.vocab.empty() || o.out.empty()) die("--vocab and --out are required");
    return o;
}

}  // namespace

int main(int argc, char ** argv) {
    const options o = parse(argc, argv);
    const model_shape * shape = nullptr;
    for (const auto & s : k_shapes) if (o.shape == s.name) shape = &s;
    if (!shape) die("unknown --shape " + o.shape + ", expected tiny, qwen3-0.6b, qwen3-4b, bert-tiny or bge-small");
    const ggml_type wtype = type_from_name(o.type);

    gguf_ptr g(gguf_init_empty());
    model_shape s = *shape;
    set_hparams(g.get(), s, wtype);
    s.n_vocab = copy_tokenizer(g.get(), o.vocab, s.n_vocab);

    // Tensor infos go through a no_alloc ggml context: gguf only needs names, shapes and types.
    const auto specs = tensors_for(s);
    ggml_init_params cp = {ggml_tensor_overhead() * (specs.size() + 1), nullptr, /*no_alloc =*/ true};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> gctx(ggml_init(cp), ggml_free);
    std::vector<ggml_type> types;
    for (const auto & t : specs) {
        ggml_type tt = GGML_TYPE_F32;
        if (t.quantizable) {
            tt = wtype;
            if (t.ne0 % ggml_blck_size(wtype) != 0) tt = GGML_TYPE_F16;  // rows too short to quantize
        }
        ggml_tensor * x = t.ne1 == 1 ? ggml_new_tensor_1d(gctx.get(), tt, t.ne0)
                                     : ggml_new_tensor_2d(gctx.get(), tt, t.ne0, t.ne1);
        ggml_set_name(x, t.name.c_str());
        gguf_add_tensor(g.get(), x);
        types.push_back(tt);
    }

    const std::string tmp = o.out + ".tmp";
    std::unique_ptr<FILE, file_closer> f(fopen(tmp.c_str(), "wb"));
    if (!f) die("cannot write " + tmp);
    if (!gguf_write_to_file_ptr(g.get(), f.get(), /*only_meta =*/ true)) die("writing metadata failed");
    const size_t align = gguf_get_alignment(g.get());
    const size_t data0 = gguf_get_meta_size(g.get());
    if ((size_t) ftell(f.get()) != data0) die("metadata size mismatch");

    const int n_threads = o.threads > 0 ? o.threads : (int) std::max(1u, std::thread::hardware_concurrency());
    const int64_t rows_per_chunk = 64;
    for (size_t ti = 0; ti < specs.size(); ++ti) {
        const auto & t = specs[ti];
        const size_t row_bytes = ggml_row_size(types[ti], t.ne0);
        std::vector<uint8_t> buf(row_bytes * t.ne1);
        const int64_t n_chunks = (t.ne1 + rows_per_chunk - 1) / rows_per_chunk;
        std::atomic<int64_t> next{0};
        auto work = [&] {
            for (int64_t c; (c = next.fetch_add(1)) < n_chunks;) {
                const int64_t r0 = c * rows_per_chunk, r1 = std::min(t.ne1, r0 + rows_per_chunk);
                make_rows(t, types[ti], o.seed, r0, r1, buf.data() + r0 * row_bytes);
            }
        };
        std::vector<std::thread> pool;
        for (int i = 1; i < n_threads && i < n_chunks; ++i) pool.emplace_back(work);
        work();
        for (auto & th : pool) th.join();

        const size_t off = gguf_get_tensor_offset(g.get(), gguf_find_tensor(g.get(), t.name.c_str()));
        if ((size_t) ftell(f.get()) != data0 + off) die("tensor offset mismatch at " + t.name);
        if (fwrite(buf.data(), 1, buf.size(), f.get()) != buf.size()) die("write failed");
        static const uint8_t zeros[64] = {};
        const size_t pad = (align - buf.size() % align) % align;
        if (pad && fwrite(zeros, 1, pad, f.get()) != pad) die("write failed");
    }
    if (fflush(f.get()) != 0) die("write failed");
    f.reset();
    if (std::rename(tmp.c_str(), o.out.c_str()) != 0) die("cannot rename to " + o.out);
    fprintf(stderr, "make-test-model: wrote %s (%s, %s, seed %llu, %zu tensors, vocab %lld)\n", o.out.c_str(),
            s.name, o.type.c_str(), (unsigned long long) o.seed, specs.size(), (long long) s.n_vocab);
    return 0;
}
