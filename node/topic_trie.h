// The subscription index: topic filters to subscribers, matched against every PUBLISH topic.
//
// One node per filter level. A node keeps its named children apart from its '+' child and from
// the subscribers whose filter ends in '#' there, as FlashMQ's subscription store does, so a
// publish walks exactly the branches that can match: per topic level one hash lookup for the
// named child, plus one recursion if a '+' child exists. Cost follows the topic's depth and the
// number of '+' branches on its path, not the number of subscriptions.
//
// Matching rules (MQTT 3.1.1 section 4.7, see node/topic.h):
// - "<path>/#" is kept at <path>'s node and reported both for <path> itself and for anything
//   below it ('#' matches its parent level, 4.7.1.2); "#" is kept at the root.
// - '+' matches one level, including an empty one (4.7.1.3).
// - A topic whose first level starts with '$' skips the root's '+' child and '#' subscribers, so
//   filters starting with a wildcard never see $SYS traffic (MQTT-4.7.2-1).
//
// Filters must be valid (IsValidTopicFilter); Insert and Erase refuse others and return false,
// which also bounds the trie's depth, and so Erase's recursion, by kMaxTopicLevels.
#ifndef MESHMQ_NODE_TOPIC_TRIE_H_
#define MESHMQ_NODE_TOPIC_TRIE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/topic.h"

namespace meshmq {

// Maps topic filters to subscriptions. Each subscription is identified by (filter, key) where key
// is the subscriber's identity (the client id); Value is what the caller stores (e.g. QoS + a
// session pointer).
//
// THREADING: every method is thread-safe. Match takes a shared (reader) lock so publishes on
// different threads never serialize on each other; Insert/Erase take the exclusive lock.
template <typename Value>
class TopicTrie {
 public:
  TopicTrie() = default;
  TopicTrie(const TopicTrie&) = delete;
  TopicTrie& operator=(const TopicTrie&) = delete;

  // Adds the subscription, or replaces the Value of an existing (filter, key). Returns true if it
  // was new; false if it replaced one or `filter` is invalid (then nothing is stored).
  bool Insert(std::string_view filter, const std::string& key, Value value)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Removes (filter, key). Returns true if it existed. Prunes nodes left empty, so a churn of
  // unique filters (client-id-named topics) does not leave the trie growing.
  bool Erase(std::string_view filter, const std::string& key) ABSL_LOCKS_EXCLUDED(mu_) {
    return EraseIf(filter, key, [](const Value&) { return true; });
  }
  // As Erase, only if is_it(value) says the stored Value is the one to remove (a key can
  // be stored again, for a newer subscriber, after the caller looked).
  template <typename Pred>
  bool EraseIf(std::string_view filter, const std::string& key, Pred&& is_it)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Calls fn(const std::string& key, const Value& value) once per subscription whose filter
  // matches `topic`, under the shared lock: fn must be quick and must not call back into the trie.
  // The same key may be reported several times if several of its filters match (the caller
  // merges). The key and value references are valid only during the call. `topic` should be a
  // valid topic name; an empty one matches nothing.
  template <typename Fn>
  void Match(std::string_view topic, Fn&& fn) const ABSL_LOCKS_EXCLUDED(mu_);

  // Number of (filter, key) subscriptions.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Number of nodes below the root, so tests can see that Erase prunes.
  size_t NodeCountForTesting() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    return CountNodes(root_);
  }

 private:
  using Subscribers = absl::flat_hash_map<std::string, Value>;

  struct Node {
    absl::flat_hash_map<std::string, std::unique_ptr<Node>, TransparentStringHash,
                        TransparentStringEq>
        children;
    std::unique_ptr<Node> plus;  // the '+' level
    Subscribers exact;           // filters that end at this level
    Subscribers multi;           // filters that continue with a final "/#" (or "#" at the root)

    bool empty() const {
      return children.empty() && plus == nullptr && exact.empty() && multi.empty();
    }
  };

  template <typename Fn>
  static void Report(const Subscribers& subscribers, Fn& fn) {
    for (const auto& [key, value] : subscribers) fn(key, value);
  }

