// redis-infer-ingest: loads a tree of text files into Redis as retrieval chunks, so a knowledge
// base is one command away from INFER.GENERATE. Each chunk becomes a token key (gen model) and
// an element of a Vector Set (embed model), both written by the server's INFER.INGEST; this
// tool only walks files, cuts them into token windows and keeps the pipeline full.
//
// Invariants:
// - A chunk's key is <prefix><path>:<index>, where <path> is the file's canonical path (symlinks,
//   '.' and '..' resolved) relative to a root: --root DIR, or by default the directory that
//   holds the PATH argument's canonical path (so a directory's own name starts its keys). Keys
//   therefore do not depend on how PATH is spelled (docs, ./docs/, /abs/docs, docs/../docs, a
//   symlink to docs) nor on the working directory: re-ingesting the same files under another
//   spelling finds them unchanged instead of storing them twice. Two files that would get one
//   key (proj1/docs and proj2/docs without --root) are refused before anything is written.
//   The Vector Set element of a chunk is named by its key.
// - Re-runs are idempotent and cheap. The hash <prefix>manifest maps <path> (the same canonical,
//   root-relative path as the keys) to
//   "<fnv1a64 of content and chunk params>:<chunk count>"; an unchanged file costs one HGET.
//   A changed file is ingested first, then its stale chunks (index >= new count) are removed
//   (DEL + VREM), then the manifest is written: a run that fails half way leaves the manifest
//   entry old, so the next run redoes that file.
// - Chunks never split a UTF-8 character: cuts move forward past continuation bytes.
// - Output: progress on stderr (unless --quiet), errors on stderr as "<path>: <error>", one
//   summary line on stdout. Exit 0 all good, 1 some file failed, 2 bad arguments or the
//   connection failed.
//
// Connections: `control` runs the synchronous HGET and TOKENIZE of the next file while the
// `data` connections carry the pipelined INGEST, cleanup and manifest writes of earlier files.
// There are several data connections because Redis runs one command at a time per client:
// while an INGEST is blocked on the model, the client's next pipelined command waits unread, so
// one connection hands the model's batcher one chunk at a time however deep the pipeline is.
// Replies are read oldest first across all data connections (each answers in order). Each file
// moves through the stages ingesting -> cleaning -> recording, driven by its replies.

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace fs = std::filesystem;

namespace {

using clk = std::chrono::steady_clock;

const char * const k_usage = R"(usage: redis-infer-ingest [options] --model GEN --embed-model EMB --vset KEY PATH...

Cuts every text file under PATH (files and directories, recursively) into windows of tokens
and stores each window with INFER.INGEST: its tokens (GEN model) at <prefix><path>:<index> and
its embedding (EMB model) in the Vector Set KEY, element name = the chunk key. Directories are
walked in sorted order; entries whose name starts with '.' and symlinks inside directories are
not visited; files holding a NUL byte are skipped as binary.

Keys: <path> is the file's canonical path (symlinks, '.' and '..' resolved) relative to the
root. The root is --root DIR if given (every PATH must be inside it), otherwise the directory
that holds the canonical PATH. So `docs`, `./docs/`, `/abs/repo/docs`, `docs/../docs` and a
symlink to docs all give the keys <prefix>docs/...:N, from any working directory, and a file
PATH gives <prefix><file name>:N. A subdirectory or file given on its own gets other keys than
when reached through its parent (`docs/a` gives a/..., `docs` gives docs/a/...): give the same
--root to both runs (`--root . docs/a` gives docs/a/...). Two files that would get the same key
(proj1/docs and proj2/docs without --root) stop the run before anything is written.

Re-runs only redo changed files: the hash <prefix>manifest records, per <path>, a hash of the
content and of the chunk parameters, and the chunk count. A file that shrank loses its stale
chunks (DEL and VREM). Files deleted from disk are not removed from Redis.

