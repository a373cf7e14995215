// Several transports in one process, on 127.0.0.1 and port 0, each with a Handler that records
// what it is told. Nothing sleeps "long enough": every wait polls for its condition.
#include "cluster/transport.h"

#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/cluster.grpc.pb.h"

// LeakSanitizer: Debian 12's c-ares (1.18.1) leaks the copy of a name it answers from
// /etc/hosts (c-ares issue 439), which gRPC's resolver hits for the "localhost:PORT" targets
// below. Only read by -fsanitize=address builds.
extern "C" const char* __lsan_default_suppressions() { return "leak:libcares.so\n"; }

namespace meshmq::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using SendResult = Transport::SendResult;

constexpr absl::Duration kWait = absl::Seconds(10);

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = kWait) {
  absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return condition();
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// A port nothing listens on right now (for a transport that must know its address up front).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

Frame RouteFrame(const std::string& filter) {
  Frame frame;
  frame.mutable_route()->set_filter(filter);
  frame.mutable_route()->set_count(1);
  return frame;
}

Frame HelloFrame(const std::string& node_id, uint64_t seq) {
  Frame frame;
  frame.set_seq(seq);
  frame.mutable_hello()->set_node_id(node_id);
  return frame;
}

class RecordingHandler : public Transport::Handler {
 public:
  struct Received {
    std::string peer;
    Frame frame;
  };

  // --- Configuration ---
  void SetSnapshot(std::vector<Frame> snapshot) {
    absl::MutexLock lock(&mu_);
    snapshot_ = std::move(snapshot);
  }
  // Runs inside OnOutboundUp, after the snapshot is filled.
  void SetOnOutboundUp(std::function<void(const std::string&)> hook) {
    absl::MutexLock lock(&mu_);
    on_outbound_up_ = std::move(hook);
  }
  // While set, OnFrame keeps `done` instead of calling it.
  void SetHoldDone(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_done_ = hold;
  }
  void SetTakeSessionReply(TakeSessionReply reply, bool defer) {
    absl::MutexLock lock(&mu_);
    take_session_reply_ = std::move(reply);
    defer_take_session_ = defer;
  }

  // --- Handler ---
  void OnOutboundUp(const std::string& peer, std::vector<Frame>* snapshot) override {
    std::function<void(const std::string&)> hook;
    {
      absl::MutexLock lock(&mu_);
      events_.push_back("out_up " + peer);
      *snapshot = snapshot_;
      hook = on_outbound_up_;
    }
    if (hook) hook(peer);
  }
  void OnOutboundDown(const std::string& peer) override { Record("out_down " + peer); }
  void OnInboundUp(const std::string& peer) override { Record("in_up " + peer); }
  void OnInboundDown(const std::string& peer) override { Record("in_down " + peer); }
  void OnFrame(const std::string& peer, Frame& frame, std::function<void()> done) override {
    bool hold;
    {
      absl::MutexLock lock(&mu_);
      frames_.push_back(Received{peer, frame});
      hold = hold_done_;
      if (hold) held_.push_back(std::move(done));
    }
    if (!hold) done();
  }
  void OnTakeSession(const TakeSessionRequest& request, TakeSessionReply* reply,
                     std::function<void()> done) override {
    bool defer;
    {
      absl::MutexLock lock(&mu_);
      take_session_requests_.push_back(request);
      *reply = take_session_reply_;
      defer = defer_take_session_;
      if (defer) deferred_take_session_ = std::move(done);
    }
    if (!defer) done();
  }

  // --- Observation ---
  void Record(const std::string& event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::vector<std::string> Events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  int Count(const std::string& event) const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(std::count(events_.begin(), events_.end(), event));
  }
  std::vector<Received> Frames() const {
    absl::MutexLock lock(&mu_);
    return frames_;
  }
  // The route filters received from `peer`, in order.
  std::vector<std::string> RoutesFrom(const std::string& peer) const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> filters;
    for (const Received& received : frames_) {
      if (received.peer == peer && received.frame.has_route()) {
        filters.push_back(received.frame.route().filter());
      }
    }
    return filters;
  }
  size_t HeldCount() const {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  std::vector<std::function<void()>> TakeHeld() {
    absl::MutexLock lock(&mu_);
    return std::move(held_);
  }
  size_t TakeSessionRequests() const {
    absl::MutexLock lock(&mu_);
    return take_session_requests_.size();
  }
  std::function<void()> TakeDeferredTakeSession() {
    absl::MutexLock lock(&mu_);
    return std::move(deferred_take_session_);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Frame> snapshot_;
  std::function<void(const std::string&)> on_outbound_up_;
  bool hold_done_ = false;
  TakeSessionReply take_session_reply_;
  bool defer_take_session_ = false;
  std::function<void()> deferred_take_session_;
  std::vector<std::string> events_;
  std::vector<Received> frames_;
  std::vector<std::function<void()>> held_;
  std::vector<TakeSessionRequest> take_session_requests_;
};

// A transport with its handler (declared first: the transport stops before it goes).
struct Node {
  explicit Node(TransportConfig config) : transport(std::move(config), &handler) {}
  std::string address() const { return absl::StrCat("127.0.0.1:", transport.port()); }
  RecordingHandler handler;
  Transport transport;
};

TransportConfig Config(const std::string& node_id, std::vector<std::string> seeds = {}) {
  TransportConfig config;
  config.listen = "127.0.0.1:0";
  config.node_id = node_id;
  config.seeds = std::move(seeds);
  config.heartbeat_interval = absl::Milliseconds(50);
  config.peer_timeout = absl::Seconds(3);
  return config;
}

std::unique_ptr<Node> StartNode(TransportConfig config) {
  auto node = std::make_unique<Node>(std::move(config));
  absl::Status status = node->transport.Start();
  EXPECT_TRUE(status.ok()) << status;
  return node;
}

// Both directions up between `a` and `b`, as each handler saw it.
bool Linked(const Node& a, const Node& b) {
  const std::string a_id = a.transport.node_id();
  const std::string b_id = b.transport.node_id();
  auto up = [](const Node& node, const std::string& peer) {
    std::vector<std::string> peers = node.transport.UpPeers();
    return std::find(peers.begin(), peers.end(), peer) != peers.end();
  };
  return up(a, b_id) && up(b, a_id) &&
         a.handler.Count("out_up " + b_id) > a.handler.Count("out_down " + b_id) &&
         b.handler.Count("out_up " + a_id) > b.handler.Count("out_down " + a_id) &&
         a.handler.Count("in_up " + b_id) > a.handler.Count("in_down " + b_id) &&
         b.handler.Count("in_up " + a_id) > b.handler.Count("in_down " + a_id);
}

// Records on_ack results, in the order they come.
class AckLog {
 public:
  std::function<void(bool)> Callback(int id) {
    return [this, id](bool ok) {
      absl::MutexLock lock(&mu_);
      acks_.push_back(absl::StrCat(id, ok ? ":ok" : ":failed"));
    };
  }
  std::vector<std::string> Acks() const {
    absl::MutexLock lock(&mu_);
    return acks_;
  }
  size_t size() const { return Acks().size(); }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> acks_;
};

TEST(TransportTest, TwoNodesLinkBothWays) {
  auto a = StartNode(Config("a"));
  auto b = StartNode(Config("b", {a->address()}));
  EXPECT_EQ(a->transport.node_id(), "a");
  EXPECT_GT(a->transport.port(), 0);
  // b only knows a; a learns b's address from b's Hello and dials back.
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  EXPECT_THAT(a->transport.UpPeers(), ElementsAre("b"));
  EXPECT_THAT(b->transport.UpPeers(), ElementsAre("a"));
  EXPECT_THAT(a->handler.Events(), ::testing::UnorderedElementsAre("out_up b", "in_up b"));
  EXPECT_THAT(b->handler.Events(), ::testing::UnorderedElementsAre("out_up a", "in_up a"));
  EXPECT_EQ(a->transport.stats().links_up.load(), 1u);
  EXPECT_EQ(b->transport.stats().links_up.load(), 1u);
  EXPECT_EQ(a->transport.Send("nobody", RouteFrame("x"), nullptr, false), SendResult::kNotUp);
}

TEST(TransportTest, SnapshotGoesFirstThenFramesInOrder) {
  auto a = StartNode(Config("a"));
  a->handler.SetSnapshot({RouteFrame("snapshot/1"), RouteFrame("snapshot/2")});
  // A frame sent from inside OnOutboundUp still goes after the snapshot.
  a->handler.SetOnOutboundUp([&](const std::string& peer) {
    EXPECT_EQ(a->transport.Send(peer, RouteFrame("in-up"), nullptr, false), SendResult::kQueued);
    a->handler.Record("sent in-up");
  });
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b) && a->handler.Count("sent in-up") == 1; }));
  std::vector<std::string> expected = {"snapshot/1", "snapshot/2", "in-up"};
  for (int i = 0; i < 100; ++i) {
    std::string filter = absl::StrCat("frame/", i);
    ASSERT_EQ(a->transport.Send("b", RouteFrame(filter), nullptr, false), SendResult::kQueued);
    expected.push_back(filter);
  }
  ASSERT_TRUE(WaitFor([&] { return b->handler.RoutesFrom("a").size() >= expected.size(); }));
  EXPECT_EQ(b->handler.RoutesFrom("a"), expected);
  uint64_t last_seq = 0;
  for (const auto& received : b->handler.Frames()) {
    if (received.peer != "a") continue;
    EXPECT_GT(received.frame.seq(), last_seq);
    last_seq = received.frame.seq();
  }
  // b's snapshot to a was empty, and the snapshot came once.
  EXPECT_THAT(a->handler.RoutesFrom("b"), IsEmpty());
}

