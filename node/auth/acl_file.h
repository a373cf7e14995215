// Mosquitto-compatible ACL files (the broker's acl_file option), so an ACL written for Mosquitto
// 2.0 grants and denies exactly the same publishes and deliveries under meshmq. The syntax and the
// decision order are documented at the top of acl_file.cc.
#ifndef MESHMQ_NODE_AUTH_ACL_FILE_H_
#define MESHMQ_NODE_AUTH_ACL_FILE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/topic.h"

namespace meshmq::auth {

// THREADING: immutable after Parse/Load; the Check functions may be called from any thread.
class AclFile {
 public:
  enum class Access : uint8_t { kRead = 1, kWrite = 2 };

  // Parses the file's text; an unknown keyword, a bad access word, a missing topic or username, or
  // an invalid topic filter is an error naming its 1-based line number.
  static absl::StatusOr<AclFile> Parse(std::string_view contents);
  // Reads and parses `path`; every error message names the path.
  static absl::StatusOr<AclFile> Load(const std::string& path);

  // May this client publish to (kWrite) or receive a message on (kRead) the topic name `topic`?
  // `username` is nullopt for a client that connected without one. The broker must ask kRead for
  // every delivery, retained messages included: CheckSubscribe alone does not stop a granted
  // wildcard subscription from reaching a topic a deny rule covers.
  bool CheckTopic(std::optional<std::string_view> username, std::string_view client_id,
                  std::string_view topic, Access access) const;

  // May this client subscribe to the topic filter `filter`? See acl_file.cc for the exact rule;
  // in short, some read rule must cover every topic the filter can match and no deny rule may
  // cover the whole filter.
  bool CheckSubscribe(std::optional<std::string_view> username, std::string_view client_id,
                      std::string_view filter) const;

 private:
  // Access bits of a rule; 0 is "deny".
  static constexpr uint8_t kDeny = 0;

  struct Rule {
    uint8_t access;     // kDeny or a mask of Access bits
    std::string topic;  // a topic filter; for patterns, before %u/%c substitution
    bool has_username_placeholder = false;   // pattern contains %u
    bool has_client_id_placeholder = false;  // pattern contains %c
  };
  // Rules of one user (or of anonymous clients), deny rules first, as Mosquitto orders them.
  using RuleList = std::vector<Rule>;

  // Both checks walk the same decision order and differ only in how a rule is tested against
  // the client's topic or filter.
  template <typename Matches>
  bool Decide(std::optional<std::string_view> username, std::string_view client_id, uint8_t wanted,
              const Matches& matches) const;

  static void AddRule(RuleList& list, Rule rule);

  RuleList anonymous_;  // "topic" lines before the first "user" line
  absl::flat_hash_map<std::string, RuleList, TransparentStringHash, TransparentStringEq> users_;
  RuleList patterns_;
};

}  // namespace meshmq::auth

#endif  // MESHMQ_NODE_AUTH_ACL_FILE_H_
