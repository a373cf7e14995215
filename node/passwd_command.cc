#include "node/passwd_command.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "node/auth/password_file.h"

namespace meshmq {
namespace {

constexpr char kUsage[] = "usage: meshmqd passwd [-c] [-b] [-D] FILE USER [PASSWORD]\n";

std::optional<std::string> ReadPassword(const char* prompt) {
  const bool tty = isatty(STDIN_FILENO);
  termios saved{};
  if (tty) {
    std::fprintf(stderr, "%s", prompt);
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  bool ok = static_cast<bool>(std::getline(std::cin, line));
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::fprintf(stderr, "\n");
  }
  if (!ok) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int RunPasswdCommand(const std::vector<std::string>& args) {
  bool create = false;
  bool batch = false;
  bool remove = false;
  std::vector<std::string> positional;
  for (const std::string& arg : args) {
    if (arg == "-c") {
      create = true;
    } else if (arg == "-b") {
      batch = true;
    } else if (arg == "-D") {
      remove = true;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "meshmqd passwd: unknown option %s\n%s", arg.c_str(), kUsage);
      return 2;
    } else {
      positional.push_back(arg);
    }
  }
  const size_t wanted = batch ? 3 : 2;
  if (positional.size() != wanted || (remove && (batch || create))) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  const std::string& file = positional[0];
  const std::string& user = positional[1];

  if (remove) {
    absl::Status status = auth::DeleteUser(file, user);
    if (!status.ok()) {
      std::fprintf(stderr, "meshmqd passwd: %s\n", std::string(status.message()).c_str());
      return 1;
    }
    return 0;
  }

  std::string password;
  if (batch) {
    password = positional[2];
  } else {
    std::optional<std::string> first = ReadPassword("Password: ");
    if (!first) {
      std::fprintf(stderr, "meshmqd passwd: no password given\n");
      return 1;
    }
    if (isatty(STDIN_FILENO)) {
      std::optional<std::string> again = ReadPassword("Reenter password: ");
      if (!again || *again != *first) {
        std::fprintf(stderr, "meshmqd passwd: passwords do not match\n");
        return 1;
      }
    }
    password = *first;
  }
  if (create) {
    std::ofstream truncate(file, std::ios::trunc);
    if (!truncate) {
      std::fprintf(stderr, "meshmqd passwd: cannot create %s\n", file.c_str());
      return 1;
    }
  }
  absl::Status status = auth::SetPassword(file, user, password);
  if (!status.ok()) {
    std::fprintf(stderr, "meshmqd passwd: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace meshmq
