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

bool RetainedStore::Set(MessagePtr msg) {
  if (msg == nullptr || !IsValidTopicName(msg->topic)) return false;
  absl::MutexLock lock(&mu_);
  if (msg->payload.empty()) {  // MQTT-3.3.1-10, MQTT-3.3.1-11
    if (!EraseFrom(&root_, msg->topic, 0)) return false;
    --size_;
    if (on_change_) on_change_(msg->topic, nullptr);
    return true;
  }
  Node* node = &root_;
  size_t begin = 0;
  while (begin != std::string_view::npos) {
    size_t next;
    const std::string_view level = NextTopicLevel(msg->topic, begin, &next);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
    begin = next;
  }
  if (node->message == nullptr) ++size_;
  if (on_change_) on_change_(msg->topic, msg.get());
  node->message = std::move(msg);
  return true;
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
  if (on_change_) on_change_(msg->topic, nullptr);
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
    erased = child->message != nullptr;
    child->message = nullptr;
  } else {
    erased = EraseFrom(child, topic, next);
  }
  // Prune so that a stream of one-off topics (per-device status, say) deleted again leaves
  // nothing behind.
  if (child->message == nullptr && child->children.empty()) node->children.erase(it);
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
