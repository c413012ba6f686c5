// ACL: which users may run which INFER command (categories), and which keys a command may read
// or write for them (key patterns). Two places check keys, and each is tested:
// - Redis, when the command arrives, for the keys a command declares (getkeys-api or its key
//   range): PROMPT, STORE, STREAM, the chat session, SYSTEM_KEY, the RAG and INGEST sets, the
//   INGEST chunk key, EMBED's STORE/VADD, TOKENIZE's STORE, DETOKENIZE's key. Refused ones cost
//   no model work; ACL DRYRUN names the refused key.
// - the module, for keys no argument names (RAG's chunk keys, found in the set) and before every
//   write it makes later (STREAM entries, STORE, the session), as the caller's user at that
//   moment. ACL DRYRUN passes these; the command then fails.
// Error texts are Redis's own, exactly.
#include "support/fixture.h"

#include <map>
#include <set>

using namespace testing_support;

namespace {

const std::string k_no_key = "NOPERM No permissions to access a key";

std::string no_command(const std::string & user, const std::string & command) {
    return "NOPERM User " + user + " has no permissions to run the '" + command + "' command";
}

// ACL DRYRUN's wording (it names the key; the error a client gets does not).
std::string dryrun_no_key(const std::string & user, const std::string & key) {
    return "User " + user + " has no permissions to access the '" + key + "' key";
}

::testing::AssertionResult error_is(const reply_ptr & r, const std::string & text) {
    if (!r) return ::testing::AssertionFailure() << "no reply";
    if (r->type != REDIS_REPLY_ERROR) {
        return ::testing::AssertionFailure() << "not an error reply (type " << r->type << "): " << str(r.get());
    }
    if (str(r.get()) != text) return ::testing::AssertionFailure() << "error is '" << str(r.get()) << "', expected '" << text << "'";
    return ::testing::AssertionSuccess();
}

// Sends a command without waiting for its reply; receive() reads it.
// One call per command, with keys under k:*, for the category matrix.
const std::vector<std::pair<std::string, std::vector<std::string>>> k_calls = {
    {"infer.info", {"INFER.INFO"}},
    {"infer.models", {"INFER.MODELS"}},
    {"infer.load", {"INFER.LOAD", "x", "tiny-q8_0.gguf"}},
    {"infer.unload", {"INFER.UNLOAD", "x"}},
    {"infer.tokenize", {"INFER.TOKENIZE", "tiny", "hi", "STORE", "k:t"}},
    {"infer.detokenize", {"INFER.DETOKENIZE", "tiny", "k:t"}},
    {"infer.generate", {"INFER.GENERATE", "tiny", "TEXT", "hi"}},
    {"infer.chat", {"INFER.CHAT", "tiny", "k:chat", "USER", "hi"}},
    {"infer.embed", {"INFER.EMBED", "bert", "TEXT", "hi"}},
    {"infer.ingest", {"INFER.INGEST", "tiny", "bert", "k:kb", "k:kb:0", "hi"}},
    {"infer.rag", {"INFER.RAG", "tiny", "k:kb", "QUERY", "hi"}},
};

std::set<std::string> all_commands() {
    std::set<std::string> s;
    for (const auto & [name, call] : k_calls) s.insert(name);
    return s;
}

std::set<std::string> all_but(std::initializer_list<std::string> out) {
    std::set<std::string> s = all_commands();
    for (const auto & o : out) s.erase(o);
    return s;
}

}  // namespace

class acl : public live {
protected:
    static void SetUpTestSuite() {
        start_tiny_and_bert("2048");
    }

    // (Re)creates `name` from scratch with password "pw" and these rules.
    void make_user(const std::string & name, const std::vector<std::string> & rules) {
        std::vector<std::string> args = {"ACL", "SETUSER", name, "reset", "on", ">pw"};
        args.insert(args.end(), rules.begin(), rules.end());
        auto r = cmd(c.get(), args);
        ASSERT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
    }

    client_ptr login(const std::string & name) { return login_as(name, "pw"); }