TEST(TransportTest, AcksWaitForDoneAndStayInOrder) {
  auto a = StartNode(Config("a"));
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  b->handler.SetHoldDone(true);
  AckLog acks;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(a->transport.Send("b", RouteFrame(absl::StrCat("r", i)), acks.Callback(i), false),
              SendResult::kQueued);
  }
  ASSERT_TRUE(WaitFor([&] { return b->handler.HeldCount() == 3; }));
  std::vector<std::function<void()>> done = b->handler.TakeHeld();
  EXPECT_THAT(acks.Acks(), IsEmpty());
  // Out of order: 3 first changes nothing, 1 acknowledges only 1.
  done[2]();
  done[0]();
  ASSERT_TRUE(WaitFor([&] { return acks.size() >= 1; }));
  EXPECT_THAT(acks.Acks(), ElementsAre("1:ok"));
  done[1]();
  ASSERT_TRUE(WaitFor([&] { return acks.size() >= 3; }));
  EXPECT_THAT(acks.Acks(), ElementsAre("1:ok", "2:ok", "3:ok"));
  EXPECT_EQ(a->transport.stats().peer_timeouts.load(), 0u);
}

TEST(TransportTest, FramesQueuedDuringAWriteGoOutAsOneBatch) {
  auto a = StartNode(Config("a"));
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  constexpr int kFrames = 2000;
  std::atomic<int> acked{0};
  uint64_t batches_before = a->transport.stats().batches_sent.load();
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_EQ(a->transport.Send(
                  "b", RouteFrame(absl::StrCat("t/", i)),
                  [&acked](bool ok) { acked += ok ? 1 : 0; }, false),
              SendResult::kQueued);
  }
  ASSERT_TRUE(WaitFor([&] { return acked.load() == kFrames; }));
  std::vector<std::string> routes = b->handler.RoutesFrom("a");
  ASSERT_EQ(routes.size(), static_cast<size_t>(kFrames));
  for (int i = 0; i < kFrames; ++i) ASSERT_EQ(routes[i], absl::StrCat("t/", i));
  const TransportStats& stats = a->transport.stats();
  EXPECT_GT(stats.frames_sent.load(), stats.batches_sent.load());
  EXPECT_LT(stats.batches_sent.load() - batches_before, static_cast<uint64_t>(kFrames) / 2);
  EXPECT_GE(b->transport.stats().frames_received.load(), static_cast<uint64_t>(kFrames));
}

