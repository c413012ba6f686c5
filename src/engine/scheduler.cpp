// See scheduler.h for the model. Rejected designs, for the record:
// - One thread or context per request (the seeds' worker pool): weights are shared but KV and
//   compute are not batched, so throughput stops growing at the core count.
// - A separate decode per slot: one llama_decode over all slots costs barely more than one
//   slot's, because decoding is bound by reading the weights.
#include "engine/scheduler.h"

#include "engine/backend.h"
#include "engine/sampling.h"
#include "engine/utf8.h"

#include <pthread.h>

#include <algorithm>
#include <stdexcept>

namespace infer {

struct scheduler::slot {
    llama_seq_id seq = 0;
    std::unique_ptr<infer_request> req;  // null = free
    std::unique_ptr<token_sampler> sampler;
    prompt_plan plan;         // plan.tokens: the prompt
    size_t n_prefilled = 0;   // prompt tokens already in the KV cache
    llama_pos n_past = 0;     // next position
    token last = -1;          // sampled, not yet decoded
    token sampled = -1;       // this step's sample
    bool generating = false;  // prompt fully prefilled
    int32_t batch_index = -1; // index of this slot's logits in the current batch, -1 = none
    uint64_t last_used = 0;   // finish order (0 = never used): the idle-server eviction order
    std::string text;
    std::vector<token> generated;
    std::vector<token> cached;  // tokens whose KV is in this slot's stream, in order
    int32_t n_reused = 0;       // prompt tokens reused from the prefix cache
    size_t streamed = 0;        // bytes of text already passed to on_stream
    std::vector<token> unstreamed;  // generated ids not yet passed to on_stream
    clock_type::time_point t_admit, t_first;
};

namespace {

void batch_add(llama_batch & b, token t, llama_pos pos, llama_seq_id seq, bool logits) {
    const int32_t i = b.n_tokens++;
    b.token[i] = t;
    b.pos[i] = pos;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = seq;
    b.logits[i] = logits;
}

}  // namespace

scheduler::scheduler(std::string name, std::shared_ptr<const model> m)
    : executor(std::move(name), std::move(m)),
      n_ctx_(model_->params().n_ctx),
      n_batch_(model_->params().n_batch),
      // Sampling 152k-entry rows for many slots is real work; with the model on a GPU the CPU
      // cores are free for it. On CPU they belong to the decode threads.
      pool_(model_->params().n_gpu_layers != 0 ? std::min<size_t>(7, std::max(1u, std::thread::hardware_concurrency()) - 1) : 0) {
    const model_params & p = model_->params();
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = p.n_ctx * p.n_slots;
    cp.n_seq_max = p.n_slots;
    cp.n_batch = p.n_batch;
    cp.n_ubatch = std::min<uint32_t>(p.n_batch, 512);
    cp.n_threads = p.n_threads;
    cp.n_threads_batch = p.n_threads;
    cp.kv_unified = false;  // one stream per slot: attention spans only the slot's own cells
    cp.no_perf = true;
    {
        abort_guard guard;  // llama.cpp asserts on shapes it cannot build: a failed load, not an abort
        ctx_.reset(llama_init_from_model(model_->raw(), cp));
    }
    if (!ctx_) throw std::runtime_error("llama.cpp could not create a context (see the server log)");
    memory_ = context_memory_usage(ctx_.get());

    batch_ = llama_batch_init(int32_t(p.n_batch), 0, 1);
    for (uint32_t i = 0; i < p.n_slots; ++i) {
        slots_.push_back(std::make_unique<slot>());
        slots_.back()->seq = llama_seq_id(i);
    }
    start("infer:", slots_.size());
}

scheduler::~scheduler() {
    stop(stop_mode_cancel);  // before the members the thread uses go
    llama_batch_free(batch_);
}

bool scheduler::idle() const { return free_slots() == slots_.size() && deferred_.empty(); }

void scheduler::add_stats(executor_stats & s) const {
    s.slots_busy = slots_busy_.load(std::memory_order_relaxed);
    s.slots_total = uint32_t(slots_.size());
    s.generated_tokens = generated_tokens_.load(std::memory_order_relaxed);
    s.prefix_hits = prefix_hits_.load(std::memory_order_relaxed);
    s.prefix_hit_tokens = prefix_hit_tokens_.load(std::memory_order_relaxed);
    s.prefix_evictions = prefix_evictions_.load(std::memory_order_relaxed);
    s.prefix_copies = prefix_copies_.load(std::memory_order_relaxed);
}

size_t scheduler::free_slots() const {
    return size_t(std::count_if(slots_.begin(), slots_.end(), [](const auto & s) { return !s->req; }));
}

void scheduler::take(request_list & queue, request_list & intake) {
    // Utility requests and finished-before-start requests never wait for a slot; generate
    // requests take free slots in arrival order.
    size_t room = free_slots() > deferred_.size() ? free_slots() - deferred_.size() : 0;
    const auto now = clock_type::now();
    for (auto it = queue.begin(); it != queue.end();) {
        infer_request & r = **it;
        const bool ends_now = r.control->cancelled.load() || now >= r.deadline;
        if (r.kind != request_kind_generate || ends_now || room > 0) {
            if (r.kind == request_kind_generate && !ends_now) --room;
            intake.push_back(std::move(*it));
            it = queue.erase(it);
        } else {
            ++it;
        }
    }
    spare_ = room;  // free slots no taken request will claim this step
}

void scheduler::abandon(request_list & intake, const engine_error & why) {
    if (why.code == error_code::unloaded) {
        // Stopping: what waits behind a prefill is answered with the queue, in arrival order.
        for (auto it = deferred_.rbegin(); it != deferred_.rend(); ++it) intake.push_front(std::move(it->req));
        deferred_.clear();
    }
    engine_error running = why;
    running.during_generation = why.code == error_code::unloaded;
    for (auto & s : slots_) {
        if (s->req) fail_slot(*s, running);
    }
}

bool scheduler::try_admit(admission & a) {
    std::unique_ptr<infer_request> & r = a.req;
    const auto now = clock_type::now();
    if (r->control->cancelled.load() || now >= r->deadline) {
        infer_result res;
        res.finish = r->control->cancelled.load() ? finish_reason_cancelled : finish_reason_timeout;
        res.queue_ms = ms_between(r->posted, now);
        complete(*r, std::move(res));
        return true;
    }
    if (!a.planned) {
        a.planned = true;
        infer_result res;
        res.error = prompt_build(*model_, *r, n_ctx_, a.plan);
        if (res.error) {
            complete(*r, std::move(res));
            return true;
        }
    }
    const std::vector<token> & prompt = a.plan.tokens;

    // The longest cached prefix; at least one prompt token is always decoded, for its logits.
    prefix_cache::match m;
    if (r->use_cache) m = cache_.longest(prompt, [](int32_t) { return true; });
    size_t reuse = std::min(m.length, prompt.size() - 1);
    if (r->use_cache) {
        // A slot still prefilling a much longer shared prefix will make it reusable soon.
        for (const auto & sp : slots_) {
            if (!sp->req || sp->generating) continue;
            const auto & other = sp->plan.tokens;
            size_t l = 0;
            while (l < other.size() && l < prompt.size() && other[l] == prompt[l]) ++l;
            if (l >= reuse + 64) return false;
        }
    }
    place(a, reuse, m);
    return true;
}

// Chooses the slot for an admitted request and readies its KV: reuse in place, copy another
// slot's stream, or evict, as scheduler.h describes.
void scheduler::place(admission & a, size_t reuse, const prefix_cache::match & m) {
    const auto now = clock_type::now();
    slot * target = nullptr;
    const bool all_idle = free_slots() == slots_.size();
    const bool owner_idle = reuse > 0 && !slots_[size_t(m.owner)]->req;
    if (owner_idle && (!all_idle || cache_.held(m.owner) <= reuse)) {
        target = slots_[size_t(m.owner)].get();  // the idle slot holding the prefix: reuse in place
    } else if (all_idle) {
        // Nothing runs, so slot order costs nothing: take the least recently used slot (copying
        // the shared prefix into it) and keep the other slots' prefixes. Sequential clients
        // (RAG questions over the same chunks, several chat sessions) keep SLOTS prefixes.
        for (auto & sp : slots_) {
            if (!target || sp->last_used < target->last_used) target = sp.get();
        }
    } else {
        // With one KV stream per slot, llama.cpp decodes a contiguous run of sequence ids in one
        // pass (split_equal, sequential) and splits the batch at every gap, so each extra run of
        // running slots costs a whole pass over the weights. Take the idle slot next to the most
        // running ones: one that fills a hole, else one that extends a run, the lowest on ties.
        // (Lowest-idle alone left a gap whenever the first request of a busy period had taken
        // the least recently used slot above: half the GPU throughput at 8 clients.)
        const auto running = [&](size_t i) { return i < slots_.size() && slots_[i]->req != nullptr; };
        int best_score = -1;
        for (size_t i = 0; i < slots_.size(); ++i) {
            if (slots_[i]->req) continue;
            const int score = (i > 0 && running(i - 1)) + running(i + 1);
            if (score > best_score) {
                best_score = score;
                target = slots_[i].get();
                if (score == 2) break;
            }
        }
    }
    slot & s = *target;  // the intake only takes as many generate requests as there are free slots
    llama_memory_t mem = llama_get_memory(ctx_.get());
    if (cache_.held(s.seq) > 0 && !(reuse > 0 && s.seq == m.owner)) {
        prefix_evictions_.fetch_add(1, std::memory_order_relaxed);
    }
    cache_.erase(s.seq);
    if (reuse > 0 && s.seq != m.owner) {
        // Another slot holds the prefix: copy its stream (the buffer copy runs at the next
        // decode, before that slot writes anything new), then cut it to the shared part.
        llama_memory_seq_cp(mem, m.owner, s.seq, -1, -1);
        prefix_copies_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!llama_memory_seq_rm(mem, s.seq, llama_pos(reuse), -1)) {
        llama_memory_seq_rm(mem, s.seq, -1, -1);  // this memory cannot be cut: start clean
        reuse = 0;
    }
    if (reuse > 0) {
        prefix_hits_.fetch_add(1, std::memory_order_relaxed);
        prefix_hit_tokens_.fetch_add(reuse, std::memory_order_relaxed);
    }

    s.sampler = std::make_unique<token_sampler>(a.req->sampling, model_->vocab());
    s.sampler->accept_prompt(a.plan.tokens);  // the repeat penalty looks back over the prompt, as llama-server's does
    s.plan = std::move(a.plan);
    s.cached.assign(s.plan.tokens.begin(), s.plan.tokens.begin() + long(reuse));
    s.n_reused = int32_t(reuse);
    s.n_prefilled = reuse;
    s.n_past = llama_pos(reuse);
    s.last = -1;
    s.generating = false;
    s.batch_index = -1;
    s.text.clear();
    s.generated.clear();
    s.streamed = 0;
    s.unstreamed.clear();
    s.t_admit = now;
    s.req = std::move(a.req);
    slots_busy_.fetch_add(1, std::memory_order_relaxed);
}

void scheduler::emit(slot & s, bool final) {
    if (!s.req->on_stream) return;
    size_t safe = s.text.size();
    if (!final) {
        // Hold back what could still become a stop string, and a split UTF-8 character.
        size_t hold = 0;
        for (const auto & stop : s.req->stop) {
            for (size_t k = std::min(stop.size() - 1, s.text.size()); k > hold; --k) {
                if (s.text.compare(s.text.size() - k, k, stop, 0, k) == 0) {
                    hold = k;
                    break;
                }
            }
        }
        safe -= std::max(hold, utf8_incomplete_tail(s.text));
    }
    if (safe <= s.streamed && s.unstreamed.empty()) return;
    const std::string delta = safe > s.streamed ? s.text.substr(s.streamed, safe - s.streamed) : std::string();
    s.streamed = std::max(s.streamed, safe);
    try {
        s.req->on_stream(s.unstreamed, delta);
    } catch (const std::exception & e) {
        log_msg(log_level::error, "model %s: stream callback threw: %s", name_.c_str(), e.what());
    }
    s.unstreamed.clear();
}

void scheduler::finish(slot & s, finish_reason why) {
    const auto now = clock_type::now();
    // However generation ended (MAX_TOKENS, STOP, TIMEOUT, cancel), a last character it cut
    // short is dropped: neither the reply nor the last stream entry ends in half a character.
    const size_t dropped = utf8_incomplete_tail(s.text);
    s.text.resize(s.text.size() - dropped);
    emit(s, true);
    infer_result res;
    res.dropped_utf8_bytes = int32_t(dropped);
    res.finish = why;
    res.text = std::move(s.text);
    res.tokens = std::move(s.generated);
    res.prompt_tokens = int32_t(s.plan.tokens.size());
    res.completion_tokens = int32_t(res.tokens.size());
    res.cached_tokens = s.n_reused;
    if (s.req->return_prompt) res.prompt = s.plan.tokens;
    res.queue_ms = ms_between(s.req->posted, s.t_admit);
    const auto first = s.t_first == clock_type::time_point{} ? now : s.t_first;
    res.prefill_ms = ms_between(s.t_admit, first);
    res.decode_ms = ms_between(first, now);
    if (s.plan.chat && why != finish_reason_cancelled) res.session = chat_session(*model_, s.plan, res.text);
    // The cells stay: what they hold becomes a cached prefix for later requests.
    cache_.insert(s.seq, s.cached);
    s.last_used = ++finished_;
    auto req = std::move(s.req);
    s.sampler.reset();
    s.t_first = {};
    slots_busy_.fetch_sub(1, std::memory_order_relaxed);
    complete(*req, std::move(res));
}

void scheduler::fail_slot(slot & s, const engine_error & error) {
    llama_memory_seq_rm(llama_get_memory(ctx_.get()), s.seq, -1, -1);
    cache_.erase(s.seq);
    s.cached.clear();
    auto req = std::move(s.req);
    s.sampler.reset();
    s.t_first = {};
    slots_busy_.fetch_sub(1, std::memory_order_relaxed);
    infer_result res;
    res.error = error;
    complete(*req, std::move(res));
}

void scheduler::step(request_list & intake) {
    // Deferred requests first, in arrival order, then the new intake.
    std::deque<admission> waiting;
    waiting.swap(deferred_);
    for (auto & r : intake) waiting.push_back(admission{std::move(r), {}, false});
    intake.clear();
    for (auto & a : waiting) {
        try {
            if (a.planned || !serve_utility(*a.req)) {
                if (a.req->kind != request_kind_generate) fail(*a.req, error_code::not_an_embedding_model);
                else if (!try_admit(a)) deferred_.push_back(std::move(a));
            }
        } catch (const std::exception & e) {
            // This request's bookkeeping failed (allocation): it fails, the others go on.
            if (a.req) {
                infer_result res;
                res.error.code = error_code::internal;
                res.error.detail = e.what();
                complete(*a.req, std::move(res));
            }
        }
    }
    decode_and_sample();
}

void scheduler::decode_and_sample() {
    // One decode token per generating slot first, then prefill chunks in admission order.
    batch_.n_tokens = 0;
    int32_t budget = int32_t(n_batch_);
    for (auto & sp : slots_) {
        slot & s = *sp;
        s.batch_index = -1;
        if (!s.req || !s.generating) continue;
        s.batch_index = batch_.n_tokens;
        batch_add(batch_, s.last, s.n_past, s.seq, true);
        --budget;
    }
    auto & chunks = chunks_;  // slot, prompt tokens added this step
    chunks.clear();
    for (auto & sp : slots_) {
        slot & s = *sp;
        if (!s.req || s.generating || budget <= 0) continue;
        const int32_t n = int32_t(std::min<size_t>(size_t(budget), s.plan.tokens.size() - s.n_prefilled));
        for (int32_t i = 0; i < n; ++i) {
            const size_t k = s.n_prefilled + size_t(i);
            const bool last = k + 1 == s.plan.tokens.size();
            if (last) s.batch_index = batch_.n_tokens;
            batch_add(batch_, s.plan.tokens[k], llama_pos(k), s.seq, last);
        }
        chunks.emplace_back(&s, n);
        budget -= n;
    }
    if (batch_.n_tokens == 0) return;

    const auto t0 = clock_type::now();
    const int32_t rc = llama_decode(ctx_.get(), batch_);
    steps_.fetch_add(1, std::memory_order_relaxed);
    if (rc != 0) {
        log_msg(log_level::error, "model %s: llama_decode returned %d for a batch of %d tokens", name_.c_str(), rc,
                batch_.n_tokens);
        engine_error err;
        err.code = error_code::decode_failed;
        err.rc = rc;
        for (auto & sp : slots_) {
            if (sp->req && (sp->generating || sp->batch_index >= 0 ||
                            std::any_of(chunks.begin(), chunks.end(), [&](auto & c) { return c.first == sp.get(); }))) {
                fail_slot(*sp, err);
            }
        }
        return;
    }
    for (auto & [s, n] : chunks) {
        s->cached.insert(s->cached.end(), s->plan.tokens.begin() + long(s->n_prefilled), s->plan.tokens.begin() + long(s->n_prefilled) + n);
        s->n_prefilled += size_t(n);
        s->n_past += n;
        prompt_tokens_.fetch_add(uint64_t(n), std::memory_order_relaxed);
        if (s->n_prefilled == s->plan.tokens.size()) cache_.insert(s->seq, s->cached);  // shareable from now on
    }

    // Sampling: the logits rows are fetched here (llama.cpp's accessors are not thread-safe),
    // then every slot samples its row, spread over the worker pool.
    std::vector<slot *> & sampling = sampling_slots_;
    std::vector<const float *> & rows = sampling_rows_;
    sampling.clear();
    rows.clear();
    for (auto & sp : slots_) {
        if (sp->req && sp->batch_index >= 0) {
            sampling.push_back(sp.get());
            rows.push_back(llama_get_logits_ith(ctx_.get(), sp->batch_index));
        }
    }
    sampled_.resize(sampling.size());
    pool_.parallel_for(sampling.size(), [&](size_t i) { sampled_[i] = sampling[i]->sampler->sample(rows[i]); });
    for (size_t i = 0; i < sampling.size(); ++i) sampling[i]->sampled = sampled_[i];

    const auto now = clock_type::now();
    for (auto & sp : slots_) {
        slot & s = *sp;
        if (!s.req) continue;
        if (s.batch_index >= 0) {
            if (s.generating) {  // the token decoded this step is now in the cache
                ++s.n_past;
                s.cached.push_back(s.last);
            }
            const token t = s.sampled;
            if (!s.generating) {
                s.generating = true;
                s.t_first = now;
            }
            if (model_->is_eog(t) && !s.req->ignore_eos) {
                finish(s, finish_reason_eos);
                continue;
            }
            generated_tokens_.fetch_add(1, std::memory_order_relaxed);
            s.generated.push_back(t);
            if (s.req->on_stream) s.unstreamed.push_back(t);
            s.last = t;
            const size_t before = s.text.size() - utf8_incomplete_tail(s.text);
            utf8_append(s.text, model_->piece(t));  // repaired as it grows: replies are valid UTF-8
            // A stop string must end inside the new piece to be new.
            size_t cut = std::string::npos;
            for (const auto & stop : s.req->stop) {
                const size_t from = before + 1 > stop.size() ? before + 1 - stop.size() : 0;
                const size_t at = s.text.find(stop, from);
                if (at != std::string::npos) cut = std::min(cut, at);
            }
            if (cut != std::string::npos) {
                s.text.resize(cut);
                finish(s, finish_reason_stop);
                continue;
            }
            if (int32_t(s.generated.size()) >= s.req->max_tokens) {
                finish(s, finish_reason_length);
                continue;
            }
            emit(s, false);
        }
        if (s.req->control->cancelled.load(std::memory_order_relaxed)) finish(s, finish_reason_cancelled);
        else if (now >= s.req->deadline) finish(s, finish_reason_timeout);
    }
    busy_us_.fetch_add(uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count()),
                       std::memory_order_relaxed);
}

}  // namespace infer
