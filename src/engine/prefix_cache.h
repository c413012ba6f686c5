// Which KV sequence holds the longest prefix of a prompt: a radix tree over token ids (as
// SGLang's RadixCache), whose entries are "sequence s holds these tokens in its KV cells".
//
// The scheduler inserts an entry when a sequence's cells are known to hold those tokens
// (prefill done, generation finished) and erases it when it reuses or frees the sequence.
// Lookup walks the tree along the query, so it costs O(prompt length) whatever the number of
// entries. Only the scheduler thread uses it; it holds no llama.cpp state.
#pragma once

#include "engine/tokens.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <vector>

namespace infer {

class prefix_cache {
public:
    struct match {
        int32_t owner = -1;  // sequence id, -1 = none
        size_t length = 0;   // tokens of the query it holds
    };

    prefix_cache();
    ~prefix_cache();

    // Records that `owner` holds exactly `tokens` (replacing what it held before).
    void insert(int32_t owner, std::span<const token> tokens);
    void erase(int32_t owner);
    // The owner holding the longest prefix of `query` among those `usable` accepts; ties go to
    // the lowest owner id.
    match longest(std::span<const token> query, const std::function<bool(int32_t)> & usable) const;
    size_t held(int32_t owner) const;  // tokens recorded for owner, 0 if none
    size_t size() const { return entries_.size(); }

private:
    struct node;
    std::unique_ptr<node> root_;
    std::map<int32_t, std::vector<token>> entries_;
};

}  // namespace infer
