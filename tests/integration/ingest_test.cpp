// redis-infer-ingest end to end: the real tool against a live server with a generation model
// (tiny) and an embedding model (bert). Checks the key layout, the Vector Set, the summary,
// idempotent re-runs (under any spelling of the paths), stale-chunk removal and error reporting.
#include "support/fixture.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/wait.h>

using namespace testing_support;
namespace fs = std::filesystem;

namespace {

std::string shell_quote(const std::string & s) {
    std::string q = "'";
    for (const char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
}

std::string slurp(const fs::path & p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const fs::path & p, const std::string & content) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        const size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        }
        i += len;
    }
    return true;
}

struct run_result {
    int code = -1;
    std::string out, err;
    std::map<std::string, std::string> kv;  // the --summary-format kv line, parsed
};

std::ostream & operator<<(std::ostream & os, const run_result & r) {
    return os << "exit " << r.code << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err;
}

// Text long enough for several 16-token chunks, with multi-byte characters to cut around.
std::string prose(const std::string & topic, int sentences) {
    std::string s;
    for (int i = 0; i < sentences; ++i) {
        s += "Sentence " + std::to_string(i) + " about " + topic +
             ": Redis keeps the data and the model lives next to it — naïve café, 日本語のテキスト, ünïcödé 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🚀.\n";
    }
    return s;
}

class ingest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server = std::make_unique<redis_server>(
            std::vector<std::string>{"MODEL", "tiny", "tiny-q8_0.gguf", "MODEL", "bert", "bert-tiny-f16.gguf", "EMBEDDING"});
        auto c = server->connect();
        ASSERT_TRUE(c);
        ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
        ASSERT_TRUE(wait_model_ready(c.get(), "bert"));
    }
    static void TearDownTestSuite() { server.reset(); }

    void SetUp() override {
        ASSERT_TRUE(server && server->alive());
        c = server->connect();
        ASSERT_TRUE(c);
        char tmpl[] = "/tmp/redis-infer-ingest-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root = tmpl;
        // Two files with the same name in different directories, a hidden file, a hidden
        // directory and a binary file.
        write_file(root / "docs/a/readme.txt", prose("shards", 6));
        write_file(root / "docs/b/readme.txt", prose("vectors", 4));
        write_file(root / "docs/.hidden.txt", prose("secrets", 2));
        write_file(root / "docs/.cache/notes.txt", prose("caches", 2));
        write_file(root / "docs/b/blob.bin", std::string("\x7f" "ELF\0\0\0binary", 13));
    }
    void TearDown() override {
        ASSERT_TRUE(server->alive()) << server->log();
        std::error_code ec;
        fs::remove_all(root, ec);
    }

    // Runs the tool in `cwd` (default `root`, so paths are reached as "docs/...") against the
    // test server.
    run_result run(const std::vector<std::string> & args, const fs::path & cwd = {}) {
        std::string line = "cd " + shell_quote(cwd.empty() ? root : cwd) + " && " + shell_quote(REDIS_INFER_INGEST) + " -p " +
                           std::to_string(server->port());
        for (const auto & a : args) line += " " + shell_quote(a);
        const fs::path out = root / ".stdout", err = root / ".stderr";
        line += " >" + shell_quote(out) + " 2>" + shell_quote(err);
        const int st = std::system(line.c_str());
        run_result r;
        r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        r.out = slurp(out);
        r.err = slurp(err);
        std::istringstream words(r.out);
        for (std::string w; words >> w;) {
            if (const size_t eq = w.find('='); eq != std::string::npos) r.kv[w.substr(0, eq)] = w.substr(eq + 1);
        }
        return r;
    }

    // The usual arguments: small chunks so small files make several.
    std::vector<std::string> args(const std::string & prefix, const std::string & vset, const std::string & path = "docs") {
        return {"--model", "tiny", "--embed-model", "bert", "--vset", vset, "--prefix", prefix, "--chunk-tokens", "16",
                "--overlap", "4", "--summary-format", "kv", "--quiet", path};
    }

    // Chunk count the manifest records for a path.
    long long manifest_count(const std::string & prefix, const std::string & path) {
        const std::string v = str(cmd(c.get(), {"HGET", prefix + "manifest", path}).get());
        return v.empty() ? -1 : std::atoll(v.substr(v.rfind(':') + 1).c_str());
    }

    std::string digest() { return str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()); }

    // Every key with its DEBUG DIGEST-VALUE, the key count and the number of writes so far.
    struct dataset {
        std::map<std::string, std::string> digests;
        long long dbsize = 0, writes = 0;
        bool operator==(const dataset &) const = default;
    };
    dataset snapshot() {
        dataset d;
        d.dbsize = cmd(c.get(), {"DBSIZE"})->integer;
        auto keys = cmd(c.get(), {"KEYS", "*"});
        std::vector<std::string> dv = {"DEBUG", "DIGEST-VALUE"};
        for (size_t i = 0; i < keys->elements; ++i) dv.push_back(str(keys->element[i]));
        auto values = cmd(c.get(), dv);
        for (size_t i = 0; values->type == REDIS_REPLY_ARRAY && i < values->elements; ++i) {
            d.digests[dv[i + 2]] = str(values->element[i]);
        }
        // rdb_changes_since_last_save counts every write (the server never saves).
        const std::string info = str(cmd(c.get(), {"INFO", "persistence"}).get());
        const size_t at = info.find("rdb_changes_since_last_save:");
        if (at != std::string::npos) d.writes = std::atoll(info.c_str() + at + std::strlen("rdb_changes_since_last_save:"));
        return d;
    }

    static std::unique_ptr<redis_server> server;
    client_ptr c;
    fs::path root;
};

