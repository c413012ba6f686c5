// See prefix_cache.h. Each node's edge is a run of tokens; `owners` lists every entry whose
// tokens pass through (or end inside) the node, so a match that stops inside an edge can still
// name an owner.
#include "engine/prefix_cache.h"

#include <algorithm>

namespace infer {

struct prefix_cache::node {
    std::vector<token> edge;
    std::map<token, std::unique_ptr<node>> children;
    std::set<int32_t> owners;
};

prefix_cache::prefix_cache() : root_(std::make_unique<node>()) {}
prefix_cache::~prefix_cache() = default;

void prefix_cache::insert(int32_t owner, std::span<const token> tokens) {
    erase(owner);
    if (tokens.empty()) return;
    entries_[owner].assign(tokens.begin(), tokens.end());
    node * n = root_.get();
    size_t i = 0;
    while (i < tokens.size()) {
        auto it = n->children.find(tokens[i]);
        if (it == n->children.end()) {
            auto leaf = std::make_unique<node>();
            leaf->edge.assign(tokens.begin() + long(i), tokens.end());
            leaf->owners.insert(owner);
            n->children.emplace(tokens[i], std::move(leaf));
            return;
        }
        node * child = it->second.get();
        size_t k = 0;
        while (k < child->edge.size() && i + k < tokens.size() && child->edge[k] == tokens[i + k]) ++k;
        if (k < child->edge.size()) {
            // Split the edge at k: a new middle node takes the shared part.
            auto mid = std::make_unique<node>();
            mid->edge.assign(child->edge.begin(), child->edge.begin() + long(k));
            mid->owners = child->owners;
            auto rest = std::move(it->second);
            rest->edge.erase(rest->edge.begin(), rest->edge.begin() + long(k));
            const token key = rest->edge.front();
            mid->children.emplace(key, std::move(rest));
            it->second = std::move(mid);
            child = it->second.get();
        }
        child->owners.insert(owner);
        n = child;
        i += k;
    }
}

void prefix_cache::erase(int32_t owner) {
    auto e = entries_.find(owner);
    if (e == entries_.end()) return;
    const std::vector<token> tokens = std::move(e->second);
    entries_.erase(e);
    node * n = root_.get();
    size_t i = 0;
    while (i < tokens.size()) {
        auto it = n->children.find(tokens[i]);
        if (it == n->children.end()) return;
        node * child = it->second.get();
        child->owners.erase(owner);
        const size_t step = child->edge.size();
        if (child->owners.empty()) {
            n->children.erase(it);  // nobody else passes through: drop the whole subtree
            return;
        }
        n = child;
        i += step;
    }
}

prefix_cache::match prefix_cache::longest(std::span<const token> query,
                                          const std::function<bool(int32_t)> & usable) const {
    match best;
    const node * n = root_.get();
    size_t depth = 0;
    while (depth < query.size()) {
        auto it = n->children.find(query[depth]);
        if (it == n->children.end()) break;
        const node * child = it->second.get();
        size_t k = 0;
        while (k < child->edge.size() && depth + k < query.size() && child->edge[k] == query[depth + k]) ++k;
        for (int32_t o : child->owners) {
            if (usable(o)) {
                best = {o, depth + k};
                break;
            }
        }
        if (k < child->edge.size()) break;
        depth += k;
        n = child;
    }
    return best;
}

size_t prefix_cache::held(int32_t owner) const {
    auto e = entries_.find(owner);
    return e == entries_.end() ? 0 : e->second.size();
}

}  // namespace infer
