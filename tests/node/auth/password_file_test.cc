// Tests for node/auth/password_file.h. Interop is checked against the real thing: files written by
// /usr/bin/mosquitto_passwd are read here, and files written here are used by a real mosquitto.
#include "node/auth/password_file.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/node/auth/mosquitto_runner.h"

namespace meshmq::auth {
namespace {

using ::testing::HasSubstr;
using test_util::Mosquitto;
using test_util::ReadAll;
using test_util::RunCommand;

// ---- Helpers ------------------------------------------------------------------------------------

void WriteAll(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

class PasswordFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/meshmq_password_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/passwd";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Exit status of mosquitto_pub connecting as user/password and publishing once.
  int Publish(int port, const std::string& user, const std::string& password) {
    return RunCommand({"mosquitto_pub", "-p", std::to_string(port), "-u", user, "-P", password,
                       "-t", "t", "-m", "m"},
                      dir_ + "/pub.log");
  }

  std::string dir_;
  std::string path_;
};

std::string Base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  out.resize(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len)));
  return out;
}

// "$7$101$" + 16 base64 characters (12 bytes) + "$" + 86 base64 characters and "==" (64 bytes).
bool LooksLikeMosquittoDefaultHash(const std::string& hash) {
  auto is_base64 = [](const std::string& s) {
    return s.find_first_not_of(
               "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
           std::string::npos;
  };
  return hash.size() == 7 + 16 + 1 + 88 && hash.substr(0, 7) == "$7$101$" &&
         is_base64(hash.substr(7, 16)) && hash[23] == '$' && is_base64(hash.substr(24, 86)) &&
         hash.substr(110) == "==";
}

// ---- Reading files written by mosquitto_passwd -------------------------------------------------

TEST_F(PasswordFileTest, ReadsMosquittoPasswdDefaultPbkdf2Hash) {
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-c", "-b", path_, "alice", "s3cret pass"}),
            0);
  // HashPassword must write what mosquitto_passwd writes; this is the format it is checked against.
  const std::string line = ReadAll(path_);
  ASSERT_THAT(line, ::testing::StartsWith("alice:"));
  EXPECT_TRUE(LooksLikeMosquittoDefaultHash(line.substr(6, line.size() - 7))) << line;

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 1u);
  EXPECT_TRUE(file->HasUser("alice"));
  EXPECT_TRUE(file->Check("alice", "s3cret pass"));
  EXPECT_FALSE(file->Check("alice", "s3cret pas"));
  EXPECT_FALSE(file->Check("alice", "s3cret pass "));
  EXPECT_FALSE(file->Check("alice", ""));
  EXPECT_FALSE(file->Check("bob", "s3cret pass"));
  EXPECT_FALSE(file->HasUser("bob"));
}

TEST_F(PasswordFileTest, ReadsMosquittoPasswdSha512Hash) {
  ASSERT_EQ(RunCommand(
                {"/usr/bin/mosquitto_passwd", "-H", "sha512", "-c", "-b", path_, "bob", "hunter2"}),
            0);
  ASSERT_THAT(ReadAll(path_), ::testing::StartsWith("bob:$6$"));

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("bob", "hunter2"));
  EXPECT_FALSE(file->Check("bob", "hunter3"));
}

TEST_F(PasswordFileTest, ReadsSeveralUsersAddedByMosquittoPasswd) {
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-c", "-b", path_, "alice", "a-pw"}), 0);
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-H", "sha512", "-b", path_, "bob", "b-pw"}),
            0);
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-b", path_, "carol", "c-pw"}), 0);

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 3u);
  EXPECT_TRUE(file->Check("alice", "a-pw"));
  EXPECT_TRUE(file->Check("bob", "b-pw"));
  EXPECT_TRUE(file->Check("carol", "c-pw"));
  // Each password belongs to its own user only.
  EXPECT_FALSE(file->Check("alice", "b-pw"));
  EXPECT_FALSE(file->Check("carol", "a-pw"));
}