std::unique_ptr<redis_server> ingest::server;

}  // namespace

TEST_F(ingest, tree_becomes_chunk_keys_and_vectors_and_a_rerun_changes_nothing) {
    const auto r = run(args("doc:", "kb:vectors"));
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_EQ(r.kv.at("files_ingested"), "2") << r;
    EXPECT_EQ(r.kv.at("files_unchanged"), "0") << r;
    EXPECT_EQ(r.kv.at("files_skipped"), "1") << r;  // blob.bin; hidden entries are not visited at all
    EXPECT_EQ(r.kv.at("files_failed"), "0") << r;
    EXPECT_EQ(r.err, "");

    long long chunks = 0, tokens = 0;
    for (const std::string path : {"docs/a/readme.txt", "docs/b/readme.txt"}) {
        const long long n = manifest_count("doc:", path);
        EXPECT_GE(n, 3) << path;
        const std::string text = slurp(root / path);
        for (long long i = 0; i < n; ++i) {
            const std::string key = "doc:" + path + ":" + std::to_string(i);
            ASSERT_EQ(cmd(c.get(), {"EXISTS", key})->integer, 1) << key;
            EXPECT_EQ(cmd(c.get(), {"VISMEMBER", "kb:vectors", key})->integer, 1) << key;
            tokens += cmd(c.get(), {"STRLEN", key})->integer / 4;
            // Each chunk is a piece of the file, cut on character boundaries; together they span it.
            const std::string piece = str(cmd(c.get(), {"INFER.DETOKENIZE", "tiny", key}).get());
            EXPECT_FALSE(piece.empty()) << key;
            EXPECT_TRUE(valid_utf8(piece)) << key << ": '" << piece << "'";
            EXPECT_NE(text.find(piece), std::string::npos) << key << ": '" << piece << "'";
            EXPECT_TRUE(i > 0 || text.starts_with(piece)) << key;
            EXPECT_TRUE(i < n - 1 || text.ends_with(piece)) << key;
        }
        EXPECT_EQ(cmd(c.get(), {"EXISTS", "doc:" + path + ":" + std::to_string(n)})->integer, 0);
        chunks += n;
    }
    EXPECT_EQ(cmd(c.get(), {"VCARD", "kb:vectors"})->integer, chunks);
    EXPECT_EQ(r.kv.at("chunks"), std::to_string(chunks)) << r;
    EXPECT_EQ(r.kv.at("tokens"), std::to_string(tokens)) << r;
    // Only chunk keys, the manifest and the vset: nothing from hidden or binary files.
    EXPECT_EQ(cmd(c.get(), {"KEYS", "doc:*"})->elements, size_t(chunks) + 1);
    EXPECT_EQ(cmd(c.get(), {"HLEN", "doc:manifest"})->integer, 2);
    EXPECT_EQ(cmd(c.get(), {"KEYS", "*hidden*"})->elements, 0u);
    EXPECT_EQ(cmd(c.get(), {"KEYS", "*blob*"})->elements, 0u);

    // A second run finds every file unchanged and writes nothing.
    const std::string before = digest();
    const auto again = run(args("doc:", "kb:vectors"));
    ASSERT_EQ(again.code, 0) << again;
    EXPECT_EQ(again.kv.at("files_unchanged"), "2") << again;
    EXPECT_EQ(again.kv.at("files_ingested"), "0") << again;
    EXPECT_EQ(again.kv.at("files_skipped"), "1") << again;
    EXPECT_EQ(again.kv.at("chunks"), "0") << again;
    EXPECT_EQ(digest(), before);

    // Other chunk parameters make every file "changed"; rewriting with them keeps keys distinct.
    const auto bigger = run({"--model", "tiny", "--embed-model", "bert", "--vset", "kb:vectors", "--chunk-tokens", "32",
                             "--overlap", "0", "--pipeline", "1", "--summary-format", "kv", "--quiet", "docs"});
    ASSERT_EQ(bigger.code, 0) << bigger;
    EXPECT_EQ(bigger.kv.at("files_ingested"), "2") << bigger;
    EXPECT_GT(std::atoll(bigger.kv.at("chunks_removed").c_str()), 0) << bigger;  // fewer, bigger chunks
    const long long now = manifest_count("doc:", "docs/a/readme.txt") + manifest_count("doc:", "docs/b/readme.txt");
    EXPECT_EQ(cmd(c.get(), {"VCARD", "kb:vectors"})->integer, now);
}

