// libFuzzer target: the model-directory sandbox, infer::model_path_resolve(dir, user_path),
// with user_path from the input. INFER.LOAD hands it whatever a client sends; anything it lets
// through is opened by llama.cpp inside the Redis process.
//
// A temporary tree is built once per process:
//   <root>/models/          the model dir
//     model.gguf, noperm.gguf (mode 000), sub/inner.gguf       the only acceptable results
//     sub/deeper/, fifo.gguf (FIFO), loop -> loop, dangling -> nowhere
//     link-in.gguf -> model.gguf, link-dir -> sub, link-up -> ..
//     link-out.gguf -> <root>/outside/secret.gguf, link-rel-out.gguf -> ../outside/secret.gguf
//     link-etc -> /etc/passwd, link-null -> /dev/null
//   <root>/outside/secret.gguf, <root>/models-evil/x.gguf (a sibling sharing the prefix)
// In the input "@D", "@R" and "@O" expand to the model dir, the root and the outside dir, so
// the fuzzer can build absolute paths into and around the sandbox (tests/fuzz/path.dict has them).
//
// Invariants: a result is one of the acceptable files (so it is inside the dir, prefix + '/', a
// regular file, and never the outside target, /etc/passwd or a FIFO), it is canonical
// (realpath of it is itself), and resolution never blocks (the FIFO is never opened; libFuzzer's
// -timeout catches a hang).
#include "engine/model_path.h"

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace {

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_model_path: invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct sandbox {
    std::string root, dir, outside;
    std::set<std::string> acceptable;
};
sandbox g;

void must(bool ok, const std::string & what) {
    if (!ok) {
        perror(what.c_str());
        abort();
    }
}

void write_file(const std::string & p) {
    FILE * f = fopen(p.c_str(), "wb");
    must(f != nullptr, p);
    fputs("GGUF", f);
    fclose(f);
}

std::string real(const std::string & p) {
    char buf[PATH_MAX];
    must(realpath(p.c_str(), buf) != nullptr, p);
    return buf;
}

void remove_tree() {
    if (g.root.empty()) return;
    chmod((g.dir + "/noperm.gguf").c_str(), 0644);
    const std::string rm = "rm -rf '" + g.root + "'";
    (void) !system(rm.c_str());
}

std::string expand(const std::string & in) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '@' && i + 1 < in.size()) {
            const char c = in[i + 1];
            if (c == 'D') { out += g.dir; ++i; continue; }
            if (c == 'R') { out += g.root; ++i; continue; }
            if (c == 'O') { out += g.outside; ++i; continue; }
        }
        out += in[i];
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    char tmpl[] = "/tmp/redis-infer-fuzz-path-XXXXXX";
    must(mkdtemp(tmpl) != nullptr, "mkdtemp");
    g.root = real(tmpl);
    atexit(remove_tree);
    const std::string d = g.root + "/models";
    g.outside = g.root + "/outside";
    for (const auto & p : {d, d + "/sub", d + "/sub/deeper", g.outside, g.root + "/models-evil"}) {
        must(mkdir(p.c_str(), 0755) == 0, p);
    }
    write_file(d + "/model.gguf");
    write_file(d + "/noperm.gguf");
    chmod((d + "/noperm.gguf").c_str(), 0);
    write_file(d + "/sub/inner.gguf");
    write_file(g.outside + "/secret.gguf");
    write_file(g.root + "/models-evil/x.gguf");
    must(mkfifo((d + "/fifo.gguf").c_str(), 0644) == 0, "mkfifo");
    const std::pair<const char *, std::string> links[] = {
        {"loop", "loop"}, {"dangling", "nowhere"}, {"link-in.gguf", "model.gguf"}, {"link-dir", "sub"},
        {"link-up", ".."}, {"link-out.gguf", g.outside + "/secret.gguf"},
        {"link-rel-out.gguf", "../outside/secret.gguf"}, {"link-etc", "/etc/passwd"}, {"link-null", "/dev/null"}};
    for (const auto & [name, target] : links) must(symlink(target.c_str(), (d + "/" + name).c_str()) == 0, name);
    g.dir = real(d);
    g.acceptable = {g.dir + "/model.gguf", g.dir + "/noperm.gguf", g.dir + "/sub/inner.gguf"};

    // The fixture itself is right: the acceptable files resolve, the traps do not.
    for (const auto & ok : {"model.gguf", "sub/inner.gguf", "link-in.gguf", "link-dir/inner.gguf", "./sub/../model.gguf"}) {
        FUZZ_CHECK(infer::model_path_resolve(g.dir, ok).has_value());
    }
    for (const auto & bad : {"fifo.gguf", "link-out.gguf", "link-rel-out.gguf", "link-etc", "link-null", "sub",
                             "loop", "dangling", "../outside/secret.gguf", "link-up/outside/secret.gguf"}) {
        FUZZ_CHECK(!infer::model_path_resolve(g.dir, bad).has_value());
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string user_path = expand(std::string(reinterpret_cast<const char *>(data), size));
    const auto r = infer::model_path_resolve(g.dir, user_path);
    if (!r) return 0;
    const std::string & f = *r;
    FUZZ_CHECK(f.size() > g.dir.size() + 1 && f.compare(0, g.dir.size() + 1, g.dir + "/") == 0);
    FUZZ_CHECK(g.acceptable.count(f) == 1);
    struct stat st;
    FUZZ_CHECK(lstat(f.c_str(), &st) == 0 && S_ISREG(st.st_mode));  // the canonical path is no link
    char buf[PATH_MAX];
    FUZZ_CHECK(realpath(f.c_str(), buf) != nullptr && f == buf);
    return 0;
}
