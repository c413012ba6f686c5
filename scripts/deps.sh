# Why this file exists: every entry point (run.sh, test.sh, .ci/run, the GPU bench script)
# needs the same third-party parts, built the same way, from the package registries only.
# Source it, then call deps_all; it exports LLAMA_PREFIX, LLAMA_SRC and REDIS_PREFIX.
#
# Invariants:
# - Nothing third-party lands in the repository. Builds are cached under $REDIS_INFER_CACHE
#   (default ~/.cache/redis-infer), in a folder named by version and build flags, and a folder
#   only counts as built once its ".ok" stamp exists, so an interrupted build is redone.
# - llama.cpp comes from the git bundle inside the npm package node-llama-cpp (pinned).
# - Redis 8 is the system one if it is 8.x, else Debian trixie's source package, fetched with
#   a private apt sources list and lists directory (the system's apt config is not touched).
# - Never GGML_NATIVE: -march=native turns on AMX here, which dies with SIGILL. The ISA flags
#   are named explicitly (REDIS_INFER_CPU_FLAGS overrides them).

set -o pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
REDIS_DEB_VERSION=8.0.2
: "${REDIS_INFER_CACHE:=$HOME/.cache/redis-infer}"
: "${REDIS_INFER_JOBS:=$(nproc)}"
: "${REDIS_INFER_CUDA:=0}"
: "${REDIS_INFER_CPU_FLAGS:=-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON}"

deps_log() { printf '[deps] %s\n' "$*" >&2; }

