// See model_path.h.
#include "engine/model_path.h"

#include <climits>
#include <cstdlib>
#include <sys/stat.h>

namespace infer {
namespace {

std::optional<std::string> canonical(const std::string & p) {
    char buf[PATH_MAX];
    if (p.empty() || p.size() >= PATH_MAX || p.find('\0') != std::string::npos) return std::nullopt;
    if (!realpath(p.c_str(), buf)) return std::nullopt;
    return std::string(buf);
}

}  // namespace

std::optional<std::string> model_dir_canonical(const std::string & dir) {
    auto c = canonical(dir);
    struct stat st;
    if (!c || stat(c->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
    return c;
}

std::optional<std::string> model_path_resolve(const std::string & model_dir, const std::string & user_path) {
    const auto dir = model_dir_canonical(model_dir);
    if (!dir || user_path.empty()) return std::nullopt;
    const std::string joined = user_path.front() == '/' ? user_path : *dir + "/" + user_path;
    const auto file = canonical(joined);
    if (!file) return std::nullopt;
    const std::string prefix = *dir == "/" ? "/" : *dir + "/";
    if (file->compare(0, prefix.size(), prefix) != 0 || file->size() == prefix.size()) return std::nullopt;
    struct stat st;
    if (stat(file->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return file;
}

}  // namespace infer