  -h HOST                  server host (default 127.0.0.1)
  -p PORT                  server port (default 6379)
  -a PASSWORD              AUTH PASSWORD
  --user USER --pass PASS  AUTH USER PASS (ACL user); --pass alone is -a
  --model GEN              model that tokenizes the chunks (required)
  --embed-model EMB        model that embeds the chunks (required)
  --vset KEY               Vector Set that receives the embeddings (required)
  --prefix P               key prefix (default "doc:")
  --root DIR               key paths relative to DIR (default: the directory holding each PATH)
  --chunk-tokens N         tokens per chunk (default 256)
  --overlap N              tokens shared by consecutive chunks, < chunk-tokens (default 32)
  --pipeline N             INGEST commands in flight, over all connections (default 16)
  --connections N          connections that carry them, so the server embeds up to N chunks
                           at once (default 4; Redis runs one command per client at a time)
  --summary-format F       "text" (default) or "kv": space-separated key=value pairs
                           files_ingested files_unchanged files_skipped files_failed chunks
                           chunks_removed tokens seconds chunks_per_s tokens_per_s
  --quiet                  no progress on stderr
  --help                   this text

Redis Cluster: every chunk key, the manifest and the Vector Set must hash to one slot, so give
the prefix and the vset the same hash tag and point -h/-p at the node that owns it:
  redis-infer-ingest --prefix '{kb}:' --vset '{kb}:vectors' --model gen --embed-model emb docs/

Exit status: 0 all files done, 1 some file failed (each is reported as "<path>: <error>"),
2 bad arguments or no connection.
)";

struct options {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string user;             // empty = AUTH with the password only
    std::string password;         // empty = no AUTH
    std::string model;            // tokenizes (INFER.TOKENIZE) and stores tokens (INFER.INGEST)
    std::string embed_model;      // embeds each chunk
    std::string vset;             // Vector Set key
    std::string prefix = "doc:";  // chunk keys and the manifest start with it
    std::string root;             // --root: key paths are relative to it; empty = per PATH, its parent
    int chunk_tokens = 256;       // window size in tokens, >= 1
    int overlap = 32;             // tokens shared by consecutive windows, 0 .. chunk_tokens-1
    int pipeline = 16;            // INGEST commands in flight over all data connections, >= 1
    int connections = 4;          // data connections, >= 1
    bool kv_summary = false;      // --summary-format kv
    bool quiet = false;
    std::vector<std::string> paths;
};

[[noreturn]] void usage_error(const std::string & what) {
    const std::string_view usage(k_usage);
    fprintf(stderr, "redis-infer-ingest: %s\n%s(--help for all options)\n", what.c_str(),
            std::string(usage.substr(0, usage.find('\n') + 1)).c_str());
    exit(2);
}

int parse_int(const std::string & flag, const std::string & v, int lo, int hi) {
    int n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi) {
        usage_error("bad value for " + flag + " - got '" + v + "', expected an integer in " + std::to_string(lo) + ".." +
                    std::to_string(hi));
    }
    return n;
}

options parse_args(int argc, char ** argv) {
    options o;
    bool only_paths = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (only_paths || a.empty() || a[0] != '-' || a == "-") {
            o.paths.push_back(a);
            continue;
        }
        if (a == "--") {
            only_paths = true;
            continue;
        }
        if (a == "--help") {
            fputs(k_usage, stdout);
            exit(0);
        }
        if (a == "--quiet") {
            o.quiet = true;
            continue;
        }
        if (i + 1 >= argc) usage_error("missing value for " + a);
        const std::string v = argv[++i];
        if (a == "-h") o.host = v;
        else if (a == "-p") o.port = parse_int(a, v, 1, 65535);
        else if (a == "-a" || a == "--pass") o.password = v;
        else if (a == "--user") o.user = v;
        else if (a == "--model") o.model = v;
        else if (a == "--embed-model") o.embed_model = v;
        else if (a == "--vset") o.vset = v;
        else if (a == "--prefix") o.prefix = v;
        else if (a == "--root") o.root = v;
        else if (a == "--chunk-tokens") o.chunk_tokens = parse_int(a, v, 1, 1 << 24);
        else if (a == "--overlap") o.overlap = parse_int(a, v, 0, 1 << 24);
        else if (a == "--pipeline") o.pipeline = parse_int(a, v, 1, 1 << 16);
        else if (a == "--connections") o.connections = parse_int(a, v, 1, 256);
        else if (a == "--summary-format") {
            if (v != "text" && v != "kv") usage_error("bad value for --summary-format - got '" + v + "', expected text or kv");
            o.kv_summary = v == "kv";
        } else usage_error("unknown option '" + a + "'");
    }
    if (o.model.empty()) usage_error("--model is required");
    if (o.embed_model.empty()) usage_error("--embed-model is required");
    if (o.vset.empty()) usage_error("--vset is required");
    if (o.paths.empty()) usage_error("no PATH given");
    if (!o.user.empty() && o.password.empty()) usage_error("--user needs --pass");
    if (o.overlap >= o.chunk_tokens) {
        usage_error("bad value for --overlap - got " + std::to_string(o.overlap) + ", expected 0.." +
                    std::to_string(o.chunk_tokens - 1) + " (less than --chunk-tokens)");
    }
    return o;
}

