// Broker::Publish in a cluster (node/broker.h), against a stand-in for the cluster that records
// what the broker asks of it: whether a publisher is told to wait for its peers.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "node/broker.h"
#include "node/cluster_hooks.h"
#include "node/config.h"
#include "node/event_loop.h"
#include "node/message.h"

namespace meshmq {
namespace {

// Forward reports `peers` peers took each message, as a cluster whose routes changed after
// the publisher looked (HasRemoteRoutes) would; the callback is kept, never called.
class RecordingCluster : public ClusterHooks {
 public:
  size_t peers = 1;
  int forwards = 0;
  std::vector<std::function<void(bool)>> callbacks;
  std::vector<std::string> passed_on;  // DeliverTo: "node client payload"

  size_t Forward(const MessagePtr&, const std::vector<std::shared_ptr<SharedGroup>>&,
                 std::vector<char>*, std::function<void(bool)> on_accepted) override {
    ++forwards;
    if (on_accepted) callbacks.push_back(std::move(on_accepted));
    return peers;
  }
  bool HasRemoteRoutes() const override { return false; }
  void LocalRouteAdded(const std::string&, const std::string&) override {}
  void LocalRouteRemoved(const std::string&, const std::string&) override {}
  void Barrier(std::function<void()> done) override { done(); }
  void RetainedChanged(const std::string&, const Message*, const RetainedVersion&) override {}
  bool TakeSession(const std::string&, bool,
                   std::function<void(std::optional<storage::LoadedSession>)>) override {
    return false;
  }
  void DeliverTo(const std::string& node, const std::string& client_id,
                 const QueuedMessage& queued) override {
    passed_on.push_back(node + " " + client_id + " " + queued.message->payload);
  }
  void SessionImported(const std::string&) override {}
  uint64_t ClaimOf(const std::string&) override { return 0; }
  int64_t move_grace_ms() const override { return 1000; }
  void OnDurable(uint64_t) override {}
  bool Serving() const override { return true; }
  bool HoldPublish(std::string_view, std::function<void()>) override { return false; }
  void WillChanged(const std::string&, const MessagePtr&, uint32_t,
                   std::function<void()> copied) override {
    if (copied) copied();
  }
  SessionReplication* replication() override { return nullptr; }
  void Shutdown() override {}
};

MessagePtr Qos1(const std::string& topic, const std::string& payload = "m") {
  auto message = std::make_shared<Message>();
  message->topic = topic;
  message->payload = payload;
  message->qos = 1;
  return message;
}

// A broker (not started: no store, no listener) in a cluster that RecordingCluster stands for.
class ClusterBrokerTest : public ::testing::Test {
 protected:
  ClusterBrokerTest() { broker.SetCluster(&cluster); }

  RecordingCluster cluster;
  Broker broker{BrokerConfig{}};
};

// A persistent session subscribed to `filter` at QoS 1, as it arrives from another node.
storage::LoadedSession Arriving(const std::string& client_id, const std::string& filter) {
  storage::LoadedSession loaded;
  loaded.client_id = client_id;
  loaded.record.set_expiry_interval(3600);
  storage::SubscriptionRecord* subscription = loaded.record.add_subscriptions();
  subscription->set_filter(filter);
  subscription->set_qos(1);
  return loaded;
}

// Hands `client_id`'s session over to `node`, as a TakeSession from there does.
void HandOver(Broker& broker, const std::string& client_id, const std::string& node) {
  bool done = false;
  broker.HandOverSession(client_id, false, node,
                         [&](std::optional<storage::LoadedSession> exported) {
                           EXPECT_TRUE(exported.has_value());
                           done = true;
                         });
  ASSERT_TRUE(done);  // an offline session is handed over at once
}

TEST_F(ClusterBrokerTest, APublisherThatGaveNoCallbackIsNotToldToWaitForPeers) {
  // A QoS 1 publisher that saw no remote route gives no callback; a route that arrived since
  // gets the message all the same. Told to wait, it would hold its PUBACK for ever (or, with no
  // wait ever started on its connection, crash the node).
  bool awaiting_peers = false;
  EXPECT_EQ(broker.Publish(Qos1("t"), nullptr, nullptr, &awaiting_peers), 1u);
  EXPECT_EQ(cluster.forwards, 1);
  EXPECT_FALSE(awaiting_peers);
}

TEST_F(ClusterBrokerTest, APublisherWithACallbackWaitsWhenPeersGotTheMessage) {
  bool awaiting_peers = false;
  broker.Publish(Qos1("t"), nullptr, [](bool) {}, &awaiting_peers);
  EXPECT_TRUE(awaiting_peers);
  EXPECT_EQ(cluster.callbacks.size(), 1u);

  cluster.peers = 0;  // no peer had subscribers after all: nothing to wait for
  awaiting_peers = false;
  broker.Publish(Qos1("t"), nullptr, [](bool) {}, &awaiting_peers);
  EXPECT_FALSE(awaiting_peers);
}

TEST_F(ClusterBrokerTest, SysTopicsStayOnTheNode) {
  bool awaiting_peers = false;
  broker.Publish(Qos1("$SYS/broker/uptime"), nullptr, [](bool) {}, &awaiting_peers);
  EXPECT_EQ(cluster.forwards, 0);
  EXPECT_FALSE(awaiting_peers);
}

// A session that moved away and came back within the stand-in's grace: the old stand-in's
// expiry and its replacement must not take the new session's subscription out of the index
// (both are filed under the same client id). They did: everything published on this node for
// it after that went nowhere, though acknowledged.
TEST_F(ClusterBrokerTest, AnExpiringStandInLeavesTheSessionThatCameBackSubscribed) {
  cluster.peers = 0;
  broker.ImportSession(Arriving("c", "t/#"));
  HandOver(broker, "c", "n2");  // a stand-in now, for move_grace_ms
  broker.ImportSession(Arriving("c", "t/#"));  // back (taken over, say) before that ends
  broker.Housekeeping(MonotonicMillis() + 10 * cluster.move_grace_ms());  // the stand-in ends
  EXPECT_EQ(broker.Publish(Qos1("t/1")), 1u);
}

TEST_F(ClusterBrokerTest, AReplacedStandInLeavesTheNewStandInSubscribed) {
  cluster.peers = 0;
  broker.ImportSession(Arriving("c", "t/#"));
  HandOver(broker, "c", "n2");
  broker.ImportSession(Arriving("c", "t/#"));
  HandOver(broker, "c", "n3");  // moves on again: this stand-in replaces the first
  EXPECT_EQ(broker.Publish(Qos1("t/1", "late")), 1u);
  EXPECT_EQ(cluster.passed_on, (std::vector<std::string>{"n3 c late"}));
}

}  // namespace
}  // namespace meshmq
