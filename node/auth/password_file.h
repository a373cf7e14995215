// Mosquitto-compatible password files, so a file made with mosquitto_passwd (Mosquitto 2.0) works
// with meshmq unchanged and a file edited by `meshmqd passwd` still works with Mosquitto.
//
// One entry per line, "username:hash"; lines starting with '#' and blank lines are skipped. The
// hash is one of the two forms Mosquitto 2.0 reads (src/security_default.c,
// unpwd__decode_passwords):
//   $6$<base64 salt>$<base64 SHA-512(password || salt)>                     (Mosquitto <= 1.6)
//   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations, 64)>
// with a 12-byte salt and a 64-byte digest, both in padded standard base64. Where Mosquitto logs
// and drops a bad entry, we refuse the whole file: a user silently missing from an auth file is
// found out only when they cannot log in.
#ifndef MESHMQ_NODE_AUTH_PASSWORD_FILE_H_
#define MESHMQ_NODE_AUTH_PASSWORD_FILE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/topic.h"

namespace meshmq::auth {

// THREADING: immutable after Parse/Load; Check() may be called from any number of threads.
class PasswordFile {
 public:
  // Parses the file's text. A malformed line (no ':', empty username, unknown hash type, bad
  // base64, wrong salt or digest length, duplicate username) is an error naming its 1-based line
  // number.
  static absl::StatusOr<PasswordFile> Parse(std::string_view contents);
  // Reads and parses `path`; every error message names the path.
  static absl::StatusOr<PasswordFile> Load(const std::string& path);

  // True if the user exists and the password matches. Digests are compared in constant time.
  // A $7$ entry costs one PBKDF2 run (101 iterations by default), so callers on an event loop
  // should not treat this as free.
  bool Check(std::string_view username, std::string_view password) const;
  bool HasUser(std::string_view username) const;
  size_t size() const { return entries_.size(); }

 private:
  enum class HashType { kSha512, kSha512Pbkdf2 };
  struct Entry {
    HashType type;
    int iterations;      // PBKDF2 only
    std::string salt;    // raw bytes
    std::string digest;  // raw bytes
  };

  absl::flat_hash_map<std::string, Entry, TransparentStringHash, TransparentStringEq> entries_;
};

// A new "$7$101$<salt>$<digest>" hash value (the part after "username:"), exactly as
// mosquitto_passwd 2.0 writes it by default: 12 random salt bytes, 101 PBKDF2 iterations.
std::string HashPassword(std::string_view password);

// Backend of `meshmqd passwd FILE USER` (mosquitto_passwd without -c): creates `path` with mode
// 0600 if missing, adds or replaces `username`'s entry and leaves every other line byte for byte as
// it was. The new file is written beside the old one and renamed over it, so a crash never leaves
// a half-written file; an existing file keeps its mode and, where permitted, its owner.
// InvalidArgument if the username is empty, contains ':' or a control character, starts with '#'
// or has leading or trailing whitespace (each would be read back as a different user or a comment).
absl::Status SetPassword(const std::string& path, std::string_view username,
                         std::string_view password);

// Removes `username`'s entry (mosquitto_passwd -D), otherwise as SetPassword. NotFound if the user
// (or the file) does not exist.
absl::Status DeleteUser(const std::string& path, std::string_view username);

}  // namespace meshmq::auth

#endif  // MESHMQ_NODE_AUTH_PASSWORD_FILE_H_
