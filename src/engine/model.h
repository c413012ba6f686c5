// A loaded GGUF: the weights (once in memory, shared by every context and slot) and the facts
// about it that other threads need. Everything here is immutable after load and thread-safe to
// read; tokenization only reads the vocabulary, so it is thread-safe too (but it is CPU work:
// the Redis main thread must not call it, the scheduler thread does).
#pragma once

#include "engine/errors.h"
#include "engine/request.h"
#include "engine/tokens.h"

#include <llama-cpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace infer {

// Thrown by model::tokenize for text llama.cpp's tokenizer rejects; what() is llama.cpp's reason.
struct tokenize_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct model_params {
    std::string path;        // absolute, already resolved inside the model directory
    uint32_t n_ctx;          // tokens per slot (prompt + output); 0 = min(4096, trained context)
    uint32_t n_slots;        // concurrent sequences; 0 = 4
    uint32_t n_batch;        // max tokens per decode step (chunked prefill budget); 0 = 512
    int32_t  n_gpu_layers;   // layers offloaded to the GPU; -1 = all, 0 = none
    int32_t  n_threads;      // CPU threads for decoding; 0 = cores - 1 (a core stays with Redis)
    uint32_t queue_max;      // bounded request queue; 0 = 64
    bool embedding;          // an embedding model: pooled vectors, no generation
};

model_params model_default_params();

// Fills n_ctx, n_slots and n_batch left at 0 with their defaults for a model trained on
// n_ctx_train tokens (0 = unknown). model::load and the pre-load memory estimate share it, so
// the estimate sizes the context the load will create.
void model_params_resolve_sizes(model_params & p, int32_t n_ctx_train);

struct model_info {
    std::string path;
    std::string arch;          // general.architecture, e.g. "qwen3"
    std::string description;   // llama_model_desc, e.g. "qwen3 0.6B Q8_0"
    uint64_t n_params = 0;
    uint64_t size_bytes = 0;
    int32_t n_vocab = 0;
    int32_t n_ctx_train = 0;
    bool add_bos = false;
    std::string chat_template;  // empty if the GGUF has none
    int32_t n_embd = 0;         // width of an embedding (llama_model_n_embd_out)
};

class model {
public:
    // Loads the weights. Returns nullptr and sets err on failure: load parameters that conflict
    // (typed, with the numbers) or error_code::load_failed with the cause (llama.cpp's own
    // reason is in the log). Slow: call it off the main thread.
    // cancel (may be null) is read once per tensor while the weights are read (llama.cpp's
    // progress callback), and again before and after: once it is true the load stops, frees
    // everything it allocated and returns nullptr with err empty. What cannot be interrupted is
    // reading the header and the vocabulary, and one tensor (a few tens of ms each for a 0.6B
    // model read from the page cache).
    static std::shared_ptr<model> load(const model_params & params, engine_error & err,
                                       const std::atomic<bool> * cancel = nullptr);

    const model_info & info() const { return info_; }
    const model_params & params() const { return params_; }
    llama_model * raw() const { return model_.get(); }
    const llama_vocab * vocab() const { return vocab_; }

    // Text -> ids. parse_special: "<|im_start|>" becomes its control token instead of text.
    // add_bos: prepend BOS when the model's metadata asks for it.
    std::vector<token> tokenize(std::string_view text, bool parse_special, bool add_bos) const;
    // Ids -> text; special tokens are rendered (they are part of a stored conversation).
    std::string detokenize(const std::vector<token> & tokens) const;
    // One generated token's bytes (special tokens not rendered, as a reply should not show them).
    std::string piece(token t) const;
    bool is_eog(token t) const { return llama_vocab_is_eog(vocab_, t); }
    // Where each token's text starts in the text it was tokenized from: cumulative piece lengths,
    // clamped to text_size. Exact for byte-level BPE vocabularies (Qwen, Llama 3), approximate
    // for vocabularies that normalise text (WordPiece). For chunking documents by tokens.
    std::vector<uint32_t> token_offsets(const std::vector<token> & tokens, size_t text_size) const;

    // The model's chat template (or chatml when the GGUF has none) applied to messages;
    // add_assistant ends with the assistant header. Returns false if the template is unknown
    // to llama.cpp. Thread-safe, cheap.
    bool chat_apply(const std::vector<chat_message> & msgs, bool add_assistant, std::string & out) const;
    // What the template writes after an assistant message's content (e.g. "<|im_end|>\n").
    const std::string & chat_closing() const { return chat_closing_; }
    // The first token of every templated message, -1 if messages do not start with one token
    // the template always writes (then sessions cannot be truncated at message boundaries).
    token chat_message_start() const { return chat_message_start_; }

private:
    model_params params_;
    model_info info_;
    llama_model_ptr model_;
    const llama_vocab * vocab_ = nullptr;
    std::string chat_closing_;
    token chat_message_start_ = -1;
};

}  // namespace infer
