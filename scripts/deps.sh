# Why this file exists: every entry point (run.sh, test.sh, .ci/run, the GPU bench script)
# needs the same third-party parts, built the same way, from the package registries only.
# Source it, then call deps_all; it exports LLAMA_PREFIX, LLAMA_SRC and REDIS_PREFIX.
#
# Invariants:
# - Nothing third-party lands in the repository, and no registry host is named here: Debian's
#   mirror is the one the machine's own apt configuration names. Builds are cached under
#   $REDIS_INFER_CACHE (default ~/.cache/redis-infer), in a folder named by version and build
#   flags, and a folder only counts as built once its ".ok" stamp exists.
# - llama.cpp comes from the git bundle inside the npm package node-llama-cpp (pinned).
# - Redis 8 is the system one if it is 8.x, else the upstream tarball (.orig.tar.gz) of Debian
#   trixie's source package, checked against the SHA256 in trixie's Sources index. Only the
#   upstream tarball is used, so a Debian revision the mirror no longer serves does not matter;
#   another 8.x upstream version than REDIS_DEB_VERSION is built with a loud note, and fails
#   CI's route check (which says how to move the pin). deps_redis logs which redis-server it
#   chose and its version.
# - Never GGML_NATIVE and never AMX: -march=native turns AMX on where it is advertised but
#   faults. The ISA flags come from the build machine's /proc/cpuinfo (deps_cpu_flags), or the
#   "portable" preset, or REDIS_INFER_CPU_FLAGS; they are part of the cache key, and the ISA
#   they need is recorded in the prefix so the module refuses to load on a CPU without it.

set -o pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
REDIS_DEB_VERSION=8.0.2
REDIS_DEB_SUITE=trixie
: "${REDIS_INFER_CACHE:=$HOME/.cache/redis-infer}"
: "${REDIS_INFER_JOBS:=$(nproc)}"
: "${REDIS_INFER_CUDA:=0}"
: "${REDIS_INFER_CPU_PRESET:=detect}"

deps_log() { printf '[deps] %s\n' "$*" >&2; }

# ggml CMake options and the /proc/cpuinfo flag names each one needs on the running CPU.
# AVX-512 in ggml means F+CD+VL+DQ+BW (ggml-cpu's CMakeLists). Never AMX.
DEPS_ISA_TABLE=(
    "GGML_SSE42:sse4_2" "GGML_AVX:avx" "GGML_AVX2:avx2" "GGML_FMA:fma" "GGML_F16C:f16c" "GGML_BMI2:bmi2"
    "GGML_AVX_VNNI:avx_vnni"
    "GGML_AVX512:avx512f,avx512cd,avx512vl,avx512dq,avx512bw"
    "GGML_AVX512_VBMI:avx512_vbmi" "GGML_AVX512_VNNI:avx512_vnni" "GGML_AVX512_BF16:avx512_bf16"
)
DEPS_ISA_PORTABLE="GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2"