TEST(TransportTest, DroppableFramesAreRefusedPastMaxPendingBytes) {
  TransportConfig config = Config("a");
  config.max_pending_bytes = 2000;
  auto a = StartNode(config);
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  b->handler.SetHoldDone(true);
  const std::string filter(100, 'x');
  int queued = 0;
  SendResult result = SendResult::kQueued;
  while (queued < 100) {
    result = a->transport.Send("b", RouteFrame(filter), nullptr, /*droppable=*/true);
    if (result != SendResult::kQueued) break;
    ++queued;
  }
  EXPECT_EQ(result, SendResult::kFull);
  EXPECT_GE(queued, 10);
  EXPECT_LE(queued, 20);
  EXPECT_GE(a->transport.stats().frames_refused_full.load(), 1u);
  // What is not droppable is queued regardless.
  EXPECT_EQ(a->transport.Send("b", RouteFrame(filter), nullptr, /*droppable=*/false),
            SendResult::kQueued);
  // Once the receiver catches up, droppable frames go again.
  ASSERT_TRUE(WaitFor([&] { return b->handler.HeldCount() == static_cast<size_t>(queued + 1); }));
  b->handler.SetHoldDone(false);
  for (auto& done : b->handler.TakeHeld()) done();
  ASSERT_TRUE(WaitFor([&] {
    return a->transport.Send("b", RouteFrame("again"), nullptr, /*droppable=*/true) ==
           SendResult::kQueued;
  }));
}

