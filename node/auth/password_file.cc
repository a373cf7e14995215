#include "node/auth/password_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace meshmq::auth {
namespace {

// What mosquitto_passwd 2.0 writes (and its broker insists on when reading).
constexpr size_t kSaltLength = 12;
constexpr size_t kDigestLength = 64;
// mosquitto_passwd's default PBKDF2 iteration count (PW_DEFAULT_ITERATIONS).
constexpr int kDefaultIterations = 101;

// Crash loudly: the states that reach here (an OpenSSL primitive failing on valid arguments, no
// randomness available) are not something a caller can recover from, and carrying on without a
// salt or digest would weaken every password written afterwards.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "meshmq auth: fatal: %s\n", what);
  std::abort();
}

// Debian's Abseil has its own absl::string_view, which absl::StrCat accepts and std::string_view
// does not convert to.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view Trim(std::string_view s) {
  // absl::StripAsciiWhitespace takes absl::string_view, which is not std::string_view here.
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // +1: EVP_EncodeBlock writes a NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// Strict padded standard base64, as Mosquitto's BIO-based encoder writes it.
std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '=') {
      // Padding only in the last two positions, and nothing but padding after it.
      if (i < text.size() - 2) return std::nullopt;
      ++padding;
    } else if (padding > 0 ||
               !(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) {
      return std::nullopt;
    }
  }
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the zero bytes the padding stands for.
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::string Sha512Digest(std::string_view password, std::string_view salt) {
  std::string digest(kDigestLength, '\0');
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned int len = 0;
  const bool ok =
      ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
      EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
      EVP_DigestUpdate(ctx, salt.data(), salt.size()) == 1 &&
      EVP_DigestFinal_ex(ctx, reinterpret_cast<unsigned char*>(digest.data()), &len) == 1 &&
      len == kDigestLength;
  EVP_MD_CTX_free(ctx);
  if (!ok) Fatal("SHA-512 failed");
  return digest;
}

std::string Pbkdf2Digest(std::string_view password, std::string_view salt, int iterations) {
  std::string digest(kDigestLength, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha512(),
                        static_cast<int>(kDigestLength),
                        reinterpret_cast<unsigned char*>(digest.data())) != 1) {
    Fatal("PBKDF2-HMAC-SHA512 failed");
  }
  return digest;
}

// The username of a password-file line, or nullopt for comments, blank lines and lines without
// ':' (which Parse rejects but SetPassword/DeleteUser leave alone).
std::optional<std::string_view> LineUsername(std::string_view line) {
  const std::string_view trimmed = Trim(line);
  if (trimmed.empty() || trimmed.front() == '#') return std::nullopt;
  const size_t colon = trimmed.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return Trim(trimmed.substr(0, colon));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  std::string contents;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat("cannot read ", path));
    }
    contents.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return contents;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes `contents` to a temporary file beside `path` and renames it over `path`. `existing` is the
// stat of the file being replaced, whose mode and owner the new file takes over: the broker often
// runs as another user, and a password file that suddenly belongs to root would lock it out.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 const struct stat* existing) {
  std::string tmp = path + ".tmpXXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create a temporary file beside ", path));
  }
  auto fail = [&](const char* what) {
    const int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat(what, " ", tmp, " (for ", path, ")"));
  };
  const mode_t mode = existing != nullptr ? (existing->st_mode & 07777) : 0600;
  if (fchmod(fd, mode) != 0) return fail("cannot chmod");
  if (existing != nullptr && (existing->st_uid != geteuid() || existing->st_gid != getegid())) {
    // Best effort: only root may give a file away. An unprivileged user editing a file it can
    // write but does not own ends up owning the new one, as with any editor that renames.
    (void)fchown(fd, existing->st_uid, existing->st_gid);
  }
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    written += static_cast<size_t>(n);
  }
  // Without the fsync a crash after the rename could leave an empty file under the old name.
  if (fsync(fd) != 0) return fail("cannot fsync");
  if (close(fd) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot close ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  // Make the rename itself durable. The new contents are already in place, so a failure here is
  // not reported as a failed update.
  const int dir_fd = open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

absl::Status ValidateUsername(std::string_view username) {
  if (username.empty()) return absl::InvalidArgumentError("username must not be empty");
  if (username.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError("username must not contain ':'");
  }
  for (const char c : username) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("username must not contain control characters");
    }
  }
  if (username.front() == '#') {
    return absl::InvalidArgumentError("username must not start with '#' (it would be a comment)");
  }
  if (Trim(username).size() != username.size()) {
    return absl::InvalidArgumentError(
        "username must not start or end with whitespace (Mosquitto trims it)");
  }
  return absl::OkStatus();
}

