// Helpers for the known-answer tests: where the outside vectors are, and reading them.
#pragma once

#include <peerproto/encoding.hpp>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace peerproto::kat {

/// The outside vectors, copied into the project (conformance/vectors/third_party/README.md).
inline std::filesystem::path vectors_dir() { return PEERPROTO_VECTORS_DIR; }

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Reads a vector file; the test fails (not skips) when it is missing, as the vectors README asks.
inline boost::json::value load_json(const std::filesystem::path& p) {
  if (!std::filesystem::exists(p)) {
    ADD_FAILURE() << "test vectors not found: " << p
                  << " (conformance/vectors/third_party/ is part of the project: is the checkout complete?)";
    return {};
  }
  return boost::json::parse(read_file(p));
}

inline bytes hex(const boost::json::value& v) {
  auto b = hex_decode(std::string_view(v.as_string()));
  if (!b) throw std::runtime_error("bad hex in vector file");
  return *b;
}

}  // namespace peerproto::kat
