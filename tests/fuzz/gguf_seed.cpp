// gguf_seed: writes the whole-model seeds for fuzz_gguf_load into a directory.
//
// Why: the test models are megabytes (their vocabularies alone are 0.6 and 6 MB), far over any
// useful -max_len, so truncating them only seeds the header and the first metadata keys. These
// seeds are complete models of a few KB each, in the test models' layout, that llama.cpp loads
// and decodes, so mutations reach every part of a GGUF: metadata, the tokenizer (byte-level BPE
// with merges and control tokens; WordPiece), tensor infos, alignment and data (F32, F16, Q8_0).
//
//   micro-qwen3.gguf   qwen3, 1 layer, n_embd 32, 265 tokens, chatml template
//   micro-bert.gguf    bert, 1 layer, n_embd 32, 44 WordPiece tokens, mean pooling
//   micro-qwen3-vocab.gguf  the qwen3 one without tensors (what vocab-only loading reads)
//
// With --repros it writes instead the minimal reproductions of the llama.cpp aborts the fuzzer
// found (tests/fuzz/crashes/README.md), each one seed with a single change:
//   repro-duplicate-token   micro-qwen3, token 257 renamed to token 256's text
//   repro-zero-layers       micro-qwen3, qwen3.block_count = 0
//   repro-bert-no-bos       micro-bert without bos/cls/sep ids (the defaults 101/102 are out of range)
//   repro-bert-byte-token   micro-bert, token 7 ("s") typed BYTE (6)
// (no .gguf suffix: *.gguf is ignored by git). They stay whole models: llama.cpp checks that
// every tensor lies within the file before it reads hparams or the vocabulary.
//
// Deterministic: fixed values, no timestamps. Usage: gguf_seed <out-dir> [--repros]
#include <ggml.h>
#include <gguf.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

struct gguf_deleter { void operator()(gguf_context * c) const { gguf_free(c); } };
using gguf_ptr = std::unique_ptr<gguf_context, gguf_deleter>;
using ggml_ptr = std::unique_ptr<ggml_context, decltype(&ggml_free)>;

[[noreturn]] void die(const std::string & msg) {
    fprintf(stderr, "gguf_seed: %s\n", msg.c_str());
    exit(1);
}

std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) { s += char(0xC0 | (cp >> 6)); s += char(0x80 | (cp & 0x3F)); }
    else { s += char(0xE0 | (cp >> 12)); s += char(0x80 | ((cp >> 6) & 0x3F)); s += char(0x80 | (cp & 0x3F)); }
    return s;
}

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards.
std::vector<std::string> byte_tokens() {
    std::vector<std::string> t(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t[b] = utf8(printable ? b : next++);
    }
    return t;
}

void set_strs(gguf_context * g, const char * key, const std::vector<std::string> & v) {
    std::vector<const char *> p;
    for (const auto & s : v) p.push_back(s.c_str());
    gguf_set_arr_str(g, key, p.data(), p.size());
}

// Deterministic small values, quantized to `type` when it is not F32.
void fill(ggml_tensor * t, float mean, float scale, uint32_t seed) {
    const int64_t n = ggml_nelements(t);
    std::vector<float> f(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) f[size_t(i)] = mean + scale * std::sin(float(seed * 131 + i) * 0.37f);
    if (t->type == GGML_TYPE_F32) {
        memcpy(t->data, f.data(), f.size() * sizeof(float));
    } else if (t->type == GGML_TYPE_F16) {
        ggml_fp32_to_fp16_row(f.data(), static_cast<ggml_fp16_t *>(t->data), n);
    } else {
        ggml_quantize_chunk(t->type, f.data(), t->data, 0, t->ne[1], t->ne[0], nullptr);
    }
}

struct tensor_def {
    std::string name;
    int64_t ne0, ne1;  // ne1 == 0: a vector
    ggml_type type;
    float mean, scale;
};

