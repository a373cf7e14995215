// SessionStore (node/session_store.h): resuming and replacing sessions at CONNECT, takeover of a
// live client id, and when sessions end: at Detach for expiry 0, at ExpireDue for a finite
// Session Expiry Interval (MQTT 5 3.1.2.11.2), never for kSessionNeverExpires.
#include "node/session_store.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "node/codec/packet.h"

namespace meshmq {
namespace {

// Owners are only compared, never dereferenced.
Worker* const kWorkerA = reinterpret_cast<Worker*>(0x1000);
Worker* const kWorkerB = reinterpret_cast<Worker*>(0x2000);
const SessionOwner kOwnerA{kWorkerA, 1};
const SessionOwner kOwnerB{kWorkerB, 2};

// 3.1.1 Clean Session 1 and 0 in the one session model.
constexpr uint32_t kCleanSession = 0;
constexpr uint32_t kPersistent = codec::kSessionNeverExpires;

using Sessions = std::vector<std::shared_ptr<Session>>;

TEST(SessionStoreTest, CleanSessionZeroResumesWithSessionPresent) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", false, kPersistent, kOwnerA, std::nullopt);
  EXPECT_FALSE(first.session_present);
  EXPECT_EQ(store.Detach(first.session, kOwnerA, 0), nullptr);  // persistent: stays
  SessionStore::AttachResult second = store.Attach("c", false, kPersistent, kOwnerB, std::nullopt);
  EXPECT_TRUE(second.session_present);
  EXPECT_EQ(second.session, first.session);
  EXPECT_FALSE(second.taken_over);
  EXPECT_EQ(second.discarded, nullptr);
}

TEST(SessionStoreTest, CleanSessionStartsFreshAndEndsWithTheConnection) {
  SessionStore store;
  SessionStore::AttachResult persistent =
      store.Attach("c", false, kPersistent, kOwnerA, std::nullopt);
  store.Detach(persistent.session, kOwnerA, 0);
  SessionStore::AttachResult clean = store.Attach("c", true, kCleanSession, kOwnerB, std::nullopt);
  EXPECT_FALSE(clean.session_present);
  EXPECT_NE(clean.session, persistent.session);
  EXPECT_EQ(clean.discarded, persistent.session);
  EXPECT_EQ(store.Detach(clean.session, kOwnerB, 0), clean.session);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(store.Attach("c", false, kPersistent, kOwnerA, std::nullopt).session_present);
}

TEST(SessionStoreTest, SecondConnectTakesOverTheLiveOne) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", false, kPersistent, kOwnerA, std::nullopt);
  SessionStore::AttachResult second = store.Attach("c", false, kPersistent, kOwnerB, std::nullopt);
  ASSERT_TRUE(second.taken_over);
  EXPECT_EQ(*second.taken_over, kOwnerA);
  EXPECT_TRUE(second.session_present);
  EXPECT_EQ(second.discarded, nullptr);
  // The old connection's close must not detach the new owner.
  EXPECT_EQ(store.Detach(first.session, kOwnerA, 0), nullptr);
  EXPECT_TRUE(second.session->IsOwner(kOwnerB));
  EXPECT_TRUE(second.session->online());
}

TEST(SessionStoreTest, CleanTakeoverOfLiveCleanSession) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", true, kCleanSession, kOwnerA, std::nullopt);
  SessionStore::AttachResult second = store.Attach("c", true, kCleanSession, kOwnerB, std::nullopt);
  ASSERT_TRUE(second.taken_over);
  EXPECT_EQ(*second.taken_over, kOwnerA);
  EXPECT_EQ(second.discarded, first.session);
  EXPECT_FALSE(first.session->online());
  EXPECT_EQ(store.Detach(first.session, kOwnerA, 0), nullptr);
  EXPECT_EQ(store.size(), 1u);
}

