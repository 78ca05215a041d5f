// Where the reference node's commands get a passphrase (an encrypted key file's, a recovery
// phrase's): a file, an environment variable, or the terminal. With none of them, and no terminal,
// the command stops and says which options it takes; it never falls back to no passphrase.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace peerproto::node {

struct secret_input {
  std::string file, env;
};

/// Adds --<name>-file and --<name>-env to `cmd`, described as `what`.
void add_secret_options(CLI::App* cmd, secret_input& in, const std::string& name, const std::string& what);
/// Whether --<name>-file or --<name>-env was given.
inline bool given(const secret_input& in) { return !in.file.empty() || !in.env.empty(); }
/// The secret: the file's first line, the variable's value, or typed at the terminal without echo
/// (twice when `confirm`). Throws config_error, naming `options`, when none of them can give it.
std::string read_secret(const secret_input& in, const std::string& prompt, const std::string& options, bool confirm = false);

}  // namespace peerproto::node
