// Runs peerproto-node as a child process on an ephemeral loopback port, for tests that need real
// sockets, signals and restarts.
#pragma once

#include "node/peers.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace peerproto::testing {

/// A loopback port that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A fresh directory under the system temp dir, removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("peerproto-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

class node_process {
 public:
  /// Starts `peerproto-node serve` with a key for `entity_id` (created in `dir` if missing) and
  /// `extra` arguments, and waits for its "listening" line.
  node_process(const std::filesystem::path& dir, const std::string& entity_id, std::vector<std::string> extra = {},
               const char* binary = PEERPROTO_NODE_BINARY)
      : dir_(dir), key_(dir / (entity_id + ".key")) {
    if (!std::filesystem::exists(key_)) peerproto::generate_key_file(key_, entity_id);
    args_ = {binary, "serve", "--key", key_.string(), "--port", "0", "--state-dir", (dir / (entity_id + "-state")).string()};
    if (const auto at = std::find(extra.begin(), extra.end(), "--port"); at != extra.end() && at + 1 != extra.end()) {
      args_[5] = *(at + 1);  // a fixed port, for peers that must find the node again after a restart
      extra.erase(at, at + 2);
    }
    args_.insert(args_.end(), extra.begin(), extra.end());
    start();
  }
  ~node_process() { kill(SIGKILL); }

  void start() {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    stderr_file_ = dir_ / "node.stderr";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int err = ::open(stderr_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(err, 2);
      ::close(out[0]);
      std::vector<char*> argv;
      for (auto& a : args_) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[256] = {};
    const bool got = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    ASSERT_TRUE(got) << "the node did not start: " << stderr_text();
    const std::string text(line);
    port_ = std::stoi(text.substr(text.rfind(':') + 1));
  }

  /// Sends `sig`; for SIGKILL also reaps the process.
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig == SIGKILL) wait();
  }
  /// Waits for the process to exit and returns its exit status (-signal when killed).
  int wait() {
    if (pid_ <= 0) return status_;
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return status_;
  }
  /// Whether the process has exited (reaped, without waiting).
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return true;
  }
  void restart() {
    kill(SIGKILL);
    start();
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string ws_url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/ws"; }
  const std::filesystem::path& key_file() const { return key_; }
  std::filesystem::path state_dir() const { return args_[7]; }
  std::string stderr_text() const {
    std::ifstream in(stderr_file_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  /// Resident memory of the process in KiB (VmRSS), for reports.
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }

 private:
  std::filesystem::path dir_, key_, stderr_file_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int status_ = 0;
  int port_ = 0;
};

}  // namespace peerproto::testing
