#include "passphrase.hpp"

#include <peerproto/key_file.hpp>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace peerproto::node {
namespace {

// One line from the terminal with echo off; nullopt when there is no terminal.
std::optional<std::string> ask(const std::string& prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  termios before{};
  const bool tty = ::tcgetattr(fd, &before) == 0;
  if (tty) {
    termios quiet = before;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  [[maybe_unused]] const auto shown = ::write(fd, prompt.data(), prompt.size());
  std::string line;
  for (char c; ::read(fd, &c, 1) == 1 && c != '\n';) line += c;
  if (tty) ::tcsetattr(fd, TCSAFLUSH, &before);
  [[maybe_unused]] const auto nl = ::write(fd, "\n", 1);
  ::close(fd);
  return line;
}

}  // namespace

void add_secret_options(CLI::App* cmd, secret_input& in, const std::string& name, const std::string& what) {
  cmd->add_option("--" + name + "-file", in.file, "read " + what + " from the first line of this file")->check(CLI::ExistingFile);
  cmd->add_option("--" + name + "-env", in.env, "read " + what + " from this environment variable");
}

std::string read_secret(const secret_input& in, const std::string& prompt, const std::string& options, bool confirm) {
  if (!in.file.empty()) {
    std::ifstream f(in.file);
    std::string line;
    if (!f || !std::getline(f, line)) throw config_error("cannot read a line from " + in.file);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  if (!in.env.empty()) {
    const char* v = std::getenv(in.env.c_str());
    if (!v) throw config_error("the environment variable " + in.env + " is not set");
    return v;
  }
  auto typed = ask(prompt + ": ");
  if (!typed) throw config_error("no terminal to ask for " + prompt + " on: give " + options);
  if (confirm) {
    const auto again = ask(prompt + " (again): ");
    if (again != typed) throw config_error("the two entries differ; nothing was written");
  }
  return *typed;
}

}  // namespace peerproto::node
