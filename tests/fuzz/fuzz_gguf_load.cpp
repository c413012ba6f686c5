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
//   3. if that loaded: a context made as the scheduler makes one (guarded, as there), and one
//      decode of those tokens (what the first INFER.GENERATE would do), not guarded.
// llama.cpp's log is silenced. Seeds: scripts/fuzz.sh builds the corpus from gguf_seed (whole
// models of a few KB) and the test models truncated to a few KB.
//
// llama.cpp trusts a model file's contents: dozens of GGML_ASSERTs on metadata values (a
// duplicated token string, block_count 0 or > 512, a BOS the vocabulary asks for but lacks, ...)
// abort the process. The module's abort guard (engine/backend.h) turns those raised while loading
// and tokenizing into errors, so steps 1 and 2 run under it as the module runs them; each
// refused assert is counted by site and printed at exit (REDIS_INFER_FUZZ_KNOWN_DIR=<dir> keeps
// the first input per site). Any abort outside a guard (the decode in step 3), any
// sanitizer report, a timeout or an out-of-memory is a crash.
//
// Which exceptions count as a refusal: those a load or tokenize error is made of - the guard's
// ggml_abort_error, infer::tokenize_error, and llama.cpp's std::runtime_error / out_of_range /
// invalid_argument on bad contents. Anything else is a crash: std::bad_alloc or
// std::length_error (a size taken from the file and allocated; under ASan's
// allocator_may_return_null an allocation over the limit throws instead of reaching the RSS
// limit, and llama.cpp's loader would log it and fail the load, hiding it) - in Redis that same
// file could take gigabytes or the server's memory - and any exception of another type. llama.cpp's
// own catch-all in llama_model_load turns those into a log line; the log sink stops the run there too.
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
#include <new>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

std::string g_path;
std::map<std::string, size_t> g_known;  // assert site ("llama-vocab.cpp:2539: GGML_ASSERT(...)") -> inputs
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

// An exception that is not a load error: report it and abort, so libFuzzer keeps the input.
[[noreturn]] void crash(const std::string & what) {
    fprintf(stderr, "fuzz_gguf_load: not a load error, a finding: %s\n", what.c_str());
    abort();
}

bool is_allocation_failure(std::string_view what) {
    return what.find("bad_alloc") != std::string_view::npos || what.find("length_error") != std::string_view::npos ||
           what.find("bad_array_new_length") != std::string_view::npos ||
           what.find("cannot create std::vector larger than max_size") != std::string_view::npos ||
           what.find("basic_string::_M_create") != std::string_view::npos;
}

// The guard logs each refused assert; count it by site. llama.cpp's loader catches every
// std::exception and logs "error loading model: <what>": an allocation failure there is a crash.
void on_log(infer::log_level level, std::string_view msg) {
    static const std::string_view refused = "llama.cpp assertion failed (refused, not aborted): ";
    if (msg.substr(0, refused.size()) == refused) count_known(std::string(msg.substr(refused.size())));
    else if (level == infer::log_level::error && is_allocation_failure(msg)) crash("llama.cpp logged: " + std::string(msg));
}

// What the module does with the exceptions out of the guarded calls: a failed load or request.
template <class F>
bool guarded(F && f) {
    try {
        infer::abort_guard guard;
        f();
        return true;
    } catch (const infer::ggml_abort_error &) {
        return false;  // a refused assert, counted by on_log
    } catch (const std::bad_alloc & e) {
        crash(std::string("std::bad_alloc: ") + e.what());
    } catch (const std::length_error & e) {
        crash(std::string("std::length_error: ") + e.what());
    } catch (const std::runtime_error & e) {
        // infer::tokenize_error (which may wrap an allocation failure of llama_tokenize) and
        // llama.cpp's own errors on bad contents.
        if (is_allocation_failure(e.what())) crash(std::string("wrapped: ") + e.what());
        count_known(std::string("exception: ") + e.what());
        return false;
    } catch (const std::out_of_range & e) {
        // From llama.cpp's C API: llama_detokenize on the -1 its WordPiece tokenizer emits when
        // the vocabulary has no UNK (a std::map::at), caught by the module's command guard and
        // scheduler step.
        count_known(std::string("exception: ") + e.what());
        return false;
    } catch (const std::invalid_argument & e) {
        count_known(std::string("exception: ") + e.what());  // "invalid codepoint" from the BPE pre-tokenizer
        return false;
    } catch (const std::exception & e) {
        crash(std::string("unexpected exception: ") + e.what());
    } catch (...) {
        crash("an exception not derived from std::exception");
    }
}

void at_exit() {
    if (!g_path.empty()) unlink(g_path.c_str());
    for (const auto & [site, n] : g_known) fprintf(stderr, "fuzz_gguf_load: refused (%zu inputs): %s\n", n, site.c_str());
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
        infer::engine_error err;
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
    llama_context_ptr ctx;
    if (!guarded([&] { ctx.reset(llama_init_from_model(m->raw(), cp)); }) || !ctx) return;
    std::vector<llama_token> batch_ids(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 8));
    llama_batch b = llama_batch_get_one(batch_ids.data(), int32_t(batch_ids.size()));
    if (llama_decode(ctx.get(), b) == 0) (void) llama_get_logits_ith(ctx.get(), -1);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    infer::backend_init(on_log);
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
