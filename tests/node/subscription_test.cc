// ClassifyFilter: the "$share/{ShareName}/{filter}" syntax of MQTT 5 section 4.8.2.
#include "node/subscription.h"

#include <string_view>

#include "gtest/gtest.h"

namespace meshmq {
namespace {

TEST(ClassifyFilterTest, OrdinaryFilters) {
  for (std::string_view filter : {"a/b", "#", "+/x", "$SYS/#", "share/g/a", "/$share/g/a"}) {
    SharedFilter shared{"unchanged", "unchanged"};
    EXPECT_EQ(ClassifyFilter(filter, &shared), FilterKind::kOrdinary) << filter;
    EXPECT_EQ(shared.group, "unchanged") << filter;
  }
}

TEST(ClassifyFilterTest, SimilarPrefixesAreOrdinary) {
  // The prefix is exactly "$share/", case-sensitive (4.7.3 compares bytes).
  SharedFilter shared;
  EXPECT_EQ(ClassifyFilter("$sharex/g/a", &shared), FilterKind::kOrdinary);
  EXPECT_EQ(ClassifyFilter("$SHARE/g/a", &shared), FilterKind::kOrdinary);
  EXPECT_EQ(ClassifyFilter("$Share/g/a", &shared), FilterKind::kOrdinary);
}

TEST(ClassifyFilterTest, SplitsGroupAndFilter) {
  SharedFilter shared;
  ASSERT_EQ(ClassifyFilter("$share/g/a/b", &shared), FilterKind::kShared);
  EXPECT_EQ(shared.group, "g");
  EXPECT_EQ(shared.filter, "a/b");
}

TEST(ClassifyFilterTest, FilterPartMayUseWildcards) {
  SharedFilter shared;
  ASSERT_EQ(ClassifyFilter("$share/g/#", &shared), FilterKind::kShared);
  EXPECT_EQ(shared.group, "g");
  EXPECT_EQ(shared.filter, "#");
  ASSERT_EQ(ClassifyFilter("$share/workers/+/x", &shared), FilterKind::kShared);
  EXPECT_EQ(shared.group, "workers");
  EXPECT_EQ(shared.filter, "+/x");
}

TEST(ClassifyFilterTest, FilterPartMayHaveEmptyLevels) {
  SharedFilter shared;
  ASSERT_EQ(ClassifyFilter("$share/g//a", &shared), FilterKind::kShared);
  EXPECT_EQ(shared.filter, "/a");
  ASSERT_EQ(ClassifyFilter("$share/g/$SYS/x", &shared), FilterKind::kShared);
  EXPECT_EQ(shared.filter, "$SYS/x");
}

TEST(ClassifyFilterTest, PartsAreViewsIntoTheInput) {
  const std::string_view filter = "$share/g/a/b";
  SharedFilter shared;
  ASSERT_EQ(ClassifyFilter(filter, &shared), FilterKind::kShared);
  EXPECT_EQ(shared.group.data(), filter.data() + 7);
  EXPECT_EQ(shared.filter.data(), filter.data() + 9);
}

TEST(ClassifyFilterTest, MalformedSharedSubscriptions) {
  for (std::string_view filter : {
           "$share",        // no group, no filter
           "$share/",       // empty group, no filter
           "$share/g",      // no filter (MQTT-4.8.2-2: the group is followed by '/' and a filter)
           "$share/g/",     // empty filter
           "$share//a",     // empty group (MQTT-4.8.2-1)
           "$share/g+/a",   // '+' in the group (MQTT-4.8.2-2)
           "$share/g#/a",   // '#' in the group
           "$share/+/a",    // a wildcard as the group
           "$share/#/a",    //
           "$share/g/a#",   // invalid filter part (MQTT-4.7.1-2)
           "$share/g/a+",   // invalid filter part (MQTT-4.7.1-3)
           "$share/g/#/a",  // '#' not last
       }) {
    SharedFilter shared{"unchanged", "unchanged"};
    EXPECT_EQ(ClassifyFilter(filter, &shared), FilterKind::kInvalidShared) << filter;
    EXPECT_EQ(shared.group, "unchanged") << filter;
  }
}

TEST(ClassifyFilterTest, NullOutputIsAllowed) {
  EXPECT_EQ(ClassifyFilter("$share/g/a", nullptr), FilterKind::kShared);
}

}  // namespace
}  // namespace meshmq