// The file split into lines, each keeping its terminator, so untouched lines are written back
// byte for byte (CRLF files stay CRLF).
std::vector<std::string_view> SplitKeepingNewlines(std::string_view contents) {
  std::vector<std::string_view> lines;
  while (!contents.empty()) {
    const size_t nl = contents.find('\n');
    const size_t len = nl == std::string_view::npos ? contents.size() : nl + 1;
    lines.push_back(contents.substr(0, len));
    contents.remove_prefix(len);
  }
  return lines;
}

// The line without its "\n" or "\r\n", and that terminator.
std::pair<std::string_view, std::string_view> SplitTerminator(std::string_view line) {
  size_t body = line.size();
  if (body > 0 && line[body - 1] == '\n') --body;
  if (body > 0 && line[body - 1] == '\r') --body;
  return {line.substr(0, body), line.substr(body)};
}

// Reads `path` for an update. NotFound is left to the caller to interpret.
absl::StatusOr<std::pair<std::string, struct stat>> ReadForUpdate(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) return contents.status();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("stat ", path));
  return std::make_pair(*std::move(contents), st);
}

}  // namespace

absl::StatusOr<PasswordFile> PasswordFile::Parse(std::string_view contents) {
  PasswordFile file;
  absl::flat_hash_map<std::string, int> line_of_user;
  int line_number = 0;
  for (const std::string_view raw_line : SplitKeepingNewlines(contents)) {
    ++line_number;
    const std::string_view line = Trim(raw_line);
    if (line.empty() || line.front() == '#') continue;
    auto error = [line_number](std::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", Sv(what)));
    };

    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return error("expected \"username:hash\", found no ':'");
    const std::string username(Trim(line.substr(0, colon)));
    const std::string_view hash = Trim(line.substr(colon + 1));
    if (username.empty()) return error("empty username");
    if (hash.empty()) return error(absl::StrCat("empty password hash for user \"", username, "\""));

    // "$6$salt$digest" or "$7$iterations$salt$digest": split after the leading '$'.
    std::vector<std::string_view> fields;
    if (hash.front() == '$') {
      for (absl::string_view f : absl::StrSplit(Sv(hash.substr(1)), '$')) {
        fields.emplace_back(f.data(), f.size());
      }
    }
    Entry entry;
    std::string_view salt_text;
    std::string_view digest_text;
    if (fields.size() == 3 && fields[0] == "6") {
      entry.type = HashType::kSha512;
      entry.iterations = 0;
      salt_text = fields[1];
      digest_text = fields[2];
    } else if (fields.size() == 4 && fields[0] == "7") {
      entry.type = HashType::kSha512Pbkdf2;
      const bool all_digits =
          !fields[1].empty() && fields[1].find_first_not_of("0123456789") == std::string_view::npos;
      if (!all_digits || !absl::SimpleAtoi(Sv(fields[1]), &entry.iterations) ||
          entry.iterations < 1) {
        return error(absl::StrCat("invalid PBKDF2 iteration count \"", Sv(fields[1]),
                                  "\" for user \"", username, "\""));
      }
      salt_text = fields[2];
      digest_text = fields[3];
    } else {
      return error(absl::StrCat("password hash for user \"", username,
                                "\" is neither \"$6$salt$hash\" nor \"$7$iterations$salt$hash\""
                                " (plain-text passwords must be hashed with mosquitto_passwd -U)"));
    }
    std::optional<std::string> salt = Base64Decode(salt_text);
    if (!salt.has_value() || salt->size() != kSaltLength) {
      return error(absl::StrCat("salt for user \"", username, "\" is not ", kSaltLength,
                                " bytes of base64"));
    }
    std::optional<std::string> digest = Base64Decode(digest_text);
    if (!digest.has_value() || digest->size() != kDigestLength) {
      return error(absl::StrCat("hash for user \"", username, "\" is not ", kDigestLength,
                                " bytes of base64"));
    }
    entry.salt = *std::move(salt);
    entry.digest = *std::move(digest);

    // Mosquitto keeps both entries and which one wins is an accident of its hash table; refuse
    // rather than guess which password the administrator meant.
    auto [it, inserted] = line_of_user.emplace(username, line_number);
    if (!inserted) {
      return error(absl::StrCat("user \"", username, "\" already defined on line ", it->second));
    }
    file.entries_.emplace(username, std::move(entry));
  }
  return file;
}

