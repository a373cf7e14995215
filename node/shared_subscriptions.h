// Shared subscriptions, "$share/{group}/{filter}" (MQTT 5 section 4.8.2, offered to 3.1.1 clients
// too, as Mosquitto and EMQX do): every message matching `filter` goes to one member of the group
// rather than to all of them.
//
// A SharedGroup is one (group, filter) pair and its members in the order they subscribed. Pick()
// chooses round-robin, skipping members whose session is offline, so a group of workers behind
// one filter shares the load and a dead worker stops getting messages.
//
// THREADING: thread-safe. The index (a TopicTrie of groups) has its own lock; each group has its
// own mutex, held only while choosing a member or changing membership. Lock order: index ->
// group; a group's mutex is never held while calling into a Session except for the lock-free
// Session::online(), so the session lock never nests inside it.
#ifndef MESHMQ_NODE_SHARED_SUBSCRIPTIONS_H_
#define MESHMQ_NODE_SHARED_SUBSCRIPTIONS_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/session.h"
#include "node/subscription.h"
#include "node/topic.h"
#include "node/topic_trie.h"

namespace meshmq {

class SharedGroup {
 public:
  struct Member {
    std::shared_ptr<Session> session;
    SubscriptionOptions options;
  };

  SharedGroup(std::string group, std::string filter);

  const std::string& group() const { return group_; }
  const std::string& filter() const { return filter_; }

  // The member for the next message: the next one round-robin (in subscription order) whose
  // session is online and is not `exclude`. If no such member is online, the next one
  // round-robin that is not `exclude` (its session may queue the message until it returns).
  // nullopt if the group has no member but `exclude`.
  std::optional<Member> Pick(const Session* exclude = nullptr);

  // Adds `member`, or replaces the options (and the Session object) of the member with the same
  // client id, keeping its place in the order. Returns true if it was new.
  bool Add(Member member);
  // Removes the member with `client_id` (with `only`: if it is that session object). Returns true
  // if it was there.
  bool Remove(const std::string& client_id, const Session* only = nullptr);
  size_t size() const;

 private:
  const std::string group_;
  const std::string filter_;
  mutable absl::Mutex mu_;
  std::vector<Member> members_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // where the next Pick starts looking
};

class SharedSubscriptions {
 public:
  // Adds `session` to (group, filter), creating the group on first use, or replaces its options.
  // Returns true if the membership is new. `filter` must be valid (IsValidTopicFilter); an
  // invalid one is refused: false, nothing stored.
  bool Subscribe(std::string_view group, std::string_view filter, std::shared_ptr<Session> session,
                 SubscriptionOptions options);
  // Removes `client_id` from (group, filter); a group left empty is removed. Returns true if the
  // membership existed. With `only`, only if the member is that session object (another one
  // with the client id may have joined since).
  bool Unsubscribe(std::string_view group, std::string_view filter, const std::string& client_id,
                   const Session* only = nullptr);
  // The group (group, filter), or null.
  std::shared_ptr<SharedGroup> Find(std::string_view group, std::string_view filter) const;

  // Calls fn(const std::shared_ptr<SharedGroup>&) once per group whose filter matches `topic`
  // (same matching rules as ordinary subscriptions, including '$' topics), under the index's
  // reader lock: fn must be quick and must not call back into this object.
  template <typename Fn>
  void Match(std::string_view topic, Fn&& fn) const {
    groups_.Match(
        topic, [&](const std::string&, const std::shared_ptr<SharedGroup>& group) { fn(group); });
  }

  // Number of groups.
  size_t group_count() const { return groups_.size(); }

 private:
  // Serializes Subscribe/Unsubscribe so find-or-create and remove-if-empty are atomic.
  mutable absl::Mutex mu_;
  // Keyed by filter and, within a filter, by group name.
  TopicTrie<std::shared_ptr<SharedGroup>> groups_;
  // The same groups keyed by "{group}/{filter}" (unambiguous: a group name has no '/'), for
  // Find, which the trie cannot do: it only matches topics.
  absl::flat_hash_map<std::string, std::shared_ptr<SharedGroup>, TransparentStringHash,
                      TransparentStringEq>
      by_name_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_SHARED_SUBSCRIPTIONS_H_
