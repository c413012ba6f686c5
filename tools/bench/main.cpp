// bench: one load generator for redis-infer (RESP) and llama.cpp's llama-server (HTTP), so the
// same workload is measured against both in one run.
//
// Workload: `concurrency` clients, each with its own random prompt of `prompt` token ids,
// generating exactly `gen` tokens greedily (IGNORE_EOS / ignore_eos), back to back, until each
// has done `requests` requests. Against Redis a side client PINGs every 2 ms throughout.
//
// Time to first token is defined the same way for both targets: the latency the client saw
// minus the decode time the server reports (so it holds network, queueing and prefill).
//
// Output: one CSV line on stdout:
//   target,concurrency,requests,gen_tok_s,req_s,ttft_p50_ms,ttft_p99_ms,itl_p50_ms,itl_p99_ms,ping_p50_ms,ping_p99_ms,ping_max_ms
//
// Usage: bench --target redis|llama-server --port N [--model tiny] [--concurrency 4] [--prompt 128]
//              [--gen 128] [--requests 4] [--vocab 151936] [--seed 1]

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

struct options {
    std::string target = "redis";
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string model = "tiny";
    int concurrency = 1;
    int prompt = 128;
    int gen = 128;
    int requests = 4;
    int vocab = 151936;
    unsigned seed = 1;
};

[[noreturn]] void die(const std::string & m) {
    fprintf(stderr, "bench: %s\n", m.c_str());
    exit(1);
}

double ms_since(clk::time_point t0) { return std::chrono::duration<double, std::milli>(clk::now() - t0).count(); }

double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t i = std::min(v.size() - 1, size_t(p / 100.0 * double(v.size() - 1) + 0.5));
    return v[i];
}

struct sample {
    double ttft_ms;  // latency - decode
    double itl_ms;   // decode / (tokens - 1)
    int tokens;
};

std::vector<uint32_t> random_prompt(const options & o, int client) {
    std::mt19937 rng(o.seed * 7919u + unsigned(client));
    // Skip the first ids (bytes/specials are fine, but keep clear of control tokens at the top).
    std::uniform_int_distribution<uint32_t> d(300, uint32_t(std::min(o.vocab, 150000)) - 1);
    std::vector<uint32_t> v(size_t(o.prompt));
    for (auto & x : v) x = d(rng);
    return v;
}

// ---- redis-infer over RESP ------------------------------------------------------------------

std::string field(redisReply * r, const char * k) {
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strcmp(r->element[i]->str, k) == 0) {
            redisReply * v = r->element[i + 1];
            return v->type == REDIS_REPLY_INTEGER ? std::to_string(v->integer) : std::string(v->str, v->len);
        }
    }
    return "";
}

redisContext * redis_connect(const options & o) {
    redisContext * c = redisConnect(o.host.c_str(), o.port);
    if (!c || c->err) die("cannot connect to redis on port " + std::to_string(o.port));
    return c;
}

void redis_client(const options & o, int id, std::vector<sample> & out) {
    redisContext * c = redis_connect(o);
    const auto ids = random_prompt(o, id);
    std::string blob;
    for (uint32_t v : ids) for (int b = 0; b < 4; ++b) blob.push_back(char((v >> (8 * b)) & 0xff));
    const std::string key = "bench:prompt:" + std::to_string(id);
    freeReplyObject(redisCommand(c, "SET %b %b", key.data(), key.size(), blob.data(), blob.size()));
    const std::string gen = std::to_string(o.gen);
    for (int i = 0; i < o.requests; ++i) {
        const auto t0 = clk::now();
        auto * r = static_cast<redisReply *>(redisCommand(c, "INFER.GENERATE %s PROMPT %s MAX_TOKENS %s TEMPERATURE 0 IGNORE_EOS WITHMETA",
                                                           o.model.c_str(), key.c_str(), gen.c_str()));
        const double lat = ms_since(t0);
        if (!r || r->type != REDIS_REPLY_ARRAY) die(std::string("generate failed: ") + (r && r->str ? r->str : "no reply"));
        const double decode = atof(field(r, "decode_ms").c_str());
        const int n = atoi(field(r, "completion_tokens").c_str());
        out.push_back({lat - decode, n > 1 ? decode / (n - 1) : 0, n});
        freeReplyObject(r);
    }
    redisFree(c);
}

// ---- llama-server over HTTP -----------------------------------------------------------------

struct http_conn {
    int fd = -1;
    std::string buf;
};