# Sets DEPS_CPU_FLAGS (ggml CMake options) and DEPS_CPU_ISA (comma-separated cpuinfo flags the
# build needs). REDIS_INFER_CPU_PRESET: detect (default: what this machine's CPU has) or
# portable (the AVX2 baseline, for builds that run on other x86-64 machines).
# REDIS_INFER_CPUINFO reads another cpuinfo file (tests/tools/cpu_flags_test.sh).
deps_cpu_flags() {
    local cpu_flags want=() opt need on isa=""
    if [ -n "${REDIS_INFER_CPU_FLAGS:-}" ]; then
        DEPS_CPU_FLAGS="$REDIS_INFER_CPU_FLAGS"
        for entry in "${DEPS_ISA_TABLE[@]}"; do
            opt=${entry%%:*}; need=${entry#*:}
            case " $DEPS_CPU_FLAGS " in *" -D$opt=ON "*) isa="$isa,$need";; esac
        done
        DEPS_CPU_ISA=${isa#,}
        return 0
    fi
    case "$(uname -m)" in x86_64|amd64) ;; *) DEPS_CPU_FLAGS="" DEPS_CPU_ISA=""; return 0;; esac
    case "$REDIS_INFER_CPU_PRESET" in
        portable) want=($DEPS_ISA_PORTABLE) ;;
        detect)
            cpu_flags=" $(grep -m1 '^flags' "${REDIS_INFER_CPUINFO:-/proc/cpuinfo}" | cut -d: -f2) "
            for entry in "${DEPS_ISA_TABLE[@]}"; do
                opt=${entry%%:*}; need=${entry#*:}; on=1
                for f in ${need//,/ }; do case "$cpu_flags" in *" $f "*) ;; *) on=0;; esac; done
                [ "$on" = 1 ] && want+=("$opt")
            done ;;
        *) deps_log "REDIS_INFER_CPU_PRESET must be detect or portable, not '$REDIS_INFER_CPU_PRESET'"; return 1 ;;
    esac
    DEPS_CPU_FLAGS=""
    for entry in "${DEPS_ISA_TABLE[@]}"; do
        opt=${entry%%:*}; need=${entry#*:}; on=OFF
        case " ${want[*]} " in *" $opt "*) on=ON; isa="$isa,$need";; esac
        DEPS_CPU_FLAGS="$DEPS_CPU_FLAGS -D$opt=$on"
    done
    DEPS_CPU_FLAGS="${DEPS_CPU_FLAGS# } -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    DEPS_CPU_ISA=${isa#,}
}

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

# The Debian mirror this machine's apt configuration uses for its own release (deb822
# .sources or one-line sources.list alike: apt itself parses them).
deps_debian_mirror() {
    local codename; codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    local rows; rows=$(apt-get indextargets --format '$(REPO_URI) $(TARGET_OF) $(RELEASE) $(COMPONENT)' 2>/dev/null | sort -u)
    local uri; uri=$(awk -v c="$codename" '$2=="deb" && $3==c && $4=="main" {print $1; exit}' <<<"$rows")
    [ -n "$uri" ] || uri=$(awk '$2~/^deb/ && $3!~/-(security|updates|backports)$/ && $4=="main" {print $1; exit}' <<<"$rows")
    printf '%s' "${uri%/}"
}

