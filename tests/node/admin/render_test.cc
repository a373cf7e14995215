#include "node/admin/render.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq::admin {
namespace {

using ::testing::HasSubstr;

TEST(RenderTest, Durations) {
  EXPECT_EQ(FormatUptime(12), "12s");
  EXPECT_EQ(FormatUptime(250), "4m10s");
  EXPECT_EQ(FormatUptime(2 * 3600 + 5 * 60), "2h05m");
  EXPECT_EQ(FormatUptime(3 * 86400 + 4 * 3600), "3d04h");
  EXPECT_EQ(FormatExpiry(0xFFFFFFFF), "never");
  EXPECT_EQ(FormatExpiry(0), "0s");
}

TEST(RenderTest, ClientsTable) {
  ClientsReply reply;
  Client* client = reply.add_clients();
  client->set_client_id("sensor-1");
  client->set_node_id("n1");
  client->set_peer_address("127.0.0.1:50000");
  client->set_protocol("3.1.1");
  client->set_keepalive(60);
  client->set_session_expiry(7200);
  client->set_subscriptions(2);
  Client* v5 = reply.add_clients();
  v5->set_client_id("sensor-2");
  v5->set_node_id("n2");
  v5->set_peer_address("127.0.0.1:50001");
  v5->set_protocol("5.0");
  v5->set_keepalive(0);
  EXPECT_EQ(RenderClients(reply),
            "CLIENT ID  NODE  PEER             MQTT   KEEPALIVE  USERNAME  EXPIRY  SUBS  QUEUED  "
            "INFLIGHT\n"
            "sensor-1   n1    127.0.0.1:50000  3.1.1  60s        -         2h00m   2     0       "
            "0\n"
            "sensor-2   n2    127.0.0.1:50001  5.0    none       -         0s      0     0       "
            "0\n");
  EXPECT_THAT(RenderClient(*client), HasSubstr("mqtt:            3.1.1\n"));
  EXPECT_THAT(RenderClient(*client), HasSubstr("keepalive:       60s\n"));
  EXPECT_EQ(RenderClients(ClientsReply()), "(no clients connected)\n");
  reply.set_truncated(true);
  EXPECT_THAT(RenderClients(reply), HasSubstr("raise --limit"));
}

TEST(RenderTest, StatusSaysWhetherTheClusterIsHealthy) {
  StatusReply reply;
  NodeStatus* node = reply.add_nodes();
  node->set_node_id("n1");
  node->set_serving(true);
  node->set_clustered(true);
  node->add_peers()->set_up(true);
  EXPECT_THAT(RenderStatus(reply), HasSubstr("cluster: healthy (1 of 1 nodes answered"));
  NodeError* error = reply.add_unreachable();
  error->set_node_id("n2");
  error->set_error("down");
  EXPECT_THAT(RenderStatus(reply), HasSubstr("cluster: degraded (1 of 2 nodes answered"));
  EXPECT_EQ(RenderUnreachable(reply.unreachable()),
            "meshmqctl: warning: node n2 not included: down\n");
}

TEST(RenderTest, MetricsHaveAColumnPerNode) {
  MetricsReply reply;
  for (const char* name : {"n1", "n2"}) {
    NodeMetrics* node = reply.add_nodes();
    node->set_node_id(name);
    Counter* counter = node->add_counters();
    counter->set_name("messages_received");
    counter->set_value(name[1] == '1' ? 5 : 7);
  }
  EXPECT_EQ(RenderMetrics(reply),
            "COUNTER            n1  n2\n"
            "messages_received  5   7\n");
}

TEST(RenderTest, JsonUsesTheProtoFieldNames) {
  RetainedMessage message;
  message.set_topic("a/b");
  message.set_payload("hi");
  const std::string json = RenderJson(message);
  EXPECT_THAT(json, HasSubstr("\"topic\": \"a/b\""));
  EXPECT_THAT(json, HasSubstr("\"payload\": \"aGk=\""));  // bytes: base64
  EXPECT_THAT(json, HasSubstr("\"qos\": 0"));              // defaults printed too
}

TEST(RenderTest, SessionShowListsSubscriptions) {
  Session session;
  session.set_client_id("c1");
  session.set_node_id("n1");
  session.set_expiry_interval(0xFFFFFFFF);
  session.set_subscription_count(1);
  Subscription* sub = session.add_subscriptions();
  sub->set_filter("a/#");
  sub->set_qos(1);
  sub->set_no_local(true);
  const std::string text = RenderSession(session);
  EXPECT_THAT(text, HasSubstr("expiry:         never\n"));
  EXPECT_THAT(text, HasSubstr("FILTER  QOS  OPTIONS\na/#     1    no-local\n"));
}

}  // namespace
}  // namespace meshmq::admin