// A $6$ line built independently of the code under test: SHA-512 over password then salt.
TEST_F(PasswordFileTest, ChecksIndependentlyComputedSha512Line) {
  const unsigned char salt[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::string password = "correct horse";
  std::string input = password + std::string(reinterpret_cast<const char*>(salt), sizeof(salt));
  unsigned char digest[SHA512_DIGEST_LENGTH];
  SHA512(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  const std::string line =
      "dave:$6$" + Base64(salt, sizeof(salt)) + "$" + Base64(digest, sizeof(digest)) + "\n";

  absl::StatusOr<PasswordFile> file = PasswordFile::Parse(line);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("dave", "correct horse"));
  EXPECT_FALSE(file->Check("dave", "correct horsf"));
}

// The iteration count is read from the entry, not assumed to be 101.
TEST_F(PasswordFileTest, HonoursIterationCountOfPbkdf2Line) {
  const unsigned char salt[12] = {'s', 'a', 'l', 't', 's', 'a', 'l', 't', 's', 'a', 'l', 't'};
  unsigned char digest[64];
  ASSERT_EQ(PKCS5_PBKDF2_HMAC("pw", 2, salt, sizeof(salt), 1000, EVP_sha512(), 64, digest), 1);
  const std::string hash = "$" + Base64(salt, sizeof(salt)) + "$" + Base64(digest, sizeof(digest));

  absl::StatusOr<PasswordFile> right = PasswordFile::Parse("erin:$7$1000" + hash);
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_TRUE(right->Check("erin", "pw"));

  absl::StatusOr<PasswordFile> wrong_count = PasswordFile::Parse("erin:$7$101" + hash);
  ASSERT_TRUE(wrong_count.ok()) << wrong_count.status();
  EXPECT_FALSE(wrong_count->Check("erin", "pw"));
}

TEST_F(PasswordFileTest, SkipsCommentsBlankLinesAndCarriageReturns) {
  const std::string entry = "alice:" + HashPassword("pw");
  absl::StatusOr<PasswordFile> file =
      PasswordFile::Parse("# users\r\n\r\n   \n  # indented comment\n" + entry + "\r\n\n");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 1u);
  EXPECT_TRUE(file->Check("alice", "pw"));
}

TEST_F(PasswordFileTest, EmptyFileHasNoUsers) {
  absl::StatusOr<PasswordFile> file = PasswordFile::Parse("");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 0u);
  EXPECT_FALSE(file->Check("", ""));
}

// ---- Errors -------------------------------------------------------------------------------------

struct BadLine {
  std::string line;
  std::string expected_message_part;
};

TEST_F(PasswordFileTest, RejectsMalformedLinesNamingTheLine) {
  const std::string good = "alice:" + HashPassword("pw");
  const std::string salt = "AAAAAAAAAAAAAAAA";                  // 12 bytes
  const std::string digest = HashPassword("x").substr(7 + 17);  // the 64-byte digest part
  ASSERT_EQ(digest.size(), 88u);
  const std::vector<BadLine> bad = {
      {"no colon here", "no ':'"},
      {":" + HashPassword("pw"), "empty username"},
      {"bob:", "empty password hash"},
      {"bob:plaintext", "neither"},
      {"bob:$5$" + salt + "$" + digest, "neither"},
      {"bob:$6$" + salt, "neither"},
      {"bob:$6$" + salt + "$" + digest + "$extra", "neither"},
      {"bob:$6$" + salt + "$" + digest.substr(4), "hash"},            // 61 bytes
      {"bob:$6$" + salt + "$" + digest.substr(0, 87) + "!", "hash"},  // not base64
      {"bob:$6$AAAAAAAA$" + digest, "salt"},                          // 6-byte salt
      {"bob:$6$AAA=AAAAAAAAAAAA$" + digest, "salt"},                  // padding mid-string
      {"bob:$7$0$" + salt + "$" + digest, "iteration"},
      {"bob:$7$-5$" + salt + "$" + digest, "iteration"},
      {"bob:$7$ten$" + salt + "$" + digest, "iteration"},
      {"bob:$7$99999999999$" + salt + "$" + digest, "iteration"},
      {"alice:" + HashPassword("other"), "already defined on line 2"},
  };
  for (const BadLine& b : bad) {
    SCOPED_TRACE(b.line);
    // The bad line is line 3, after a comment and a good entry.
    absl::StatusOr<PasswordFile> file = PasswordFile::Parse("# comment\n" + good + "\n" + b.line);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(file.status().message(), HasSubstr("line 3"));
    EXPECT_THAT(file.status().message(), HasSubstr(b.expected_message_part));
  }
}