  // `node` was reached by matching the topic's levels before `begin` (npos: all of them).
  // Follows named children iteratively and recurses only into '+' children.
  template <typename Fn>
  static void MatchFrom(const Node* node, std::string_view topic, size_t begin, Fn& fn) {
    for (;;) {
      Report(node->multi, fn);
      if (begin == std::string_view::npos) {
        Report(node->exact, fn);
        return;
      }
      size_t next;
      const std::string_view level = NextTopicLevel(topic, begin, &next);
      if (node->plus != nullptr) MatchFrom(node->plus.get(), topic, next, fn);
      const auto it = node->children.find(level);
      if (it == node->children.end()) return;
      node = it->second.get();
      begin = next;
    }
  }

  static size_t CountNodes(const Node& node) {
    size_t count = 0;
    if (node.plus != nullptr) count += 1 + CountNodes(*node.plus);
    for (const auto& [level, child] : node.children) count += 1 + CountNodes(*child);
    return count;
  }

  // Removes `key` from `subscribers` if is_it(its value).
  template <typename Pred>
  static bool EraseKey(Subscribers& subscribers, const std::string& key, Pred& is_it) {
    auto it = subscribers.find(key);
    if (it == subscribers.end() || !is_it(it->second)) return false;
    subscribers.erase(it);
    return true;
  }

  // Removes (filter from `begin`, key) below `node` and prunes the children it empties.
  template <typename Pred>
  static bool EraseFrom(Node* node, std::string_view filter, size_t begin, const std::string& key,
                        Pred& is_it) {
    size_t next;
    const std::string_view level = NextTopicLevel(filter, begin, &next);
    if (level == "#") return EraseKey(node->multi, key, is_it);
    Node* child = nullptr;
    auto it = node->children.end();
    if (level == "+") {
      child = node->plus.get();
    } else {
      it = node->children.find(level);
      if (it != node->children.end()) child = it->second.get();
    }
    if (child == nullptr) return false;
    const bool erased = next == std::string_view::npos ? EraseKey(child->exact, key, is_it)
                                                       : EraseFrom(child, filter, next, key, is_it);
    if (erased && child->empty()) {
      if (level == "+") {
        node->plus.reset();
      } else {
        node->children.erase(it);
      }
    }
    return erased;
  }

  mutable absl::Mutex mu_;
  Node root_ ABSL_GUARDED_BY(mu_);
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
};

template <typename Value>
bool TopicTrie<Value>::Insert(std::string_view filter, const std::string& key, Value value) {
  if (!IsValidTopicFilter(filter)) return false;
  absl::MutexLock lock(&mu_);
  Node* node = &root_;
  Subscribers* subscribers = nullptr;
  size_t begin = 0;
  while (subscribers == nullptr) {
    size_t next;
    const std::string_view level = NextTopicLevel(filter, begin, &next);
    if (level == "#") {
      subscribers = &node->multi;
      break;
    }
    std::unique_ptr<Node>* child;
    if (level == "+") {
      child = &node->plus;
    } else {
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        it = node->children.emplace(std::string(level), nullptr).first;
      }
      child = &it->second;
    }
    if (*child == nullptr) *child = std::make_unique<Node>();
    node = child->get();
    if (next == std::string_view::npos) subscribers = &node->exact;
    begin = next;
  }
  const bool inserted = subscribers->insert_or_assign(key, std::move(value)).second;
  if (inserted) ++size_;
  return inserted;
}

template <typename Value>
template <typename Pred>
bool TopicTrie<Value>::EraseIf(std::string_view filter, const std::string& key, Pred&& is_it) {
  if (!IsValidTopicFilter(filter)) return false;
  absl::MutexLock lock(&mu_);
  if (!EraseFrom(&root_, filter, 0, key, is_it)) return false;
  --size_;
  return true;
}

template <typename Value>
template <typename Fn>
void TopicTrie<Value>::Match(std::string_view topic, Fn&& fn) const {
  if (topic.empty()) return;
  absl::ReaderMutexLock lock(&mu_);
  if (!IsDollarTopic(topic)) {
    MatchFrom(&root_, topic, 0, fn);
    return;
  }
  // MQTT-4.7.2-1: only filters that spell out the '$' level can match, so start below the
  // root's named child and leave its '+' child and "#" subscribers out.
  size_t next;
  const std::string_view level = NextTopicLevel(topic, 0, &next);
  const auto it = root_.children.find(level);
  if (it != root_.children.end()) MatchFrom(it->second.get(), topic, next, fn);
}

template <typename Value>
size_t TopicTrie<Value>::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return size_;
}

}  // namespace meshmq

#endif  // MESHMQ_NODE_TOPIC_TRIE_H_
