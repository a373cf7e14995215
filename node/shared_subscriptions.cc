// Shared subscriptions (MQTT 5 section 4.8.2). The standard leaves the choice of member to the
// server; round-robin over online members spreads the load evenly and stops sending to a worker
// that went away, while falling back to an offline member keeps QoS 1/2 messages queued for it
// rather than lost when the whole group is down.
#include "node/shared_subscriptions.h"

#include <algorithm>
#include <utility>

namespace meshmq {
namespace {

// The key of SharedSubscriptions::by_name_: what follows "$share/" in the subscribed filter.
std::string GroupKey(std::string_view group, std::string_view filter) {
  std::string key;
  key.reserve(group.size() + 1 + filter.size());
  key.append(group);
  key.push_back('/');
  key.append(filter);
  return key;
}

}  // namespace

SharedGroup::SharedGroup(std::string group, std::string filter)
    : group_(std::move(group)), filter_(std::move(filter)) {}

std::optional<SharedGroup::Member> SharedGroup::Pick(const Session* exclude) {
  absl::MutexLock lock(&mu_);
  const size_t n = members_.size();
  std::optional<size_t> fallback;  // the first candidate round-robin, online or not
  for (size_t i = 0; i < n; ++i) {
    const size_t index = (next_ + i) % n;
    const Member& member = members_[index];
    if (member.session.get() == exclude) continue;
    if (member.session->online()) {
      next_ = index + 1;
      return member;
    }
    if (!fallback) fallback = index;
  }
  if (!fallback) return std::nullopt;
  next_ = *fallback + 1;
  return members_[*fallback];
}

bool SharedGroup::Add(Member member) {
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(members_.begin(), members_.end(), [&](const Member& m) {
    return m.session->client_id() == member.session->client_id();
  });
  if (it != members_.end()) {
    // Also takes the new Session object: a client id has one live session, and a replaced
    // session's subscriptions are removed with it.
    *it = std::move(member);
    return false;
  }
  members_.push_back(std::move(member));
  return true;
}

bool SharedGroup::Remove(const std::string& client_id, const Session* only) {
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(members_.begin(), members_.end(), [&](const Member& m) {
    return m.session->client_id() == client_id && (only == nullptr || m.session.get() == only);
  });
  if (it == members_.end()) return false;
  const size_t index = it - members_.begin();
  members_.erase(it);
  // Keep pointing at the same next member, so a departure does not skip anyone's turn.
  if (index < next_) --next_;
  if (next_ >= members_.size()) next_ = 0;
  return true;
}

size_t SharedGroup::size() const {
  absl::MutexLock lock(&mu_);
  return members_.size();
}

bool SharedSubscriptions::Subscribe(std::string_view group, std::string_view filter,
                                    std::shared_ptr<Session> session, SubscriptionOptions options) {
  // The trie would refuse an invalid filter; refusing it here keeps the two indexes in step.
  if (!IsValidTopicFilter(filter)) return false;
  absl::MutexLock lock(&mu_);
  std::string key = GroupKey(group, filter);
  if (auto it = by_name_.find(key); it != by_name_.end()) {
    return it->second->Add(SharedGroup::Member{std::move(session), options});
  }
  auto shared_group = std::make_shared<SharedGroup>(std::string(group), std::string(filter));
  // Join before publishing the group, so a concurrent Match never sees it empty.
  shared_group->Add(SharedGroup::Member{std::move(session), options});
  groups_.Insert(filter, shared_group->group(), shared_group);
  by_name_.emplace(std::move(key), std::move(shared_group));
  return true;
}

bool SharedSubscriptions::Unsubscribe(std::string_view group, std::string_view filter,
                                      const std::string& client_id, const Session* only) {
  absl::MutexLock lock(&mu_);
  auto it = by_name_.find(GroupKey(group, filter));
  if (it == by_name_.end()) return false;
  if (!it->second->Remove(client_id, only)) return false;
  // Drop an empty group so unique group names do not accumulate. A publish that matched it just
  // before finds no member and skips it.
  if (it->second->size() == 0) {
    groups_.Erase(filter, it->second->group());
    by_name_.erase(it);
  }
  return true;
}

std::shared_ptr<SharedGroup> SharedSubscriptions::Find(std::string_view group,
                                                       std::string_view filter) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_name_.find(GroupKey(group, filter));
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace meshmq
