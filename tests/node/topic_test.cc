// Topic name and filter validity and matching, checked against every example of MQTT 3.1.1
// section 4.7 plus the edge cases around empty levels, '$' topics and the size limits.
#include "node/topic.h"

#include <string>

#include "gtest/gtest.h"

namespace meshmq {
namespace {

// Builds a string of `levels` levels "x/x/.../x".
std::string Levels(size_t levels, const std::string& level = "x") {
  std::string out = level;
  for (size_t i = 1; i < levels; ++i) out += "/" + level;
  return out;
}

TEST(TopicNameTest, AcceptsOrdinaryNamesAndEmptyLevels) {
  for (const char* name :
       {"sport/tennis/player1", "sport", "/", "//", "a//b", "/finance", "sport/tennis/",
        "Accounts payable", "$SYS/broker/uptime", "$", "a/$b"}) {
    EXPECT_TRUE(IsValidTopicName(name)) << name;
  }
}

TEST(TopicNameTest, RefusesEmptyAndWildcards) {
  // MQTT-4.7.3-1: at least one character. MQTT-3.3.2-2: no wildcard characters in a topic name.
  for (const char* name : {"", "+", "#", "sport/+", "sport/#", "sport+", "a#b", "a/+/c"}) {
    EXPECT_FALSE(IsValidTopicName(name)) << name;
  }
}

TEST(TopicFilterTest, AcceptsTheSpecExamplesAndEmptyLevels) {
  for (const char* filter : {"#", "sport/#", "sport/tennis/player1/#", "+", "+/tennis/#",
                             "sport/+/player1", "sport/+", "/+", "+/+", "$SYS/#"}) {
    EXPECT_TRUE(IsValidTopicFilter(filter)) << filter;
  }
  for (const char* filter :
       {"$SYS/monitor/+", "a//b", "/", "/finance", "//#", "+/#", "+/+/+", "a/+/", "/#", "sport"}) {
    EXPECT_TRUE(IsValidTopicFilter(filter)) << filter;
  }
}

TEST(TopicFilterTest, RefusesMisplacedWildcards) {
  for (const char* filter :
       {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "#/a", "a/#b", "a/b#", "a/+b",
        "a/b+/c", "++", "##", "#/", "+#", "#+", "a/#/", "+a", "a+/b"}) {
    EXPECT_FALSE(IsValidTopicFilter(filter)) << filter;
  }
}

TEST(TopicLimitsTest, LengthAndDepth) {
  EXPECT_TRUE(IsValidTopicName(std::string(kMaxTopicLength, 'a')));
  EXPECT_FALSE(IsValidTopicName(std::string(kMaxTopicLength + 1, 'a')));
  EXPECT_TRUE(IsValidTopicFilter(std::string(kMaxTopicLength, 'a')));
  EXPECT_FALSE(IsValidTopicFilter(std::string(kMaxTopicLength + 1, 'a')));

  EXPECT_TRUE(IsValidTopicName(Levels(kMaxTopicLevels)));
  EXPECT_FALSE(IsValidTopicName(Levels(kMaxTopicLevels + 1)));
  EXPECT_TRUE(IsValidTopicFilter(Levels(kMaxTopicLevels, "+")));
  EXPECT_FALSE(IsValidTopicFilter(Levels(kMaxTopicLevels + 1, "+")));
  // The CVE-2019-11779 shape: a filter of nothing but separators.
  EXPECT_FALSE(IsValidTopicFilter(std::string(65000, '/')));
  EXPECT_FALSE(TopicMatches("#", Levels(kMaxTopicLevels + 1)));
}

// 4.7.1.2 Multi-level wildcard.
TEST(TopicMatchesTest, MultiLevelWildcard) {
  EXPECT_TRUE(TopicMatches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(TopicMatches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(TopicMatches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_FALSE(TopicMatches("sport/tennis/player1/#", "sport/tennis/player2"));
  EXPECT_FALSE(TopicMatches("sport/tennis/player1/#", "sport/tennis"));
  EXPECT_TRUE(TopicMatches("sport/#", "sport"));  // '#' includes the parent level
  EXPECT_TRUE(TopicMatches("sport/#", "sport/"));
  EXPECT_FALSE(TopicMatches("sport/#", "sports"));
  EXPECT_TRUE(TopicMatches("#", "sport"));
  EXPECT_TRUE(TopicMatches("#", "sport/tennis/player1"));
  EXPECT_TRUE(TopicMatches("#", "/"));
  // Invalid filters from 4.7.1.2 match nothing, not even their own text.
  EXPECT_FALSE(TopicMatches("sport/tennis#", "sport/tennis"));
  EXPECT_FALSE(TopicMatches("sport/tennis/#/ranking", "sport/tennis/x/ranking"));
}

// 4.7.1.3 Single-level wildcard.
TEST(TopicMatchesTest, SingleLevelWildcard) {
  EXPECT_TRUE(TopicMatches("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(TopicMatches("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(TopicMatches("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(TopicMatches("sport/+", "sport"));
  EXPECT_TRUE(TopicMatches("sport/+", "sport/"));  // '+' matches an empty level
  EXPECT_TRUE(TopicMatches("+", "finance"));
  EXPECT_TRUE(TopicMatches("+/tennis/#", "sport/tennis/player1"));
  EXPECT_TRUE(TopicMatches("+/tennis/#", "sport/tennis"));
  EXPECT_TRUE(TopicMatches("sport/+/player1", "sport/tennis/player1"));
  EXPECT_FALSE(TopicMatches("sport/+/player1", "sport/tennis/player2"));
  EXPECT_FALSE(TopicMatches("sport+", "sport+"));  // invalid filter, and '+' in a name is invalid
  // "/finance" has two levels, the first empty.
  EXPECT_TRUE(TopicMatches("+/+", "/finance"));
  EXPECT_TRUE(TopicMatches("/+", "/finance"));
  EXPECT_FALSE(TopicMatches("+", "/finance"));
}

// 4.7.2 Topics beginning with $.
TEST(TopicMatchesTest, DollarTopicsAreHiddenFromLeadingWildcards) {
  EXPECT_FALSE(TopicMatches("#", "$SYS/monitor/Clients"));
  EXPECT_FALSE(TopicMatches("#", "$SYS"));
  EXPECT_FALSE(TopicMatches("+", "$SYS"));
  EXPECT_FALSE(TopicMatches("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(TopicMatches("+/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(TopicMatches("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(TopicMatches("$SYS/#", "$SYS"));
  EXPECT_TRUE(TopicMatches("$SYS/monitor/+", "$SYS/monitor/Clients"));
  EXPECT_TRUE(TopicMatches("$SYS/monitor/Clients", "$SYS/monitor/Clients"));
  // Only the first character counts: a '$' further in is an ordinary character.
  EXPECT_TRUE(TopicMatches("a/+", "a/$b"));
  EXPECT_TRUE(TopicMatches("#", "a/$b"));
  EXPECT_TRUE(TopicMatches("+/a", "/a"));
}

// 4.7.3 Topic semantic and usage.
TEST(TopicMatchesTest, CaseSensitiveAndLiteral) {
  EXPECT_FALSE(TopicMatches("ACCOUNTS", "Accounts"));
  EXPECT_FALSE(TopicMatches("Sport/#", "sport/tennis"));
  EXPECT_TRUE(TopicMatches("Accounts payable", "Accounts payable"));
  EXPECT_FALSE(TopicMatches("/finance", "finance"));  // a leading '/' makes a distinct topic
  EXPECT_FALSE(TopicMatches("sport/tennis", "sport/tennis/"));
  EXPECT_FALSE(TopicMatches("sport/tennis/", "sport/tennis"));
  EXPECT_FALSE(TopicMatches("sport/tennis", "sport/tenni"));
  EXPECT_FALSE(TopicMatches("sport/tenni", "sport/tennis"));
}

TEST(TopicMatchesTest, EmptyLevels) {
  EXPECT_TRUE(TopicMatches("a//b", "a//b"));
  EXPECT_TRUE(TopicMatches("a/+/b", "a//b"));
  EXPECT_FALSE(TopicMatches("a/+/b", "a/b"));
  EXPECT_FALSE(TopicMatches("a//b", "a/b"));
  EXPECT_TRUE(TopicMatches("a/#", "a//b"));
  EXPECT_TRUE(TopicMatches("/", "/"));
  EXPECT_TRUE(TopicMatches("+/+", "/"));
  EXPECT_TRUE(TopicMatches("/+", "/"));
  EXPECT_TRUE(TopicMatches("+/#", "/"));
  EXPECT_TRUE(TopicMatches("/#", "/"));
  EXPECT_FALSE(TopicMatches("+", "/"));
  EXPECT_FALSE(TopicMatches("+/+/+", "/"));
  EXPECT_TRUE(TopicMatches("+/+/+", "//"));
}

TEST(TopicMatchesTest, InvalidArgumentsNeverMatch) {
  EXPECT_FALSE(TopicMatches("#", ""));
  EXPECT_FALSE(TopicMatches("", ""));
  EXPECT_FALSE(TopicMatches("a/+", "a/+"));  // a topic name cannot contain a wildcard
  EXPECT_FALSE(TopicMatches("#", "a/#"));
  EXPECT_FALSE(TopicMatches("a/#b", "a/#b"));
}

TEST(TransparentStringHashTest, AgreesAcrossStringTypes) {
  const std::string s = "sport/tennis";
  EXPECT_EQ(TransparentStringHash{}(s), TransparentStringHash{}(std::string_view(s)));
  EXPECT_TRUE(TransparentStringEq{}(s, std::string_view("sport/tennis")));
  EXPECT_FALSE(TransparentStringEq{}(s, std::string_view("sport/tennis/")));
}

}  // namespace
}  // namespace meshmq
