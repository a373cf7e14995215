// Retained messages, one per topic name (MQTT 3.1.1 section 3.3.1.3).
//
// Rules enforced here:
// - A retained PUBLISH replaces the topic's previous retained message, whatever its QoS
//   (MQTT-3.3.1-5, MQTT-3.3.1-7).
// - A retained PUBLISH with an empty payload removes the topic's retained message and is not
//   stored itself (MQTT-3.3.1-10, MQTT-3.3.1-11).
// - A new subscription receives the retained message of every topic its filter matches
//   (MQTT-3.3.1-6): Match applies the section 4.7 rules, including that '#' and '+' as the first
//   level do not match topics starting with '$' (MQTT-4.7.2-1).
// Whether a PUBLISH is retained at all (its RETAIN flag, MQTT-3.3.1-12) is the caller's decision.
//
// Topics are kept as a tree of levels, so a filter visits only the branches it can match: a
// filter without wildcards is a walk down one path, "a/+/c" looks at a's children only, and "a/#"
// visits only the subtree under a.
#ifndef MESHMQ_NODE_RETAINED_STORE_H_
#define MESHMQ_NODE_RETAINED_STORE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/message.h"
#include "node/topic.h"

namespace meshmq {

// The version of a topic's retained value in a cluster: a hybrid logical clock reading and the
// node that wrote it. The highest (hlc, origin) wins on every node, so concurrent writes to one
// topic converge (cluster/README.md). hlc 0: unversioned, a node on its own.
struct RetainedVersion {
  uint64_t hlc = 0;
  std::string origin;
  bool operator<(const RetainedVersion& o) const {
    return hlc != o.hlc ? hlc < o.hlc : origin < o.origin;
  }
  bool operator==(const RetainedVersion&) const = default;
};

// Retained messages by topic (MQTT-3.3.1-5..11).
//
// In a cluster every change carries a RetainedVersion and is applied only if it is newer than
// what the topic holds; a deletion then leaves a tombstone (no message, the version), so that an
// older value arriving late from another node cannot bring the message back.
//
// THREADING: thread-safe; Match, size and ForEach take a shared lock, Set the exclusive one.
class RetainedStore {
 public:
  RetainedStore() = default;
  RetainedStore(const RetainedStore&) = delete;
  RetainedStore& operator=(const RetainedStore&) = delete;

  // Stores msg as the retained message of msg->topic, replacing any older one; a message with an
  // empty payload deletes the topic's retained message instead and is not stored
  // (MQTT-3.3.1-10/11). Returns true if the store changed. A null message or one whose topic is not
  // a valid topic name is ignored (returns false).
  bool Set(MessagePtr msg) ABSL_LOCKS_EXCLUDED(mu_) {
    if (msg == nullptr) return false;
    return Apply(msg->topic, msg, RetainedVersion{});  // a copy of msg: the topic stays valid
  }
  // Set with a version: `msg` null or with an empty payload deletes. With version.hlc != 0 the
  // change is applied only if `version` is newer than the topic's current version (message or
  // tombstone), and a deletion keeps a tombstone. Returns true if the store changed.
  bool Apply(std::string_view topic, MessagePtr msg, const RetainedVersion& version)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes `msg` if it is still the retained message of its topic (an expired one, say), and
  // leaves a newer message on that topic alone. Returns true if it removed it.
  bool Remove(const MessagePtr& msg) ABSL_LOCKS_EXCLUDED(mu_);

  // Appends every retained message whose topic matches `filter` (same rules as TopicMatches, '$'
  // rule included) to out, in no particular order. An invalid filter matches nothing.
  void Match(std::string_view filter, std::vector<MessagePtr>* out) const ABSL_LOCKS_EXCLUDED(mu_);

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Called under the store's lock with every change, so that a copy elsewhere (the node's
  // RocksDB store) sees changes to one topic in the order they happened here: the new message,
  // or null for a deletion, with the change's version (hlc 0 for an unversioned change or an
  // expired message removed). Set once, before concurrent use.
  using ChangeHook = std::function<void(const std::string& topic, const Message* message,
                                        const RetainedVersion& version)>;
  void SetChangeHook(ChangeHook hook) { on_change_ = std::move(hook); }

  // Number of tree nodes below the root, so tests can see that deletion prunes.
  size_t NodeCountForTesting() const ABSL_LOCKS_EXCLUDED(mu_);

  // Calls fn(const MessagePtr&) for every retained message (for persistence and replication
  // later), under the shared lock: fn must not call back into the store.
  template <typename Fn>
  void ForEach(Fn&& fn) const ABSL_LOCKS_EXCLUDED(mu_);
  // Calls fn(const std::string& topic, const MessagePtr& message_or_null, const RetainedVersion&)
  // for every versioned topic, tombstones included (null message), under the shared lock: the
  // state a node sends a peer that (re)joins. Unversioned messages are reported with hlc 0.
  template <typename Fn>
  void ForEachVersioned(Fn&& fn) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    std::string path;
    VisitVersioned(root_, /*at_root=*/true, &path, fn);
  }
  // Number of tombstones kept.
  size_t tombstones() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Node {
    absl::flat_hash_map<std::string, std::unique_ptr<Node>, TransparentStringHash,
                        TransparentStringEq>
        children;
    MessagePtr message;  // the retained message of the topic ending at this level, if any
    // Its version; with no message and hlc != 0 the node is a tombstone.
    RetainedVersion version;
    bool holds_value() const { return message != nullptr || version.hlc != 0; }
  };

  // Recursion depth in all of these is bounded by kMaxTopicLevels, since Set refuses deeper
  // topics.
  static size_t CountNodes(const Node& node);
  static bool EraseFrom(Node* node, std::string_view topic, size_t begin);
  static void MatchFrom(const Node& node, std::string_view filter, size_t begin, bool at_root,
                        std::vector<MessagePtr>* out);
  template <typename Fn>
  static void Visit(const Node& node, Fn& fn) {
    if (node.message != nullptr) fn(node.message);
    for (const auto& [level, child] : node.children) Visit(*child, fn);
  }

  template <typename Fn>
  static void VisitVersioned(const Node& node, bool at_root, std::string* path, Fn& fn) {
    const size_t length = path->size();
    for (const auto& [level, child] : node.children) {
      if (!at_root) path->push_back('/');
      path->append(level);
      if (child->holds_value()) fn(*path, child->message, child->version);
      VisitVersioned(*child, /*at_root=*/false, path, fn);
      path->resize(length);
    }
  }

  mutable absl::Mutex mu_;
  Node root_ ABSL_GUARDED_BY(mu_);
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
  size_t tombstones_ ABSL_GUARDED_BY(mu_) = 0;
  ChangeHook on_change_;
};

template <typename Fn>
void RetainedStore::ForEach(Fn&& fn) const {
  absl::ReaderMutexLock lock(&mu_);
  Visit(root_, fn);
}

}  // namespace meshmq

#endif  // MESHMQ_NODE_RETAINED_STORE_H_