    // As user `name`: a long greedy generation streaming to <name>:s and storing to <name>:o,
    // awaited until its first entry is written. The connection is returned, still blocked.
    client_ptr stream_as(const std::string & name, const std::string & max_tokens) {
        auto u = login(name);
        send(u.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", max_tokens, "TEMPERATURE", "0",
                       "IGNORE_EOS", "STREAM", name + ":s", "STORE", name + ":o"});
        EXPECT_TRUE(wait_for([&] { return cmd(c.get(), {"XLEN", name + ":s"})->integer > 0; }));
        return u;
    }

    client_ptr login_as(const std::string & name, const std::string & password) {
        auto u = server->connect();
        auto r = cmd(u.get(), {"AUTH", name, password});
        EXPECT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
        return u;
    }

    std::string dryrun(const std::string & user, const std::vector<std::string> & call) {
        std::vector<std::string> args = {"ACL", "DRYRUN", user};
        args.insert(args.end(), call.begin(), call.end());
        return str(cmd(c.get(), args).get());
    }

    long long requests(const std::string & model) {
        const redisReply * n = map_get(cmd(c.get(), {"INFER.INFO", model}).get(), "requests");
        return n ? n->integer : -1;
    }

    long long slots_busy() {
        const redisReply * n = map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy");
        return n ? n->integer : -1;
    }

    // A request was let through and is generating: its client is blocked and a slot is busy.
    bool generating() {
        auto r = cmd(c.get(), {"INFO", "clients"});
        return r && str(r.get()).find("blocked_clients:1\r\n") != std::string::npos && slots_busy() == 1;
    }
};

TEST_F(acl, acl_cat_lists_the_infer_commands_of_each_category) {
    const std::set<std::string> model_work = all_but({"infer.info", "infer.models"});
    const std::map<std::string, std::set<std::string>> want = {
        {"infer", all_commands()},
        {"admin", {"infer.load", "infer.unload"}},
        {"dangerous", {"infer.load", "infer.unload"}},
        {"read", {"infer.detokenize", "infer.generate", "infer.chat", "infer.embed", "infer.rag"}},
        {"write", {"infer.tokenize", "infer.generate", "infer.chat", "infer.embed", "infer.ingest", "infer.rag"}},
        {"slow", model_work},
        {"blocking", model_work},
        {"fast", {"infer.info", "infer.models"}},
    };
    EXPECT_EQ(want.at("infer").size(), 11u);
    for (const auto & [category, commands] : want) {
        auto r = cmd(c.get(), {"ACL", "CAT", category});
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << category;
        std::set<std::string> got;
        for (size_t i = 0; i < r->elements; ++i) {
            const std::string n = str(r->element[i]);
            if (n.rfind("infer.", 0) == 0) got.insert(n);
        }
        EXPECT_EQ(got, commands) << "ACL CAT " << category;
    }
}