http_conn http_connect(const options & o) {
    http_conn h;
    h.fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(o.port));
    inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
    if (connect(h.fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) die("cannot connect to llama-server");
    int one = 1;
    setsockopt(h.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return h;
}

// One POST with a Content-Length response (llama-server's non-streaming replies).
std::string http_post(http_conn & h, const std::string & path, const std::string & body) {
    const std::string req = "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\nConnection: keep-alive\r\n\r\n" + body;
    for (size_t off = 0; off < req.size();) {
        const ssize_t n = send(h.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) die("send failed");
        off += size_t(n);
    }
    char tmp[65536];
    for (;;) {
        const size_t hdr_end = h.buf.find("\r\n\r\n");
        if (hdr_end != std::string::npos) {
            const std::string head = h.buf.substr(0, hdr_end);
            std::string lower = head;
            for (char & ch : lower) ch = char(tolower((unsigned char) ch));
            const size_t cl = lower.find("content-length:");
            if (cl == std::string::npos) die("llama-server reply without Content-Length");
            const size_t len = size_t(atol(head.c_str() + cl + 15));
            if (h.buf.size() >= hdr_end + 4 + len) {
                std::string bodyout = h.buf.substr(hdr_end + 4, len);
                if (head.find(" 200 ") == std::string::npos) die("llama-server: " + head.substr(0, head.find('\r')) + " " + bodyout);
                h.buf.erase(0, hdr_end + 4 + len);
                return bodyout;
            }
        }
        const ssize_t n = recv(h.fd, tmp, sizeof tmp, 0);
        if (n <= 0) die("llama-server closed the connection");
        h.buf.append(tmp, size_t(n));
    }
}

double json_number(const std::string & j, const std::string & key) {
    const size_t p = j.find("\"" + key + "\":");
    if (p == std::string::npos) die("no " + key + " in llama-server reply");
    return atof(j.c_str() + p + key.size() + 3);
}

void llama_client(const options & o, int id, std::vector<sample> & out) {
    http_conn h = http_connect(o);
    const auto ids = random_prompt(o, id);
    std::string prompt = "[";
    for (size_t i = 0; i < ids.size(); ++i) prompt += (i ? "," : "") + std::to_string(ids[i]);
    prompt += "]";
    const std::string body = "{\"prompt\":" + prompt + ",\"n_predict\":" + std::to_string(o.gen) +
                             ",\"ignore_eos\":true,\"temperature\":0,\"cache_prompt\":false,\"stream\":false}";
    for (int i = 0; i < o.requests; ++i) {
        const auto t0 = clk::now();
        const std::string j = http_post(h, "/completion", body);
        const double lat = ms_since(t0);
        const double decode = json_number(j, "predicted_ms");
        const int n = int(json_number(j, "predicted_n"));
        out.push_back({lat - decode, n > 1 ? decode / (n - 1) : 0, n});
    }
    close(h.fd);
}

}  // namespace

int main(int argc, char ** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) die("missing value after " + a);
            return argv[++i];
        };
        if (a == "--target") o.target = next();
        else if (a == "--host") o.host = next();
        else if (a == "--port") o.port = std::stoi(next());
        else if (a == "--model") o.model = next();
        else if (a == "--concurrency") o.concurrency = std::stoi(next());
        else if (a == "--prompt") o.prompt = std::stoi(next());
        else if (a == "--gen") o.gen = std::stoi(next());
        else if (a == "--requests") o.requests = std::stoi(next());
        else if (a == "--vocab") o.vocab = std::stoi(next());
        else if (a == "--seed") o.seed = unsigned(std::stoul(next()));
        else die("unknown argument " + a);
    }
    if (o.target != "redis" && o.target != "llama-server") die("--target is redis or llama-server");

    std::vector<std::vector<sample>> per(size_t(o.concurrency));
    std::vector<double> pings;
    std::atomic<bool> running{true};
    std::thread pinger;
    if (o.target == "redis") {
        pinger = std::thread([&] {
            redisContext * c = redis_connect(o);
            while (running.load()) {
                const auto t0 = clk::now();
                freeReplyObject(redisCommand(c, "PING"));
                pings.push_back(ms_since(t0));
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
            redisFree(c);
        });
    }
    const auto t0 = clk::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < o.concurrency; ++i) {
        clients.emplace_back([&, i] {
            if (o.target == "redis") redis_client(o, i, per[size_t(i)]);
            else llama_client(o, i, per[size_t(i)]);
        });
    }
    for (auto & t : clients) t.join();
    const double wall_s = ms_since(t0) / 1000.0;
    running = false;
    if (pinger.joinable()) pinger.join();

    std::vector<double> ttft, itl;
    long tokens = 0, reqs = 0;
    for (const auto & v : per) {
        for (const auto & s : v) {
            ttft.push_back(s.ttft_ms);
            itl.push_back(s.itl_ms);
            tokens += s.tokens;
            ++reqs;
        }
    }
    printf("%s,%d,%ld,%.1f,%.2f,%.1f,%.1f,%.2f,%.2f,%.3f,%.3f,%.3f\n", o.target.c_str(), o.concurrency, reqs,
           double(tokens) / wall_s, double(reqs) / wall_s, pct(ttft, 50), pct(ttft, 99), pct(itl, 50), pct(itl, 99),
           pct(pings, 50), pct(pings, 99), pings.empty() ? 0.0 : *std::max_element(pings.begin(), pings.end()));
    return 0;
}
