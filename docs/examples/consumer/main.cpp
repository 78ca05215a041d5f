// Built against an installed peerproto through find_package(peerproto CONFIG REQUIRED).
#include <peerproto/version.hpp>

#include <cstdio>

int main() {
  if (peerproto::supported_versions.front() != peerproto::version_1_1) return 1;
  std::printf("peerproto consumer: ok (library %.*s)\n",
              static_cast<int>(peerproto::library_version.size()), peerproto::library_version.data());
  return 0;
}
