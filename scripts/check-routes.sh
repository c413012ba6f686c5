#!/usr/bin/env bash
# Fetches, from an empty temporary directory and past every local cache, what the build takes
# from each package registry: Redis' upstream tarball as Debian's trixie Sources index names it
# (checked against the index's SHA256), the pinned node-llama-cpp from the npm registry (npm
# checks its integrity), and one Debian binary package through the machine's apt. Seconds, not a
# rebuild - and a registry route that broke fails the run even when ~/.cache/redis-infer is warm
# (scripts/test.sh runs this first).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)

tarball=$(REDIS_INFER_STRICT_PIN=1 deps_fetch_redis_source "$tmp") || { echo "route check FAILED: Redis source from Debian $REDIS_DEB_SUITE" >&2; exit 1; }
tar tzf "$tarball" >"$tmp/redis.list" && grep -q '/src/redismodule.h$' "$tmp/redis.list" ||
    { echo "route check FAILED: $(basename "$tarball") holds no src/redismodule.h" >&2; exit 1; }
deps_log "route ok: $(basename "$tarball") (SHA256 checked against trixie's Sources index)"

mkdir "$tmp/npm"
(cd "$tmp/npm" && npm pack --silent --cache "$tmp/npm-cache" "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null) ||
    { echo "route check FAILED: npm pack node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >&2; exit 1; }
tar tzf "$tmp/npm/node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz" >"$tmp/npm.list" &&
    grep -qx 'package/llama/gitRelease.bundle' "$tmp/npm.list" ||
    { echo "route check FAILED: node-llama-cpp@$NODE_LLAMA_CPP_VERSION carries no llama.cpp bundle" >&2; exit 1; }
deps_log "route ok: node-llama-cpp@$NODE_LLAMA_CPP_VERSION from the npm registry (fresh npm cache)"

if [ "${REDIS_INFER_NO_APT:-0}" != 1 ]; then
    mkdir "$tmp/deb" && chmod 777 "$tmp/deb"
    (cd "$tmp/deb" && apt-get download -qq libhiredis-dev >/dev/null 2>&1) || {
        # The package lists may just be old (the mirror dropped that revision): refresh them once.
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update -qq && (cd "$tmp/deb" && apt-get download -qq libhiredis-dev)
    } || { echo "route check FAILED: apt-get download libhiredis-dev" >&2; exit 1; }
    deps_log "route ok: $(ls "$tmp/deb") through apt"
fi
deps_log "registry routes checked in $(( $(date +%s) - t0 )) s"