TEST(TransportTest, ANodeGivenOneSeedFindsTheOthers) {
  auto a = StartNode(Config("a"));
  auto b = StartNode(Config("b", {a->address()}));
  auto c = StartNode(Config("c", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b) && Linked(*a, *c) && Linked(*b, *c); }));
  EXPECT_THAT(a->transport.UpPeers(), ElementsAre("b", "c"));
  EXPECT_THAT(b->transport.UpPeers(), ElementsAre("a", "c"));
  EXPECT_THAT(c->transport.UpPeers(), ElementsAre("a", "b"));
}

TEST(TransportTest, OwnAddressesInSeedsAreIgnored) {
  auto b = StartNode(Config("b"));
  int port = FreePort();
  ASSERT_GT(port, 0);
  TransportConfig config = Config(
      "a", {absl::StrCat("127.0.0.1:", port), absl::StrCat("localhost:", port), b->address()});
  config.listen = absl::StrCat("127.0.0.1:", port);
  auto a = StartNode(config);
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  // Long enough for the dial to "localhost" (started with the one to b) to have been answered:
  // a few heartbeats from b.
  uint64_t received = a->transport.stats().frames_received.load();
  ASSERT_TRUE(WaitFor([&] { return a->transport.stats().frames_received.load() >= received + 5; }));
  EXPECT_THAT(a->transport.UpPeers(), ElementsAre("b"));
  EXPECT_THAT(a->handler.Events(), ::testing::UnorderedElementsAre("out_up b", "in_up b"));
  EXPECT_EQ(a->transport.stats().links_up.load(), 1u);
  // a did not pass its unanswered seeds on, so b never dialled a through "localhost".
  EXPECT_EQ(b->transport.stats().links_up.load(), 1u);
}