# Fetches Redis' upstream tarball as trixie's Sources index names it into $1 (a directory),
# checked against the index's SHA256, with apt's own downloader (the machine's proxies and
# mirrors apply). Prints the tarball's path. Used by deps_redis and by scripts/check-routes.sh.
deps_fetch_redis_source() {
    local out=$1 mirror apt_dir
    mirror=$(deps_debian_mirror)
    if [ -z "$mirror" ]; then
        deps_log "cannot find a Debian mirror in this machine's apt configuration (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list)"
        return 1
    fi
    apt_dir="$out/.apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/parts" || return 1
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg signed=""
    [ -f "$keyring" ] && signed="[signed-by=$keyring] "
    echo "deb-src $signed$mirror $REDIS_DEB_SUITE main" >"$apt_dir/sources.list"
    local aopt=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
                -o "Dir::State::Lists=$apt_dir/lists")
    if ! apt-get -qq "${aopt[@]}" update >"$apt_dir/update.log" 2>&1; then
        deps_log "apt-get update of $REDIS_DEB_SUITE's source index from $mirror failed:"; cat "$apt_dir/update.log" >&2
        return 1
    fi
    local index; index=$(apt-get "${aopt[@]}" indextargets --format '$(FILENAME)' 'Identifier: Sources' | head -1)
    # The redis stanza's directory and the SHA256 line of its upstream tarball.
    local meta; meta=$(/usr/lib/apt/apt-helper cat-file "$index" | awk '
        /^Package: / { p = ($2 == "redis") }
        p && /^Directory: / { dir = $2 }
        p && /^Checksums-Sha256:/ { cs = 1; next }
        p && cs && /^ / { if ($3 ~ /\.orig\.tar\.(gz|xz)$/) { sha = $1; file = $3 } next }
        { cs = 0 }
        p && /^$/ && file { print dir, sha, file; exit }
        END { if (p && file) print dir, sha, file }' | head -1)
    local dir sha file
    read -r dir sha file <<<"$meta"
    if [ -z "$file" ]; then
        deps_log "$REDIS_DEB_SUITE's Sources index ($mirror) names no upstream tarball for redis"
        return 1
    fi
    # Debian's pool keeps only the current upstream tarball, so when trixie moves to another 8.x
    # the pinned one is gone from the mirror. A user's build then takes the new 8.x (SHA256 still
    # checked against the index) with a loud note rather than failing; CI's route check
    # (scripts/check-routes.sh sets REDIS_INFER_STRICT_PIN=1) fails, so the pin is moved on purpose
    # and the tests never run silently against a Redis nobody chose. Another major version fails.
    case "$file" in
        *"_$REDIS_DEB_VERSION.orig"*) ;;
        *) local now=${file#redis_}; now=${now%%.orig*}
           deps_log "NOTE: $REDIS_DEB_SUITE's Sources index now names $file, not the pinned Redis $REDIS_DEB_VERSION."
           deps_log "To move the pin: set REDIS_DEB_VERSION=$now in scripts/deps.sh, run scripts/test.sh, commit."
           deps_log "(To stay on $REDIS_DEB_VERSION offline: REDIS_INFER_REDIS_TARBALL=/path/to/redis-$REDIS_DEB_VERSION.tar.gz.)"
           case "$now" in 8.*) ;; *) deps_log "Redis $now is not 8.x: refusing it."; return 1;; esac
           [ "${REDIS_INFER_STRICT_PIN:-0}" = 1 ] && return 1
           deps_log "Building Redis $now instead (8.x, SHA256 checked)." ;;
    esac
    # apt's downloader drops to the _apt user: give it a directory of its own it may write.
    local dl="$apt_dir/download"
    mkdir -p "$dl" && chmod 755 "$apt_dir" "$dl" && { [ "$(id -u)" != 0 ] || chown _apt "$dl" 2>/dev/null || true; }
    if ! /usr/lib/apt/apt-helper -qq download-file "$mirror/$dir/$file" "$dl/$file" "SHA256:$sha" >"$apt_dir/download.log" 2>&1; then
        deps_log "downloading $mirror/$dir/$file (SHA256 $sha) failed:"; cat "$apt_dir/download.log" >&2
        return 1
    fi
    mv "$dl/$file" "$out/$file" && rm -rf "$apt_dir" || return 1
    printf '%s\n' "$out/$file"
}