// ---- files -------------------------------------------------------------------------------------

struct source_file {
    std::string file;  // canonical absolute path: what is read
    std::string key;   // path relative to the root: names the chunk keys and the manifest field
};

// Appends the regular files under `p`, a canonical path inside `root` (the caller sorts). Since
// `p` is canonical and symlinks inside the tree are not followed, every path reached is
// canonical too, so its key is a plain lexical path relative to `root`. Walk errors are
// reported and counted; they do not stop the walk.
void walk(const fs::path & p, const fs::path & root, std::vector<source_file> & out, int & errors) {
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (fs::is_regular_file(st)) {
        out.push_back({p.generic_string(), p.lexically_relative(root).generic_string()});
        return;
    }
    if (!fs::is_directory(st)) return;
    fs::directory_iterator it(p, ec);
    for (const fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
        if (it->path().filename().native().starts_with('.')) continue;
        std::error_code ec2;
        const fs::file_status s = it->symlink_status(ec2);  // symlinks inside a tree are not followed (no cycles)
        if (fs::is_directory(s) || fs::is_regular_file(s)) walk(it->path(), root, out, errors);
    }
    if (ec) {
        fprintf(stderr, "%s: %s\n", p.generic_string().c_str(), ec.message().c_str());
        ++errors;
    }
}

// The files to ingest with their keys, sorted by key: each PATH canonicalised (a PATH that is a
// symlink is followed) and walked, keys relative to --root or to the PATH's parent directory.
// A file reached from several PATHs is done once, keyed from the outermost root; two files
// with one key are a usage error (exit 2) before anything is written.
std::vector<source_file> collect_files(const options & o, int & walk_errors) {
    std::error_code ec;
    fs::path root;
    if (!o.root.empty()) {
        root = fs::canonical(o.root, ec);
        if (ec || !fs::is_directory(root, ec)) usage_error("bad value for --root - got '" + o.root + "', expected a directory");
    }
    std::vector<source_file> files;
    for (const auto & p : o.paths) {
        const fs::path real = fs::canonical(p, ec);
        if (ec) usage_error("no such file or directory: " + p);
        const fs::path base = root.empty() ? real.parent_path() : root;
        if (!root.empty()) {
            const std::string rel = real.lexically_relative(root).generic_string();
            if (rel.empty() || rel == ".." || rel.starts_with("../")) {
                usage_error("'" + p + "' is outside --root - got '" + real.generic_string() + "', expected a path inside '" +
                            root.generic_string() + "'");
            }
        }
        walk(real, base, files, walk_errors);
    }
    // Same file from nested PATHs: keep the longest key (the outermost root) of each file.
    std::sort(files.begin(), files.end(), [](const source_file & a, const source_file & b) {
        return a.file != b.file ? a.file < b.file : a.key.size() > b.key.size();
    });
    files.erase(std::unique(files.begin(), files.end(), [](const source_file & a, const source_file & b) { return a.file == b.file; }),
                files.end());
    std::sort(files.begin(), files.end(), [](const source_file & a, const source_file & b) { return a.key < b.key; });
    for (size_t i = 1; i < files.size(); ++i) {
        if (files[i].key == files[i - 1].key) {
            usage_error("'" + files[i - 1].file + "' and '" + files[i].file + "' would both be stored as '" + o.prefix +
                        files[i].key + ":N' - give --root a directory that holds both");
        }
    }
    return files;
}