void add_tensors(gguf_context * g, ggml_context * ctx, const std::vector<tensor_def> & defs) {
    uint32_t seed = 1;
    for (const auto & d : defs) {
        ggml_tensor * t = d.ne1 == 0 ? ggml_new_tensor_1d(ctx, d.type, d.ne0) : ggml_new_tensor_2d(ctx, d.type, d.ne0, d.ne1);
        ggml_set_name(t, d.name.c_str());
        fill(t, d.mean, d.scale, seed++);
        gguf_add_tensor(g, t);
    }
}

void write(gguf_context * g, const std::string & path, bool only_meta) {
    if (!gguf_write_to_file(g, path.c_str(), only_meta)) die("cannot write " + path);
    fprintf(stderr, "gguf_seed: wrote %s\n", path.c_str());
}

enum variant { variant_none, variant_duplicate_token, variant_zero_layers, variant_bert_no_bos, variant_bert_byte_token };

void micro_qwen3(const std::string & dir, const std::string & name, variant var) {
    const int64_t n_embd = 32, n_head = 2, n_head_kv = 1, head_dim = 16, n_ff = 64;
    gguf_ptr g(gguf_init_empty());
    gguf_set_val_str(g.get(), "general.architecture", "qwen3");
    gguf_set_val_str(g.get(), "general.name", "redis-infer fuzz seed micro-qwen3");
    gguf_set_val_u32(g.get(), "general.quantization_version", GGML_QNT_VERSION);
    gguf_set_val_u32(g.get(), "general.file_type", 7);
    gguf_set_val_u32(g.get(), "qwen3.context_length", 256);
    gguf_set_val_u32(g.get(), "qwen3.embedding_length", n_embd);
    gguf_set_val_u32(g.get(), "qwen3.block_count", var == variant_zero_layers ? 0 : 1);
    gguf_set_val_u32(g.get(), "qwen3.feed_forward_length", n_ff);
    gguf_set_val_u32(g.get(), "qwen3.attention.head_count", n_head);
    gguf_set_val_u32(g.get(), "qwen3.attention.head_count_kv", n_head_kv);
    gguf_set_val_u32(g.get(), "qwen3.attention.key_length", head_dim);
    gguf_set_val_u32(g.get(), "qwen3.attention.value_length", head_dim);
    gguf_set_val_f32(g.get(), "qwen3.rope.freq_base", 1000000.0f);
    gguf_set_val_f32(g.get(), "qwen3.attention.layer_norm_rms_epsilon", 1e-6f);

    // Byte-level BPE: the 256 byte tokens, a few merged ones, three control tokens.
    std::vector<std::string> toks = byte_tokens();
    const std::vector<std::string> merged = {"He", "ll", "llo", "\xc4\xa0w", "or", "ld"};  // \xc4\xa0 = 'Ġ' (space)
    const std::vector<std::string> merges = {"H e", "l l", "ll o", "\xc4\xa0 w", "o r", "l d"};
    toks.insert(toks.end(), merged.begin(), merged.end());
    if (var == variant_duplicate_token) toks[257] = toks[256];
    const int32_t eot = int32_t(toks.size());
    toks.insert(toks.end(), {"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
    std::vector<int32_t> types(toks.size(), 1);  // LLAMA_TOKEN_TYPE_NORMAL
    for (int32_t i = eot; i < int32_t(toks.size()); ++i) types[size_t(i)] = 3;  // CONTROL
    gguf_set_val_str(g.get(), "tokenizer.ggml.model", "gpt2");
    gguf_set_val_str(g.get(), "tokenizer.ggml.pre", "qwen2");
    set_strs(g.get(), "tokenizer.ggml.tokens", toks);
    gguf_set_arr_data(g.get(), "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
    set_strs(g.get(), "tokenizer.ggml.merges", merges);
    gguf_set_val_u32(g.get(), "tokenizer.ggml.eos_token_id", uint32_t(eot + 2));
    gguf_set_val_u32(g.get(), "tokenizer.ggml.padding_token_id", uint32_t(eot));
    gguf_set_val_u32(g.get(), "tokenizer.ggml.bos_token_id", uint32_t(eot));
    gguf_set_val_bool(g.get(), "tokenizer.ggml.add_bos_token", false);
    gguf_set_val_str(g.get(), "tokenizer.chat_template",
                     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                     "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}");
    if (var == variant_none) write(g.get(), dir + "/micro-qwen3-vocab.gguf", true);  // metadata only: vocab-only

    const int64_t n_vocab = int64_t(toks.size()), q = n_head * head_dim, kv = n_head_kv * head_dim;
    const std::vector<tensor_def> defs = {
        {"token_embd.weight", n_embd, n_vocab, GGML_TYPE_Q8_0, 0, 0.02f},
        {"output_norm.weight", n_embd, 0, GGML_TYPE_F32, 1, 0},
        {"blk.0.attn_norm.weight", n_embd, 0, GGML_TYPE_F32, 1, 0},
        {"blk.0.attn_q.weight", n_embd, q, GGML_TYPE_F16, 0, 0.02f},
        {"blk.0.attn_k.weight", n_embd, kv, GGML_TYPE_Q8_0, 0, 0.02f},
        {"blk.0.attn_v.weight", n_embd, kv, GGML_TYPE_F32, 0, 0.02f},
        {"blk.0.attn_output.weight", q, n_embd, GGML_TYPE_F16, 0, 0.02f},
        {"blk.0.attn_q_norm.weight", head_dim, 0, GGML_TYPE_F32, 1, 0},
        {"blk.0.attn_k_norm.weight", head_dim, 0, GGML_TYPE_F32, 1, 0},
        {"blk.0.ffn_norm.weight", n_embd, 0, GGML_TYPE_F32, 1, 0},
        {"blk.0.ffn_gate.weight", n_embd, n_ff, GGML_TYPE_Q8_0, 0, 0.02f},
        {"blk.0.ffn_up.weight", n_embd, n_ff, GGML_TYPE_Q8_0, 0, 0.02f},
        {"blk.0.ffn_down.weight", n_ff, n_embd, GGML_TYPE_Q8_0, 0, 0.02f},
    };
    ggml_ptr ctx(ggml_init({size_t(1) << 20, nullptr, false}), ggml_free);
    add_tensors(g.get(), ctx.get(), defs);
    write(g.get(), dir + "/" + name, false);
}

void micro_bert(const std::string & dir, const std::string & name, variant var) {
    const int64_t n_embd = 32, n_ff = 64, n_ctx = 64;
    gguf_ptr g(gguf_init_empty());
    gguf_set_val_str(g.get(), "general.architecture", "bert");
    gguf_set_val_str(g.get(), "general.name", "redis-infer fuzz seed micro-bert");
    gguf_set_val_u32(g.get(), "general.file_type", 1);
    gguf_set_val_u32(g.get(), "bert.context_length", n_ctx);
    gguf_set_val_u32(g.get(), "bert.embedding_length", n_embd);
    gguf_set_val_u32(g.get(), "bert.block_count", 1);
    gguf_set_val_u32(g.get(), "bert.feed_forward_length", n_ff);
    gguf_set_val_u32(g.get(), "bert.attention.head_count", 2);
    gguf_set_val_f32(g.get(), "bert.attention.layer_norm_epsilon", 1e-12f);
    gguf_set_val_bool(g.get(), "bert.attention.causal", false);
    gguf_set_val_u32(g.get(), "bert.pooling_type", 1);

    // As llama.cpp converts WordPiece: a word-initial piece starts with U+2581, "##x" becomes "x".
    const std::string w = "\xe2\x96\x81";
    std::vector<std::string> toks = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", w + "hello", w + "world", "s", "ing"};
    for (char c = 'a'; c <= 'z'; ++c) toks.push_back(w + c);
    for (const char * p : {".", ",", "!", "?", "'", "-", "0", "1", "2"}) toks.push_back(w + p);
    std::vector<int32_t> types(toks.size(), 1);
    for (int i = 0; i < 5; ++i) types[size_t(i)] = 3;
    if (var == variant_bert_byte_token) types[7] = 6;  // LLAMA_TOKEN_TYPE_BYTE
    std::vector<float> scores(toks.size(), 0.0f);
    gguf_set_val_str(g.get(), "tokenizer.ggml.model", "bert");
    set_strs(g.get(), "tokenizer.ggml.tokens", toks);
    gguf_set_arr_data(g.get(), "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
    gguf_set_arr_data(g.get(), "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), scores.size());
    gguf_set_val_u32(g.get(), "tokenizer.ggml.token_type_count", 2);  // bert refuses to load without it
    gguf_set_val_u32(g.get(), "tokenizer.ggml.unknown_token_id", 1);
    if (var != variant_bert_no_bos) {
        gguf_set_val_u32(g.get(), "tokenizer.ggml.bos_token_id", 2);  // WordPiece asserts on a missing one
        gguf_set_val_u32(g.get(), "tokenizer.ggml.cls_token_id", 2);
        gguf_set_val_u32(g.get(), "tokenizer.ggml.seperator_token_id", 3);
    }
    gguf_set_val_u32(g.get(), "tokenizer.ggml.padding_token_id", 0);
    gguf_set_val_u32(g.get(), "tokenizer.ggml.mask_token_id", 4);

    const int64_t n_vocab = int64_t(toks.size());
    std::vector<tensor_def> defs = {
        {"token_embd.weight", n_embd, n_vocab, GGML_TYPE_F16, 0, 0.02f},
        {"token_types.weight", n_embd, 2, GGML_TYPE_F32, 0, 0.02f},
        {"position_embd.weight", n_embd, n_ctx, GGML_TYPE_F32, 0, 0.02f},
        {"token_embd_norm.weight", n_embd, 0, GGML_TYPE_F32, 1, 0},
        {"token_embd_norm.bias", n_embd, 0, GGML_TYPE_F32, 0, 0},
    };
    for (const char * m : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
        defs.push_back({std::string("blk.0.") + m + ".weight", n_embd, n_embd, GGML_TYPE_F16, 0, 0.02f});
        defs.push_back({std::string("blk.0.") + m + ".bias", n_embd, 0, GGML_TYPE_F32, 0, 0.02f});
    }
    defs.push_back({"blk.0.attn_output_norm.weight", n_embd, 0, GGML_TYPE_F32, 1, 0});
    defs.push_back({"blk.0.attn_output_norm.bias", n_embd, 0, GGML_TYPE_F32, 0, 0});
    defs.push_back({"blk.0.ffn_up.weight", n_embd, n_ff, GGML_TYPE_F16, 0, 0.02f});
    defs.push_back({"blk.0.ffn_up.bias", n_ff, 0, GGML_TYPE_F32, 0, 0.02f});
    defs.push_back({"blk.0.ffn_down.weight", n_ff, n_embd, GGML_TYPE_F16, 0, 0.02f});
    defs.push_back({"blk.0.ffn_down.bias", n_embd, 0, GGML_TYPE_F32, 0, 0.02f});
    defs.push_back({"blk.0.layer_output_norm.weight", n_embd, 0, GGML_TYPE_F32, 1, 0});
    defs.push_back({"blk.0.layer_output_norm.bias", n_embd, 0, GGML_TYPE_F32, 0, 0});
    ggml_ptr ctx(ggml_init({size_t(1) << 20, nullptr, false}), ggml_free);
    add_tensors(g.get(), ctx.get(), defs);
    write(g.get(), dir + "/" + name, false);
}

}  // namespace

int main(int argc, char ** argv) {
    const bool repros = argc == 3 && std::string(argv[2]) == "--repros";
    if (argc != 2 && !repros) die("usage: gguf_seed <out-dir> [--repros]");
    const std::string dir = argv[1];
    if (!repros) {
        micro_qwen3(dir, "micro-qwen3.gguf", variant_none);
        micro_bert(dir, "micro-bert.gguf", variant_none);
        return 0;
    }
    micro_qwen3(dir, "repro-duplicate-token", variant_duplicate_token);
    micro_qwen3(dir, "repro-zero-layers", variant_zero_layers);
    micro_bert(dir, "repro-bert-no-bos", variant_bert_no_bos);
    micro_bert(dir, "repro-bert-byte-token", variant_bert_byte_token);
    return 0;
}
