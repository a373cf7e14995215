#include "node/admin/access.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace meshmq::admin {

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

absl::Status CheckListenAccess(const std::string& listen, bool have_token) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--admin_listen must be HOST:PORT, not '", listen, "'"));
  }
  if (!have_token && !IsLoopbackHost(std::string_view(listen).substr(0, colon))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin_listen=", listen,
        " is reachable from other machines: give --admin_token_file (or listen on 127.0.0.1)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --admin_token_file ", path));
  std::stringstream content;
  content << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(content.str()));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("empty admin token in ", path));
  return token;
}

bool BearerMatches(std::string_view header, std::string_view token) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (header.size() != kPrefix.size() + token.size() ||
      header.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  header.remove_prefix(kPrefix.size());
  unsigned char difference = 0;
  for (size_t i = 0; i < token.size(); ++i) {
    difference |= static_cast<unsigned char>(header[i] ^ token[i]);
  }
  return difference == 0;
}

}  // namespace meshmq::admin
