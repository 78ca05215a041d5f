// HTTP-9: the OpenAPI 3 description served at /openapi.json. The document is reference/openapi.json,
// compiled in by CMake (openapi.cpp.in); reference/tests/check_openapi.py validates it and checks
// real answers of the node against it.
#pragma once

#include <string_view>

namespace peerproto::node {

extern const std::string_view openapi_json;

}  // namespace peerproto::node