TEST(TransportTest, TwoAddressesOfOneNodeKeepOneLink) {
  auto a = StartNode(Config("a"));
  auto b = StartNode(Config("b", {a->address(), absl::StrCat("localhost:", a->transport.port())}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  // Whatever the race between the two first dials, it settles on one link each way.
  ASSERT_TRUE(WaitFor([&] {
    const TransportStats& stats = b->transport.stats();
    return stats.links_up.load() - stats.links_down.load() == 1 && Linked(*a, *b);
  }));
  EXPECT_THAT(b->transport.UpPeers(), ElementsAre("a"));
}

TEST(TransportTest, PeerStopTakesBothLinksDownAndFailsPendingFrames) {
  auto a = StartNode(Config("a"));
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  b->handler.SetHoldDone(true);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(a->transport.Send(
                  "b", RouteFrame(absl::StrCat("r", i)),
                  [&a, i](bool ok) {
                    a->handler.Record(absl::StrCat("ack ", i, ok ? " ok" : " failed"));
                  },
                  false),
              SendResult::kQueued);
  }
  ASSERT_TRUE(WaitFor([&] { return b->handler.HeldCount() == 3; }));
  b->transport.Stop();
  // Stop is synchronous: b's handler has heard everything.
  EXPECT_EQ(b->handler.Count("out_down a"), 1);
  EXPECT_EQ(b->handler.Count("in_down a"), 1);
  EXPECT_THAT(b->transport.UpPeers(), IsEmpty());
  // Late `done` calls for a stopped transport are harmless.
  for (auto& done : b->handler.TakeHeld()) done();
  b->transport.Stop();  // twice is fine

  ASSERT_TRUE(WaitFor(
      [&] { return a->handler.Count("out_down b") == 1 && a->handler.Count("in_down b") == 1; }));
  std::vector<std::string> events = a->handler.Events();
  auto position = [&](const std::string& event) {
    return std::find(events.begin(), events.end(), event) - events.begin();
  };
  EXPECT_LT(position("ack 1 failed"), position("ack 2 failed"));
  EXPECT_LT(position("ack 2 failed"), position("ack 3 failed"));
  EXPECT_LT(position("ack 3 failed"), position("out_down b"));
  EXPECT_THAT(a->transport.UpPeers(), IsEmpty());
  EXPECT_EQ(a->transport.stats().links_down.load(), 1u);
  EXPECT_EQ(a->transport.Send("b", RouteFrame("late"), nullptr, false), SendResult::kNotUp);
}

TEST(TransportTest, RestartedPeerLinksAgainAndGetsAFreshSnapshot) {
  auto a = StartNode(Config("a"));
  a->handler.SetSnapshot({RouteFrame("snapshot")});
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  ASSERT_TRUE(WaitFor([&] { return b->handler.RoutesFrom("a").size() == 1; }));
  int port = b->transport.port();
  b.reset();
  ASSERT_TRUE(WaitFor([&] { return a->transport.UpPeers().empty(); }));

  TransportConfig config = Config("b", {a->address()});
  config.listen = absl::StrCat("127.0.0.1:", port);
  auto b2 = StartNode(config);
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b2); }));
  ASSERT_TRUE(WaitFor([&] { return b2->handler.RoutesFrom("a").size() == 1; }));
  EXPECT_THAT(b2->handler.RoutesFrom("a"), ElementsAre("snapshot"));
  EXPECT_EQ(a->handler.Count("out_up b"), 2);
  EXPECT_EQ(a->handler.Count("out_down b"), 1);
  EXPECT_EQ(a->handler.Count("in_up b"), 2);
  EXPECT_EQ(a->handler.Count("in_down b"), 1);
}

TEST(TransportTest, OutboundLinkWithoutRepliesIsCancelledAfterPeerTimeout) {
  TransportConfig config = Config("a");
  config.peer_timeout = absl::Milliseconds(400);
  auto a = StartNode(config);
  auto b = StartNode(Config("b", {a->address()}));
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  // b never finishes the frame, so the cumulative ack (heartbeats' too) stops short of it.
  b->handler.SetHoldDone(true);
  AckLog acks;
  absl::Time sent = absl::Now();
  ASSERT_EQ(a->transport.Send("b", RouteFrame("stuck"), acks.Callback(1), false),
            SendResult::kQueued);
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("out_down b") == 1; }));
  absl::Duration elapsed = absl::Now() - sent;
  EXPECT_GE(elapsed, absl::Milliseconds(400));
  EXPECT_LT(elapsed, absl::Seconds(3));
  EXPECT_THAT(acks.Acks(), ElementsAre("1:failed"));
  EXPECT_GE(a->transport.stats().peer_timeouts.load(), 1u);
  // Then it is redialled.
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("out_up b") == 2; }));
  for (auto& done : b->handler.TakeHeld()) done();
}

