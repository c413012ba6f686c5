// See cpu_isa.h.
#include "engine/cpu_isa.h"

namespace infer {
namespace {

std::vector<std::string_view> split(std::string_view s, std::string_view seps) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        const size_t b = s.find_first_not_of(seps, i);
        if (b == std::string_view::npos) break;
        const size_t e = s.find_first_of(seps, b);
        out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
        i = e == std::string_view::npos ? s.size() : e;
    }
    return out;
}

}  // namespace

std::string cpuinfo_flags(std::string_view cpuinfo) {
    for (std::string_view line : split(cpuinfo, "\n")) {
        if (line.substr(0, 5) != "flags") continue;
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view name = line.substr(0, colon);
        if (name.find_first_not_of("flags \t") != std::string_view::npos) continue;  // "flags" only
        return std::string(line.substr(colon + 1));
    }
    return "";
}

std::vector<std::string> cpu_isa_missing(std::string_view required, std::string_view cpu_flags) {
    const auto have = split(cpu_flags, " \t\n");
    std::vector<std::string> missing;
    for (std::string_view f : split(required, ", \t\n")) {
        bool found = false;
        for (std::string_view h : have) found = found || h == f;
        if (!found) missing.emplace_back(f);
    }
    return missing;
}

}  // namespace infer