TEST(SessionStoreTest, CleanStartTakeoverOfLivePersistentSession) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", false, kPersistent, kOwnerA, std::nullopt);
  SessionStore::AttachResult second = store.Attach("c", true, 60, kOwnerB, std::nullopt);
  ASSERT_TRUE(second.taken_over);
  EXPECT_EQ(*second.taken_over, kOwnerA);
  EXPECT_FALSE(second.session_present);
  EXPECT_EQ(second.discarded, first.session);
  EXPECT_NE(second.session, first.session);
  EXPECT_EQ(store.Detach(first.session, kOwnerA, 0), nullptr);
  EXPECT_TRUE(second.session->IsOwner(kOwnerB));
}

TEST(SessionStoreTest, ExpiryZeroEndsTheSessionAtDetach) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 0, kOwnerA, std::nullopt);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.Detach(a.session, kOwnerB, 0), nullptr);  // not the owner: nothing ends
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.Detach(a.session, kOwnerA, 0), a.session);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(a.session->online());
  EXPECT_FALSE(store.Attach("c", false, 0, kOwnerA, std::nullopt).session_present);
}

TEST(SessionStoreTest, FiniteExpiryEndsTheSessionAtTheDeadline) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 10, kOwnerA, std::nullopt);
  EXPECT_EQ(store.Detach(a.session, kOwnerA, 5000), nullptr);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(store.ExpireDue(0).empty());
  EXPECT_TRUE(store.ExpireDue(14999).empty());
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.ExpireDue(15000), Sessions{a.session});
  EXPECT_EQ(store.size(), 0u);
  EXPECT_TRUE(store.ExpireDue(100000).empty());  // only once
  EXPECT_FALSE(store.Attach("c", false, 10, kOwnerB, std::nullopt).session_present);
}

TEST(SessionStoreTest, ExpireDueLateStillEndsTheSession) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("a", false, 1, kOwnerA, std::nullopt);
  SessionStore::AttachResult b = store.Attach("b", false, 2, kOwnerB, std::nullopt);
  SessionStore::AttachResult c = store.Attach("c", false, 100, SessionOwner{kWorkerA, 3}, {});
  store.Detach(a.session, kOwnerA, 0);
  store.Detach(b.session, kOwnerB, 0);
  store.Detach(c.session, SessionOwner{kWorkerA, 3}, 0);
  EXPECT_EQ(store.ExpireDue(50000), (Sessions{a.session, b.session}));
  EXPECT_EQ(store.size(), 1u);
}

TEST(SessionStoreTest, ReattachBeforeTheDeadlineCancelsTheExpiry) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 10, kOwnerA, std::nullopt);
  store.Detach(a.session, kOwnerA, 0);  // due at 10000
  SessionStore::AttachResult b = store.Attach("c", false, 10, kOwnerB, std::nullopt);
  EXPECT_TRUE(b.session_present);
  EXPECT_EQ(b.session, a.session);
  EXPECT_FALSE(b.taken_over);
  // Past the old deadline, while connected: nothing ends.
  EXPECT_TRUE(store.ExpireDue(20000).empty());
  EXPECT_EQ(store.size(), 1u);
  // Offline again: a new deadline, and the old one stays forgotten.
  store.Detach(b.session, kOwnerB, 15000);  // due at 25000
  EXPECT_TRUE(store.ExpireDue(24999).empty());
  EXPECT_EQ(store.ExpireDue(25000), Sessions{a.session});
  EXPECT_EQ(store.size(), 0u);
}

TEST(SessionStoreTest, ReattachCancelsAnExpiryDueAtTheSameTimeAsAStaleOne) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 10, kOwnerA, std::nullopt);
  store.Detach(a.session, kOwnerA, 0);  // due at 10000
  store.Attach("c", false, 10, kOwnerB, std::nullopt);
  store.Detach(a.session, kOwnerB, 0);  // due at 10000 again
  store.Attach("c", false, 10, kOwnerA, std::nullopt);
  EXPECT_TRUE(store.ExpireDue(10000).empty());
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(a.session->online());
}