// A raw gRPC client speaking the Link protocol, to play a misbehaving or silent peer.
struct RawLink {
  explicit RawLink(const std::string& address)
      : stub(Cluster::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    stream = stub->Link(&context);
  }
  std::unique_ptr<Cluster::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<FrameBatch, LinkReply>> stream;
};

TEST(TransportTest, SilentInboundLinkIsCancelledAfterPeerTimeout) {
  TransportConfig config = Config("a");
  config.peer_timeout = absl::Milliseconds(400);
  auto a = StartNode(config);
  RawLink ghost(a->address());
  FrameBatch batch;
  *batch.add_frames() = HelloFrame("ghost", 1);
  ASSERT_TRUE(ghost.stream->Write(batch));
  LinkReply reply;
  ASSERT_TRUE(ghost.stream->Read(&reply));
  EXPECT_EQ(reply.node_id(), "a");
  EXPECT_EQ(reply.acked(), 1u);
  absl::Time hello_at = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("in_up ghost") == 1; }));
  // Now say nothing: a ends the stream.
  EXPECT_FALSE(ghost.stream->Read(&reply));
  grpc::Status status = ghost.stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_GE(absl::Now() - hello_at, absl::Milliseconds(350));
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("in_down ghost") == 1; }));
  EXPECT_GE(a->transport.stats().peer_timeouts.load(), 1u);
}

TEST(TransportTest, FirstFrameMustBeHello) {
  auto a = StartNode(Config("a"));
  RawLink stranger(a->address());
  FrameBatch batch;
  Frame route = RouteFrame("x");
  route.set_seq(1);
  *batch.add_frames() = route;
  stranger.stream->Write(batch);
  LinkReply reply;
  EXPECT_FALSE(stranger.stream->Read(&reply));
  EXPECT_EQ(stranger.stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(a->handler.Events(), IsEmpty());
}

TEST(TransportTest, ANewInboundStreamFromANodeReplacesTheOldOne) {
  auto a = StartNode(Config("a"));
  RawLink first(a->address());
  RawLink second(a->address());
  FrameBatch batch;
  *batch.add_frames() = HelloFrame("ghost", 1);
  LinkReply reply;
  ASSERT_TRUE(first.stream->Write(batch));
  ASSERT_TRUE(first.stream->Read(&reply));
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("in_up ghost") == 1; }));
  ASSERT_TRUE(second.stream->Write(batch));
  ASSERT_TRUE(second.stream->Read(&reply));
  EXPECT_FALSE(first.stream->Read(&reply));
  EXPECT_EQ(first.stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("in_up ghost") == 2; }));
  EXPECT_THAT(a->handler.Events(), ElementsAre("in_up ghost", "in_down ghost", "in_up ghost"));
  // Frames on the new stream are acknowledged.
  FrameBatch frames;
  for (uint64_t seq = 2; seq <= 3; ++seq) {
    Frame route = RouteFrame(absl::StrCat("r", seq));
    route.set_seq(seq);
    *frames.add_frames() = route;
  }
  ASSERT_TRUE(second.stream->Write(frames));
  uint64_t acked = 0;
  while (acked < 3 && second.stream->Read(&reply)) acked = reply.acked();
  EXPECT_EQ(acked, 3u);
  EXPECT_THAT(a->handler.RoutesFrom("ghost"), ElementsAre("r2", "r3"));
  second.context.TryCancel();
  ASSERT_TRUE(WaitFor([&] { return a->handler.Count("in_down ghost") == 2; }));
}

