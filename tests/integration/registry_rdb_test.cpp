// The model registry's RDB aux record in its older encoding. registry_persistence.cpp writes
// encver 2 (2 added the EMBEDDING flag) and still reads encver 1, which an RDB saved by an older
// module holds. No build of the old module is kept, so the test makes such a file: it saves an
// RDB with the current module and rewrites the registry record as encver 1 wrote it - the
// encver in the low 10 bits of the record's 64-bit module type id, no embedding field after
// each model - and zeroes the file's CRC64 (Redis skips the check when the stored checksum is
// 0). A server started from that file must bring the models back, as generation models with
// their options, and keep the rest of the dataset. If the encver-1 branch of aux_load read the
// embedding field anyway, it would read the record's EOF marker as a value and Redis would
// refuse the whole file.
#include "support/fixture.h"

#include <fstream>
#include <sstream>

using namespace testing_support;

namespace {

// Redis's moduleTypeEncodeId: 9 characters of 6 bits each, then the 10-bit encver.
uint64_t module_type_id(const std::string & name, int encver) {
    static const std::string cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t id = 0;
    for (char ch : name) id = (id << 6) | uint64_t(cset.find(ch));
    return (id << 10) | uint64_t(encver);
}

std::string be64(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 7; i >= 0; --i, v >>= 8) s[size_t(i)] = char(v & 0xff);
    return s;
}

// One RDB length (rdbLoadLen's plain forms: 6-bit, 14-bit, 32-bit, 64-bit).
bool read_len(const std::string & b, size_t & pos, uint64_t & v) {
    if (pos >= b.size()) return false;
    const auto at = [&](size_t i) { return uint64_t(uint8_t(b[i])); };
    const uint8_t first = uint8_t(b[pos]);
    size_t n = 0;
    if ((first >> 6) == 0) {
        v = first & 0x3f;
        pos += 1;
        return true;
    }
    if ((first >> 6) == 1) {
        if (pos + 2 > b.size()) return false;
        v = ((first & 0x3fu) << 8) | at(pos + 1);
        pos += 2;
        return true;
    }
    if (first == 0x80) n = 4;
    else if (first == 0x81) n = 8;
    else return false;  // an encoded string (integer or LZF), not a length
    if (pos + 1 + n > b.size()) return false;
    v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | at(pos + 1 + i);
    pos += 1 + n;
    return true;
}

// Module value opcodes (RDB_MODULE_OPCODE_*). RedisModule_SaveSigned writes its value as an
// unsigned one, so the record holds no SINT.
constexpr uint64_t k_op_eof = 0, k_op_uint = 2, k_op_string = 5;

bool expect_value(const std::string & b, size_t & pos, uint64_t opcode) {
    uint64_t op = 0, v = 0;
    if (!read_len(b, pos, op) || op != opcode) return false;
    if (opcode != k_op_string) return read_len(b, pos, v);
    return read_len(b, pos, v) && (pos += v) <= b.size();  // a plain (short, unencoded) string
}