TEST(SessionStoreTest, NeverExpiringSessionNeverExpires) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, kPersistent, kOwnerA, std::nullopt);
  EXPECT_EQ(store.Detach(a.session, kOwnerA, 0), nullptr);
  EXPECT_TRUE(store.ExpireDue(int64_t{1000} * codec::kSessionNeverExpires + 1).empty());
  EXPECT_TRUE(store.ExpireDue(INT64_MAX).empty());
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(store.Attach("c", false, kPersistent, kOwnerB, std::nullopt).session_present);
}

TEST(SessionStoreTest, CleanStartDiscardsASessionWithALongExpiry) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 86400, kOwnerA, std::nullopt);
  store.Detach(a.session, kOwnerA, 0);
  SessionStore::AttachResult b = store.Attach("c", true, 86400, kOwnerB, std::nullopt);
  EXPECT_FALSE(b.session_present);
  EXPECT_FALSE(b.taken_over);  // the old session had no connection
  EXPECT_EQ(b.discarded, a.session);
  EXPECT_NE(b.session, a.session);
  EXPECT_EQ(store.size(), 1u);
  // The old session's deadline does not end the new one.
  EXPECT_TRUE(store.ExpireDue(int64_t{86400} * 1000).empty());
  EXPECT_EQ(store.size(), 1u);
}

TEST(SessionStoreTest, ExpiryIntervalIsUpdatedOnResume) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 10, kOwnerA, std::nullopt);
  store.Detach(a.session, kOwnerA, 0);
  SessionStore::AttachResult b = store.Attach("c", false, 100, kOwnerB, std::nullopt);
  ASSERT_TRUE(b.session_present);
  EXPECT_EQ(b.session->expiry_interval(), 100u);
  store.Detach(b.session, kOwnerB, 0);
  EXPECT_TRUE(store.ExpireDue(99999).empty());
  EXPECT_EQ(store.ExpireDue(100000), Sessions{a.session});
}

TEST(SessionStoreTest, ResumingAPersistentSessionWithExpiryZeroEndsItAtDetach) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, kPersistent, kOwnerA, std::nullopt);
  store.Detach(a.session, kOwnerA, 0);
  SessionStore::AttachResult b = store.Attach("c", false, 0, kOwnerB, std::nullopt);
  EXPECT_TRUE(b.session_present);
  EXPECT_EQ(store.Detach(b.session, kOwnerB, 0), a.session);
  EXPECT_EQ(store.size(), 0u);
}

TEST(SessionStoreTest, ExpiryChangedAtDisconnectIsUsedAtDetach) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 100, kOwnerA, std::nullopt);
  a.session->set_expiry_interval(5);  // DISCONNECT with a Session Expiry Interval
  store.Detach(a.session, kOwnerA, 1000);
  EXPECT_TRUE(store.ExpireDue(5999).empty());
  EXPECT_EQ(store.ExpireDue(6000), Sessions{a.session});

  SessionStore::AttachResult b = store.Attach("d", false, 100, kOwnerB, std::nullopt);
  b.session->set_expiry_interval(0);
  EXPECT_EQ(store.Detach(b.session, kOwnerB, 0), b.session);
  EXPECT_EQ(store.size(), 0u);
}

TEST(SessionStoreTest, ExpiryZeroSessionTakenOverIsNotResumed) {
  SessionStore store;
  SessionStore::AttachResult a = store.Attach("c", false, 0, kOwnerA, std::nullopt);
  SessionStore::AttachResult b = store.Attach("c", false, 300, kOwnerB, std::nullopt);
  EXPECT_FALSE(b.session_present);
  ASSERT_TRUE(b.taken_over);
  EXPECT_EQ(*b.taken_over, kOwnerA);
  EXPECT_EQ(b.discarded, a.session);
  EXPECT_NE(b.session, a.session);
  EXPECT_EQ(b.session->expiry_interval(), 300u);
  // The old connection's close ends nothing more.
  EXPECT_EQ(store.Detach(a.session, kOwnerA, 0), nullptr);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(b.session->IsOwner(kOwnerB));
}

}  // namespace
}  // namespace meshmq
