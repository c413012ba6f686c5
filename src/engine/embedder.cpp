// See embedder.h.
#include "engine/embedder.h"

#include "engine/backend.h"

#include <cmath>
#include <stdexcept>

namespace infer {
namespace {

llama_context_params embedding_context_params(const model_params & p, enum llama_pooling_type pooling) {
    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.pooling_type = pooling;
    cp.n_ctx = p.n_batch;  // cells for one decode's inputs; cleared before the next
    cp.n_batch = p.n_batch;
    cp.n_ubatch = p.n_batch;
    cp.n_seq_max = p.n_slots;
    cp.kv_unified = true;
    cp.n_threads = p.n_threads;
    cp.n_threads_batch = p.n_threads;
    cp.no_perf = true;
    return cp;
}

}  // namespace

embedder::embedder(std::string name, std::shared_ptr<const model> m)
    : executor(std::move(name), std::move(m)),
      n_ctx_(model_->params().n_ctx),
      n_batch_(model_->params().n_batch),
      n_seq_(model_->params().n_slots) {
    const model_params & p = model_->params();
    abort_guard guard;  // llama.cpp asserts on shapes it cannot build: a failed load, not an abort
    ctx_.reset(llama_init_from_model(model_->raw(), embedding_context_params(p, LLAMA_POOLING_TYPE_UNSPECIFIED)));
    if (!ctx_) throw std::runtime_error("llama.cpp could not create an embedding context (see the server log)");
    const enum llama_pooling_type pooling = llama_pooling_type(ctx_.get());
    if (pooling == LLAMA_POOLING_TYPE_RANK) {
        throw std::runtime_error("the model is a reranker (rank pooling) - it gives scores, not embeddings");
    }
    if (pooling == LLAMA_POOLING_TYPE_NONE) {
        // Per-token outputs only (a generative GGUF): average them, as most embedding models do.
        log_msg(log_level::info, "model %s declares no pooling; using mean pooling", name_.c_str());
        ctx_.reset(llama_init_from_model(model_->raw(), embedding_context_params(p, LLAMA_POOLING_TYPE_MEAN)));
        if (!ctx_) throw std::runtime_error("llama.cpp could not create an embedding context (see the server log)");
    }
    memory_ = context_memory_usage(ctx_.get());
    batch_ = llama_batch_init(int32_t(n_batch_), 0, 1);
    // As the scheduler's free slots: a burst one decode takes does not count against the bound.
    start("embed:", n_seq_);
}

embedder::~embedder() {
    stop(stop_mode_cancel);  // before the members the thread uses go
    llama_batch_free(batch_);
}

void embedder::add_stats(executor_stats & s) const {
    s.slots_busy = busy_.load(std::memory_order_relaxed);
    s.slots_total = n_seq_;
}

void embedder::take(request_list & queue, request_list & intake) {
    // Embed requests up to one decode's worth of inputs; utility requests always.
    size_t room = n_seq_ > pending_.size() ? n_seq_ - pending_.size() : 0;
    while (!queue.empty() && (room > 0 || queue.front()->kind != request_kind_embed)) {
        if (queue.front()->kind == request_kind_embed) --room;
        intake.push_back(std::move(queue.front()));
        queue.pop_front();
    }
}

void embedder::abandon(request_list & intake, const engine_error &) {
    for (auto & in : pending_) intake.push_back(std::move(in.req));
    pending_.clear();
    busy_.store(0, std::memory_order_relaxed);
}

bool embedder::prepare(std::unique_ptr<infer_request> & r, input & in) {
    infer_result res;
    if (r->control->cancelled.load()) {
        res.error.code = error_code::cancelled;
        res.finish = finish_reason_cancelled;
    } else {
        // Documents are data: "<|im_end|>" in a file is text, never a control token.
        try {
            in.tokens = r->text.empty() ? std::move(r->prompt) : model_->tokenize(r->text, /*parse_special=*/false, /*add_bos=*/true);
            if (r->token_model) in.gen_tokens = r->token_model->tokenize(r->text, false, /*add_bos=*/false);
        } catch (const tokenize_error & e) {
            res.error.code = error_code::tokenize_failed;
            res.error.detail = e.what();
        }
        if (res.error) {
        } else if (in.tokens.empty() || (r->token_model && in.gen_tokens.empty())) {
            res.error.code = error_code::input_empty;
        } else if (in.tokens.size() > n_ctx_) {
            res.error.code = error_code::input_over_context;
            res.error.got = int64_t(in.tokens.size());
            res.error.limit = n_ctx_;
        }
    }
    if (res.error) {
        complete(*r, std::move(res));
        return false;
    }
    in.req = std::move(r);
    return true;
}

void embedder::step(std::deque<std::unique_ptr<infer_request>> & intake) {
    for (auto & r : intake) {
        if (serve_utility(*r)) continue;
        if (r->kind != request_kind_embed) {
            fail(*r, error_code::not_a_generation_model);
        } else {
            input in;
            if (prepare(r, in)) pending_.push_back(std::move(in));
        }
    }
    intake.clear();
    if (pending_.empty()) return;

    // The first inputs that fit one decode (each fits alone: n_ctx <= n_batch).
    size_t n = 0, n_tokens = 0;
    while (n < pending_.size() && n < n_seq_ && n_tokens + pending_[n].tokens.size() <= n_batch_) {
        n_tokens += pending_[n].tokens.size();
        ++n;
    }
    busy_.store(uint32_t(n), std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    batch_.n_tokens = 0;
    for (size_t i = 0; i < n; ++i) {
        const auto & toks = pending_[i].tokens;
        for (size_t j = 0; j < toks.size(); ++j) {
            const int32_t k = batch_.n_tokens++;
            batch_.token[k] = toks[j];
            batch_.pos[k] = llama_pos(j);
            batch_.n_seq_id[k] = 1;
            batch_.seq_id[k][0] = llama_seq_id(i);
            batch_.logits[k] = 1;
        }
    }
    if (llama_memory_t mem = llama_get_memory(ctx_.get())) llama_memory_clear(mem, true);
    const int rc = llama_decode(ctx_.get(), batch_);
    const auto t1 = clock_type::now();
    steps_.fetch_add(1, std::memory_order_relaxed);
    prompt_tokens_.fetch_add(n_tokens, std::memory_order_relaxed);
    busy_us_.fetch_add(uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()),
                       std::memory_order_relaxed);

    const int32_t n_embd = model_->info().n_embd;
    for (size_t i = 0; i < n; ++i) {
        input & in = pending_[i];
        infer_result res;
        const float * e = rc == 0 ? llama_get_embeddings_seq(ctx_.get(), llama_seq_id(i)) : nullptr;
        if (!e) {
            res.error.code = error_code::embed_failed;
            res.error.rc = rc;
        } else {
            res.embedding.assign(e, e + n_embd);
            if (in.req->normalize) {
                double sum = 0;
                for (float v : res.embedding) sum += double(v) * v;
                const float inv = sum > 0 ? float(1.0 / std::sqrt(sum)) : 0.0f;
                for (float & v : res.embedding) v *= inv;
            }
            res.tokens = std::move(in.gen_tokens);
            res.prompt_tokens = int32_t(in.tokens.size());
            res.queue_ms = ms_between(in.req->posted, t0);
            res.prefill_ms = ms_between(t0, t1);
        }
        complete(*in.req, std::move(res));
    }
    pending_.erase(pending_.begin(), pending_.begin() + long(n));
    busy_.store(0, std::memory_order_relaxed);
}

}  // namespace infer