TEST_F(ingest, shrunk_file_loses_its_stale_chunks) {
    // "./docs/" is normalised: keys read s:docs/a/readme.txt:N.
    const auto first = run(args("s:", "s:vectors", "./docs/"));
    ASSERT_EQ(first.code, 0) << first;
    const long long old_a = manifest_count("s:", "docs/a/readme.txt"), b = manifest_count("s:", "docs/b/readme.txt");
    ASSERT_GE(old_a, 3);
    ASSERT_EQ(cmd(c.get(), {"VCARD", "s:vectors"})->integer, old_a + b);

    write_file(root / "docs/a/readme.txt", prose("shards", 1));
    // Without --quiet and with the text summary: progress goes to stderr, the summary to stdout.
    auto a = args("s:", "s:vectors", "./docs/");
    a.erase(a.end() - 4, a.end() - 1);  // drop --summary-format kv --quiet
    const auto second = run(a);
    ASSERT_EQ(second.code, 0) << second;
    EXPECT_TRUE(second.out.starts_with("files: 1 ingested, 1 unchanged, 1 skipped, 0 failed;")) << second;
    EXPECT_NE(second.err.find("chunks"), std::string::npos) << second;

    const long long new_a = manifest_count("s:", "docs/a/readme.txt");
    ASSERT_GE(new_a, 1);
    ASSERT_LT(new_a, old_a);
    EXPECT_NE(second.out.find("(" + std::to_string(old_a - new_a) + " stale removed)"), std::string::npos) << second;
    for (long long i = 0; i < old_a; ++i) {
        const std::string key = "s:docs/a/readme.txt:" + std::to_string(i);
        EXPECT_EQ(cmd(c.get(), {"EXISTS", key})->integer, i < new_a ? 1 : 0) << key;
        EXPECT_EQ(cmd(c.get(), {"VISMEMBER", "s:vectors", key})->integer, i < new_a ? 1 : 0) << key;
    }
    EXPECT_EQ(cmd(c.get(), {"VCARD", "s:vectors"})->integer, new_a + b);

    // Emptied: no chunks left, and the manifest says so.
    write_file(root / "docs/a/readme.txt", "");
    const auto third = run(args("s:", "s:vectors", "./docs/"));
    ASSERT_EQ(third.code, 0) << third;
    EXPECT_EQ(third.kv.at("chunks_removed"), std::to_string(new_a)) << third;
    EXPECT_EQ(manifest_count("s:", "docs/a/readme.txt"), 0);
    EXPECT_EQ(cmd(c.get(), {"KEYS", "s:docs/a/*"})->elements, 0u);
    EXPECT_EQ(cmd(c.get(), {"VCARD", "s:vectors"})->integer, b);
}