absl::StatusOr<PasswordFile> PasswordFile::Load(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<PasswordFile> file = Parse(*contents);
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat("password file ", path, ": ", file.status().message()));
  }
  return file;
}

bool PasswordFile::Check(std::string_view username, std::string_view password) const {
  const auto it = entries_.find(username);
  if (it == entries_.end()) return false;
  const Entry& entry = it->second;
  const std::string digest = entry.type == HashType::kSha512
                                 ? Sha512Digest(password, entry.salt)
                                 : Pbkdf2Digest(password, entry.salt, entry.iterations);
  // Both are kDigestLength bytes (Parse guarantees it for the stored one).
  return CRYPTO_memcmp(digest.data(), entry.digest.data(), kDigestLength) == 0;
}

bool PasswordFile::HasUser(std::string_view username) const {
  return entries_.find(username) != entries_.end();
}

std::string HashPassword(std::string_view password) {
  std::string salt(kSaltLength, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) !=
      1) {
    Fatal("RAND_bytes failed");
  }
  return absl::StrCat("$7$", kDefaultIterations, "$", Base64Encode(salt), "$",
                      Base64Encode(Pbkdf2Digest(password, salt, kDefaultIterations)));
}

absl::Status SetPassword(const std::string& path, std::string_view username,
                         std::string_view password) {
  if (absl::Status s = ValidateUsername(username); !s.ok()) return s;
  auto existing = ReadForUpdate(path);
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();

  const std::string_view old_contents = existing.ok() ? existing->first : std::string_view();
  const std::string new_entry = absl::StrCat(Sv(username), ":", HashPassword(password));
  std::string out;
  out.reserve(old_contents.size() + new_entry.size() + 1);
  bool replaced = false;
  for (const std::string_view line : SplitKeepingNewlines(old_contents)) {
    if (LineUsername(line) != username) {
      out.append(line.data(), line.size());
      continue;
    }
    if (replaced) continue;  // a duplicate entry for the same user: Parse would reject it
    const std::string_view terminator = SplitTerminator(line).second;
    absl::StrAppend(&out, new_entry, Sv(terminator));
    replaced = true;
  }
  if (!replaced) {
    if (!out.empty() && out.back() != '\n') out.push_back('\n');
    absl::StrAppend(&out, new_entry, "\n");
  }
  return WriteFileAtomically(path, out, existing.ok() ? &existing->second : nullptr);
}

absl::Status DeleteUser(const std::string& path, std::string_view username) {
  auto existing = ReadForUpdate(path);
  if (!existing.ok()) return existing.status();
  std::string out;
  bool found = false;
  for (const std::string_view line : SplitKeepingNewlines(existing->first)) {
    if (LineUsername(line) == username) {
      found = true;
      continue;
    }
    out.append(line.data(), line.size());
  }
  if (!found) {
    return absl::NotFoundError(absl::StrCat("user \"", Sv(username), "\" not found in ", path));
  }
  return WriteFileAtomically(path, out, &existing->second);
}

}  // namespace meshmq::auth
