// Test helpers for checking our password and ACL files against the real thing: run a command such
// as mosquitto_passwd or mosquitto_pub, and start a real mosquitto broker on a free loopback port.
#ifndef MESHMQ_TESTS_NODE_AUTH_MOSQUITTO_RUNNER_H_
#define MESHMQ_TESTS_NODE_AUTH_MOSQUITTO_RUNNER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

extern char** environ;

namespace meshmq::auth::test_util {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Spawns argv with stdout and stderr going to `output`; returns the pid, or -1.
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& output) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

// Runs argv to completion and returns its exit status (-1 if it did not exit normally).
inline int RunCommand(const std::vector<std::string>& argv,
                      const std::string& output = "/dev/null") {
  const pid_t pid = Spawn(argv, output);
  if (pid < 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

inline bool CanConnect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A mosquitto process on a free loopback port, stopped when this goes out of scope.
class Mosquitto {
 public:
  // `config` is appended to a listener line; returns once the broker accepts connections. The
  // config file and the broker's log are written to `dir`.
  static absl::StatusOr<std::unique_ptr<Mosquitto>> Start(const std::string& dir,
                                                          const std::string& config) {
    const int port = FreePort();
    if (port < 0) return absl::InternalError("no free port");
    std::string conf = "listener " + std::to_string(port) + " 127.0.0.1\n" + config;
    // As root, mosquitto drops to the "mosquitto" user before reading the password and ACL
    // files, which then cannot read them in our 0700 directory.
    if (geteuid() == 0) conf += "user root\n";
    const std::string conf_path = dir + "/mosquitto.conf";
    const std::string log_path = dir + "/mosquitto.log";
    std::ofstream(conf_path, std::ios::binary | std::ios::trunc) << conf;
    const pid_t pid = Spawn({"/usr/sbin/mosquitto", "-c", conf_path}, log_path);
    if (pid < 0) return absl::InternalError("cannot spawn /usr/sbin/mosquitto");
    auto broker = std::unique_ptr<Mosquitto>(new Mosquitto(pid, port));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!CanConnect(port)) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        broker->pid_ = -1;
        return absl::InternalError("mosquitto exited: " + ReadAll(log_path));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError("mosquitto did not listen: " + ReadAll(log_path));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return broker;
  }

  ~Mosquitto() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }

  int port() const { return port_; }

 private:
  Mosquitto(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

}  // namespace meshmq::auth::test_util

#endif  // MESHMQ_TESTS_NODE_AUTH_MOSQUITTO_RUNNER_H_
