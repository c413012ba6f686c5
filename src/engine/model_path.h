// The model-directory sandbox: a user-supplied path is accepted only if, after resolving "..",
// symlinks and absolute prefixes, it names a regular file inside the model directory.
// Nothing outside the directory is ever opened (realpath and stat do not open files), so a FIFO
// or /dev/zero cannot hang or flood the loader. Thread-safe.
#pragma once

#include <optional>
#include <string>

namespace infer {

// Returns the canonical absolute path, or nullopt for anything that is not a regular file
// inside model_dir (missing, outside, directory, device, FIFO, socket, empty model_dir).
std::optional<std::string> model_path_resolve(const std::string & model_dir, const std::string & user_path);

// Returns the canonical directory, or nullopt if it is not an existing directory.
std::optional<std::string> model_dir_canonical(const std::string & dir);

}  // namespace infer
