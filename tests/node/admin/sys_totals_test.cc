// The cluster-wide $SYS totals (node/admin/sys_totals.h): what $SYS/cluster/ carries for the
// values the nodes reported: sums, the retained count of one node, and how many nodes.
#include "node/admin/sys_totals.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq::admin {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

NodeSysStats Node(uint64_t connected, uint64_t total, uint64_t received, uint64_t subscriptions,
                  uint64_t retained) {
  NodeSysStats node;
  node.set_clients_connected(connected);
  node.set_clients_total(total);
  node.set_messages_received(received);
  node.set_messages_sent(2 * received);
  node.set_bytes_received(100 * received);
  node.set_bytes_sent(200 * received);
  node.set_subscriptions(subscriptions);
  node.set_retained(retained);
  return node;
}

using Totals = std::vector<std::pair<std::string, std::string>>;

std::map<std::string, std::string> AsMap(const Totals& totals) {
  return std::map<std::string, std::string>(totals.begin(), totals.end());
}

TEST(SysTotalsTest, SumsTheNodesButNotTheirRetainedMessages) {
  const auto totals = AsMap(SysTotals::Totals(
      {Node(3, 5, 10, 4, 40), Node(1, 1, 7, 2, 41), Node(0, 2, 0, 0, 39)}));
  EXPECT_EQ(totals.at("nodes"), "3");
  EXPECT_EQ(totals.at("clients/connected"), "4");
  EXPECT_EQ(totals.at("clients/total"), "8");
  EXPECT_EQ(totals.at("clients/disconnected"), "4");
  EXPECT_EQ(totals.at("messages/received"), "17");
  EXPECT_EQ(totals.at("messages/sent"), "34");
  EXPECT_EQ(totals.at("bytes/received"), "1700");
  EXPECT_EQ(totals.at("bytes/sent"), "3400");
  EXPECT_EQ(totals.at("subscriptions/count"), "6");
  // Every node holds every retained message: the largest count, not 120.
  EXPECT_EQ(totals.at("retained messages/count"), "41");
}

TEST(SysTotalsTest, ANodeAloneIsItsOwnTotal) {
  const auto totals = AsMap(SysTotals::Totals({Node(2, 3, 9, 1, 12)}));
  EXPECT_EQ(totals.at("nodes"), "1");
  EXPECT_EQ(totals.at("clients/connected"), "2");
  EXPECT_EQ(totals.at("clients/disconnected"), "1");
  EXPECT_EQ(totals.at("retained messages/count"), "12");
}

TEST(SysTotalsTest, EveryTopicOnceWithNodesLast) {
  const auto totals = SysTotals::Totals({Node(0, 0, 0, 0, 0)});
  std::vector<std::string> names;
  for (const auto& [name, value] : totals) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("clients/connected", "clients/disconnected", "clients/total",
                                 "messages/received", "messages/sent", "bytes/received",
                                 "bytes/sent", "retained messages/count", "subscriptions/count",
                                 "nodes"));
  EXPECT_THAT(totals.back(), Pair("nodes", "1"));
}

}  // namespace
}  // namespace meshmq::admin