bool read_file(const std::string & path, std::string & out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    out = std::move(ss).str();
    return !f.bad();
}

uint64_t fnv1a64(std::string_view s, uint64_t h = 0xcbf29ce484222325ULL) {
    for (const unsigned char ch : s) {
        h ^= ch;
        h *= 0x100000001b3ULL;
    }
    return h;
}

// ---- chunking ----------------------------------------------------------------------------------

struct byte_span {
    size_t begin, end;  // [begin, end) in the file's bytes
};

// Token windows of `size` tokens stepping by size - overlap, the last one ending at the last
// token, as byte spans of `text`. offsets[i] is where token i starts; token n "starts" at the
// end of the text. Cuts move forward to a UTF-8 character boundary; a window left empty by that
// (several tokens inside one character) is dropped.
std::vector<byte_span> chunk_spans(std::string_view text, const std::vector<size_t> & offsets, size_t size, size_t overlap) {
    std::vector<byte_span> spans;
    const size_t n = offsets.size();
    const auto cut = [&](size_t token) {
        size_t b = token < n ? offsets[token] : text.size();
        while (b < text.size() && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) ++b;
        return b;
    };
    for (size_t start = 0; start < n; start += size - overlap) {
        const size_t end = std::min(start + size, n);
        const byte_span s{cut(start), cut(end)};
        if (s.begin < s.end) spans.push_back(s);
        if (end == n) break;
    }
    return spans;
}

// ---- redis ---------------------------------------------------------------------------------------

struct reply_deleter {
    void operator()(redisReply * r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

struct ctx_deleter {
    void operator()(redisContext * c) const { redisFree(c); }
};
using client_ptr = std::unique_ptr<redisContext, ctx_deleter>;

std::string reply_text(const redisReply * r) { return r && r->str ? std::string(r->str, r->len) : std::string(); }

[[noreturn]] void connection_lost(redisContext * c) {
    fprintf(stderr, "redis-infer-ingest: connection lost: %s\n", c->errstr[0] ? c->errstr : "closed by the server");
    exit(2);
}

// Runs one command and waits for its reply (binary-safe). Exits 2 if the connection fails.
reply_ptr call(redisContext * c, const std::vector<std::string> & args) {
    std::vector<const char *> argv;
    std::vector<size_t> lens;
    for (const auto & a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    reply_ptr r(static_cast<redisReply *>(redisCommandArgv(c, int(argv.size()), argv.data(), lens.data())));
    if (!r) connection_lost(c);
    return r;
}

client_ptr connect_or_exit(const options & o) {
    client_ptr c(redisConnectWithTimeout(o.host.c_str(), o.port, timeval{5, 0}));
    if (!c || c->err) {
        fprintf(stderr, "redis-infer-ingest: cannot connect to %s:%d: %s\n", o.host.c_str(), o.port,
                c ? c->errstr : "out of memory");
        exit(2);
    }
    redisSetTimeout(c.get(), timeval{0, 0});  // INGEST waits for the model: no read deadline
    if (!o.password.empty()) {
        auto r = o.user.empty() ? call(c.get(), {"AUTH", o.password}) : call(c.get(), {"AUTH", o.user, o.password});
        if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "redis-infer-ingest: AUTH failed on %s:%d: %s\n", o.host.c_str(), o.port, reply_text(r.get()).c_str());
            exit(2);
        }
    }
    return c;
}

// ---- progress --------------------------------------------------------------------------------------

struct counters {
    int files_total = 0;           // files the walk found
    int files_seen = 0;            // files looked at so far (any outcome)
    int files_ingested = 0;        // written and recorded in the manifest
    int files_unchanged = 0;       // manifest says same content and params
    int files_skipped = 0;         // binary (holds a NUL byte)
    int files_failed = 0;          // unreadable file or a server error
    long long chunks_known = 0;    // chunks of the files tokenized so far
    long long chunks_done = 0;     // INGEST replied with a count
    long long chunks_removed = 0;  // stale chunks deleted
    long long tokens = 0;          // sum of INGEST replies
};

class progress {
public:
    progress(bool enabled, const counters & n) : enabled_(enabled), tty_(isatty(STDERR_FILENO)), n_(n) {}