# Which redis-server the tests use: a system one on PATH if it is 8.x (any 8.x: the module's
# API is the same, and distribution builds are what users run), else the pinned build. The
# choice is logged on every call, and REDIS_SERVER_VERSION is exported, so scripts/test.sh and
# the ctest list name the binary and version the tests ran against.
deps_redis() {
    local dir="$REDIS_INFER_CACHE/redis-$REDIS_DEB_VERSION"
    export REDIS_PREFIX="$dir" REDIS_SERVER="$dir/bin/redis-server" REDIS_CLI="$dir/bin/redis-cli"
    local sys_ok=0
    if command -v redis-server >/dev/null && redis-server --version | grep -q ' v=8\.'; then
        sys_ok=1
        REDIS_SERVER=$(command -v redis-server)
        REDIS_CLI=$(command -v redis-cli || echo "$dir/bin/redis-cli")
    fi
    if [ -f "$dir/.ok" ]; then deps_redis_chosen; return 0; fi

    rm -rf "$dir" && mkdir -p "$dir/src" "$dir/bin" "$dir/include" || return 1
    local orig
    if [ -n "${REDIS_INFER_REDIS_TARBALL:-}" ]; then
        deps_log "using Redis source from REDIS_INFER_REDIS_TARBALL=$REDIS_INFER_REDIS_TARBALL"
        orig=$REDIS_INFER_REDIS_TARBALL  # offline: the source travels
    else
        deps_log "fetching Redis $REDIS_DEB_VERSION's upstream tarball from Debian $REDIS_DEB_SUITE's source index into $dir"
        if ! orig=$(deps_fetch_redis_source "$dir/src"); then
            deps_log "could not fetch Redis' source. Tried: the Debian mirror from this machine's apt"
            deps_log "configuration, suite $REDIS_DEB_SUITE, its Sources index, then the redis .orig.tar.gz it"
            deps_log "names with apt's downloader and the index's SHA256. Either install a Redis 8.x"
            deps_log "redis-server on PATH (its redismodule.h is still needed), or download"
            deps_log "redis-$REDIS_DEB_VERSION.tar.gz yourself and run with REDIS_INFER_REDIS_TARBALL=/path/to/it."
            return 1
        fi
    fi
    tar xf "$orig" -C "$dir/src" || { deps_log "cannot unpack $orig"; return 1; }
    local tree; tree=$(find "$dir/src" -maxdepth 1 -mindepth 1 -type d -name 'redis-*' | head -1)
    [ -f "$tree/src/redismodule.h" ] || { deps_log "$orig holds no src/redismodule.h"; return 1; }
    # redismodule.h always comes from the source; the server is built only when the system lacks 8.x.
    cp "$tree/src/redismodule.h" "$dir/include/" || return 1
    if [ "$sys_ok" = 0 ] || [ ! -x "$REDIS_CLI" ]; then
        deps_log "building redis-server (about a minute on 2 cores)"
        # No LTO: not every toolchain has the LTO plugin (the GPU image lacks it).
        make -C "$tree" -j "$REDIS_INFER_JOBS" BUILD_TLS=no OPTIMIZATION=-O2 >"$dir/build.log" 2>&1 ||
            { tail -40 "$dir/build.log"; return 1; }
        cp "$tree/src/redis-server" "$tree/src/redis-cli" "$tree/src/redis-benchmark" "$dir/bin/" || return 1
    fi
    rm -rf "$dir/src" && touch "$dir/.ok" && deps_redis_chosen
}

# Logs and exports (REDIS_SERVER_VERSION) the redis-server deps_redis picked.
deps_redis_chosen() {
    REDIS_SERVER_VERSION=$("$REDIS_SERVER" --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    export REDIS_SERVER_VERSION
    if [ "$REDIS_SERVER" = "$REDIS_PREFIX/bin/redis-server" ]; then
        deps_log "redis-server: $REDIS_SERVER (v=${REDIS_SERVER_VERSION:-unknown}, the pinned build)"
    else
        deps_log "redis-server: $REDIS_SERVER (v=${REDIS_SERVER_VERSION:-unknown}, the system's 8.x on PATH, used instead of the pinned $REDIS_DEB_VERSION build)"
    fi
}

# llama.cpp: static, position-independent libraries (they link into redis_infer.so) plus the
# reference tools we compare against (llama-simple, llama-server, llama-batched-bench, ...).
deps_llama() {
    local cuda_flags="" tag="cpu"
    if [ "$REDIS_INFER_CUDA" = 1 ]; then
        cuda_flags="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${REDIS_INFER_CUDA_ARCH:-90}"
        tag="cuda${REDIS_INFER_CUDA_ARCH:-90}"
    fi
    deps_cpu_flags || return 1
    local flags="$DEPS_CPU_FLAGS $cuda_flags ${REDIS_INFER_LLAMA_TOOLS:-}"
    local key; key=$(printf '%s' "$flags" | sha1sum | cut -c1-10)
    local dir="$REDIS_INFER_CACHE/llama.cpp-nlc$NODE_LLAMA_CPP_VERSION-$tag-$key"
    export LLAMA_PREFIX="$dir/prefix" LLAMA_SRC="$dir/src"
    [ -f "$dir/.ok" ] && return 0
    deps_log "ggml CPU ISA (preset $REDIS_INFER_CPU_PRESET${REDIS_INFER_CPU_FLAGS:+, overridden by REDIS_INFER_CPU_FLAGS}): ${DEPS_CPU_ISA:-none}"

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
    printf '%s\n' "$DEPS_CPU_ISA" >"$p/cpu-isa" &&  # CMake bakes it into the module's load check
    rm -rf "$dir/build" && touch "$dir/.ok"
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