deps_packages() {
    # Machines without package registries (the GPU machine) bring their own toolchain.
    [ "${REDIS_INFER_NO_APT:-0}" = 1 ] && return 0
    local want=(cmake ninja-build g++ pkg-config git libhiredis-dev libgtest-dev googletest
                tcl ca-certificates)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    command -v npm >/dev/null || missing+=(npm)
    [ ${#missing[@]} -eq 0 ] && return 0
    deps_log "installing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# llama.cpp: static, position-independent libraries (they link into redis_infer.so) plus the
# reference tools we compare against (llama-simple, llama-server, llama-batched-bench, ...).
deps_llama() {
    local cuda_flags="" tag="cpu"
    if [ "$REDIS_INFER_CUDA" = 1 ]; then
        cuda_flags="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${REDIS_INFER_CUDA_ARCH:-90}"
        tag="cuda${REDIS_INFER_CUDA_ARCH:-90}"
    fi
    local flags="$REDIS_INFER_CPU_FLAGS $cuda_flags ${REDIS_INFER_LLAMA_TOOLS:-}"
    local key; key=$(printf '%s' "$flags" | sha1sum | cut -c1-10)
    local dir="$REDIS_INFER_CACHE/llama.cpp-nlc$NODE_LLAMA_CPP_VERSION-$tag-$key"
    export LLAMA_PREFIX="$dir/prefix" LLAMA_SRC="$dir/src"
    [ -f "$dir/.ok" ] && return 0

    if [ -f "$dir/build/build.ninja" ] && [ -d "$dir/src" ]; then
        # An interrupted build resumes: re-extracting keeps files' times, so ninja redoes nothing.
        deps_log "resuming the llama.cpp build in $dir"
        if [ -n "${REDIS_INFER_LLAMA_TARBALL:-}" ]; then
            tar xzf "$REDIS_INFER_LLAMA_TARBALL" -C "$dir/src" --strip-components=1 || return 1
        fi
    else
        deps_log "building llama.cpp (node-llama-cpp@$NODE_LLAMA_CPP_VERSION, $tag) into $dir"
        rm -rf "$dir" && mkdir -p "$dir" || return 1
        if [ -n "${REDIS_INFER_LLAMA_TARBALL:-}" ]; then
            # GPU machine: no network there, so a trimmed source tarball travels with the tree.
            mkdir -p "$dir/src" && tar xzf "$REDIS_INFER_LLAMA_TARBALL" -C "$dir/src" --strip-components=1 || return 1
        else
            (cd "$dir" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null &&
             tar xzf "node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz" package/llama/gitRelease.bundle &&
             git -c advice.detachedHead=false clone -q package/llama/gitRelease.bundle src && rm -rf package ./*.tgz src/.git) || return 1
        fi
        # shellcheck disable=SC2086
        cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
            -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
            -DGGML_NATIVE=OFF $flags -DGGML_OPENMP=OFF -DGGML_CCACHE=OFF \
            -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
            -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
            -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF \
            >"$dir/configure.log" 2>&1 || { tail -30 "$dir/configure.log"; return 1; }
    fi
    local tools=(${REDIS_INFER_LLAMA_TOOLS:-llama-simple llama-completion llama-server llama-batched-bench llama-tokenize})
    cmake --build "$dir/build" -j "$REDIS_INFER_JOBS" --target llama ggml "${tools[@]}" \
        >"$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; return 1; }

    local p="$LLAMA_PREFIX"
    mkdir -p "$p/include" "$p/lib" "$p/bin" "$p/vocab" || return 1
    cp "$dir"/src/include/*.h "$dir"/src/ggml/include/*.h "$p/include/" &&
    find "$dir/build" -name '*.a' -exec cp {} "$p/lib/" \; &&
    for t in "${tools[@]}"; do cp "$dir/build/bin/$t" "$p/bin/"; done &&
    cp "$dir"/src/models/ggml-vocab-qwen2.gguf "$dir"/src/models/ggml-vocab-bert-bge.gguf "$p/vocab/" &&  # kept in trimmed tarballs
    printf '%s\n' "$flags" >"$dir/flags" &&
    rm -rf "$dir/build" && touch "$dir/.ok"
}

deps_redis() {
    local dir="$REDIS_INFER_CACHE/redis-$REDIS_DEB_VERSION"
    export REDIS_PREFIX="$dir" REDIS_SERVER="$dir/bin/redis-server" REDIS_CLI="$dir/bin/redis-cli"
    local sys_ok=0
    if command -v redis-server >/dev/null && redis-server --version | grep -q ' v=8\.'; then
        sys_ok=1
        REDIS_SERVER=$(command -v redis-server)
        REDIS_CLI=$(command -v redis-cli || echo "$dir/bin/redis-cli")
    fi
    [ -f "$dir/.ok" ] && return 0

    deps_log "fetching Redis $REDIS_DEB_VERSION from Debian's source package into $dir"
    rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial" "$dir/apt/parts" "$dir/src" "$dir/bin" "$dir/include" || return 1
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        >"$dir/apt/sources.list"
    local aopt=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o "Dir::Etc::SourceParts=$dir/apt/parts"
                -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache::archives=$dir/apt")
    if [ -n "${REDIS_INFER_REDIS_TARBALL:-}" ]; then
        cp "$REDIS_INFER_REDIS_TARBALL" "$dir/src/" || return 1  # offline: the source travels
    else
        (cd "$dir/src" && apt-get -qq "${aopt[@]}" update && apt-get -qq "${aopt[@]}" source --download-only redis) \
            >"$dir/fetch.log" 2>&1 || { cat "$dir/fetch.log"; return 1; }
    fi
    local orig; orig=$(ls "$dir"/src/redis_*.orig.tar.gz 2>/dev/null | head -1)
    [ -n "$orig" ] || { deps_log "no redis source in trixie: $(ls "$dir/src")"; return 1; }
    case "$orig" in *"_$REDIS_DEB_VERSION.orig"*) ;; *) deps_log "note: trixie now ships $(basename "$orig")";; esac
    tar xzf "$orig" -C "$dir/src" || return 1
    local tree; tree=$(find "$dir/src" -maxdepth 1 -mindepth 1 -type d -name 'redis-*' | head -1)
    # redismodule.h always comes from the source; the server is built only when the system lacks 8.x.
    cp "$tree/src/redismodule.h" "$dir/include/" || return 1
    if [ "$sys_ok" = 0 ] || [ ! -x "$REDIS_CLI" ]; then
        deps_log "building redis-server (about a minute on 2 cores)"
        # No LTO: not every toolchain has the LTO plugin (the GPU image lacks it).
        make -C "$tree" -j "$REDIS_INFER_JOBS" BUILD_TLS=no OPTIMIZATION=-O2 >"$dir/build.log" 2>&1 ||
            { tail -40 "$dir/build.log"; return 1; }
        cp "$tree/src/redis-server" "$tree/src/redis-cli" "$tree/src/redis-benchmark" "$dir/bin/" || return 1
    fi
    rm -rf "$dir/src" "$dir/apt" && touch "$dir/.ok"
}

deps_all() {
    deps_packages && deps_redis && deps_llama
}

# CMake flags for this project matching how the dependencies were built.
deps_cmake_flags() {
    if [ "$REDIS_INFER_CUDA" = 1 ]; then echo -n "-DREDIS_INFER_CUDA=ON"; else echo -n "-DREDIS_INFER_CUDA=OFF"; fi
    # Without package registries there is no GoogleTest or hiredis: build and benchmark only.
    if [ "${REDIS_INFER_NO_APT:-0}" = 1 ]; then echo " -DREDIS_INFER_TESTS=OFF"; else echo; fi
}
