// The node's value of every limit of SPEC §18 under its advertised name
// (include/peerproto/limit_names.hpp), and `--limit NAME=VALUE` to change one: an operator or a
// test shortens a timer or shrinks a table without a flag per number.
#pragma once

#include "config.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <string_view>

namespace peerproto::node {

/// Every limit of limit_names.hpp as the node applies it (rate multiplier included).
boost::json::object advertised_limits(const node_config& cfg);

/// Parses "NAME=VALUE" (the unit is the name's, see SPEC §18) into `cfg`. Throws config_error for
/// an unknown name, a number out of range, or a limit the protocol fixes.
void set_limit(node_config& cfg, std::string_view assignment);

}  // namespace peerproto::node