TEST_F(acl, an_app_user_without_dangerous_and_admin_cannot_load_or_unload) {
    make_user("app", {"~app:*", "+@all", "-@dangerous", "-@admin"});
    auto u = login("app");
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.LOAD", "tiny2", "tiny-q8_0.gguf"}), no_command("app", "infer.load")));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.LOAD", "tiny", "tiny-q8_0.gguf", "REPLACE"}), no_command("app", "infer.load")));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.UNLOAD", "tiny"}), no_command("app", "infer.unload")));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 2u);

    // Everything else works, on app:* keys.
    auto r = cmd(u.get(), {"INFER.TOKENIZE", "tiny", "Hello there", "STORE", "app:p"});
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    r = cmd(u.get(), {"INFER.GENERATE", "tiny", "PROMPT", "app:p", "MAX_TOKENS", "4", "TEMPERATURE", "0", "STORE",
                      "app:out", "STREAM", "app:s"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    r = cmd(u.get(), {"INFER.DETOKENIZE", "tiny", "app:out"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    r = cmd(u.get(), {"INFER.CHAT", "tiny", "app:chat", "USER", "hi", "MAX_TOKENS", "4"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    r = cmd(u.get(), {"INFER.EMBED", "bert", "TEXT", "hi", "STORE", "app:vec", "VADD", "app:vs", "e1"});
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    r = cmd(u.get(), {"INFER.INGEST", "tiny", "bert", "app:kb", "app:kb:0", "Tomatoes grow in volcanic soil."});
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    r = cmd(u.get(), {"INFER.RAG", "tiny", "app:kb", "QUERY", "Where do tomatoes grow?", "K", "1", "MAX_TOKENS", "4"});
    EXPECT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    EXPECT_EQ(cmd(u.get(), {"INFER.INFO"})->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(cmd(u.get(), {"INFER.MODELS"})->type, REDIS_REPLY_ARRAY);
    for (const char * k : {"app:p", "app:out", "app:s", "app:chat", "app:vec", "app:vs", "app:kb", "app:kb:0"}) {
        EXPECT_EQ(cmd(c.get(), {"EXISTS", k})->integer, 1) << k;
    }
    cmd(c.get(), {"DEL", "app:p", "app:out", "app:s", "app:chat", "app:vec", "app:vs", "app:kb", "app:kb:0"});
    cmd(c.get(), {"ACL", "DELUSER", "app"});
}

// Every command, for users made of category rules (keys ~*): ACL DRYRUN says whether Redis
// lets it through; a few are then run for real.
TEST_F(acl, category_rules_allow_exactly_their_commands) {
    struct rule_case {
        std::vector<std::string> rules;
        std::set<std::string> allowed;
    };
    const std::vector<rule_case> cases = {
        {{"+@all", "-@dangerous", "-@admin"}, all_but({"infer.load", "infer.unload"})},
        {{"+@infer", "-@admin"}, all_but({"infer.load", "infer.unload"})},
        {{"+@infer", "-@slow"}, {"infer.info", "infer.models"}},
        {{"+@infer", "-@blocking"}, {"infer.info", "infer.models"}},
        {{"+@read", "-@write"}, {"infer.detokenize"}},
        {{"+@infer", "-@write"}, {"infer.info", "infer.models", "infer.load", "infer.unload", "infer.detokenize"}},
        {{"+@infer", "-@read"}, {"infer.info", "infer.models", "infer.load", "infer.unload", "infer.tokenize", "infer.ingest"}},
        {{"+@read"}, {"infer.detokenize", "infer.generate", "infer.chat", "infer.embed", "infer.rag"}},
        {{"+@write"}, {"infer.tokenize", "infer.generate", "infer.chat", "infer.embed", "infer.ingest", "infer.rag"}},
        {{"+@fast"}, {"infer.info", "infer.models"}},
        {{"+@admin"}, {"infer.load", "infer.unload"}},
        {{"+@all", "-@infer"}, {}},
    };
    for (const auto & rc : cases) {
        std::vector<std::string> rules = {"~*"};
        rules.insert(rules.end(), rc.rules.begin(), rc.rules.end());
        make_user("cat", rules);
        std::string label;
        for (const auto & r : rc.rules) label += r + " ";
        for (const auto & [name, call] : k_calls) {
            const std::string want =
                rc.allowed.count(name) ? "OK" : "User cat has no permissions to run the '" + name + "' command";
            EXPECT_EQ(dryrun("cat", call), want) << label << name;
        }
    }

    // Run for real: refused with Redis's text before any model work, allowed ones work.
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", "Hello", "STORE", "cat:p"});
    const long long before = requests("tiny");
    make_user("cat", {"~*", "+@read", "-@write"});
    auto u = login("cat");
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.INGEST", "tiny", "bert", "cat:kb", "cat:kb:0", "x"}), no_command("cat", "infer.ingest")));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi"}), no_command("cat", "infer.generate")));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.TOKENIZE", "tiny", "hi"}), no_command("cat", "infer.tokenize")));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.INFO"}), no_command("cat", "infer.info")));
    EXPECT_EQ(requests("tiny"), before);
    EXPECT_EQ(str(cmd(u.get(), {"INFER.DETOKENIZE", "tiny", "cat:p"}).get()), "Hello");

    make_user("cat", {"~*", "+@infer", "-@slow"});
    u = login("cat");
    for (const auto & [name, call] : k_calls) {
        if (name == "infer.info" || name == "infer.models") {
            EXPECT_EQ(cmd(u.get(), call)->type, REDIS_REPLY_ARRAY) << name;
        } else {
            EXPECT_TRUE(error_is(cmd(u.get(), call), no_command("cat", name))) << name;
        }
    }
    EXPECT_EQ(requests("tiny"), before + 1);  // the DETOKENIZE above
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 2u);
    cmd(c.get(), {"DEL", "cat:p"});
    cmd(c.get(), {"ACL", "DELUSER", "cat"});
}

