// A Unix socket address for a path of any length. sockaddr_un::sun_path holds 107 bytes, so a
// state directory under a deep workspace would make <state-dir>/control.sock unusable. A longer
// path is reached through its directory instead: the directory is opened (O_PATH) and the socket
// is named /proc/self/fd/N/NAME, which the kernel resolves like the full path. The node (bind)
// and `ctl` (connect) both go through this, so they always name the same socket.
#pragma once

#include <peerproto/key_file.hpp>  // config_error

#include <boost/asio/local/stream_protocol.hpp>

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace peerproto::node {

class unix_path {
 public:
  explicit unix_path(const std::filesystem::path& path) {
    std::string name = path.string();
    if (name.size() >= sizeof(sockaddr_un::sun_path)) {
      const auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
      dir_fd_ = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (dir_fd_ < 0) throw config_error("cannot open the folder of the Unix socket " + path.string());
      name = "/proc/self/fd/" + std::to_string(dir_fd_) + "/" + path.filename().string();
      if (name.size() >= sizeof(sockaddr_un::sun_path))
        throw config_error("the Unix socket's file name " + path.filename().string() + " is too long");
    }
    endpoint_ = boost::asio::local::stream_protocol::endpoint(name);
  }
  ~unix_path() {
    if (dir_fd_ >= 0) ::close(dir_fd_);
  }
  unix_path(const unix_path&) = delete;
  unix_path& operator=(const unix_path&) = delete;

  /// Valid while this object lives (it may name the directory through its descriptor).
  const boost::asio::local::stream_protocol::endpoint& endpoint() const noexcept { return endpoint_; }

 private:
  int dir_fd_ = -1;
  boost::asio::local::stream_protocol::endpoint endpoint_;
};

}  // namespace peerproto::node