    // Redraws at most every 100 ms on a terminal, every 2 s as plain lines otherwise.
    void tick(bool force = false) {
        if (!enabled_) return;
        const auto now = clk::now();
        if (!force && now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(2000))) return;
        last_ = now;
        const double s = std::chrono::duration<double>(now - t0_).count();
        const double frac = n_.chunks_known ? double(n_.chunks_done) / double(n_.chunks_known) : 0.0;
        const int width = 24, full = int(frac * width);
        fprintf(stderr, "%s[%s%s] %lld/%lld chunks  files %d/%d  %.1f chunks/s%s", tty_ ? "\r" : "",
                std::string(size_t(full), '#').c_str(), std::string(size_t(width - full), '.').c_str(), n_.chunks_done,
                n_.chunks_known, n_.files_seen, n_.files_total, s > 0 ? double(n_.chunks_done) / s : 0.0,
                tty_ ? "\x1b[K" : "\n");
        drawn_ = tty_;
    }
    // Ends the progress line so that an error or the summary starts on a fresh one.
    void clear() {
        if (drawn_) fputs("\r\x1b[K", stderr);
        drawn_ = false;
    }

private:
    bool enabled_, tty_, drawn_ = false;
    const counters & n_;
    clk::time_point t0_ = clk::now(), last_{};
};

// ---- ingest ------------------------------------------------------------------------------------------

enum class stage { ingesting, cleaning, recording, done };

struct file_job {
    std::string path;            // the key path (manifest field, chunk keys, error reports)
    std::string manifest_value;  // "<hash>:<count>", written last
    size_t old_count = 0;        // chunks of the previous run (from the manifest)
    size_t count = 0;            // chunks of this run
    size_t appended = 0;         // INGEST commands sent so far
    size_t outstanding = 0;      // commands of the current stage without a reply
    bool failed = false;
    stage st = stage::ingesting;
};

enum class cmd_kind { ingest, del, vrem, manifest };

struct pending {
    size_t job;
    cmd_kind kind;
    size_t chunk;  // the chunk index the command is about (manifest: unused)
    size_t conn;   // the data connection it went out on
};

class ingester {
public:
    ingester(const options & o, counters & n, progress & p)
        : o_(o), n_(n), progress_(p), control_(connect_or_exit(o)) {
        for (int i = 0; i < o.connections; ++i) data_.push_back(connect_or_exit(o));
    }

    void run(const std::vector<source_file> & files) {
        for (const auto & f : files) {
            ++n_.files_seen;
            add_file(f);
            progress_.tick();
        }
        while (!inflight_.empty()) read_one();
    }

private:
    std::string manifest_key() const { return o_.prefix + "manifest"; }
    std::string chunk_key(const std::string & path, size_t i) const { return o_.prefix + path + ":" + std::to_string(i); }

    void report(const std::string & path, const std::string & what) {
        progress_.clear();
        fprintf(stderr, "%s: %s\n", path.c_str(), what.c_str());
    }

    void add_file(const source_file & f) {
        const std::string & path = f.key;
        std::string text;
        if (!read_file(f.file, text)) {
            report(path, std::string("cannot read: ") + strerror(errno));
            ++n_.files_failed;
            return;
        }
        if (text.find('\0') != std::string::npos) {
            ++n_.files_skipped;
            return;
        }
        // Any parameter that changes what is stored makes the file "changed".
        std::string params(1, '\0');
        for (const std::string & v : {o_.model, o_.embed_model, o_.vset, std::to_string(o_.chunk_tokens), std::to_string(o_.overlap)}) {
            params += v + '\0';
        }
        const uint64_t h = fnv1a64(params, fnv1a64(text));
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, h);

