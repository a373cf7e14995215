// Who makes up the cluster (cluster/membership.h): this node is always a member, members are
// added and removed (never this node), the list survives a restart through a file that is
// replaced atomically, and HasQuorum is the partition policy: more than half of the members
// reachable, or exactly half including the member with the lowest id.
#include "cluster/membership.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq::cluster {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Membership of `self` among `members` (self included or not), kept in memory only.
std::unique_ptr<Membership> Cluster(const std::string& self,
                                    const std::vector<std::string>& members) {
  auto membership = std::make_unique<Membership>(self, "");
  for (const std::string& member : members) membership->Add(member);
  return membership;
}

class MembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = absl::StrCat(::testing::TempDir(), "membership_test.", getpid(), ".", test->name());
    std::error_code ec;
    fs::remove_all(dir_, ec);
    ASSERT_TRUE(fs::create_directories(dir_, ec)) << dir_ << ": " << ec.message();
    path_ = dir_ + "/members";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string dir_;
  std::string path_;
};

// ---- Members ----

TEST_F(MembershipTest, SelfIsAlwaysAMember) {
  Membership membership("n2", "");
  EXPECT_THAT(membership.members(), ElementsAre("n2"));
  EXPECT_FALSE(membership.Add("n2"));
  EXPECT_THAT(membership.members(), ElementsAre("n2"));
}

TEST_F(MembershipTest, AddIsTrueOnlyForANewMember) {
  Membership membership("n2", "");
  EXPECT_TRUE(membership.Add("n3"));
  EXPECT_TRUE(membership.Add("n1"));
  EXPECT_FALSE(membership.Add("n3"));
  EXPECT_THAT(membership.members(), ElementsAre("n1", "n2", "n3"));
}

TEST_F(MembershipTest, RemoveIsTrueOnlyForAMember) {
  Membership membership("n2", "");
  membership.Add("n1");
  membership.Add("n3");
  EXPECT_TRUE(membership.Remove("n1"));
  EXPECT_FALSE(membership.Remove("n1"));
  EXPECT_FALSE(membership.Remove("never-seen"));
  EXPECT_THAT(membership.members(), ElementsAre("n2", "n3"));
}

TEST_F(MembershipTest, RemoveSelfIsRefused) {
  Membership membership("n2", path_);
  membership.Add("n1");
  EXPECT_FALSE(membership.Remove("n2"));
  EXPECT_THAT(membership.members(), ElementsAre("n1", "n2"));
  EXPECT_THAT(Membership("n2", path_).members(), ElementsAre("n1", "n2"));
}

// ---- The file ----

TEST_F(MembershipTest, MembersSurviveARestart) {
  {
    Membership membership("n2", path_);
    membership.Add("n3");
    membership.Add("n1");
  }
  EXPECT_EQ(ReadFile(path_), "n1\nn2\nn3\n");
  Membership restarted("n2", path_);
  EXPECT_THAT(restarted.members(), ElementsAre("n1", "n2", "n3"));
}

TEST_F(MembershipTest, RemovalSurvivesARestart) {
  {
    Membership membership("n2", path_);
    membership.Add("n1");
    membership.Add("n3");
    membership.Remove("n3");
  }
  EXPECT_THAT(Membership("n2", path_).members(), ElementsAre("n1", "n2"));
}

TEST_F(MembershipTest, AMissingFileIsAnEmptyCluster) {
  ASSERT_FALSE(fs::exists(path_));
  Membership membership("n2", path_);
  EXPECT_THAT(membership.members(), ElementsAre("n2"));
  EXPECT_TRUE(membership.HasQuorum({}));
  // The file appears with the first change.
  EXPECT_TRUE(membership.Add("n1"));
  EXPECT_EQ(ReadFile(path_), "n1\nn2\n");
}

