// bench: one load generator for redis-infer (RESP) and llama.cpp's llama-server (HTTP), so the
// same workload is measured against both in one run.
//
// Workload: `concurrency` clients, each with its own random prompt of `prompt` token ids,
// generating exactly `gen` tokens greedily (IGNORE_EOS / ignore_eos), back to back, until each
// has done `requests` requests. Prompt caching is off on both sides (NO_CACHE, cache_prompt
// false): each client repeats its prompt, and this workload is about decoding. Against Redis a side client PINGs every 2 ms throughout.
//
// Time to first token is defined the same way for both targets: the latency the client saw
// minus the decode time the server reports (so it holds network, queueing and prefill).
//
// Output: one CSV line on stdout:
//   target,concurrency,requests,gen_tok_s,req_s,ttft_p50_ms,ttft_p99_ms,itl_p50_ms,itl_p99_ms,ping_p50_ms,ping_p99_ms,ping_max_ms
//
// Usage: bench --target redis|llama-server --port N [--model tiny] [--concurrency 4] [--prompt 128]
//              [--gen 128] [--requests 4] [--vocab 151936] [--seed 1]
//
// Prefix-reuse scenarios (redis-infer only), each printing its own small table:
//   --scenario prefix   time to first token for a prompt whose first --prompt tokens were seen
//                       by an earlier request, cached vs cold (NO_CACHE)
//   --scenario shared   --concurrency clients whose prompts share a --prompt-token prefix, with
//                       and without reuse: wall time, aggregate tokens/s, prefilled tokens
//   --scenario chat     a --requests-turn INFER.CHAT: per turn prompt, cached and prefilled
//                       tokens and latency
//
// Embedding scenario (both targets): --scenario embed, --concurrency clients each embedding
// --requests inputs of --prompt random ids wrapped in [CLS] ... [SEP] (BERT vocabulary ids,
// --vocab 30522): INFER.EMBED model PROMPT key against redis-infer, POST /embedding with the
// ids against llama-server --embeddings. One CSV line:
//   target,concurrency,inputs,inputs_s,tokens_s,lat_p50_ms,lat_p99_ms,ping_p50_ms,ping_p99_ms,ping_max_ms

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
    std::string scenario;
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

// ---- a minimal RESP2 client (the GPU image has no hiredis) -----------------------------------

struct reply {
    char type = 0;                 // '+', '-', ':', '$', '*'
    std::string str;               // simple, error, bulk
    long long integer = 0;
    bool nil = false;
    std::vector<reply> elems;
};

int tcp_connect(const std::string & host, int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) die("cannot connect to port " + std::to_string(port));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

class resp_conn {
public:
    resp_conn(const std::string & host, int port) : fd_(tcp_connect(host, port)) {}
    ~resp_conn() { close(fd_); }
    reply call(const std::vector<std::string> & args) {
        std::string req = "*" + std::to_string(args.size()) + "\r\n";
        for (const auto & a : args) req += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
        for (size_t off = 0; off < req.size();) {
            const ssize_t n = send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
            if (n <= 0) die("send failed");
            off += size_t(n);
        }
        return read_reply();
    }

private:
    std::string line() {
        for (;;) {
            const size_t e = buf_.find("\r\n", pos_);
            if (e != std::string::npos) {
                std::string l = buf_.substr(pos_, e - pos_);
                pos_ = e + 2;
                return l;
            }
            fill();
        }
    }
    void fill() {
        if (pos_ > 0) {
            buf_.erase(0, pos_);
            pos_ = 0;
        }
        char tmp[65536];
        const ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
        if (n <= 0) die("connection closed");
        buf_.append(tmp, size_t(n));
    }
    reply read_reply() {
        reply r;
        const std::string l = line();
        r.type = l.empty() ? 0 : l[0];
        const std::string rest = l.substr(1);
        if (r.type == '+' || r.type == '-') {
            r.str = rest;
        } else if (r.type == ':') {
            r.integer = atoll(rest.c_str());
        } else if (r.type == '$') {
            const long long n = atoll(rest.c_str());
            if (n < 0) {
                r.nil = true;
                return r;
            }
            while (buf_.size() - pos_ < size_t(n) + 2) fill();
            r.str = buf_.substr(pos_, size_t(n));
            pos_ += size_t(n) + 2;
        } else if (r.type == '*') {
            const long long n = atoll(rest.c_str());
            for (long long i = 0; i < n; ++i) r.elems.push_back(read_reply());
        } else {
            die("bad RESP reply: " + l);
        }
        return r;
    }
    int fd_;
    std::string buf_;
    size_t pos_ = 0;
};