TEST_F(PasswordFileTest, LoadErrorsNameThePath) {
  absl::StatusOr<PasswordFile> missing = PasswordFile::Load(dir_ + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir_ + "/nope"));

  WriteAll(path_, "alice:" + HashPassword("pw") + "\nbroken\n");
  absl::StatusOr<PasswordFile> bad = PasswordFile::Load(path_);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr(path_));
  EXPECT_THAT(bad.status().message(), HasSubstr("line 2"));
}

// ---- Writing ------------------------------------------------------------------------------------

TEST_F(PasswordFileTest, HashPasswordWritesMosquittoDefaultFormatWithFreshSalt) {
  const std::string a = HashPassword("pw");
  const std::string b = HashPassword("pw");
  EXPECT_TRUE(LooksLikeMosquittoDefaultHash(a)) << a;
  EXPECT_NE(a.substr(0, 24), b.substr(0, 24)) << "same salt twice";
  absl::StatusOr<PasswordFile> file = PasswordFile::Parse("u:" + a + "\nv:" + b + "\n");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("u", "pw"));
  EXPECT_TRUE(file->Check("v", "pw"));
  EXPECT_FALSE(file->Check("u", "pW"));
}

TEST_F(PasswordFileTest, SetPasswordCreatesPrivateFile) {
  ASSERT_TRUE(SetPassword(path_, "alice", "pw").ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 1u);
  EXPECT_TRUE(file->Check("alice", "pw"));
}

TEST_F(PasswordFileTest, SetPasswordReplacesOnlyThatUsersLine) {
  const std::string bob = "bob:" + HashPassword("b") + "\r\n";
  const std::string carol = "carol:" + HashPassword("c");  // no final newline
  WriteAll(path_, "# header comment\n" + bob + "\n  alice : " + HashPassword("old") +
                      "\n# trailing comment\n" + carol);
  ASSERT_TRUE(SetPassword(path_, "alice", "new").ok());

  const std::string after = ReadAll(path_);
  // Everything but alice's line is byte for byte the same, in place.
  const size_t alice = after.find("alice:$7$101$");
  ASSERT_NE(alice, std::string::npos) << after;
  EXPECT_EQ(after.substr(0, alice), "# header comment\n" + bob + "\n");
  const size_t alice_end = after.find('\n', alice);
  EXPECT_EQ(after.substr(alice_end + 1), "# trailing comment\n" + carol);

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 3u);
  EXPECT_TRUE(file->Check("alice", "new"));
  EXPECT_FALSE(file->Check("alice", "old"));
  EXPECT_TRUE(file->Check("bob", "b"));
  EXPECT_TRUE(file->Check("carol", "c"));
}

TEST_F(PasswordFileTest, SetPasswordAppendsNewUserAndKeepsModeAndNoTempFiles) {
  const std::string original = "bob:" + HashPassword("b");  // no final newline
  WriteAll(path_, original);
  ASSERT_EQ(chmod(path_.c_str(), 0640), 0);
  ASSERT_TRUE(SetPassword(path_, "alice", "a").ok());

  const std::string after = ReadAll(path_);
  EXPECT_EQ(after.substr(0, original.size() + 1), original + "\n");
  EXPECT_THAT(after, ::testing::EndsWith("\n"));
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    names.push_back(entry.path().filename());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("passwd"));

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("alice", "a"));
  EXPECT_TRUE(file->Check("bob", "b"));
}