        file_job job{.path = path};
        auto prev = call(control_.get(), {"HGET", manifest_key(), path});
        if (prev->type == REDIS_REPLY_ERROR) return fail_now(path, reply_text(prev.get()));
        const std::string old = reply_text(prev.get());
        if (old.starts_with(std::string(hex) + ":")) {
            ++n_.files_unchanged;
            return;
        }
        if (const size_t colon = old.rfind(':'); colon != std::string::npos) {
            job.old_count = std::strtoull(old.c_str() + colon + 1, nullptr, 10);
        }

        std::vector<byte_span> spans;
        if (!text.empty()) {
            std::vector<size_t> offsets;
            std::string err;
            if (!tokenize(text, offsets, err)) return fail_now(path, err);
            spans = chunk_spans(text, offsets, size_t(o_.chunk_tokens), size_t(o_.overlap));
        }
        job.count = spans.size();
        job.manifest_value = std::string(hex) + ":" + std::to_string(job.count);
        n_.chunks_known += static_cast<long long>(job.count);

        const size_t id = jobs_.size();
        jobs_.push_back(std::move(job));
        for (size_t i = 0; i < spans.size(); ++i) {
            while (ingest_inflight_ >= size_t(o_.pipeline)) read_one();
            if (jobs_[id].failed) break;  // a chunk already failed: the file is redone next run anyway
            const std::string_view chunk(text.data() + spans[i].begin, spans[i].end - spans[i].begin);
            append({"INFER.INGEST", o_.model, o_.embed_model, o_.vset, chunk_key(path, i), std::string(chunk)},
                   {id, cmd_kind::ingest, i});
            ++jobs_[id].appended;
            ++jobs_[id].outstanding;
            ++ingest_inflight_;
        }
        advance(id);
    }

    void fail_now(const std::string & path, const std::string & err) {
        report(path, err);
        ++n_.files_failed;
    }

    // INFER.TOKENIZE ... WITHOFFSETS on the control connection; offsets are checked, since the
    // byte cuts index into the text.
    bool tokenize(const std::string & text, std::vector<size_t> & offsets, std::string & err) {
        auto r = call(control_.get(), {"INFER.TOKENIZE", o_.model, text, "NO_SPECIAL", "WITHOFFSETS"});
        if (r->type == REDIS_REPLY_ERROR) {
            err = reply_text(r.get());
            return false;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_ARRAY ||
            r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != r->element[1]->elements) {
            err = "unexpected reply to INFER.TOKENIZE WITHOFFSETS (expected two arrays of equal length)";
            return false;
        }
        const redisReply * offs = r->element[1];
        offsets.resize(offs->elements);
        for (size_t i = 0; i < offs->elements; ++i) {
            const long long v = offs->element[i]->integer;
            if (offs->element[i]->type != REDIS_REPLY_INTEGER || v < 0 || size_t(v) > text.size() ||
                (i > 0 && size_t(v) < offsets[i - 1])) {
                err = "bad token offset at index " + std::to_string(i) + " from INFER.TOKENIZE WITHOFFSETS";
                return false;
            }
            offsets[i] = size_t(v);
        }
        return true;
    }

    // Sends a command on the next data connection, round robin.
    void append(const std::vector<std::string> & args, pending p) {
        p.conn = next_conn_++ % data_.size();
        redisContext * c = data_[p.conn].get();
        std::vector<const char *> argv;
        std::vector<size_t> lens;
        for (const auto & a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        if (redisAppendCommandArgv(c, int(argv.size()), argv.data(), lens.data()) != REDIS_OK) connection_lost(c);
        inflight_.push_back(p);
    }

    // Reads the reply to the oldest command in flight and moves its file on.
    void read_one() {
        // hiredis sends a connection's buffered commands only when it reads from it: flush them
        // all first, or the other connections would sit idle while this one waits.
        for (const auto & d : data_) {
            for (int done = 0; !done;) {
                if (redisBufferWrite(d.get(), &done) != REDIS_OK) connection_lost(d.get());
            }
        }
        const pending p = inflight_.front();
        inflight_.pop_front();
        redisContext * c = data_[p.conn].get();
        void * raw = nullptr;
        if (redisGetReply(c, &raw) != REDIS_OK || !raw) connection_lost(c);
        const reply_ptr r(static_cast<redisReply *>(raw));
        file_job & job = jobs_[p.job];
        --job.outstanding;
        if (p.kind == cmd_kind::ingest) --ingest_inflight_;
        if (r->type == REDIS_REPLY_ERROR) {
            if (!job.failed) {
                const std::string where = p.kind == cmd_kind::ingest     ? "chunk " + std::to_string(p.chunk) + ": "
                                          : p.kind == cmd_kind::manifest ? "writing the manifest: "
                                                                         : "removing stale chunk " + std::to_string(p.chunk) + ": ";
                report(job.path, where + reply_text(r.get()));
            }
            job.failed = true;
        } else if (p.kind == cmd_kind::ingest) {
            if (r->type != REDIS_REPLY_INTEGER) {
                if (!job.failed) report(job.path, "chunk " + std::to_string(p.chunk) + ": INFER.INGEST did not reply an integer");
                job.failed = true;
            } else {
                ++n_.chunks_done;
                n_.tokens += r->integer;
            }
        } else if (p.kind == cmd_kind::del && r->type == REDIS_REPLY_INTEGER) {
            n_.chunks_removed += r->integer;
        }
        advance(p.job);
        progress_.tick();
    }

    // Starts the next stage of a file once the current one has all its replies.
    void advance(size_t id) {
        file_job & job = jobs_[id];
        if (job.outstanding > 0 || job.st == stage::done) return;
        if (job.st == stage::ingesting && job.appended < job.count && !job.failed) return;  // still sending
        if (job.failed) {
            job.st = stage::done;
            ++n_.files_failed;
            return;
        }
        if (job.st == stage::ingesting) {
            job.st = stage::cleaning;
            for (size_t i = job.count; i < job.old_count; ++i) {
                const std::string key = chunk_key(job.path, i);
                append({"DEL", key}, {id, cmd_kind::del, i});
                append({"VREM", o_.vset, key}, {id, cmd_kind::vrem, i});
                job.outstanding += 2;
            }
            if (job.outstanding > 0) return;
        }
        if (job.st == stage::cleaning) {
            job.st = stage::recording;
            append({"HSET", manifest_key(), job.path, job.manifest_value}, {id, cmd_kind::manifest, 0});
            ++job.outstanding;
            return;
        }
        job.st = stage::done;
        ++n_.files_ingested;
    }

    const options & o_;
    counters & n_;
    progress & progress_;
    client_ptr control_;
    std::vector<client_ptr> data_;
    size_t next_conn_ = 0;
    std::vector<file_job> jobs_;
    std::deque<pending> inflight_;
    size_t ingest_inflight_ = 0;
};

}  // namespace

