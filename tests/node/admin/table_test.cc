#include "node/admin/table.h"

#include "gtest/gtest.h"

namespace meshmq::admin {
namespace {

TEST(TableTest, ColumnsAlignOnTheWidestCell) {
  Table table({"CLIENT ID", "NODE", "QUEUED"});
  table.AddRow({"c1", "node-1", "0"});
  table.AddRow({"a-longer-id", "n2", "12"});
  EXPECT_EQ(table.Render(),
            "CLIENT ID    NODE    QUEUED\n"
            "c1           node-1  0\n"
            "a-longer-id  n2      12\n");
}

TEST(TableTest, NoTrailingSpacesAndMissingCellsAreEmpty) {
  Table table({"A", "B"});
  table.AddRow({"x"});
  EXPECT_EQ(table.Render(), "A  B\nx\n");
}

TEST(TableTest, WidthCountsCharactersNotBytes) {
  Table table({"TOPIC", "N"});
  table.AddRow({"température", "1"});  // 11 characters, 12 bytes
  table.AddRow({"abc", "2"});
  EXPECT_EQ(table.Render(),
            "TOPIC        N\n"
            "température  1\n"
            "abc          2\n");
}

TEST(TableTest, FieldsPadTheirKeys) {
  EXPECT_EQ(RenderFields({{"node", "n1"}, {"client id", "c1"}}),
            "node:       n1\n"
            "client id:  c1\n");
}

TEST(PrintableTest, EscapesWhatATerminalWouldInterpret) {
  EXPECT_EQ(Printable("plain"), "plain");
  EXPECT_EQ(Printable(std::string("a\nb\x1b[31m", 8)), "a\\x0ab\\x1b[31m");
  EXPECT_EQ(Printable("back\\slash"), "back\\\\slash");
  EXPECT_EQ(Printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(Printable("Grüße"), "Grüße");
  EXPECT_EQ(Printable("abcdefgh", 3), "abc...");
  EXPECT_EQ(Printable("abc", 3), "abc");
}

}  // namespace
}  // namespace meshmq::admin