TEST_F(ingest, pipeline_depth_and_connections_do_not_change_the_data) {
    std::vector<std::string> digests;
    for (const auto & [depth, conns] : {std::pair{"1", "1"}, std::pair{"64", "8"}, std::pair{"5", "3"}}) {
        cmd(c.get(), {"FLUSHALL"});
        auto a = args("p:", "p:vectors");
        a.insert(a.end() - 1, {"--pipeline", depth, "--connections", conns});
        const auto r = run(a);
        ASSERT_EQ(r.code, 0) << r;
        EXPECT_EQ(r.kv.at("files_ingested"), "2") << r;
        digests.push_back(digest());
    }
    EXPECT_EQ(digests[0], digests[1]);
    EXPECT_EQ(digests[0], digests[2]);
}

TEST_F(ingest, server_errors_are_reported_per_file_and_exit_1) {
    const std::string before = digest();
    auto bad_gen = args("e:", "e:vectors");
    bad_gen[1] = "nope";
    const auto r = run(bad_gen);
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_NE(r.err.find("docs/a/readme.txt: ERR no such model 'nope'"), std::string::npos) << r;
    EXPECT_NE(r.err.find("docs/b/readme.txt: ERR no such model 'nope'"), std::string::npos) << r;
    EXPECT_EQ(r.kv.at("files_failed"), "2") << r;
    EXPECT_EQ(r.kv.at("files_ingested"), "0") << r;

    auto bad_embed = args("e:", "e:vectors");
    bad_embed[3] = "nope";
    const auto r2 = run(bad_embed);
    EXPECT_EQ(r2.code, 1) << r2;
    EXPECT_NE(r2.err.find("docs/a/readme.txt: chunk 0: ERR"), std::string::npos) << r2;
    EXPECT_NE(r2.err.find("'nope'"), std::string::npos) << r2;
    EXPECT_EQ(r2.kv.at("files_failed"), "2") << r2;
    // Nothing recorded: the next run redoes these files.
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "e:manifest"})->integer, 0);
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "e:vectors"})->integer, 0);
    EXPECT_EQ(digest(), before);
}

TEST_F(ingest, bad_arguments_and_no_server_exit_2) {
    auto overlap = args("x:", "x:v");
    overlap[11] = "16";  // --overlap 16 with --chunk-tokens 16
    const auto r = run(overlap);
    EXPECT_EQ(r.code, 2) << r;
    EXPECT_NE(r.err.find("bad value for --overlap - got 16, expected 0..15"), std::string::npos) << r;
    EXPECT_NE(r.err.find("usage: redis-infer-ingest"), std::string::npos) << r;

    const auto missing = run({"--model", "tiny", "--embed-model", "bert", "docs"});
    EXPECT_EQ(missing.code, 2) << missing;
    EXPECT_NE(missing.err.find("--vset is required"), std::string::npos) << missing;

    const auto no_path = run({"--model", "tiny", "--embed-model", "bert", "--vset", "v", "nowhere"});
    EXPECT_EQ(no_path.code, 2) << no_path;
    EXPECT_NE(no_path.err.find("no such file or directory: nowhere"), std::string::npos) << no_path;

    // A later -p wins: port 1 has no server.
    auto refused = args("x:", "x:v");
    refused.insert(refused.begin(), {"-p", "1"});
    const auto r2 = run(refused);
    EXPECT_EQ(r2.code, 2) << r2;
    EXPECT_NE(r2.err.find("cannot connect to 127.0.0.1:1"), std::string::npos) << r2;
}