TEST_F(PasswordFileTest, SetPasswordRejectsUsernamesThatWouldNotReadBack) {
  for (const std::string user : {"", "a:b", "#alice", " alice", "alice ", "al\nice", "al\rice"}) {
    SCOPED_TRACE(user);
    absl::Status s = SetPassword(path_, user, "pw");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  }
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(PasswordFileTest, SetPasswordReportsUnwritableDirectory) {
  absl::Status s = SetPassword(dir_ + "/missing/passwd", "alice", "pw");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(dir_ + "/missing/passwd"));
}

TEST_F(PasswordFileTest, DeleteUserRemovesOnlyThatUser) {
  const std::string alice = "alice:" + HashPassword("a") + "\n";
  const std::string bob = "bob:" + HashPassword("b") + "\n";
  WriteAll(path_, "# c\n" + alice + bob);
  ASSERT_TRUE(DeleteUser(path_, "alice").ok());
  EXPECT_EQ(ReadAll(path_), "# c\n" + bob);

  absl::Status again = DeleteUser(path_, "alice");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound) << again;
  EXPECT_EQ(ReadAll(path_), "# c\n" + bob);

  EXPECT_EQ(DeleteUser(dir_ + "/nope", "bob").code(), absl::StatusCode::kNotFound);
}

// ---- Interop with a real mosquitto --------------------------------------------------------------

// A file written and edited by SetPassword/DeleteUser, mixed with an entry from mosquitto_passwd,
// is accepted by mosquitto itself; and mosquitto_passwd can keep editing it.
TEST_F(PasswordFileTest, MosquittoAcceptsFilesWeWrite) {
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-c", "-b", path_, "carol", "from-mosquitto"}),
            0);
  ASSERT_TRUE(SetPassword(path_, "alice", "first").ok());
  ASSERT_TRUE(SetPassword(path_, "bob", "bob pw").ok());
  ASSERT_TRUE(SetPassword(path_, "alice", "second").ok());
  ASSERT_TRUE(SetPassword(path_, "gone", "gone").ok());
  ASSERT_TRUE(DeleteUser(path_, "gone").ok());

  {
    auto broker = Mosquitto::Start(dir_, "allow_anonymous false\npassword_file " + path_ + "\n");
    ASSERT_TRUE(broker.ok()) << broker.status();
    const int port = (*broker)->port();
    EXPECT_EQ(Publish(port, "alice", "second"), 0) << ReadAll(dir_ + "/pub.log");
    EXPECT_EQ(Publish(port, "bob", "bob pw"), 0) << ReadAll(dir_ + "/pub.log");
    EXPECT_EQ(Publish(port, "carol", "from-mosquitto"), 0) << ReadAll(dir_ + "/pub.log");
    EXPECT_NE(Publish(port, "alice", "first"), 0);
    EXPECT_NE(Publish(port, "alice", "Second"), 0);
    EXPECT_NE(Publish(port, "bob", "bob"), 0);
    EXPECT_NE(Publish(port, "gone", "gone"), 0);
    EXPECT_NE(Publish(port, "mallory", "second"), 0);
  }

  // mosquitto_passwd reads our entries as its own: it updates one and keeps the rest.
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-b", path_, "bob", "changed"}), 0);
  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 3u);
  EXPECT_TRUE(file->Check("alice", "second"));
  EXPECT_TRUE(file->Check("bob", "changed"));
  EXPECT_TRUE(file->Check("carol", "from-mosquitto"));
}

}  // namespace
}  // namespace meshmq::auth
