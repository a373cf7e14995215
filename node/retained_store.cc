// The rules implemented here are listed, with their spec sections, at the top of
// node/retained_store.h.
#include "node/retained_store.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/topic.h"

namespace meshmq {

bool RetainedStore::Apply(std::string_view topic, MessagePtr msg, const RetainedVersion& version) {
  if (!IsValidTopicName(topic)) return false;
  if (msg != nullptr && msg->payload.empty()) msg = nullptr;  // MQTT-3.3.1-10, MQTT-3.3.1-11
  const bool versioned = version.hlc != 0;
  absl::MutexLock lock(&mu_);
  if (msg == nullptr && !versioned) {
    if (!EraseFrom(&root_, topic, 0)) return false;
    --size_;
    if (on_change_) on_change_(std::string(topic), nullptr, version);
    return true;
  }
  Node* node = &root_;
  size_t begin = 0;
  while (begin != std::string_view::npos) {
    size_t next;
    const std::string_view level = NextTopicLevel(topic, begin, &next);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
    begin = next;
  }
  // Last writer wins; an unversioned write (a node on its own) always does.
  if (versioned && node->version.hlc != 0 && !(node->version < version)) return false;
  const bool had_message = node->message != nullptr;
  const bool was_tombstone = !had_message && node->version.hlc != 0;
  if (msg != nullptr && !had_message) ++size_;
  if (msg == nullptr && had_message) --size_;
  if (msg == nullptr && !was_tombstone) ++tombstones_;
  if (msg != nullptr && was_tombstone) --tombstones_;
  if (on_change_) on_change_(std::string(topic), msg.get(), version);
  node->message = std::move(msg);
  node->version = version;
  return true;
}

size_t RetainedStore::tombstones() const {
  absl::ReaderMutexLock lock(&mu_);
  return tombstones_;
}

bool RetainedStore::Remove(const MessagePtr& msg) {
  if (msg == nullptr || !IsValidTopicName(msg->topic)) return false;
  absl::MutexLock lock(&mu_);
  const Node* node = &root_;
  size_t begin = 0;
  while (begin != std::string_view::npos) {
    size_t next;
    const auto it = node->children.find(NextTopicLevel(msg->topic, begin, &next));
    if (it == node->children.end()) return false;
    node = it->second.get();
    begin = next;
  }
  if (node->message != msg) return false;
  EraseFrom(&root_, msg->topic, 0);
  --size_;
  if (on_change_) on_change_(msg->topic, nullptr, RetainedVersion{});
  return true;
}

bool RetainedStore::EraseFrom(Node* node, std::string_view topic, size_t begin) {
  size_t next;
  const std::string_view level = NextTopicLevel(topic, begin, &next);
  const auto it = node->children.find(level);
  if (it == node->children.end()) return false;
  Node* child = it->second.get();
  bool erased;
  if (next == std::string_view::npos) {
    // A tombstone stays: only a newer versioned change replaces it.
    erased = child->message != nullptr;
    if (erased) {
      child->message = nullptr;
      child->version = RetainedVersion{};
    }
  } else {
    erased = EraseFrom(child, topic, next);
  }
  // Prune so that a stream of one-off topics (per-device status, say) deleted again leaves
  // nothing behind.
  if (!child->holds_value() && child->children.empty()) node->children.erase(it);
  return erased;
}

void RetainedStore::MatchFrom(const Node& node, std::string_view filter, size_t begin, bool at_root,
                              std::vector<MessagePtr>* out) {
  size_t next;
  const std::string_view level = NextTopicLevel(filter, begin, &next);
  if (level == "#") {
    // '#' also matches the parent level: "sport/#" matches "sport" (4.7.1.2). The root holds no
    // message, topics being non-empty.
    if (node.message != nullptr) out->push_back(node.message);
    auto append = [out](const MessagePtr& msg) { out->push_back(msg); };
    for (const auto& [name, child] : node.children) {
      if (at_root && IsDollarTopic(name)) continue;  // MQTT-4.7.2-1
      Visit(*child, append);
    }
    return;
  }
  if (level == "+") {
    for (const auto& [name, child] : node.children) {
      if (at_root && IsDollarTopic(name)) continue;  // MQTT-4.7.2-1
      if (next == std::string_view::npos) {
        if (child->message != nullptr) out->push_back(child->message);
      } else {
        MatchFrom(*child, filter, next, /*at_root=*/false, out);
      }
    }
    return;
  }
  const auto it = node.children.find(level);
  if (it == node.children.end()) return;
  const Node& child = *it->second;
  if (next == std::string_view::npos) {
    if (child.message != nullptr) out->push_back(child.message);
  } else {
    MatchFrom(child, filter, next, /*at_root=*/false, out);
  }
}

void RetainedStore::Match(std::string_view filter, std::vector<MessagePtr>* out) const {
  if (!IsValidTopicFilter(filter)) return;
  absl::ReaderMutexLock lock(&mu_);
  MatchFrom(root_, filter, 0, /*at_root=*/true, out);
}

size_t RetainedStore::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return size_;
}

size_t RetainedStore::NodeCountForTesting() const {
  absl::ReaderMutexLock lock(&mu_);
  return CountNodes(root_);
}

size_t RetainedStore::CountNodes(const Node& node) {
  size_t count = 0;
  for (const auto& [level, child] : node.children) count += 1 + CountNodes(*child);
  return count;
}

}  // namespace meshmq