int main(int argc, char ** argv) {
    const options o = parse_args(argc, argv);

    int walk_errors = 0;
    const std::vector<source_file> files = collect_files(o, walk_errors);

    counters n;
    n.files_total = int(files.size());
    progress prog(!o.quiet, n);
    const auto t0 = clk::now();
    ingester(o, n, prog).run(files);
    prog.tick(true);
    prog.clear();

    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    const double cps = s > 0 ? double(n.chunks_done) / s : 0.0, tps = s > 0 ? double(n.tokens) / s : 0.0;
    if (o.kv_summary) {
        printf("files_ingested=%d files_unchanged=%d files_skipped=%d files_failed=%d chunks=%lld chunks_removed=%lld "
               "tokens=%lld seconds=%.3f chunks_per_s=%.1f tokens_per_s=%.1f\n",
               n.files_ingested, n.files_unchanged, n.files_skipped, n.files_failed + walk_errors, n.chunks_done,
               n.chunks_removed, n.tokens, s, cps, tps);
    } else {
        printf("files: %d ingested, %d unchanged, %d skipped, %d failed; %lld chunks (%lld stale removed), %lld tokens in "
               "%.2f s: %.1f chunks/s, %.1f tokens/s\n",
               n.files_ingested, n.files_unchanged, n.files_skipped, n.files_failed + walk_errors, n.chunks_done,
               n.chunks_removed, n.tokens, s, cps, tps);
    }
    return n.files_failed + walk_errors > 0 ? 1 : 0;
}