TEST_F(ingest, any_spelling_of_a_folder_gives_the_same_keys_and_a_rerun_writes_nothing) {
    cmd(c.get(), {"FLUSHALL"});  // DBSIZE and KEYS below count only this test's keys
    fs::create_directory_symlink("docs", root / "kb-link");
    const auto first = run(args("c:", "c:vectors", "docs"));
    ASSERT_EQ(first.code, 0) << first;
    ASSERT_EQ(first.kv.at("files_ingested"), "2") << first;
    const long long a = manifest_count("c:", "docs/a/readme.txt"), b = manifest_count("c:", "docs/b/readme.txt");
    ASSERT_GE(a, 3);
    ASSERT_GE(b, 2);
    const long long vcard = cmd(c.get(), {"VCARD", "c:vectors"})->integer;
    ASSERT_EQ(vcard, a + b);
    const dataset before = snapshot();
    ASSERT_EQ(before.dbsize, 1 + 1 + a + b);  // manifest, vset, chunk keys
    ASSERT_GT(before.writes, 0);

    // Relative, absolute, with '..', through a symlink, and from other working directories.
    const std::vector<std::pair<std::string, fs::path>> spellings = {
        {"docs/", {}},          {(root / "docs").string(), {}}, {"./docs/../docs", {}}, {"kb-link", {}},
        {"./kb-link/", {}},     {"..", root / "docs/a"},        {(root / "kb-link").string(), "/"},
    };
    for (const auto & [path, cwd] : spellings) {
        const auto r = run(args("c:", "c:vectors", path), cwd);
        ASSERT_EQ(r.code, 0) << path << ": " << r;
        EXPECT_EQ(r.kv.at("files_unchanged"), "2") << path << ": " << r;
        EXPECT_EQ(r.kv.at("files_ingested"), "0") << path << ": " << r;
        EXPECT_EQ(r.kv.at("chunks"), "0") << path << ": " << r;
        EXPECT_EQ(r.kv.at("chunks_removed"), "0") << path << ": " << r;
        EXPECT_EQ(cmd(c.get(), {"VCARD", "c:vectors"})->integer, vcard) << path;
        EXPECT_TRUE(snapshot() == before) << path << ": the re-run wrote something";
    }
    // A subfolder keyed from the same root, and the whole folder named twice, are unchanged too.
    auto sub = args("c:", "c:vectors", "docs/a");
    sub.insert(sub.end() - 1, {"--root", "."});
    const auto r_sub = run(sub, {});
    ASSERT_EQ(r_sub.code, 0) << r_sub;
    EXPECT_EQ(r_sub.kv.at("files_unchanged"), "1") << r_sub;
    auto twice = args("c:", "c:vectors", "docs");
    twice.push_back((root / "kb-link/a").string());  // nested: keyed from the outermost root
    const auto r_twice = run(twice);
    ASSERT_EQ(r_twice.code, 0) << r_twice;
    EXPECT_EQ(r_twice.kv.at("files_unchanged"), "2") << r_twice;
    EXPECT_TRUE(snapshot() == before) << "a re-run with --root or nested paths wrote something";

    // A change found through another spelling replaces the same keys: stale chunks go, no copies.
    write_file(root / "docs/a/readme.txt", prose("shards", 1));
    const auto changed = run(args("c:", "c:vectors", (root / "kb-link").string()), "/");
    ASSERT_EQ(changed.code, 0) << changed;
    EXPECT_EQ(changed.kv.at("files_ingested"), "1") << changed;
    EXPECT_EQ(changed.kv.at("files_unchanged"), "1") << changed;
    const long long new_a = manifest_count("c:", "docs/a/readme.txt");
    ASSERT_GE(new_a, 1);
    ASSERT_LT(new_a, a);
    EXPECT_EQ(changed.kv.at("chunks_removed"), std::to_string(a - new_a)) << changed;
    EXPECT_EQ(cmd(c.get(), {"VCARD", "c:vectors"})->integer, new_a + b);
    EXPECT_EQ(cmd(c.get(), {"DBSIZE"})->integer, 1 + 1 + new_a + b);
    EXPECT_EQ(cmd(c.get(), {"HLEN", "c:manifest"})->integer, 2);
    EXPECT_EQ(cmd(c.get(), {"KEYS", "c:docs/a/*"})->elements, size_t(new_a));
    const dataset after = snapshot();
    EXPECT_EQ(run(args("c:", "c:vectors", "docs")).kv.at("files_unchanged"), "2");
    EXPECT_TRUE(snapshot() == after);
}