// Rewrites the registry record of an RDB saved with encver 2 as encver 1 wrote it. Returns the
// number of models rewritten, or a negative step number where the file was not as expected.
int downgrade_registry_record(std::string & rdb) {
    const std::string needle = "\xF7\x81" + be64(module_type_id("infer-reg", 2));  // RDB_OPCODE_MODULE_AUX, 64-bit id
    const size_t at = rdb.find(needle);
    if (at == std::string::npos || rdb.find(needle, at + 1) != std::string::npos) return -1;
    size_t pos = at + needle.size();
    uint64_t op = 0, when = 0, n = 0;
    if (!read_len(rdb, pos, op) || op != k_op_uint || !read_len(rdb, pos, when) || when != 1) return -2;  // BEFORE_RDB
    if (!read_len(rdb, pos, op) || op != k_op_uint || !read_len(rdb, pos, n) || n == 0) return -3;
    for (uint64_t i = 0; i < n; ++i) {
        // name, path, CTX, SLOTS, BATCH, GPU_LAYERS, THREADS, then encver 2's embedding flag.
        for (uint64_t opcode : {k_op_string, k_op_string, k_op_uint, k_op_uint, k_op_uint, k_op_uint, k_op_uint}) {
            if (!expect_value(rdb, pos, opcode)) return -4;
        }
        const size_t flag = pos;
        uint64_t embedding = 0;
        if (!read_len(rdb, pos, op) || op != k_op_uint || !read_len(rdb, pos, embedding) || embedding != 0) return -5;
        rdb.erase(flag, pos - flag);
        pos = flag;
    }
    if (!read_len(rdb, pos, op) || op != k_op_eof) return -6;
    rdb.replace(at + 2, 8, be64(module_type_id("infer-reg", 1)));
    if (rdb.size() < 9 || uint8_t(rdb[rdb.size() - 9]) != 0xFF) return -7;  // RDB_OPCODE_EOF, then the CRC64
    rdb.replace(rdb.size() - 8, 8, std::string(8, '\0'));
    return int(n);
}

std::string config_get(redisContext * c, const std::string & name) {
    auto r = cmd(c, {"CONFIG", "GET", name});
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? str(r->element[1]) : "";
}

}  // namespace

TEST(registry_rdb, an_encver_1_registry_loads_its_models_as_generation_models) {
    std::string rdb;
    {
        redis_server old;
        auto c = old.connect();
        ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "a", "tiny-q8_0.gguf", "CTX", "200", "SLOTS", "2", "BATCH", "64"})->type,
                  REDIS_REPLY_STATUS);
        ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "b", "tiny-q8_0.gguf", "CTX", "128", "GPU_LAYERS", "-1"})->type, REDIS_REPLY_STATUS);
        cmd(c.get(), {"SET", "canary", "v"});
        cmd(c.get(), {"RPUSH", "list", "x", "y"});
        auto saved = cmd(c.get(), {"SAVE"});
        ASSERT_EQ(saved->type, REDIS_REPLY_STATUS) << str(saved.get());
        std::ifstream f(config_get(c.get(), "dir") + "/" + config_get(c.get(), "dbfilename"), std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        rdb = ss.str();
    }
    ASSERT_GT(rdb.size(), 9u);
    ASSERT_EQ(downgrade_registry_record(rdb), 2);

    char tmpl[] = "/tmp/redis-infer-encver1-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    std::ofstream(dir + "/dump.rdb", std::ios::binary) << rdb;
    redis_server s({}, {"--dir", dir});  // the later --dir wins: the server loads our file
    auto c = s.connect();
    ASSERT_TRUE(c);
    EXPECT_EQ(str(cmd(c.get(), {"GET", "canary"}).get()), "v") << s.log();
    EXPECT_EQ(cmd(c.get(), {"LLEN", "list"})->integer, 2);
    ASSERT_TRUE(wait_model_ready(c.get(), "a")) << s.log();
    ASSERT_TRUE(wait_model_ready(c.get(), "b")) << s.log();
    auto m = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(m->elements, 2u);
    for (size_t i = 0; i < m->elements; ++i) {
        const redisReply * e = m->element[i];
        const std::string name = str(map_get(e, "name"));
        EXPECT_EQ(str(map_get(e, "kind")), "generation") << name;
        EXPECT_EQ(map_get(e, "context")->integer, name == "a" ? 200 : 128) << name;
        if (name == "a") {
            EXPECT_EQ(map_get(e, "slots")->integer, 2);
            EXPECT_EQ(map_get(e, "batch")->integer, 64);
        }
    }
    EXPECT_NE(s.log().find("no check performed"), std::string::npos) << "the file was not the one rewritten";
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "a", "TEXT", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "b", "TEXT", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    (void) !system(("rm -rf '" + dir + "'").c_str());
}