TEST_F(MembershipTest, TheFileIsReplacedNotRewritten) {
  Membership membership("n2", path_);
  membership.Add("n1");
  struct stat before {};
  ASSERT_EQ(stat(path_.c_str(), &before), 0);
  // A reader that opened the old file keeps reading the old, whole list.
  std::ifstream old_reader(path_);
  ASSERT_TRUE(old_reader.is_open());

  membership.Add("n3");

  struct stat after {};
  ASSERT_EQ(stat(path_.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "written in place, not renamed over";
  std::stringstream old_text;
  old_text << old_reader.rdbuf();
  EXPECT_EQ(old_text.str(), "n1\nn2\n");
  EXPECT_EQ(ReadFile(path_), "n1\nn2\nn3\n");
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
}

TEST_F(MembershipTest, ALeftoverTemporaryFileIsIgnoredAndReplaced) {
  {
    Membership membership("n2", path_);
    membership.Add("n1");
  }
  // What a crash between writing the new list and renaming it leaves.
  {
    std::ofstream partial(path_ + ".tmp");
    partial << "n1\nn2\nn9";
  }
  Membership restarted("n2", path_);
  EXPECT_THAT(restarted.members(), ElementsAre("n1", "n2"));
  restarted.Add("n3");
  EXPECT_EQ(ReadFile(path_), "n1\nn2\nn3\n");
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
}

TEST_F(MembershipTest, ARestartedNodeRemembersItIsNotAlone) {
  {
    Membership membership("n2", path_);
    membership.Add("n1");
    membership.Add("n3");
  }
  Membership restarted("n2", path_);
  EXPECT_FALSE(restarted.HasQuorum({}));
  EXPECT_TRUE(restarted.HasQuorum({"n3"}));
}

// ---- HasQuorum ----

TEST_F(MembershipTest, ASingleNodeHasQuorumAlone) {
  Membership membership("n1", "");
  EXPECT_TRUE(membership.HasQuorum({}));
}

TEST_F(MembershipTest, ThreeMembersNeedTwoUp) {
  std::unique_ptr<Membership> membership = Cluster("n2", {"n1", "n3"});
  EXPECT_FALSE(membership->HasQuorum({}));
  EXPECT_TRUE(membership->HasQuorum({"n1"}));
  EXPECT_TRUE(membership->HasQuorum({"n3"}));
  EXPECT_TRUE(membership->HasQuorum({"n1", "n3"}));
}

TEST_F(MembershipTest, TheLowestIdServesAloneOfTwo) {
  EXPECT_TRUE(Cluster("n1", {"n2"})->HasQuorum({}));
  EXPECT_FALSE(Cluster("n2", {"n1"})->HasQuorum({}));
  EXPECT_TRUE(Cluster("n2", {"n1"})->HasQuorum({"n1"}));
}

TEST_F(MembershipTest, ExactlyHalfServesOnlyWithTheLowestId) {
  // n1..n4: two reachable is exactly half.
  EXPECT_TRUE(Cluster("n1", {"n2", "n3", "n4"})->HasQuorum({"n3"}));   // self is the lowest
  EXPECT_TRUE(Cluster("n3", {"n1", "n2", "n4"})->HasQuorum({"n1"}));   // the peer is
  EXPECT_FALSE(Cluster("n2", {"n1", "n3", "n4"})->HasQuorum({"n3"}));  // n1 is on the other side
  EXPECT_FALSE(Cluster("n3", {"n1", "n2", "n4"})->HasQuorum({"n4"}));
  EXPECT_FALSE(Cluster("n1", {"n2", "n3", "n4"})->HasQuorum({}));      // a quarter
  EXPECT_TRUE(Cluster("n4", {"n1", "n2", "n3"})->HasQuorum({"n2", "n3"}));  // three quarters
}

TEST_F(MembershipTest, UpPeersThatAreNotMembersDoNotCount) {
  std::unique_ptr<Membership> membership = Cluster("n2", {"n1", "n3"});
  EXPECT_FALSE(membership->HasQuorum({"x1", "x2", "x3"}));
  EXPECT_TRUE(membership->HasQuorum({"x1", "n3"}));
  // Nor does this node twice, or a peer twice.
  EXPECT_FALSE(membership->HasQuorum({"n2"}));
  EXPECT_FALSE(Cluster("n2", {"n1", "n3", "n4", "n5"})->HasQuorum({"n3", "n3"}));
}

TEST_F(MembershipTest, ARemovedMemberNoLongerCounts) {
  std::unique_ptr<Membership> membership = Cluster("n2", {"n1", "n3"});
  EXPECT_FALSE(membership->HasQuorum({}));
  membership->Remove("n3");
  // n1, n2: alone is half, without the lowest id.
  EXPECT_FALSE(membership->HasQuorum({"n3"}));
  membership->Remove("n1");
  EXPECT_TRUE(membership->HasQuorum({}));
}

// ---- Forgetting a dead member (cluster leave of a node that is down) ----

TEST_F(MembershipTest, AForgottenDeadMemberStopsCountingAndStaysForgotten) {
  {
    Membership membership("n1", path_);
    membership.Add("n2");
    membership.Add("n3");
    // n3 died: n1 and n2 are two of three.
    EXPECT_TRUE(membership.HasQuorum({"n2"}));
    ASSERT_TRUE(membership.Remove("n3"));
    EXPECT_THAT(membership.members(), ElementsAre("n1", "n2"));
    // Now n2 dies too: n1 alone is half of two, with the lowest id, and serves; had n3 still
    // counted, it would be a third and refuse.
    EXPECT_TRUE(membership.HasQuorum({}));
  }
  EXPECT_EQ(ReadFile(path_), "n1\nn2\n");
  Membership restarted("n1", path_);
  EXPECT_THAT(restarted.members(), ElementsAre("n1", "n2"));
  EXPECT_TRUE(restarted.HasQuorum({}));
}

TEST_F(MembershipTest, AForgottenMemberThatComesBackJoinsAsNew) {
  Membership membership("n2", path_);
  membership.Add("n1");
  membership.Add("n3");
  ASSERT_TRUE(membership.Remove("n3"));
  EXPECT_FALSE(membership.Remove("n3"));  // forgetting twice changes nothing
  EXPECT_TRUE(membership.Add("n3"));      // linked up again: a member again
  EXPECT_THAT(membership.members(), ElementsAre("n1", "n2", "n3"));
  EXPECT_THAT(Membership("n2", path_).members(), ElementsAre("n1", "n2", "n3"));
  EXPECT_FALSE(membership.HasQuorum({}));
}

}  // namespace
}  // namespace meshmq::cluster