TEST_F(ingest, root_option_sets_where_key_paths_start_and_key_clashes_are_refused) {
    write_file(root / "other/docs/a/readme.txt", prose("elsewhere", 2));
    const std::string before = digest();

    // Two folders named docs would share keys without --root: refused before any write.
    auto clash = args("k:", "k:vectors", "docs");
    clash.push_back("other/docs");
    const auto r_clash = run(clash);
    EXPECT_EQ(r_clash.code, 2) << r_clash;
    EXPECT_NE(r_clash.err.find("would both be stored as 'k:docs/a/readme.txt:N' - give --root a directory that holds both"),
              std::string::npos)
        << r_clash;
    EXPECT_EQ(digest(), before);

    // A PATH outside --root, and a --root that is not a directory.
    auto outside = args("k:", "k:vectors", "docs");
    outside.insert(outside.end() - 1, {"--root", "docs/a"});
    const auto r_out = run(outside);
    EXPECT_EQ(r_out.code, 2) << r_out;
    EXPECT_NE(r_out.err.find("'docs' is outside --root - got '" + fs::canonical(root / "docs").string() + "'"), std::string::npos)
        << r_out;
    auto bad_root = args("k:", "k:vectors", "docs");
    bad_root.insert(bad_root.end() - 1, {"--root", "docs/a/readme.txt"});
    const auto r_bad = run(bad_root);
    EXPECT_EQ(r_bad.code, 2) << r_bad;
    EXPECT_NE(r_bad.err.find("bad value for --root - got 'docs/a/readme.txt', expected a directory"), std::string::npos) << r_bad;
    EXPECT_EQ(digest(), before);

    // --root . keeps both trees apart; --root docs starts the keys inside docs.
    clash.insert(clash.end() - 2, {"--root", "."});
    const auto r_both = run(clash);
    ASSERT_EQ(r_both.code, 0) << r_both;
    EXPECT_EQ(r_both.kv.at("files_ingested"), "3") << r_both;
    EXPECT_GE(manifest_count("k:", "docs/a/readme.txt"), 3);
    EXPECT_GE(manifest_count("k:", "other/docs/a/readme.txt"), 1);

    auto inside = args("in:", "in:vectors", (root / "docs").string());
    inside.insert(inside.end() - 1, {"--root", (root / "kb-none/../docs").string()});
    fs::create_directory(root / "kb-none");
    const auto r_in = run(inside, "/");
    ASSERT_EQ(r_in.code, 0) << r_in;
    EXPECT_EQ(r_in.kv.at("files_ingested"), "2") << r_in;
    EXPECT_GE(manifest_count("in:", "a/readme.txt"), 3);
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "in:a/readme.txt:0"})->integer, 1);
    EXPECT_EQ(cmd(c.get(), {"KEYS", "in:docs/*"})->elements, 0u);

    // A file PATH is keyed by its name (its directory is the root).
    const auto r_file = run(args("f:", "f:vectors", "docs/b/readme.txt"), root / "docs/a");
    EXPECT_EQ(r_file.code, 2) << r_file;  // no such file from docs/a
    const auto r_file2 = run(args("f:", "f:vectors", "../b/readme.txt"), root / "docs/a");
    ASSERT_EQ(r_file2.code, 0) << r_file2;
    EXPECT_GE(manifest_count("f:", "readme.txt"), 2);
}