// Keys a command declares are checked by Redis when the command arrives: refused ones run no
// model and write nothing. Patterns: kp:* read-write, ro:* read-only, wo:* write-only.
TEST_F(acl, declared_keys_are_checked_before_the_command_runs) {
    for (const char * k : {"kp:p", "ro:p", "wo:p", "secret:p"}) cmd(c.get(), {"INFER.TOKENIZE", "tiny", "Hello", "STORE", k});
    cmd(c.get(), {"INFER.TOKENIZE", "bert", "Hello", "STORE", "secret:bp"});
    make_user("kp", {"-@all", "+@infer", "~kp:*", "%R~ro:*", "%W~wo:*"});
    auto u = login("kp");
    const long long tiny_before = requests("tiny"), bert_before = requests("bert");
    const std::string digest = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());

    const std::vector<std::pair<std::string, std::vector<std::string>>> refused = {
        {"secret:p", {"INFER.GENERATE", "tiny", "PROMPT", "secret:p", "MAX_TOKENS", "2"}},
        {"secret:p", {"INFER.GENERATE", "tiny", "PROMPT", "kp:p", "secret:p", "MAX_TOKENS", "2"}},
        {"wo:p", {"INFER.GENERATE", "tiny", "PROMPT", "wo:p", "MAX_TOKENS", "2"}},
        {"secret:o", {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "2", "STORE", "secret:o"}},
        {"ro:o", {"INFER.GENERATE", "tiny", "PROMPT", "ro:p", "MAX_TOKENS", "2", "STORE", "ro:o"}},
        {"secret:s", {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "2", "STREAM", "secret:s"}},
        {"secret:chat", {"INFER.CHAT", "tiny", "secret:chat", "USER", "hi", "MAX_TOKENS", "2"}},
        {"ro:chat", {"INFER.CHAT", "tiny", "ro:chat", "USER", "hi", "MAX_TOKENS", "2"}},
        {"wo:chat", {"INFER.CHAT", "tiny", "wo:chat", "USER", "hi", "MAX_TOKENS", "2"}},
        {"secret:o", {"INFER.CHAT", "tiny", "kp:chat", "USER", "hi", "MAX_TOKENS", "2", "STORE", "secret:o"}},
        {"secret:s", {"INFER.CHAT", "tiny", "kp:chat", "USER", "hi", "MAX_TOKENS", "2", "STREAM", "secret:s"}},
        {"secret:t", {"INFER.TOKENIZE", "tiny", "hi", "STORE", "secret:t"}},
        {"ro:t", {"INFER.TOKENIZE", "tiny", "hi", "STORE", "ro:t"}},
        {"secret:p", {"INFER.DETOKENIZE", "tiny", "secret:p"}},
        {"wo:p", {"INFER.DETOKENIZE", "tiny", "wo:p"}},
        {"secret:bp", {"INFER.EMBED", "bert", "PROMPT", "secret:bp"}},
        {"secret:v", {"INFER.EMBED", "bert", "TEXT", "hi", "STORE", "secret:v"}},
        {"ro:v", {"INFER.EMBED", "bert", "TEXT", "hi", "STORE", "ro:v"}},
        {"secret:vs", {"INFER.EMBED", "bert", "TEXT", "hi", "VADD", "secret:vs", "e"}},
        {"secret:kb", {"INFER.INGEST", "tiny", "bert", "secret:kb", "kp:kb:0", "text"}},
        {"secret:kb:0", {"INFER.INGEST", "tiny", "bert", "kp:kb", "secret:kb:0", "text"}},
        {"ro:kb", {"INFER.INGEST", "tiny", "bert", "ro:kb", "kp:kb:0", "text"}},
        {"secret:kb", {"INFER.RAG", "tiny", "secret:kb", "QUERY", "q"}},
        {"wo:kb", {"INFER.RAG", "tiny", "wo:kb", "QUERY", "q"}},
        {"secret:p", {"INFER.RAG", "tiny", "kp:kb", "QUERY", "q", "SYSTEM_KEY", "secret:p"}},
        {"secret:o", {"INFER.RAG", "tiny", "kp:kb", "QUERY", "q", "STORE", "secret:o"}},
        {"secret:s", {"INFER.RAG", "tiny", "kp:kb", "QUERY", "q", "STREAM", "secret:s"}},
    };
    cmd(c.get(), {"ACL", "LOG", "RESET"});
    for (const auto & [key, call] : refused) {
        EXPECT_EQ(dryrun("kp", call), dryrun_no_key("kp", key)) << call[0] << " " << key;
        EXPECT_TRUE(error_is(cmd(u.get(), call), k_no_key)) << call[0] << " " << key;
    }
    // Redis logged each refusal, naming the key.
    auto log = cmd(c.get(), {"ACL", "LOG", "1"});
    ASSERT_EQ(log->elements, 1u);
    EXPECT_EQ(str(map_get(log->element[0], "reason")), "key");
    EXPECT_EQ(str(map_get(log->element[0], "object")), refused.back().first);
    EXPECT_EQ(str(map_get(log->element[0], "username")), "kp");
    EXPECT_EQ(requests("tiny"), tiny_before);
    EXPECT_EQ(requests("bert"), bert_before);
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), digest) << "a refused command wrote something";

    // Read where the user may read, write where it may write.
    EXPECT_EQ(dryrun("kp", {"INFER.DETOKENIZE", "tiny", "ro:p"}), "OK");
    EXPECT_EQ(str(cmd(u.get(), {"INFER.DETOKENIZE", "tiny", "ro:p"}).get()), "Hello");
    auto r = cmd(u.get(), {"INFER.GENERATE", "tiny", "PROMPT", "ro:p", "kp:p", "MAX_TOKENS", "2", "STORE", "wo:o", "STREAM", "wo:s"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    r = cmd(u.get(), {"INFER.TOKENIZE", "tiny", "hi", "STORE", "wo:t"});
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    r = cmd(u.get(), {"INFER.EMBED", "bert", "TEXT", "hi", "STORE", "wo:v", "VADD", "wo:vs", "e"});
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    r = cmd(u.get(), {"INFER.INGEST", "tiny", "bert", "wo:kb", "wo:kb:0", "text"});
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER) << str(r.get());
    r = cmd(u.get(), {"INFER.CHAT", "tiny", "kp:chat", "USER", "hi", "MAX_TOKENS", "2"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    for (const char * k : {"wo:o", "wo:s", "wo:t", "wo:v", "wo:vs", "wo:kb", "wo:kb:0", "kp:chat"}) {
        EXPECT_EQ(cmd(c.get(), {"EXISTS", k})->integer, 1) << k;
    }
    cmd(c.get(), {"DEL", "kp:p", "ro:p", "wo:p", "secret:p", "secret:bp", "wo:o", "wo:s", "wo:t", "wo:v", "wo:vs", "wo:kb",
                  "wo:kb:0", "kp:chat"});
    cmd(c.get(), {"ACL", "DELUSER", "kp"});
}

// RAG's chunk keys come from the Vector Set, not from argv, so Redis cannot check them: the
// module checks each one as the caller before reading it. A chunk the user may not read fails
// the whole request before generation; its text reaches neither the reply nor any key.
TEST_F(acl, rag_does_not_read_chunk_keys_the_user_may_not_read) {
    const std::string open_text = "The marathon route crossed five bridges and two city parks.";
    const std::string secret_text = "The vault code is 4471, behind the blue painting in the attic.";
    ASSERT_EQ(cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "rg:kb", "rg:doc:0", open_text})->type, REDIS_REPLY_INTEGER);
    ASSERT_EQ(cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "rg:kb", "hidden:doc:0", secret_text})->type, REDIS_REPLY_INTEGER);
    // The secret chunk is the top hit for its own text (the default user sees it).
    auto adm = cmd(c.get(), {"INFER.RAG", "tiny", "rg:kb", "QUERY", secret_text, "K", "1", "MAX_TOKENS", "1"});
    ASSERT_EQ(adm->type, REDIS_REPLY_ARRAY) << str(adm.get());
    EXPECT_EQ(str(map_get(adm.get(), "sources")->element[0]->element[0]), "hidden:doc:0");

    make_user("rg", {"-@all", "+@infer", "~rg:*"});
    auto u = login("rg");
    const std::vector<std::string> call = {"INFER.RAG", "tiny", "rg:kb", "QUERY", secret_text, "K", "1", "MAX_TOKENS", "8",
                                           "TEMPERATURE", "0", "WITHPROMPT", "WITHMETA", "STORE", "rg:out", "STREAM", "rg:s"};
    EXPECT_EQ(dryrun("rg", call), "OK") << "chunk keys are not declared: Redis lets the command through";
    const long long gen_before = requests("tiny");
    auto r = cmd(u.get(), call);
    EXPECT_TRUE(error_is(r, k_no_key));
    EXPECT_EQ(str(r.get()).find("vault"), std::string::npos);
    EXPECT_EQ(requests("tiny"), gen_before) << "nothing was generated";
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "rg:out"})->integer, 0);
    // The stream gets only its error entry, which names no chunk.
    auto s = cmd(c.get(), {"XRANGE", "rg:s", "-", "+"});
    ASSERT_EQ(s->type, REDIS_REPLY_ARRAY) << str(s.get());
    ASSERT_EQ(s->elements, 1u);
    const redisReply * fields = s->element[0]->element[1];
    ASSERT_EQ(fields->elements, 2u);
    EXPECT_EQ(str(fields->element[0]), "error");
    EXPECT_EQ(str(fields->element[1]), k_no_key);
    // K 2 retrieves both chunks: still refused, whatever the query.
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.RAG", "tiny", "rg:kb", "QUERY", open_text, "K", "2", "MAX_TOKENS", "4"}), k_no_key));
    // A query whose only hit is readable works, with only that chunk in the prompt.
    r = cmd(u.get(), {"INFER.RAG", "tiny", "rg:kb", "QUERY", open_text, "K", "1", "MAX_TOKENS", "4", "WITHPROMPT"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    EXPECT_EQ(str(map_get(r.get(), "sources")->element[0]->element[0]), "rg:doc:0");
    const std::string prompt = str(map_get(r.get(), "prompt"));
    EXPECT_NE(prompt.find(str(cmd(c.get(), {"GET", "rg:doc:0"}).get())), std::string::npos);
    EXPECT_EQ(prompt.find(str(cmd(c.get(), {"GET", "hidden:doc:0"}).get())), std::string::npos);
    cmd(c.get(), {"DEL", "rg:kb", "rg:doc:0", "hidden:doc:0", "rg:s"});
    cmd(c.get(), {"ACL", "DELUSER", "rg"});
}

// STREAM entries, STORE and the chat session are written after the command returned to the
// event loop; each write is checked against the caller's user as it is then. Revoking the keys
// mid-generation stops the writes, and the reply is the refusal.
TEST_F(acl, writes_made_later_are_checked_against_the_user_at_write_time) {
    make_user("late", {"-@all", "+@infer", "~late:*"});
    auto u = stream_as("late", "600");
    ASSERT_GT(cmd(c.get(), {"XLEN", "late:s"})->integer, 0);
    make_user("late", {"-@all", "+@infer", "~other:*"});
    const long long written = cmd(c.get(), {"XLEN", "late:s"})->integer;
    EXPECT_EQ(slots_busy(), 1) << "the generation ended before the keys were revoked";
    EXPECT_TRUE(error_is(receive(u.get()), k_no_key));
    EXPECT_EQ(cmd(c.get(), {"XLEN", "late:s"})->integer, written) << "no entry after the revoke, not even the last";
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "late:o"})->integer, 0);
    ASSERT_TRUE(wait_for([&] { return slots_busy() == 0; }));

    // The chat session, written once the answer is complete.
    make_user("late", {"-@all", "+@infer", "~late:*"});
    u = login("late");
    send(u.get(), {"INFER.CHAT", "tiny", "late:chat", "USER", "hi", "MAX_TOKENS", "600", "IGNORE_EOS"});
    ASSERT_TRUE(wait_for([&] { return generating(); }));
    make_user("late", {"-@all", "+@infer", "~other:*"});
    EXPECT_EQ(slots_busy(), 1);
    EXPECT_TRUE(error_is(receive(u.get()), k_no_key));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "late:chat"})->integer, 0);
    ASSERT_TRUE(wait_for([&] { return slots_busy() == 0; }));

    // A user deleted meanwhile: its connection is closed, the request cancelled, nothing written.
    make_user("late", {"-@all", "+@infer", "~late:*"});
    u = login("late");
    send(u.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "600", "IGNORE_EOS", "STORE", "late:o2"});
    ASSERT_TRUE(wait_for([&] { return generating(); }));
    cmd(c.get(), {"ACL", "DELUSER", "late"});
    EXPECT_EQ(receive(u.get()), nullptr);
    ASSERT_TRUE(wait_for([&] { return slots_busy() == 0; }));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "late:o2"})->integer, 0);
    cmd(c.get(), {"DEL", "late:s"});
}

