// See model.h.
#include "engine/model.h"

#include "engine/backend.h"

#include <algorithm>
#include <climits>
#include <thread>

namespace infer {
namespace {

// llama.cpp's tokenizer asserts (see backend.h) when it is to add a special token the
// vocabulary lacks: BOS and EOS when the metadata asks for them, BOS and SEP around every
// WordPiece input. Such a file loads fine and fails on its first text, so refuse it at load.
const char * missing_special_token(const llama_vocab * v) {
    const bool add_bos = llama_vocab_get_add_bos(v);
    if (add_bos && llama_vocab_bos(v) == LLAMA_TOKEN_NULL) return "BOS";
    if (llama_vocab_get_add_eos(v) && llama_vocab_eos(v) == LLAMA_TOKEN_NULL) return "EOS";
    if (llama_vocab_type(v) == LLAMA_VOCAB_TYPE_WPM && add_bos && llama_vocab_sep(v) == LLAMA_TOKEN_NULL) return "SEP";
    return nullptr;
}

std::nullptr_t refused(engine_error & e, error_code code, int64_t got, int64_t limit) {
    e.code = code;
    e.got = got;
    e.limit = limit;
    return nullptr;
}

std::nullptr_t load_failed(engine_error & e, std::string why) {
    e.code = error_code::load_failed;
    e.detail = std::move(why);
    return nullptr;
}

}  // namespace

model_params model_default_params() {
    model_params p;
    p.n_ctx = 0;
    p.n_slots = 0;
    p.n_batch = 0;
    p.n_gpu_layers = 0;
    p.n_threads = 0;
    p.queue_max = 0;
    p.embedding = false;
    return p;
}

void model_params_resolve_sizes(model_params & p, int32_t n_ctx_train) {
    if (p.n_ctx == 0) p.n_ctx = uint32_t(std::min(4096, std::max(1, n_ctx_train)));
    if (p.embedding) {
        // An embedding decode holds whole inputs (non-causal attention needs a sequence in one
        // ubatch): BATCH is the tokens of all inputs in one decode, at least one full input.
        if (p.n_slots == 0) p.n_slots = 16;
        if (p.n_batch == 0) p.n_batch = (std::max<uint32_t>(p.n_ctx, 2048) + p.n_slots - 1) / p.n_slots * p.n_slots;
    }
    if (p.n_slots == 0) p.n_slots = 4;
    if (p.n_batch == 0) p.n_batch = std::max<uint32_t>(512, p.n_slots);
}

std::shared_ptr<model> model::load(const model_params & params, engine_error & error, const std::atomic<bool> * cancel) {
    error = engine_error();
    const auto cancelled = [cancel] { return cancel && cancel->load(std::memory_order_relaxed); };
    if (cancelled()) return nullptr;
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = params.n_gpu_layers;
    // Read the weights into memory instead of mmapping the file: a GGUF truncated or rewritten
    // in place after load would otherwise raise SIGBUS on the next page fault and take the
    // whole Redis process down. (A renamed-over file is safe either way.)
    mp.load_mode = LLAMA_LOAD_MODE_NONE;
    mp.lazy_mode = LLAMA_LAZY_MODE_OFF;
    // The guard turns llama.cpp's asserts on the file's contents into a failed load (see
    // backend.h); it covers the template probing below too, which tokenizes.
    // Returning false from the progress callback makes llama.cpp stop before the next tensor,
    // free the model and return nullptr. It also replaces llama.cpp's default callback, which
    // only prints progress dots to stderr.
    if (cancel) {
        mp.progress_callback = [](float, void * flag) {
            return !static_cast<const std::atomic<bool> *>(flag)->load(std::memory_order_relaxed);
        };
        mp.progress_callback_user_data = const_cast<std::atomic<bool> *>(cancel);
    }
    abort_guard guard;
    llama_model_ptr m(llama_model_load_from_file(params.path.c_str(), mp));
    if (cancelled()) return nullptr;  // m, if the load got to its end anyway, is freed here
    if (!m) {
        return load_failed(error, "llama.cpp could not load the file (see the server log)");
    }
    auto out = std::shared_ptr<model>(new model());
    out->vocab_ = llama_model_get_vocab(m.get());
    if (!out->vocab_ || llama_vocab_n_tokens(out->vocab_) <= 0) {
        return load_failed(error, "the model has no vocabulary");
    }
    if (llama_vocab_type(out->vocab_) == LLAMA_VOCAB_TYPE_NONE) {
        // Placeholder tokens only: llama.cpp asserts on every piece and attribute lookup, and a
        // generation's text, stop strings and streams all need pieces.
        return load_failed(error, "the model has no tokenizer (tokenizer.ggml.model is none) - redis-infer needs one");
    }
    if (const char * missing = missing_special_token(out->vocab_)) {
        return load_failed(error, std::string("the vocabulary asks for a ") + missing + " token it does not have");
    }
    model_info & i = out->info_;
    i.path = params.path;
    char buf[256];
    if (llama_model_meta_val_str(m.get(), "general.architecture", buf, sizeof buf) >= 0) i.arch = buf;
    llama_model_desc(m.get(), buf, sizeof buf);
    i.description = buf;
    i.n_params = llama_model_n_params(m.get());
    i.size_bytes = llama_model_size(m.get());
    i.n_vocab = llama_vocab_n_tokens(out->vocab_);
    i.n_ctx_train = llama_model_n_ctx_train(m.get());
    i.add_bos = llama_vocab_get_add_bos(out->vocab_);
    if (const char * t = llama_model_chat_template(m.get(), nullptr)) i.chat_template = t;

    out->params_ = params;
    model_params & p = out->params_;
    i.n_embd = llama_model_n_embd_out(m.get());
    model_params_resolve_sizes(p, i.n_ctx_train);
    if (p.embedding) {
        if (p.n_batch < p.n_ctx) return refused(error, error_code::batch_below_context, p.n_batch, p.n_ctx);
        // llama.cpp's pooling graph asserts (aborting the process) when the output rows of a
        // full batch do not split evenly over the sequences.
        if (p.n_batch % p.n_slots != 0) return refused(error, error_code::batch_not_multiple_of_slots, p.n_batch, p.n_slots);
        if (llama_model_has_encoder(m.get()) && llama_model_has_decoder(m.get())) {
            return load_failed(error, "encoder-decoder models cannot produce embeddings");
        }
    }
    if (p.n_slots > p.n_batch) {
        // Every slot may need its logits in one step; llama.cpp asserts (aborts) otherwise.
        return refused(error, error_code::slots_above_batch, p.n_slots, p.n_batch);
    }
    const int32_t hw = int32_t(std::max(1u, std::thread::hardware_concurrency()));
    if (p.n_threads == 0) p.n_threads = std::max(1, hw - 1);
    // More threads than the machine has only makes every step slower (they spin-wait on each
    // other: THREADS 64 on 2 cores took ~13 s per step) and TIMEOUT is checked between steps.
    // Reduced, not refused: a replica or a restart on a smaller machine must still load it.
    if (p.n_threads > hw) {
        log_msg(log_level::warning, "THREADS %d is more than the %d hardware threads; using %d", p.n_threads, hw, hw);
        p.n_threads = hw;
    }
    if (p.queue_max == 0) p.queue_max = 64;
    out->model_ = std::move(m);

    // Learn the template's shape once: what closes an assistant turn, and which token opens
    // every message (used to truncate sessions at message boundaries).
    const std::string marker = "\x01\x02MARK\x02\x01";
    std::string with, without;
    if (out->chat_apply({{"user", "x"}, {"assistant", marker}}, false, with) &&
        out->chat_apply({{"user", "x"}}, false, without)) {
        const size_t at = with.find(marker);
        if (at != std::string::npos) out->chat_closing_ = with.substr(at + marker.size());
        const auto a = out->tokenize(without, true, false);
        std::string two;
        out->chat_apply({{"user", "x"}, {"user", "y"}}, false, two);
        const auto b = out->tokenize(two.substr(without.size()), true, false);
        if (!a.empty() && !b.empty() && a.front() == b.front() && llama_vocab_get_attr(out->vocab_, a.front()) & LLAMA_TOKEN_ATTR_CONTROL) {
            out->chat_message_start_ = a.front();
        }
    }
    return out;
}

bool model::chat_apply(const std::vector<chat_message> & msgs, bool add_assistant, std::string & out) const {
    std::vector<llama_chat_message> cm;
    size_t total = 0;
    for (const auto & m : msgs) {
        cm.push_back({m.role.c_str(), m.content.c_str()});
        total += m.role.size() + m.content.size();
    }
    const char * tmpl = info_.chat_template.empty() ? nullptr : info_.chat_template.c_str();  // nullptr = chatml
    std::vector<char> buf(total * 2 + 256);
    int32_t n = llama_chat_apply_template(tmpl, cm.data(), cm.size(), add_assistant, buf.data(), int32_t(buf.size()));
    if (n > int32_t(buf.size())) {
        buf.resize(size_t(n));
        n = llama_chat_apply_template(tmpl, cm.data(), cm.size(), add_assistant, buf.data(), int32_t(buf.size()));
    }
    if (n < 0) return false;
    out.assign(buf.data(), size_t(n));
    return true;
}

std::vector<token> model::tokenize(std::string_view text, bool parse_special, bool add_bos) const {
    if (text.size() > size_t(INT32_MAX)) return {};
    const bool bos = add_bos && info_.add_bos;
    // A token is at least one byte, plus BOS/EOS: text.size() + 2 is always enough.
    std::vector<token> out(text.size() + 2);
    int32_t n = 0;
    try {
        abort_guard guard;
        n = llama_tokenize(vocab_, text.data(), int32_t(text.size()), out.data(), int32_t(out.size()), bos, parse_special);
    } catch (const ggml_abort_error & e) {
        throw tokenize_error(e.what());
    } catch (const std::exception & e) {
        // llama.cpp's BPE pre-tokenizer throws on some invalid UTF-8 ("invalid codepoint").
        throw tokenize_error(std::string(e.what()) + " (invalid UTF-8?)");
    }
    out.resize(n > 0 ? size_t(n) : 0);
    return out;
}

std::string model::detokenize(const std::vector<token> & tokens) const {
    abort_guard guard;  // a throw reaches the caller's catch: the request fails, Redis stays up
    std::string out;
    out.resize(tokens.size() * 8 + 16);
    int32_t n = llama_detokenize(vocab_, tokens.data(), int32_t(tokens.size()), out.data(), int32_t(out.size()),
                                 /*remove_special=*/false, /*unparse_special=*/true);
    if (n < 0) {
        out.resize(size_t(-n));
        n = llama_detokenize(vocab_, tokens.data(), int32_t(tokens.size()), out.data(), int32_t(out.size()), false,
                             true);
    }
    out.resize(n > 0 ? size_t(n) : 0);
    return out;
}

std::string model::piece(token t) const {
    abort_guard guard;
    char buf[128];
    int32_t n = llama_token_to_piece(vocab_, t, buf, sizeof buf, 0, /*special=*/false);
    if (n >= 0) return std::string(buf, size_t(n));
    std::string s(size_t(-n), '\0');
    n = llama_token_to_piece(vocab_, t, s.data(), int32_t(s.size()), 0, false);
    s.resize(n > 0 ? size_t(n) : 0);
    return s;
}

std::vector<uint32_t> model::token_offsets(const std::vector<token> & tokens, size_t text_size) const {
    std::vector<uint32_t> out;
    out.reserve(tokens.size());
    size_t at = 0;
    for (token t : tokens) {
        out.push_back(uint32_t(std::min(at, text_size)));
        at += piece(t).size();
    }
    return out;
}

}  // namespace infer
