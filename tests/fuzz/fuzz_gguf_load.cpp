// libFuzzer target: loading a GGUF the way INFER.LOAD does. A malformed model file must be an
// error reply, never an abort: the loader runs inside the Redis process, and GGML_ASSERT or an
// uncaught exception there takes the whole server (and its data) down.
//
// Each input is written to a temporary file, then:
//   1. llama_model_load_from_file with vocab_only (the tokenizer alone), then tokenize (with
//      special tokens) and detokenize with it;
//   2. infer::model::load, the module's loader (weights read into memory, template probing,
//      tokenization of the probe messages), CTX 32, SLOTS 1, BATCH 32, 1 thread, then
//      model::tokenize with BOS as INFER.TOKENIZE does;
//   3. if that loaded: a context made as the scheduler makes one, and one decode of those
//      tokens (what the first INFER.GENERATE would do).
// llama.cpp's log is silenced. Seeds: scripts/fuzz.sh builds the corpus from gguf_seed (whole
// models of a few KB) and the test models truncated to a few KB.
//
// Known aborts. llama.cpp trusts a model file's contents: dozens of GGML_ASSERTs on metadata
// values (a duplicated token string, block_count 0 or > 512, a BOS the vocabulary asks for but
// lacks, ...) abort the process during load or tokenization; each one is a way for a bad GGUF to
// take Redis down through INFER.LOAD (docs/robustness.md). So that a run keeps exploring past
// them, GGML aborts raised inside steps 1 and 2 become exceptions through ggml's abort callback
// (llama_model_load catches them and fails the load; the target catches those from tokenize) and
// are counted by assert site, printed at exit. That is also the fix proposed for model::load.
// Any abort in step 3, any sanitizer report, a timeout or an out-of-memory is a crash.
// REDIS_INFER_FUZZ_KNOWN=crash turns the conversion off, to reproduce a known abort as a crash:
//   REDIS_INFER_FUZZ_KNOWN=crash build-fuzz/tests/fuzz/fuzz_gguf_load tests/fuzz/crashes/<file>
#include "engine/backend.h"
#include "engine/model.h"

#include <ggml.h>
#include <llama.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

std::string g_path;
bool g_let_crash = false;
std::map<std::string, size_t> g_known;  // assert site ("llama-vocab.cpp:2539: GGML_ASSERT(...)") -> inputs
thread_local bool t_guarded = false;
const char * g_sample_dir = nullptr;  // REDIS_INFER_FUZZ_KNOWN_DIR: keep the first input per site
const uint8_t * g_data = nullptr;
size_t g_size = 0;

// The first input that reaches a known site is written to the sample directory, named by site.
void count_known(const std::string & site) {
    if (g_known[site]++ > 0 || !g_sample_dir) return;
    std::string name;
    for (char c : site.substr(0, 60)) name += isalnum((unsigned char) c) ? c : '_';
    FILE * f = fopen((std::string(g_sample_dir) + "/" + name + ".gguf").c_str(), "wb");
    if (!f) return;
    fwrite(g_data, 1, g_size, f);
    fclose(f);
}

struct known_abort : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void on_ggml_abort(const char * msg) {
    if (!t_guarded || g_let_crash) {  // a real abort: ggml abort()s next, libFuzzer prints the stack
        fprintf(stderr, "%s\n", msg);
        return;
    }
    std::string site = msg;
    const size_t slash = site.rfind('/', site.find(':'));
    if (slash != std::string::npos) site.erase(0, slash + 1);
    count_known(site);
    throw known_abort(site);
}

// Runs f with GGML aborts turned into known_abort; false if one (or another exception) came out.
template <class F>
bool guarded(F && f) {
    t_guarded = true;
    bool ok = true;
    try {
        f();
    } catch (const known_abort &) {
        ok = false;
    } catch (const std::exception & e) {
        // A C++ exception out of llama.cpp's C API (e.g. std::out_of_range from
        // llama_detokenize on the -1 its WordPiece tokenizer emits when the vocabulary has no
        // UNK). The module catches these (command guard, scheduler step), so not a crash here.
        count_known(std::string("exception: ") + e.what());
        ok = false;
    }
    t_guarded = false;
    return ok;
}

void quiet(ggml_log_level, const char *, void *) {}

void at_exit() {
    if (!g_path.empty()) unlink(g_path.c_str());
    for (const auto & [site, n] : g_known) fprintf(stderr, "fuzz_gguf_load: known abort (%zu inputs): %s\n", n, site.c_str());
}

bool write_input(const uint8_t * data, size_t size) {
    FILE * f = fopen(g_path.c_str(), "wb");
    if (!f) return false;
    const bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

void vocab_only_load() {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    mp.load_mode = LLAMA_LOAD_MODE_NONE;
    mp.lazy_mode = LLAMA_LAZY_MODE_OFF;
    llama_model_ptr m(llama_model_load_from_file(g_path.c_str(), mp));
    if (!m) return;
    const llama_vocab * v = llama_model_get_vocab(m.get());
    if (!v || llama_vocab_n_tokens(v) <= 0) return;
    const std::string text = "Hello <|im_start|>world\n[CLS] ##ab \xe2\x82\xac\xff";
    std::vector<llama_token> ids(text.size() + 2);
    const int32_t n = llama_tokenize(v, text.data(), int32_t(text.size()), ids.data(), int32_t(ids.size()), true, true);
    if (n <= 0) return;
    std::vector<char> out(size_t(n) * 16 + 64);
    llama_detokenize(v, ids.data(), n, out.data(), int32_t(out.size()), false, true);
}

void full_load_and_decode() {
    infer::model_params p = infer::model_default_params();
    p.path = g_path;
    p.n_ctx = 32;
    p.n_slots = 1;
    p.n_batch = 32;
    p.n_threads = 1;
    std::shared_ptr<infer::model> m;
    std::vector<infer::token> ids;
    const bool ok = guarded([&] {
        std::string err;
        m = infer::model::load(p, err);
        if (!m) return;
        ids = m->tokenize("Hello world", true, true);
        (void) m->detokenize(ids);
        for (auto t : ids) (void) m->piece(t);
    });
    if (!ok || !m || ids.empty()) return;

    // As scheduler::scheduler makes its context.
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = m->params().n_ctx * m->params().n_slots;
    cp.n_seq_max = m->params().n_slots;
    cp.n_batch = m->params().n_batch;
    cp.n_ubatch = m->params().n_batch;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    cp.kv_unified = false;
    cp.no_perf = true;
    llama_context_ptr ctx(llama_init_from_model(m->raw(), cp));
    if (!ctx) return;
    std::vector<llama_token> batch_ids(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 8));
    llama_batch b = llama_batch_get_one(batch_ids.data(), int32_t(batch_ids.size()));
    if (llama_decode(ctx.get(), b) == 0) (void) llama_get_logits_ith(ctx.get(), -1);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    infer::backend_init([](infer::log_level, std::string_view) {});
    llama_log_set(quiet, nullptr);
    ggml_set_abort_callback(on_ggml_abort);
    const char * k = getenv("REDIS_INFER_FUZZ_KNOWN");
    g_let_crash = k && strcmp(k, "crash") == 0;
    g_sample_dir = getenv("REDIS_INFER_FUZZ_KNOWN_DIR");
    g_path = "/tmp/redis-infer-fuzz-gguf-" + std::to_string(getpid()) + ".gguf";
    atexit(at_exit);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    g_data = data;
    g_size = size;
    if (!write_input(data, size)) return 0;
    guarded(vocab_only_load);
    full_load_and_decode();
    return 0;
}
