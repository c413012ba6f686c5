// See redis_server.h.
#include "support/redis_server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace testing_support {

std::string module_path() { return REDIS_INFER_MODULE; }
std::string redis_server_path() { return REDIS_INFER_REDIS_SERVER; }
std::string model_dir() { return REDIS_INFER_MODEL_DIR; }
std::string llama_bin_dir() { return REDIS_INFER_LLAMA_BIN; }

namespace {

int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

}  // namespace

redis_server::redis_server(std::vector<std::string> module_args, std::vector<std::string> extra, bool expect_start)
    : module_args_(std::move(module_args)), extra_(std::move(extra)) {
    char tmpl[] = "/tmp/redis-infer-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    for (int attempt = 0; attempt < 5; ++attempt) {
        port_ = free_port();
        if (start(expect_start)) return;
        if (!expect_start && log().find("Address already in use") == std::string::npos) return;
        kill_now();  // port taken or crashed at start: try another port
    }
    if (expect_start) ADD_FAILURE() << "redis-server did not start; log:\n" << log();
}

bool redis_server::start(bool expect_start) {
    std::vector<std::string> args = {redis_server_path(), "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--dir", dir_, "--logfile", dir_ + "/redis.log", "--save", "",
                                     "--appendonly", "no", "--enable-debug-command", "local", "--enable-module-command", "local",
                                     "--loadmodule", module_path()};
    args.insert(args.end(), module_args_.begin(), module_args_.end());
    args.push_back("--infer.model-dir");
    args.push_back(model_dir());
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
        std::vector<char *> argv;
        for (auto & a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    const bool up = wait_for([&] {
        if (!alive()) return true;
        client_ptr c(redisConnect("127.0.0.1", port_));
        if (!c || c->err) return false;
        reply_ptr r(static_cast<redisReply *>(redisCommand(c.get(), "PING")));
        return r && r->type == REDIS_REPLY_STATUS;
    }, std::chrono::seconds(20));
    (void) expect_start;
    return up && alive();
}

bool redis_server::restart() {
    if (auto c = connect()) reply_ptr(static_cast<redisReply *>(redisCommand(c.get(), "SHUTDOWN SAVE")));
    wait_for([&] { return !alive(); }, std::chrono::seconds(20));
    kill_now();
    return start(true);
}

redis_server::~redis_server() {
    if (::testing::Test::HasFailure()) {
        fprintf(stderr, "---- redis-server log (%s) ----\n%s---- end of log ----\n", dir_.c_str(), log().c_str());
    }
    if (alive()) {
        if (auto c = connect()) reply_ptr(static_cast<redisReply *>(redisCommand(c.get(), "SHUTDOWN NOSAVE")));
        wait_for([&] { return !alive(); }, std::chrono::seconds(10));
    }
    kill_now();
    std::string rm = "rm -rf '" + dir_ + "'";
    if (!::testing::Test::HasFailure()) (void) !system(rm.c_str());
}

void redis_server::kill_now() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
}

bool redis_server::alive() const {
    if (pid_ <= 0) return false;
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
}

std::string redis_server::log() const {
    std::ifstream f(dir_ + "/redis.log");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

client_ptr redis_server::connect() const {
    timeval tv{120, 0};
    client_ptr c(redisConnectWithTimeout("127.0.0.1", port_, timeval{5, 0}));
    if (!c || c->err) {
        ADD_FAILURE() << "cannot connect to redis on port " << port_;
        return nullptr;
    }
    redisSetTimeout(c.get(), tv);
    return c;
}

reply_ptr cmd(redisContext * c, const std::vector<std::string> & args) {
    std::vector<const char *> argv;
    std::vector<size_t> lens;
    for (const auto & a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    return reply_ptr(static_cast<redisReply *>(redisCommandArgv(c, int(argv.size()), argv.data(), lens.data())));
}

reply_ptr cmd(redisContext * c, std::initializer_list<std::string> args) { return cmd(c, std::vector<std::string>(args)); }

bool wait_for(const std::function<bool()> & cond, std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

std::string str(const redisReply * r) { return r && r->str ? std::string(r->str, r->len) : ""; }

const redisReply * map_get(const redisReply * r, const std::string & key) {
    if (!r || r->type != REDIS_REPLY_ARRAY) return nullptr;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (std::string(r->element[i]->str, r->element[i]->len) == key) return r->element[i + 1];
    }
    return nullptr;
}

std::string pack(const std::vector<uint32_t> & ids) {
    std::string s;
    for (uint32_t v : ids) {
        for (int b = 0; b < 4; ++b) s.push_back(char((v >> (8 * b)) & 0xff));
    }
    return s;
}

void send(redisContext * c, const std::vector<std::string> & args) {
    std::vector<const char *> argv;
    std::vector<size_t> lens;
    for (auto & a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    redisAppendCommandArgv(c, int(argv.size()), argv.data(), lens.data());
    int done = 0;
    while (!done && redisBufferWrite(c, &done) == REDIS_OK) {}
}

reply_ptr receive(redisContext * c) {
    void * raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK) return nullptr;
    return reply_ptr(static_cast<redisReply *>(raw));
}

}  // namespace testing_support