// The example users of docs/security.md do what the page says.
TEST_F(acl, the_documented_users_work_as_described) {
    // The tighter application: reads prompt:* and {kb}:*, writes out:* and chat:*, no LOAD.
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", "Hello", "STORE", "prompt:a"});
    ASSERT_EQ(cmd(c.get(), {"INFER.INGEST", "tiny", "bert", "{kb}:vectors", "{kb}:doc:0", "Ink is made from oak galls."})->type,
              REDIS_REPLY_INTEGER);
    make_user("app", {"resetkeys", "-@all", "+@infer", "-@admin", "%R~prompt:*", "%R~{kb}:*", "~out:*", "~chat:*"});
    auto u = login("app");
    auto r = cmd(u.get(), {"INFER.GENERATE", "tiny", "PROMPT", "prompt:a", "MAX_TOKENS", "2", "STORE", "out:a"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    r = cmd(u.get(), {"INFER.CHAT", "tiny", "chat:1", "USER", "hi", "MAX_TOKENS", "2"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    r = cmd(u.get(), {"INFER.RAG", "tiny", "{kb}:vectors", "QUERY", "How is ink made?", "K", "1", "MAX_TOKENS", "2"});
    EXPECT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.TOKENIZE", "tiny", "x", "STORE", "prompt:a"}), k_no_key));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.INGEST", "tiny", "bert", "{kb}:vectors", "{kb}:doc:1", "x"}), k_no_key));
    EXPECT_TRUE(error_is(cmd(u.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf"}), no_command("app", "infer.load")));
    EXPECT_TRUE(error_is(cmd(u.get(), {"GET", "out:a"}), no_command("app", "get")));

    // The corpus loader.
    make_user("loader", {"resetkeys", "-@all", "+infer.tokenize", "+infer.ingest", "+hget", "+hset", "+del", "+vrem", "~{kb}:*"});
    EXPECT_EQ(dryrun("loader", {"INFER.INGEST", "tiny", "bert", "{kb}:vectors", "{kb}:doc:1", "x"}), "OK");
    EXPECT_EQ(dryrun("loader", {"INFER.TOKENIZE", "tiny", "x", "WITHOFFSETS"}), "OK");
    EXPECT_EQ(dryrun("loader", {"HSET", "{kb}:manifest", "f", "v"}), "OK");
    EXPECT_EQ(dryrun("loader", {"VREM", "{kb}:vectors", "{kb}:doc:1"}), "OK");
    EXPECT_EQ(dryrun("loader", {"INFER.GENERATE", "tiny", "TEXT", "x"}),
              "User loader has no permissions to run the 'infer.generate' command");

    // The model operator: LOAD, UNLOAD, INFO, MODELS and the configs, no inference, no keys.
    make_user("modelops", {"resetkeys", "-@all", "+@infer", "-@read", "-@write", "+config|get", "+config|set"});
    auto ops = login("modelops");
    r = cmd(ops.get(), {"INFER.LOAD", "ops", "tiny-q8_0.gguf", "CTX", "64", "SLOTS", "1"});
    EXPECT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
    EXPECT_EQ(cmd(ops.get(), {"INFER.MODELS"})->elements, 3u);
    r = cmd(ops.get(), {"INFER.UNLOAD", "ops"});
    EXPECT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
    EXPECT_TRUE(error_is(cmd(ops.get(), {"INFER.GENERATE", "tiny", "TEXT", "x"}), no_command("modelops", "infer.generate")));
    EXPECT_EQ(cmd(ops.get(), {"CONFIG", "SET", "infer.queue-size", "64"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(is_error(cmd(ops.get(), {"CONFIG", "SET", "infer.model-dir", "/tmp"}), "ERR CONFIG SET failed"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 2u);

    cmd(c.get(), {"DEL", "prompt:a", "{kb}:vectors", "{kb}:doc:0", "out:a", "chat:1"});
    for (const char * n : {"app", "loader", "modelops"}) cmd(c.get(), {"ACL", "DELUSER", n});
}

// ACL DELUSER while the user's STREAM generation runs. Redis closes the user's connections; the
// module's disconnect callback cancels the request, and every write after the deletion looks the
// user up by name and finds none ("no longer exists"). So the stream ends where it was when the
// user went, with no last entry (it could only be written as the deleted user), STORE is never
// written, the slot is freed and no client stays blocked. The entry count at the moment of the
// deletion is read in the same MULTI as the DELUSER, so no write can slip in between.
TEST_F(acl, a_user_deleted_mid_stream_gets_nothing_more_written) {
    make_user("gone", {"-@all", "+@infer", "~gone:*"});
    auto u = stream_as("gone", "1500");
    ASSERT_GT(cmd(c.get(), {"XLEN", "gone:s"})->integer, 0);

    ASSERT_EQ(cmd(c.get(), {"MULTI"})->type, REDIS_REPLY_STATUS);
    cmd(c.get(), {"XLEN", "gone:s"});
    cmd(c.get(), {"INFER.INFO", "tiny"});
    cmd(c.get(), {"ACL", "DELUSER", "gone"});
    auto exec = cmd(c.get(), {"EXEC"});
    ASSERT_EQ(exec->type, REDIS_REPLY_ARRAY) << str(exec.get());
    ASSERT_EQ(exec->elements, 3u);
    const long long at_delete = exec->element[0]->integer;
    EXPECT_EQ(map_get(exec->element[1], "slots_busy")->integer, 1) << "the generation ended before the user was deleted";
    EXPECT_EQ(exec->element[2]->integer, 1) << "DELUSER deleted one user";

    // The user's connection is closed without a reply.
    EXPECT_EQ(receive(u.get()), nullptr);
    EXPECT_TRUE(wait_for([&] { return slots_busy() == 0; })) << "the request was not cancelled";
    EXPECT_TRUE(wait_for([&] {
        return str(cmd(c.get(), {"INFO", "clients"}).get()).find("blocked_clients:0\r\n") != std::string::npos;
    }));
    EXPECT_LT(at_delete, 1500);
    EXPECT_EQ(cmd(c.get(), {"XLEN", "gone:s"})->integer, at_delete) << "an entry was written after the user was deleted";
    auto last = cmd(c.get(), {"XREVRANGE", "gone:s", "+", "-", "COUNT", "1"});
    ASSERT_EQ(last->elements, 1u);
    EXPECT_EQ(str(last->element[0]->element[1]->element[0]), "text") << "no last entry (finish_reason or error)";
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "gone:o"})->integer, 0);
    // The server is alive and serves the next request.
    EXPECT_EQ(str(cmd(c.get(), {"PING"}).get()), "PONG");
    auto next = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "2", "STORE", "gone:o2"});
    EXPECT_EQ(next->type, REDIS_REPLY_STRING) << str(next.get());
    cmd(c.get(), {"DEL", "gone:s", "gone:o2"});
}

// The same, with the user re-created under its name in the same breath (an admin replacing a
// user: a new password, the same name). The module finds users by name, so it must not take the
// new user for the one that made the request: nothing is written after the deletion, not even
// the cancelled request's last entry.
TEST_F(acl, a_user_re_created_under_the_same_name_does_not_inherit_the_running_request) {
    make_user("gone", {"-@all", "+@infer", "~gone:*"});
    auto u = stream_as("gone", "1500");
    ASSERT_GT(cmd(c.get(), {"XLEN", "gone:s"})->integer, 0);
    ASSERT_EQ(cmd(c.get(), {"MULTI"})->type, REDIS_REPLY_STATUS);
    cmd(c.get(), {"XLEN", "gone:s"});
    cmd(c.get(), {"INFER.INFO", "tiny"});
    cmd(c.get(), {"ACL", "DELUSER", "gone"});
    cmd(c.get(), {"ACL", "SETUSER", "gone", "on", ">other-password", "-@all", "+@infer", "~gone:*"});
    auto exec = cmd(c.get(), {"EXEC"});
    ASSERT_EQ(exec->type, REDIS_REPLY_ARRAY) << str(exec.get());
    ASSERT_EQ(exec->elements, 4u);
    const long long at_delete = exec->element[0]->integer;
    EXPECT_EQ(map_get(exec->element[1], "slots_busy")->integer, 1) << "the generation ended before the user was deleted";

    EXPECT_EQ(receive(u.get()), nullptr);
    EXPECT_TRUE(wait_for([&] { return slots_busy() == 0; })) << "the request was not cancelled";
    EXPECT_EQ(cmd(c.get(), {"XLEN", "gone:s"})->integer, at_delete) << "written after the user was deleted";
    auto last = cmd(c.get(), {"XREVRANGE", "gone:s", "+", "-", "COUNT", "1"});
    ASSERT_EQ(last->elements, 1u);
    EXPECT_EQ(str(last->element[0]->element[1]->element[0]), "text") << "no last entry (finish_reason or error)";
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "gone:o"})->integer, 0);
    // The new user works on its own requests.
    auto v = login_as("gone", "other-password");
    auto r = cmd(v.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "2", "STORE", "gone:o2"});
    EXPECT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    cmd(c.get(), {"DEL", "gone:s", "gone:o2"});
    cmd(c.get(), {"ACL", "DELUSER", "gone"});
}
