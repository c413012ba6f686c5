// See embedder.h.
#include "engine/embedder.h"
#include "engine/utf8.h"

#include "engine/backend.h"

#include <pthread.h>

#include <cmath>
#include <stdexcept>

namespace infer {
namespace {

double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

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
    : name_(std::move(name)),
      model_(std::move(m)),
      n_ctx_(model_->params().n_ctx),
      n_batch_(model_->params().n_batch),
      n_seq_(model_->params().n_slots),
      queue_max_(model_->params().queue_max) {
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
    batch_ = llama_batch_init(int32_t(n_batch_), 0, 1);
    thread_ = std::thread([this] { run(); });
}

embedder::~embedder() {
    stop(stop_mode_cancel);
    llama_batch_free(batch_);
}

submit_status embedder::submit(std::unique_ptr<infer_request> & req) {
    {
        std::lock_guard lk(mu_);
        if (stopping_) return submit_status_stopped;
        // As the scheduler: a burst that one decode takes does not count against the bound.
        if (queue_.size() >= size_t(queue_max_) + n_seq_) return submit_status_queue_full;
        req->posted = clock_type::now();
        queue_.push_back(std::move(req));
        queue_depth_.store(uint32_t(queue_.size()), std::memory_order_relaxed);
    }
    cv_.notify_one();
    return submit_status_ok;
}

void embedder::stop(stop_mode mode) {
    {
        std::lock_guard lk(mu_);
        if (!stopping_) {
            stopping_ = true;
            stop_mode_ = mode;
        } else if (mode == stop_mode_cancel) {
            stop_mode_ = stop_mode_cancel;
        }
    }
    cv_.notify_one();
    std::lock_guard jl(join_mu_);
    if (thread_.joinable()) thread_.join();
}

scheduler_stats embedder::stats() const {
    scheduler_stats s;
    s.slots_busy = busy_.load(std::memory_order_relaxed);
    s.slots_total = n_seq_;
    s.queue_depth = queue_depth_.load(std::memory_order_relaxed);
    s.queue_max = queue_max_;
    s.requests_total = requests_total_.load(std::memory_order_relaxed);
    s.requests_failed = requests_failed_.load(std::memory_order_relaxed);
    s.prompt_tokens = prompt_tokens_.load(std::memory_order_relaxed);
    s.steps = steps_.load(std::memory_order_relaxed);
    s.busy_seconds = double(busy_us_.load(std::memory_order_relaxed)) / 1e6;
    return s;
}

void embedder::complete(infer_request & r, infer_result && res) {
    requests_total_.fetch_add(1, std::memory_order_relaxed);
    if (!res.error.empty()) requests_failed_.fetch_add(1, std::memory_order_relaxed);
    auto done = std::move(r.on_done);
    r.on_done = nullptr;
    if (!done) return;
    try {
        done(std::move(res));
    } catch (const std::exception & e) {
        log_msg(log_level::error, "model %s: completion callback threw: %s", name_.c_str(), e.what());
    }
}

void embedder::run() {
    pthread_setname_np(pthread_self(), ("embed:" + name_).substr(0, 15).c_str());
    std::deque<std::unique_ptr<infer_request>> intake;
    for (;;) {
        bool cancel_all = false;
        {
            std::unique_lock lk(mu_);
            if (pending_.empty()) cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_ && stop_mode_ == stop_mode_cancel) {
                cancel_all = true;
                while (!queue_.empty()) {
                    intake.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            } else if (stopping_ && queue_.empty() && pending_.empty()) {
                break;
            } else {
                // Embed requests up to one decode's worth of inputs; utility requests always.
                size_t room = n_seq_ > pending_.size() ? n_seq_ - pending_.size() : 0;
                while (!queue_.empty() && (room > 0 || queue_.front()->kind != request_kind_embed)) {
                    if (queue_.front()->kind == request_kind_embed) --room;
                    intake.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
            queue_depth_.store(uint32_t(queue_.size()), std::memory_order_relaxed);
        }
        if (cancel_all) {
            const std::string err = "ERR model '" + name_ + "' was unloaded";
            for (auto & in : pending_) intake.push_back(std::move(in.req));
            pending_.clear();
            for (auto & r : intake) {
                infer_result res;
                res.error = err;
                complete(*r, std::move(res));
            }
            intake.clear();
            break;
        }
        try {
            step(intake);
        } catch (const std::exception & e) {
            log_msg(log_level::error, "model %s: embedding step failed: %s", name_.c_str(), e.what());
            for (auto & in : pending_) intake.push_back(std::move(in.req));
            pending_.clear();
            for (auto & r : intake) {
                if (!r) continue;
                infer_result res;
                res.error = std::string("ERR internal error in the embedder: ") + e.what();
                complete(*r, std::move(res));
            }
            intake.clear();
        }
    }
    busy_.store(0);
}

bool embedder::prepare(std::unique_ptr<infer_request> & r, input & in) {
    infer_result res;
    if (r->control->cancelled.load()) {
        res.error = "ERR request cancelled";
        res.finish = finish_reason_cancelled;
    } else {
        // Documents are data: "<|im_end|>" in a file is text, never a control token.
        try {
            in.tokens = r->text.empty() ? std::move(r->prompt) : model_->tokenize(r->text, /*parse_special=*/false, /*add_bos=*/true);
            if (r->token_model) in.gen_tokens = r->token_model->tokenize(r->text, false, /*add_bos=*/false);
        } catch (const tokenize_error & e) {
            res.error = e.what();
        }
        if (!res.error.empty()) {
        } else if (in.tokens.empty() || (r->token_model && in.gen_tokens.empty())) {
            res.error = "ERR the input is empty - got 0 tokens, expected at least 1";
        } else if (in.tokens.size() > n_ctx_) {
            res.error = "ERR embedding input too long - got " + std::to_string(in.tokens.size()) +
                        " tokens, expected at most " + std::to_string(n_ctx_) + " (the model's CTX)";
        }
    }
    if (!res.error.empty()) {
        complete(*r, std::move(res));
        return false;
    }
    in.req = std::move(r);
    return true;
}

void embedder::step(std::deque<std::unique_ptr<infer_request>> & intake) {
    for (auto & r : intake) {
        if (r->kind == request_kind_tokenize) {
            infer_result res;
            try {
                res.tokens = model_->tokenize(r->text, r->parse_special, /*add_bos=*/true);
            } catch (const tokenize_error & e) {
                res.error = e.what();
            }
            if (r->with_offsets) res.offsets = model_->token_offsets(res.tokens, r->text.size());
            complete(*r, std::move(res));
        } else if (r->kind == request_kind_detokenize) {
            infer_result res;
            res.text = utf8_repair(model_->detokenize(r->prompt));
            complete(*r, std::move(res));
        } else if (r->kind != request_kind_embed) {
            infer_result res;
            res.error = "ERR model '" + name_ + "' is an embedding model - it cannot generate; use INFER.EMBED";
            complete(*r, std::move(res));
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
            res.error = "ERR embedding failed in llama.cpp (decode returned " + std::to_string(rc) + ", see the server log)";
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
