// `peerproto-node ctl`: commands for the application, over the node's control socket.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace peerproto::node {

/// Adds the `ctl` subcommand and its commands to `app`; after parsing, `run` is set to the chosen
/// command, which returns the exit status and throws with a message for the user.
CLI::App* add_ctl_command(CLI::App& app, std::function<int()>& run);

}  // namespace peerproto::node