TEST(TransportTest, TakeSessionFromPeersCollectsEveryUpPeersReply) {
  auto a = StartNode(Config("a"));
  TakeSessionRequest request;
  request.set_client_id("client-1");
  request.set_node_id("a");
  {
    absl::Notification alone;
    a->transport.TakeSessionFromPeers(request, [&](std::vector<TakeSessionReply> replies) {
      EXPECT_THAT(replies, IsEmpty());
      alone.Notify();
    });
    ASSERT_TRUE(alone.HasBeenNotified());
  }
  auto b = StartNode(Config("b", {a->address()}));
  auto c = StartNode(Config("c", {a->address()}));
  TakeSessionReply b_reply;
  b_reply.set_had_session(true);
  b_reply.add_inbound_qos2(7);
  b->handler.SetTakeSessionReply(b_reply, /*defer=*/false);
  TakeSessionReply c_reply;
  c_reply.add_inbound_qos2(9);
  c->handler.SetTakeSessionReply(c_reply, /*defer=*/true);  // answers later, from this thread
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b) && Linked(*a, *c); }));

  absl::Mutex mu;
  std::vector<TakeSessionReply> replies;
  absl::Notification done;
  a->transport.TakeSessionFromPeers(request, [&](std::vector<TakeSessionReply> got) {
    absl::MutexLock lock(&mu);
    replies = std::move(got);
    done.Notify();
  });
  ASSERT_TRUE(WaitFor([&] {
    return b->handler.TakeSessionRequests() == 1 && c->handler.TakeSessionRequests() == 1;
  }));
  EXPECT_FALSE(done.HasBeenNotified());
  c->handler.TakeDeferredTakeSession()();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(replies.size(), 2u);
  std::vector<uint32_t> qos2;
  int had_session = 0;
  for (const TakeSessionReply& reply : replies) {
    qos2.insert(qos2.end(), reply.inbound_qos2().begin(), reply.inbound_qos2().end());
    had_session += reply.had_session() ? 1 : 0;
    EXPECT_FALSE(reply.unanswered());
  }
  std::sort(qos2.begin(), qos2.end());
  EXPECT_THAT(qos2, ElementsAre(7, 9));
  EXPECT_EQ(had_session, 1);
}

TEST(TransportTest, TakeSessionMarksAPeerThatDoesNotAnswer) {
  TransportConfig config = Config("a");
  config.peer_timeout = absl::Milliseconds(300);
  auto a = StartNode(config);
  auto b = StartNode(Config("b", {a->address()}));
  b->handler.SetTakeSessionReply(TakeSessionReply(), /*defer=*/true);
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
  absl::Notification done;
  std::vector<TakeSessionReply> replies;
  a->transport.TakeSessionFromPeers(TakeSessionRequest(), [&](std::vector<TakeSessionReply> got) {
    replies = std::move(got);
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  // The caller learns that b may hold the session: it did not say it has none.
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].unanswered());
  EXPECT_FALSE(replies[0].had_session());
  // b answers late; nothing breaks.
  ASSERT_TRUE(WaitFor([&] { return b->handler.TakeSessionRequests() == 1; }));
  b->handler.TakeDeferredTakeSession()();
}

TEST(TransportTest, PeersComeFromDns) {
  auto a = StartNode(Config("a"));
  TransportConfig config = Config("b");
  config.peers_dns = "localhost";
  config.peers_dns_port = a->transport.port();
  auto b = StartNode(config);
  ASSERT_TRUE(WaitFor([&] { return Linked(*a, *b); }));
}

TEST(TransportTest, StartFailsOnAPortInUse) {
  auto a = StartNode(Config("a"));
  TransportConfig config = Config("b");
  config.listen = a->address();
  Node b(config);
  absl::Status status = b.transport.Start();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(a->address()), std::string::npos) << status;
}

}  // namespace
}  // namespace meshmq::cluster