std::string field(const reply & r, const char * k) {
    for (size_t i = 0; i + 1 < r.elems.size(); i += 2) {
        if (r.elems[i].str == k) {
            const reply & v = r.elems[i + 1];
            return v.type == ':' ? std::to_string(v.integer) : v.str;
        }
    }
    return "";
}

reply must(reply r, const char * what) {
    if (r.type == '-') die(std::string(what) + " failed: " + r.str);
    return r;
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

void redis_client(const options & o, int id, std::vector<sample> & out) {
    resp_conn c(o.host, o.port);
    const auto ids = random_prompt(o, id);
    std::string blob;
    for (uint32_t v : ids) for (int b = 0; b < 4; ++b) blob.push_back(char((v >> (8 * b)) & 0xff));
    const std::string key = "bench:prompt:" + std::to_string(id);
    must(c.call({"SET", key, blob}), "SET");
    const std::string gen = std::to_string(o.gen);
    for (int i = 0; i < o.requests; ++i) {
        const auto t0 = clk::now();
        // NO_CACHE: the peer runs with cache_prompt false, and each client repeats its prompt.
        const reply r = must(c.call({"INFER.GENERATE", o.model, "PROMPT", key, "MAX_TOKENS", gen, "TEMPERATURE", "0",
                                     "IGNORE_EOS", "NO_CACHE", "WITHMETA"}), "INFER.GENERATE");
        const double lat = ms_since(t0);
        const double decode = atof(field(r, "decode_ms").c_str());
        const int n = atoi(field(r, "completion_tokens").c_str());
        out.push_back({lat - decode, n > 1 ? decode / (n - 1) : 0, n});
    }
}

// ---- llama-server over HTTP -----------------------------------------------------------------

struct http_conn {
    int fd = -1;
    std::string buf;
    std::string host;
    int port = 0;
};

http_conn http_connect(const options & o) {
    http_conn h;
    h.fd = tcp_connect(o.host, o.port);
    h.host = o.host;
    h.port = o.port;
    return h;
}

// One POST with a Content-Length response (llama-server's non-streaming replies). llama-server
// closes a keep-alive connection after a number of requests: a close before any byte of the
// reply reconnects and sends again.
std::string http_post(http_conn & h, const std::string & path, const std::string & body, bool retried = false) {
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
        if (n <= 0 && h.buf.empty() && !retried) {
            close(h.fd);
            h.fd = tcp_connect(h.host, h.port);
            return http_post(h, path, body, true);
        }
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

// ---- prefix-reuse scenarios (redis-infer) ---------------------------------------------------

std::string blob_of(const std::vector<uint32_t> & ids) {
    std::string b;
    for (uint32_t v : ids) for (int k = 0; k < 4; ++k) b.push_back(char((v >> (8 * k)) & 0xff));
    return b;
}

reply generate_meta(resp_conn & c, const options & o, const std::vector<std::string> & keys, int gen, bool nocache) {
    std::vector<std::string> args = {"INFER.GENERATE", o.model, "PROMPT"};
    args.insert(args.end(), keys.begin(), keys.end());
    args.insert(args.end(), {"MAX_TOKENS", std::to_string(gen), "TEMPERATURE", "0", "IGNORE_EOS", "WITHMETA"});
    if (nocache) args.push_back("NO_CACHE");
    return must(c.call(args), "INFER.GENERATE");
}

void set_key(resp_conn & c, const std::string & k, const std::vector<uint32_t> & ids) {
    must(c.call({"SET", k, blob_of(ids)}), "SET");
}

double ttft_of(const reply & r) { return atof(field(r, "queue_ms").c_str()) + atof(field(r, "prefill_ms").c_str()); }

void scenario_prefix(const options & o) {
    resp_conn c(o.host, o.port);
    printf("| run | shared prefix tokens | cold TTFT ms (NO_CACHE) | cached TTFT ms | cached_tokens | speedup |\n|---|---|---|---|---|---|\n");
    for (int run = 0; run < o.requests; ++run) {
        options p = o;
        p.seed = o.seed + unsigned(run) * 101u;
        set_key(c, "bench:prefix", random_prompt(p, 1000));
        options q = p;
        q.prompt = 16;
        set_key(c, "bench:q1", random_prompt(q, 2001));
        set_key(c, "bench:q2", random_prompt(q, 2002));
        const double cold_ms = ttft_of(generate_meta(c, o, {"bench:prefix", "bench:q1"}, 1, true));
        const reply warm = generate_meta(c, o, {"bench:prefix", "bench:q2"}, 1, false);
        const double warm_ms = ttft_of(warm);
        printf("| %d | %d | %.1f | %.1f | %s | %.1fx |\n", run + 1, o.prompt, cold_ms, warm_ms, field(warm, "cached_tokens").c_str(),
               cold_ms / warm_ms);
    }
}

void scenario_shared(const options & o) {
    printf("| reuse | clients | shared prefix | wall s | gen tok/s | TTFT p50 / max ms | prefilled tokens |\n|---|---|---|---|---|---|---|\n");
    for (bool nocache : {true, false}) {
        resp_conn c(o.host, o.port);
        options p = o;
        p.seed = o.seed + (nocache ? 7u : 13u);  // a fresh prefix for each pass: nothing cached yet
        set_key(c, "bench:shared", random_prompt(p, 3000));
        const long pre0 = atol(field(c.call({"INFER.INFO", o.model}), "prompt_tokens").c_str());
        std::vector<double> ttft(size_t(o.concurrency));
        std::vector<std::thread> ts;
        const auto t0 = clk::now();
        for (int i = 0; i < o.concurrency; ++i) {
            ts.emplace_back([&, i] {
                resp_conn cc(o.host, o.port);
                options q = p;
                q.prompt = 32;
                const std::string key = "bench:sq:" + std::to_string(i);
                set_key(cc, key, random_prompt(q, 4000 + i));
                ttft[size_t(i)] = ttft_of(generate_meta(cc, o, {"bench:shared", key}, o.gen, nocache));
            });
        }
        for (auto & t : ts) t.join();
        const double wall = ms_since(t0) / 1000.0;
        const long pre1 = atol(field(c.call({"INFER.INFO", o.model}), "prompt_tokens").c_str());
        printf("| %s | %d | %d | %.2f | %.1f | %.0f / %.0f | %ld |\n", nocache ? "no (NO_CACHE)" : "yes", o.concurrency, o.prompt,
               wall, double(o.concurrency) * o.gen / wall, pct(ttft, 50), pct(ttft, 100), pre1 - pre0);
    }
}

void scenario_chat(const options & o) {
    resp_conn c(o.host, o.port);
    c.call({"DEL", "bench:chat"});
    printf("| turn | prompt tokens | cached | prefilled | TTFT ms | latency ms |\n|---|---|---|---|---|---|\n");
    for (int t = 0; t < o.requests; ++t) {
        std::string user = "Turn " + std::to_string(t) + ":";
        for (int w = 0; w < 40; ++w) user += " word" + std::to_string((t * 31 + w) % 97);
        std::vector<std::string> args = {"INFER.CHAT", o.model, "bench:chat"};
        if (t == 0) args.insert(args.end(), {"SYSTEM", "Be brief."});
        args.insert(args.end(), {"USER", user, "MAX_TOKENS", std::to_string(o.gen), "TEMPERATURE", "0", "IGNORE_EOS", "WITHMETA"});
        const auto t0 = clk::now();
        const reply r = must(c.call(args), "INFER.CHAT");
        const double lat = ms_since(t0);
        const long pt = atol(field(r, "prompt_tokens").c_str()), ct = atol(field(r, "cached_tokens").c_str());
        printf("| %d | %ld | %ld | %ld | %.1f | %.1f |\n", t + 1, pt, ct, pt - ct, ttft_of(r), lat);
    }
}

}  // namespace

// A side client PINGing every 2 ms while a workload runs against Redis (nothing for
// llama-server): the latency Redis keeps for everyone else.
class side_pinger {
public:
    explicit side_pinger(const options & o) {
        if (o.target != "redis") return;
        thread_ = std::thread([this, host = o.host, port = o.port] {
            resp_conn c(host, port);
            while (running_.load()) {
                const auto t0 = clk::now();
                c.call({"PING"});
                pings_.push_back(ms_since(t0));
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        });
    }
    ~side_pinger() { stop(); }
    std::vector<double> stop() {
        running_ = false;
        if (thread_.joinable()) thread_.join();
        return pings_;
    }

private:
    std::atomic<bool> running_{true};
    std::vector<double> pings_;
    std::thread thread_;
};

// ---- embeddings (both targets) -------------------------------------------------------------

std::vector<uint32_t> bert_input(const options & o, int client, int i) {
    std::mt19937 rng(o.seed * 104729u + unsigned(client) * 7919u + unsigned(i));
    std::uniform_int_distribution<uint32_t> d(1000, uint32_t(o.vocab) - 1);  // past [unused]/specials
    std::vector<uint32_t> v = {101};                                         // [CLS]
    for (int k = 0; k < o.prompt; ++k) v.push_back(d(rng));
    v.push_back(102);                                                        // [SEP]
    return v;
}

void embed_client(const options & o, int id, std::vector<double> & lat) {
    if (o.target == "redis") {
        resp_conn c(o.host, o.port);
        const std::string key = "bench:embed:" + std::to_string(id);
        for (int i = 0; i < o.requests; ++i) {
            must(c.call({"SET", key, blob_of(bert_input(o, id, i))}), "SET");
            const auto t0 = clk::now();
            const reply r = must(c.call({"INFER.EMBED", o.model, "PROMPT", key}), "INFER.EMBED");
            lat.push_back(ms_since(t0));
            if (r.elems.empty()) die("INFER.EMBED returned no vector");
        }
        return;
    }
    http_conn h = http_connect(o);
    for (int i = 0; i < o.requests; ++i) {
        const auto ids = bert_input(o, id, i);
        std::string body = "{\"content\":[";
        for (size_t k = 0; k < ids.size(); ++k) body += (k ? "," : "") + std::to_string(ids[k]);
        body += "]}";
        const auto t0 = clk::now();
        const std::string j = http_post(h, "/embedding", body);
        lat.push_back(ms_since(t0));
        if (j.find("embedding") == std::string::npos) die("llama-server returned no embedding: " + j.substr(0, 200));
    }
    close(h.fd);
}

void scenario_embed(const options & o) {
    std::vector<std::vector<double>> per(size_t(o.concurrency));
    side_pinger pinger(o);
    const auto t0 = clk::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < o.concurrency; ++i) clients.emplace_back([&, i] { embed_client(o, i, per[size_t(i)]); });
    for (auto & t : clients) t.join();
    const double wall_s = ms_since(t0) / 1000.0;
    const std::vector<double> pings = pinger.stop();
    std::vector<double> lat;
    for (const auto & v : per) lat.insert(lat.end(), v.begin(), v.end());
    const double n = double(lat.size());
    printf("%s,%d,%zu,%.1f,%.0f,%.1f,%.1f,%.3f,%.3f,%.3f\n", o.target.c_str(), o.concurrency, lat.size(), n / wall_s,
           n * (o.prompt + 2) / wall_s, pct(lat, 50), pct(lat, 99), pct(pings, 50), pct(pings, 99),
           pings.empty() ? 0.0 : *std::max_element(pings.begin(), pings.end()));
}

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
        else if (a == "--scenario") o.scenario = next();
        else die("unknown argument " + a);
    }
    if (o.target != "redis" && o.target != "llama-server") die("--target is redis or llama-server");
    if (o.scenario == "prefix") return scenario_prefix(o), 0;
    if (o.scenario == "shared") return scenario_shared(o), 0;
    if (o.scenario == "chat") return scenario_chat(o), 0;
    if (o.scenario == "embed") return scenario_embed(o), 0;
    if (!o.scenario.empty()) die("--scenario is prefix, shared, chat or embed");

    std::vector<std::vector<sample>> per(size_t(o.concurrency));
    side_pinger pinger(o);
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
    const std::vector<double> pings = pinger.stop();

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
