// Test support: a real redis-server with redis_infer.so loaded, on a free loopback port, and a
// hiredis client. The server's log is printed when a test fails. Used by every integration test.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace testing_support {

struct reply_deleter {
    void operator()(redisReply * r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

struct ctx_deleter {
    void operator()(redisContext * c) const { redisFree(c); }
};
using client_ptr = std::unique_ptr<redisContext, ctx_deleter>;

// Paths baked in by CMake.
std::string module_path();
std::string redis_server_path();
std::string model_dir();        // generated test models
std::string llama_bin_dir();    // llama.cpp's own tools, same pinned build

class redis_server {
public:
    // extra: arguments after the defaults (e.g. {"--infer.queue-size", "4"});
    // module_args: appended to --loadmodule (e.g. {"MODEL", "tiny", "tiny-q8_0.gguf"}).
    explicit redis_server(std::vector<std::string> module_args = {}, std::vector<std::string> extra = {},
                          bool expect_start = true);
    ~redis_server();

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string log() const;
    client_ptr connect() const;
    bool alive() const;
    void kill_now();
    // SHUTDOWN SAVE, then start again on the same port and directory with the same arguments.
    bool restart();

private:
    bool start(bool expect_start);
    std::vector<std::string> module_args_, extra_;
    int port_ = 0;
    pid_t pid_ = -1;
    std::string dir_;
};

// Runs a command given as separate arguments (binary-safe).
reply_ptr cmd(redisContext * c, std::initializer_list<std::string> args);
reply_ptr cmd(redisContext * c, const std::vector<std::string> & args);

// Pipelining: send() writes a command without waiting (binary-safe), receive() reads the next
// reply (nullptr on a connection error or read timeout). For requests that run in the
// background while a test does something else to the server.
void send(redisContext * c, const std::vector<std::string> & args);
reply_ptr receive(redisContext * c);

// Polls `cond` every 10 ms until it holds or the deadline passes.
bool wait_for(const std::function<bool()> & cond, std::chrono::milliseconds deadline = std::chrono::seconds(30));

// The bytes of a string, status or error reply; "" for no reply or one without text (an integer,
// an array), so a test that gets the wrong reply type fails on its assertion, not on a null read.
std::string str(const redisReply * r);

// Field of a RESP2 map reply (flat array of key, value): nullptr if absent.
const redisReply * map_get(const redisReply * r, const std::string & key);

// Packs ids as a token key (little-endian uint32).
std::string pack(const std::vector<uint32_t> & ids);

}  // namespace testing_support
