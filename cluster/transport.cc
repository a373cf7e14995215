// The node-to-node links (cluster/transport.h has the contract). gRPC's callback API throughout:
//
// - Outbound: one OutboundLink (a ClientBidiReactor) per dialled address at a time. A Dialler
//   per known address owns the channel and redials with backoff; the timer thread starts dials.
//   The link holds one gRPC hold from StartCall until its read fails, so frames can be written
//   from any thread (Send, the timer) while the stream may still be alive. Every StartWrite
//   happens under the link's mutex after checking that the read has not ended, so none can
//   follow the RemoveHold that lets OnDone run.
// - Inbound: one InboundLink (a ServerBidiReactor) per stream. Every Start*/Finish on it happens
//   under its mutex and only while `finished_` is false; OnDone needs Finish, so a `done`
//   callback that arrives late (it keeps the object alive by shared_ptr) finds `finished_` set
//   and touches nothing else.
// - Up/down events go through one serial queue (PostEvent): whichever thread finds it idle runs
//   the queued closures in order, without holding any lock. So the Handler sees, per peer, up
//   before down before the next up, and an inbound stream's frames only after its OnInboundUp
//   (its next read starts from the closure that delivered it).
// - Stop() waits for every call (outbound links, inbound streams, TakeSession calls) to end and
//   for the event queue to drain; a call's last act is CallEnded(), after which it touches
//   nothing of the transport. So no Handler method runs once Stop has returned.
//
// Lock order: mu_ (transport) before a link's mutex; life_mu_ is never held while taking another.
#include "cluster/transport.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "node/log.h"
#include "proto/cluster.grpc.pb.h"

namespace meshmq::cluster {
namespace {

constexpr absl::Duration kInitialBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
// How long Stop lets the gRPC server wait for calls before cancelling them (ours are all
// finished by then; this only bounds a Handler that is slow to answer TakeSession).
constexpr absl::Duration kShutdownGrace = absl::Seconds(1);

// The host part of HOST:PORT ("[::1]:7883" gives "[::1]").
std::string HostOf(const std::string& address) {
  size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

std::string ThisHostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// A records of `name`, as "ip:port".
std::vector<std::string> ResolvePeers(const std::string& name, int port) {
  addrinfo hints = {};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &result) != 0) return {};
  std::set<std::string> addresses;
  for (addrinfo* entry = result; entry != nullptr; entry = entry->ai_next) {
    if (entry->ai_family != AF_INET) continue;
    char ip[INET_ADDRSTRLEN] = {};
    const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ai_addr);
    if (inet_ntop(AF_INET, &address->sin_addr, ip, sizeof(ip)) == nullptr) continue;
    addresses.insert(absl::StrCat(ip, ":", port));
  }
  freeaddrinfo(result);
  return {addresses.begin(), addresses.end()};
}

grpc::Status Unavailable(const std::string& why) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, why);
}

}  // namespace

class Transport::Impl {
 public:
  Impl(TransportConfig config, Handler* handler)
      : config_(std::move(config)), handler_(handler), service_(this) {}
  ~Impl() { Stop(); }

  absl::Status Start();
  void Stop();
  int port() const { return port_; }
  const std::string& node_id() const { return config_.node_id; }
  SendResult Send(const std::string& peer, Frame frame, std::function<void(bool)> on_ack,
                  bool droppable);
  std::vector<std::string> UpPeers() const;
  void TakeSessionFromPeers(const TakeSessionRequest& request,
                            std::function<void(std::vector<TakeSessionReply>)> done);
  const TransportStats& stats() const { return stats_; }
  void AddService(grpc::Service* service) { extra_services_.push_back(service); }
  std::vector<PeerInfo> Peers() const;
  std::vector<LinkStats> OutboundLinkStats() const;
  void AddPeer(const std::string& address) {
    absl::MutexLock lock(&mu_);
    AddAddressLocked(address);
  }

 private:
  class OutboundLink;
  class InboundLink;

  // One known peer address. Owned by diallers_ for the transport's life.
  struct Dialler {
    explicit Dialler(std::string a) : address(std::move(a)) {}
    const std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Cluster::Stub> stub;
    std::shared_ptr<OutboundLink> link;  // the stream being dialled or up, if any
    absl::Time next_dial = absl::InfinitePast();
    absl::Duration backoff = kInitialBackoff;
    bool self = false;    // answered with our own node id: never dialled again
    std::string node_id;  // who answered here last
  };

  class Service : public Cluster::CallbackService {
   public:
    explicit Service(Impl* impl) : impl_(impl) {}
    grpc::ServerBidiReactor<FrameBatch, LinkReply>* Link(
        grpc::CallbackServerContext* context) override;
    grpc::ServerUnaryReactor* TakeSession(grpc::CallbackServerContext* context,
                                          const TakeSessionRequest* request,
                                          TakeSessionReply* reply) override;

   private:
    Impl* const impl_;
  };

  // --- Calls and the event queue (life_mu_) ---
  // Counts a call Stop must wait for; false once Stop has begun (for calls that may be refused).
  bool EnterCall(bool refusable);
  // A call's last touch of the transport.
  void CallEnded();
  // Runs `event` after every event posted before it, on this thread or the one draining.
  void PostEvent(std::function<void()> event);
  // No call alive and no event queued or running: Stop may return.
  bool QuiescentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(life_mu_) {
    return live_calls_ == 0 && !events_running_ && events_.empty();
  }

  // --- Membership (mu_) ---
  Dialler* AddAddressLocked(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Addresses from a peer: its own `advertise` (of node `node`), and others it knows.
  template <typename Addresses>
  void LearnAddresses(const std::string& node, const std::string& advertise,
                      const Addresses& members);
  std::vector<std::string> MembersLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool DialableLocked(const Dialler& dialler) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Dials, heartbeats and timeouts.
  void TimerLoop();
  // Resolves peers_dns every dns_interval, on its own thread: a slow resolver must not hold up
  // heartbeats.
  void DnsLoop();

  // --- Outbound link events ---
  // The first reply named the peer: true if the link is now up for it.
  bool LinkNamed(const std::shared_ptr<OutboundLink>& link, const std::string& node);
  void LinkEnded(const std::shared_ptr<OutboundLink>& link, bool was_up, const std::string& peer,
                 const grpc::Status& status);
  // The link's last act, once the link object is let go: on_ack(false), OnOutboundDown.
  void EndLinkCall(bool was_up, std::string peer, std::vector<std::function<void(bool)>> failed);

  // --- Inbound stream events ---
  bool RegisterInbound(const std::shared_ptr<InboundLink>& link);
  void InboundHello(const std::shared_ptr<InboundLink>& link);
  void InboundEnded(const std::shared_ptr<InboundLink>& link);

  const TransportConfig config_;
  Handler* const handler_;
  TransportStats stats_;
  Service service_;  // outlives server_
  std::vector<grpc::Service*> extra_services_;  // AddService, before Start
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string advertise_;

  absl::Mutex stop_mu_;  // serializes Start and Stop
  bool started_ ABSL_GUARDED_BY(stop_mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread timer_;
  std::thread dns_;

  mutable absl::Mutex mu_;
  absl::CondVar timer_cv_;  // a dial may be due, or stopping_
  absl::CondVar dns_cv_;    // stopping_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<Dialler>> diallers_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> self_addresses_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<OutboundLink>> up_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<InboundLink*, std::shared_ptr<InboundLink>> inbound_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<InboundLink>> inbound_by_node_
      ABSL_GUARDED_BY(mu_);
  std::set<grpc::ClientContext*> take_session_calls_ ABSL_GUARDED_BY(mu_);

  absl::Mutex life_mu_;
  bool closed_ ABSL_GUARDED_BY(life_mu_) = false;
  int live_calls_ ABSL_GUARDED_BY(life_mu_) = 0;
  std::deque<std::function<void()>> events_ ABSL_GUARDED_BY(life_mu_);
  bool events_running_ ABSL_GUARDED_BY(life_mu_) = false;
};

// ------------------------------------------------------------------------------------------
// OutboundLink: our stream to one address. Frames get their seq when they go into a batch, so
// the snapshot can be put in front of frames queued before it arrived.
class Transport::Impl::OutboundLink : public grpc::ClientBidiReactor<FrameBatch, LinkReply> {
 public:
  OutboundLink(Impl* impl, std::shared_ptr<Dialler> dialler)
      : impl_(impl), dialler_(std::move(dialler)) {}

  const std::shared_ptr<Dialler>& dialler() const { return dialler_; }

  // Any thread (metrics): what waits for the peer now.
  void PendingStats(absl::Time now, Transport::LinkStats* stats) {
    absl::MutexLock lock(&mu_);
    stats->queued_frames = queue_.size();
    stats->unacked_frames = unacked_.size();
    stats->pending_bytes = pending_bytes_;
    stats->oldest_unacked =
        unacked_.empty() ? absl::ZeroDuration()
                         : std::max(absl::ZeroDuration(), now - unacked_.front().sent_at);
  }

  // Timer thread, outside mu_. Keeps the link alive (self_) until OnDone.
  void Start(std::shared_ptr<OutboundLink> self, const std::vector<std::string>& members) {
    self_ = std::move(self);
    Frame hello;
    Hello* body = hello.mutable_hello();
    body->set_node_id(impl_->config_.node_id);
    body->set_advertise(impl_->advertise_);
    for (const std::string& member : members) body->add_members(member);
    dialler_->stub->async()->Link(&context_, this);
    AddHold();  // released when the read fails: writes start from outside reactions
    StartRead(&read_buf_);
    {
      absl::MutexLock lock(&mu_);
      last_reply_ = absl::Now();
      size_t bytes = hello.ByteSizeLong();
      queue_.push_back(Queued{std::move(hello), nullptr, bytes});
      pending_bytes_ += bytes;
      StartNextWriteLocked();
    }
    StartCall();
  }

  // Any thread.
  SendResult Queue(Frame frame, std::function<void(bool)> on_ack, bool droppable) {
    size_t bytes = frame.ByteSizeLong();
    absl::MutexLock lock(&mu_);
    if (read_ended_) return SendResult::kNotUp;
    if (droppable && pending_bytes_ > 0 &&
        pending_bytes_ + bytes > impl_->config_.max_pending_bytes) {
      impl_->stats_.frames_refused_full.fetch_add(1, std::memory_order_relaxed);
      return SendResult::kFull;
    }
    queue_.push_back(Queued{std::move(frame), std::move(on_ack), bytes});
    pending_bytes_ += bytes;
    StartNextWriteLocked();
    return SendResult::kQueued;
  }

  // Called (under the transport's mu_) when the link becomes the peer's up link: writes wait for
  // the snapshot.
  void MarkUp(const std::string& peer) {
    absl::MutexLock lock(&mu_);
    peer_ = peer;
    up_ = true;
    hold_writes_ = true;
  }

  // From the up event, after Handler::OnOutboundUp.
  void InsertSnapshot(std::vector<Frame> snapshot) {
    absl::MutexLock lock(&mu_);
    hold_writes_ = false;
    if (read_ended_) return;
    for (auto it = snapshot.rbegin(); it != snapshot.rend(); ++it) {
      size_t bytes = it->ByteSizeLong();
      queue_.push_front(Queued{std::move(*it), nullptr, bytes});
      pending_bytes_ += bytes;
    }
    StartNextWriteLocked();
  }

  // Timer thread: a heartbeat if idle, cancellation if silent.
  void Tick(absl::Time now, const std::vector<std::string>& members) {
    bool timed_out = false;
    {
      absl::MutexLock lock(&mu_);
      if (read_ended_ || cancelled_) return;
      if (!unacked_.empty() &&
          now - std::max(last_reply_, unacked_.front().sent_at) > impl_->config_.peer_timeout) {
        timed_out = true;
        cancelled_ = true;
      } else if (up_ && !hold_writes_ && !write_in_flight_ && queue_.empty() &&
                 now - last_write_ >= impl_->config_.heartbeat_interval) {
        Frame heartbeat;
        Heartbeat* body = heartbeat.mutable_heartbeat();
        for (const std::string& member : members) body->add_members(member);
        size_t bytes = heartbeat.ByteSizeLong();
        queue_.push_back(Queued{std::move(heartbeat), nullptr, bytes});
        pending_bytes_ += bytes;
        StartNextWriteLocked();
      }
    }
    if (timed_out) {
      impl_->stats_.peer_timeouts.fetch_add(1, std::memory_order_relaxed);  // before the cancel
      Log(LogLevel::kWarning, "meshmqd: cluster: link to %s timed out (no reply for %s)",
          dialler_->address.c_str(), absl::FormatDuration(impl_->config_.peer_timeout).c_str());
      context_.TryCancel();
    }
  }

  // Any thread; harmless once the call is over.
  void Cancel() {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    context_.TryCancel();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        read_ended_ = true;
      }
      RemoveHold();
      return;
    }
    if (!named_) {
      named_ = true;
      if (!impl_->LinkNamed(self_, read_buf_.node_id())) Cancel();
    }
    std::vector<std::function<void(bool)>> acked;
    {
      absl::MutexLock lock(&mu_);
      last_reply_ = absl::Now();
      uint64_t upto = read_buf_.acked();
      while (!unacked_.empty() && unacked_.front().seq <= upto) {
        Unacked& frame = unacked_.front();
        pending_bytes_ -= frame.bytes;
        if (frame.on_ack) acked.push_back(std::move(frame.on_ack));
        unacked_.pop_front();
      }
    }
    // Always read on: a cancelled call fails the read, which releases the hold.
    StartRead(&read_buf_);
    for (auto& on_ack : acked) on_ack(true);
  }

  void OnWriteDone(bool ok) override {
    bool failed = false;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (ok) {
        StartNextWriteLocked();
      } else {
        write_failed_ = true;
        failed = true;
      }
    }
    if (failed) context_.TryCancel();
  }

  void OnDone(const grpc::Status& status) override {
    Impl* const impl = impl_;
    std::shared_ptr<OutboundLink> self = std::move(self_);
    std::vector<std::function<void(bool)>> failed;
    bool was_up;
    std::string peer;
    {
      absl::MutexLock lock(&mu_);
      read_ended_ = true;
      was_up = up_;
      peer = peer_;
      for (Unacked& frame : unacked_) {
        if (frame.on_ack) failed.push_back(std::move(frame.on_ack));
      }
      for (Queued& frame : queue_) {
        if (frame.on_ack) failed.push_back(std::move(frame.on_ack));
      }
      unacked_.clear();
      queue_.clear();
      pending_bytes_ = 0;
    }
    impl->LinkEnded(self, was_up, peer, status);
    // context_ holds a reference to the channel. Let it go now, while the transport still holds
    // its own: a grpc::Channel must not be destroyed on one of gRPC's threads (in 1.51 the last
    // one joins the threads that run callbacks, this one included).
    self.reset();  // `this` may be gone from here on
    impl->EndLinkCall(was_up, std::move(peer), std::move(failed));
  }

 private:
  struct Queued {
    Frame frame;
    std::function<void(bool)> on_ack;
    size_t bytes;
  };
  struct Unacked {
    uint64_t seq;
    size_t bytes;
    std::function<void(bool)> on_ack;
    absl::Time sent_at;
  };

  // One write in flight: what queued meanwhile goes out as one batch.
  void StartNextWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (write_in_flight_ || read_ended_ || write_failed_ || hold_writes_ || queue_.empty()) return;
    write_buf_.Clear();
    absl::Time now = absl::Now();
    size_t batch_bytes = 0;
    while (!queue_.empty()) {
      Queued& next = queue_.front();
      if (write_buf_.frames_size() > 0 &&
          batch_bytes + next.bytes > impl_->config_.max_batch_bytes) {
        break;
      }
      batch_bytes += next.bytes;
      uint64_t seq = next_seq_++;
      next.frame.set_seq(seq);
      *write_buf_.add_frames() = std::move(next.frame);
      unacked_.push_back(Unacked{seq, next.bytes, std::move(next.on_ack), now});
      queue_.pop_front();
    }
    impl_->stats_.frames_sent.fetch_add(write_buf_.frames_size(), std::memory_order_relaxed);
    impl_->stats_.batches_sent.fetch_add(1, std::memory_order_relaxed);
    last_write_ = now;
    write_in_flight_ = true;
    StartWrite(&write_buf_);
  }

  Impl* const impl_;
  const std::shared_ptr<Dialler> dialler_;
  grpc::ClientContext context_;
  std::shared_ptr<OutboundLink> self_;  // set by Start, dropped by OnDone
  LinkReply read_buf_;                  // reactions only (one read at a time)
  bool named_ = false;                  // reactions only

  absl::Mutex mu_;
  FrameBatch write_buf_ ABSL_GUARDED_BY(mu_);  // the write in flight
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Unacked> unacked_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // queued or unacknowledged
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;  // the hold is gone: no more Start*
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool up_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_writes_ ABSL_GUARDED_BY(mu_) = false;  // up, snapshot not in yet
  std::string peer_ ABSL_GUARDED_BY(mu_);
  absl::Time last_reply_ ABSL_GUARDED_BY(mu_);
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// ------------------------------------------------------------------------------------------
// InboundLink: a peer's stream to us. Frames must arrive numbered hello.seq + 1, + 2, ...;
// `completed_` holds, for each frame after `acked_`, whether its `done` has run.
class Transport::Impl::InboundLink : public grpc::ServerBidiReactor<FrameBatch, LinkReply> {
 public:
  explicit InboundLink(Impl* impl) : impl_(impl), own_node_id_(impl->config_.node_id) {}

  const std::string& peer() const { return peer_; }
  const std::string& advertise() const { return advertise_; }

  void Start(std::shared_ptr<InboundLink> self) {
    self_ = self;
    {
      absl::MutexLock lock(&mu_);
      last_read_ = absl::Now();
    }
    if (!impl_->RegisterInbound(self)) {
      FinishOnce(Unavailable("node shutting down"));
      return;
    }
    absl::MutexLock lock(&mu_);
    if (!finished_) StartRead(&read_buf_);
  }

  // Any thread, any number of times: the first status wins.
  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  // Timer thread.
  void CheckTimeout(absl::Time now) {
    std::string peer;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || now - last_read_ <= impl_->config_.peer_timeout) return;
      // Counted before the stream ends, so whoever sees it end sees the count.
      impl_->stats_.peer_timeouts.fetch_add(1, std::memory_order_relaxed);
      finished_ = true;
      Finish(Unavailable("no frame within the peer timeout"));
      peer = peer_.empty() ? "an unnamed peer" : peer_;
    }
    Log(LogLevel::kWarning, "meshmqd: cluster: link from %s timed out (silent for %s)",
        peer.c_str(), absl::FormatDuration(impl_->config_.peer_timeout).c_str());
  }

  // Frame `seq` is handled. Any thread, even after the transport is gone.
  void Complete(uint64_t seq) {
    absl::MutexLock lock(&mu_);
    if (finished_ || seq <= acked_ || seq - acked_ > completed_.size()) return;
    completed_[seq - acked_ - 1] = true;
    while (!completed_.empty() && completed_.front()) {
      completed_.pop_front();
      ++acked_;
    }
    MaybeWriteAckLocked();
  }

  // Delivers frames [first, end) of the batch just read, then reads on. From OnReadDone, or
  // from the up event for the frames after Hello.
  void ProcessFrames(const std::shared_ptr<InboundLink>& self, int first) {
    for (int i = first; i < read_buf_.frames_size(); ++i) {
      Frame& frame = *read_buf_.mutable_frames(i);
      if (frame.seq() != last_seq_ + 1) {
        FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                absl::StrCat("frame seq ", frame.seq(), " after ", last_seq_)));
        return;
      }
      uint64_t seq = ++last_seq_;
      {
        absl::MutexLock lock(&mu_);
        if (finished_) return;
        completed_.push_back(false);
      }
      switch (frame.body_case()) {
        case Frame::kHello:
          FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second Hello"));
          return;
        case Frame::kHeartbeat:
          impl_->LearnAddresses(peer_, std::string(), frame.heartbeat().members());
          Complete(seq);
          break;
        case Frame::BODY_NOT_SET:  // a kind of frame newer than us: nothing to do
          Complete(seq);
          break;
        default:
          impl_->handler_->OnFrame(peer_, frame, [self, seq] { self->Complete(seq); });
          break;
      }
    }
    absl::MutexLock lock(&mu_);
    if (!finished_) StartRead(&read_buf_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status::OK);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      last_read_ = absl::Now();
    }
    impl_->stats_.frames_received.fetch_add(read_buf_.frames_size(), std::memory_order_relaxed);
    if (!hello_seen_) {
      HandleHello();
      return;
    }
    ProcessFrames(self_, 0);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(Unavailable("write failed"));
      return;
    }
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    MaybeWriteAckLocked();
  }

  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    std::shared_ptr<InboundLink> self = std::move(self_);
    impl_->InboundEnded(self);
    // `self` may be the last reference: nothing after this line.
  }

 private:
  void HandleHello() {
    if (read_buf_.frames_size() == 0 || !read_buf_.frames(0).has_hello() ||
        read_buf_.frames(0).hello().node_id().empty()) {
      FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "the first frame must be Hello with a node id"));
      return;
    }
    hello_seen_ = true;
    const Frame& frame = read_buf_.frames(0);
    const Hello& hello = frame.hello();
    last_seq_ = frame.seq();
    impl_->LearnAddresses(hello.node_id(), hello.advertise(), hello.members());
    if (hello.node_id() == own_node_id_) {
      // We dialled ourselves: say so, and end the stream.
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      write_buf_.set_node_id(own_node_id_);
      write_buf_.set_acked(frame.seq());
      StartWriteAndFinish(&write_buf_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      peer_ = hello.node_id();  // under mu_ only for CheckTimeout's log line
      advertise_ = hello.advertise();
      acked_ = frame.seq();
      send_node_id_ = true;
      MaybeWriteAckLocked();
    }
    impl_->InboundHello(self_);
  }

  void MaybeWriteAckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || write_in_flight_) return;
    if (!send_node_id_ && acked_ <= written_ack_) return;
    write_buf_.Clear();
    if (send_node_id_) write_buf_.set_node_id(own_node_id_);
    write_buf_.set_acked(acked_);
    send_node_id_ = false;
    written_ack_ = acked_;
    write_in_flight_ = true;
    StartWrite(&write_buf_);
  }

  Impl* const impl_;  // not used once finished_ (late `done` callbacks)
  const std::string own_node_id_;
  std::shared_ptr<InboundLink> self_;  // dropped by OnDone

  // Reactions only (one read at a time), or the up event while no read is pending.
  FrameBatch read_buf_;
  bool hello_seen_ = false;
  uint64_t last_seq_ = 0;
  std::string peer_;       // set at Hello (under mu_), then read-only
  std::string advertise_;  // likewise

  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool send_node_id_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t written_ack_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<bool> completed_ ABSL_GUARDED_BY(mu_);
  absl::Time last_read_ ABSL_GUARDED_BY(mu_);
  LinkReply write_buf_ ABSL_GUARDED_BY(mu_);
};

// ------------------------------------------------------------------------------------------
// Service

grpc::ServerBidiReactor<FrameBatch, LinkReply>* Transport::Impl::Service::Link(
    grpc::CallbackServerContext* context) {
  impl_->EnterCall(/*refusable=*/false);
  auto link = std::make_shared<InboundLink>(impl_);
  link->Start(link);
  return link.get();
}

grpc::ServerUnaryReactor* Transport::Impl::Service::TakeSession(
    grpc::CallbackServerContext* context, const TakeSessionRequest* request,
    TakeSessionReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!impl_->EnterCall(/*refusable=*/true)) {
    reactor->Finish(Unavailable("node shutting down"));
    return reactor;
  }
  impl_->handler_->OnTakeSession(*request, reply, [reactor] { reactor->Finish(grpc::Status::OK); });
  impl_->CallEnded();
  return reactor;
}

// ------------------------------------------------------------------------------------------
// Calls and events

bool Transport::Impl::EnterCall(bool refusable) {
  absl::MutexLock lock(&life_mu_);
  if (refusable && closed_) return false;
  ++live_calls_;
  return true;
}

void Transport::Impl::CallEnded() {
  absl::MutexLock lock(&life_mu_);
  --live_calls_;
}

void Transport::Impl::PostEvent(std::function<void()> event) {
  life_mu_.Lock();
  events_.push_back(std::move(event));
  if (events_running_) {
    life_mu_.Unlock();
    return;
  }
  events_running_ = true;
  while (!events_.empty()) {
    {
      std::function<void()> next = std::move(events_.front());
      events_.pop_front();
      life_mu_.Unlock();
      next();
    }
    life_mu_.Lock();
  }
  events_running_ = false;
  life_mu_.Unlock();
}

// ------------------------------------------------------------------------------------------
// Start, Stop and the timer thread

absl::Status Transport::Impl::Start() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (started_ || stopped_)
    return absl::FailedPreconditionError("cluster: transport already started");
  if (config_.node_id.empty()) return absl::InvalidArgumentError("cluster: empty node id");
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&service_);
  for (grpc::Service* service : extra_services_) builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  // Two nodes must not share a port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cluster: cannot listen on ", config_.listen));
  }
  started_ = true;
  std::string listen_host = HostOf(config_.listen);
  advertise_ = config_.advertise;
  if (advertise_.empty()) {
    advertise_ =
        absl::StrCat(IsWildcardHost(listen_host) ? ThisHostName() : listen_host, ":", port_);
  }
  {
    absl::MutexLock lock(&mu_);
    self_addresses_.insert(advertise_);
    if (!IsWildcardHost(listen_host)) self_addresses_.insert(absl::StrCat(listen_host, ":", port_));
    for (const std::string& seed : config_.seeds) AddAddressLocked(seed);
  }
  Log(LogLevel::kInfo, "meshmqd: cluster: node %s listening on port %d, advertised as %s",
      config_.node_id.c_str(), port_, advertise_.c_str());
  timer_ = std::thread([this] { TimerLoop(); });
  if (!config_.peers_dns.empty()) dns_ = std::thread([this] { DnsLoop(); });
  return absl::OkStatus();
}

void Transport::Impl::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&life_mu_);
    closed_ = true;
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    timer_cv_.SignalAll();
    dns_cv_.SignalAll();
  }
  if (timer_.joinable()) timer_.join();
  if (dns_.joinable()) dns_.join();  // at worst, after one slow lookup
  std::vector<std::shared_ptr<OutboundLink>> outbound;
  std::vector<std::shared_ptr<InboundLink>> inbound;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [address, dialler] : diallers_) {
      if (dialler->link != nullptr) outbound.push_back(dialler->link);
    }
    for (auto& [ptr, link] : inbound_) inbound.push_back(link);
    // Their callbacks erase them under mu_ before freeing them.
    for (grpc::ClientContext* context : take_session_calls_) context->TryCancel();
  }
  for (auto& link : outbound) link->Cancel();
  for (auto& link : inbound) link->FinishOnce(Unavailable("node shutting down"));
  outbound.clear();
  inbound.clear();
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + kShutdownGrace));
  life_mu_.LockWhen(absl::Condition(this, &Impl::QuiescentLocked));
  life_mu_.Unlock();
  if (started_) Log(LogLevel::kInfo, "meshmqd: cluster: node %s stopped", config_.node_id.c_str());
}

Transport::Impl::Dialler* Transport::Impl::AddAddressLocked(const std::string& address) {
  if (stopping_ || address.empty() || self_addresses_.count(address) > 0) return nullptr;
  if (auto it = diallers_.find(address); it != diallers_.end()) return it->second.get();
  auto dialler = std::make_shared<Dialler>(address);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(kInitialBackoff)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(kMaxBackoff)));
  // Our own connection per address: two transports in one process (tests) must not share.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);  // a TakeSession reply carries a whole session
  dialler->channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  dialler->stub = Cluster::NewStub(dialler->channel);
  Dialler* added = dialler.get();
  diallers_.emplace(address, std::move(dialler));
  timer_cv_.Signal();
  return added;
}

template <typename Addresses>
void Transport::Impl::LearnAddresses(const std::string& node, const std::string& advertise,
                                     const Addresses& members) {
  absl::MutexLock lock(&mu_);
  if (Dialler* dialler = AddAddressLocked(advertise);
      dialler != nullptr && dialler->node_id.empty()) {
    // The node said this address is its own: no need to dial it while we reach that node
    // another way (a second stream from us would replace the first on its side).
    dialler->node_id = node;
  }
  for (const std::string& member : members) AddAddressLocked(member);
}

// What we tell peers: one address for each node we are linked with, the one it advertises if
// we know it. Not the seeds: one that has not answered may be an alias of ourselves or of a
// node the listener already reaches, and dialling an alias costs both links a reconnect.
std::vector<std::string> Transport::Impl::MembersLocked() const {
  std::set<std::string> members;
  for (const auto& [node, link] : inbound_by_node_) {
    if (!link->advertise().empty()) members.insert(link->advertise());
  }
  for (const auto& [node, link] : up_) {
    auto inbound = inbound_by_node_.find(node);
    if (inbound == inbound_by_node_.end() || inbound->second->advertise().empty()) {
      members.insert(link->dialler()->address);
    }
  }
  std::vector<std::string> out;
  for (const std::string& member : members) {
    if (self_addresses_.count(member) == 0) out.push_back(member);
  }
  return out;
}

// Not ourselves, not being dialled, and not a node we already reach (or are dialling) through
// another of its addresses.
bool Transport::Impl::DialableLocked(const Dialler& dialler) const {
  if (dialler.self || dialler.link != nullptr) return false;
  if (dialler.node_id.empty()) return true;
  if (up_.contains(dialler.node_id)) return false;
  for (const auto& [address, other] : diallers_) {
    if (other.get() != &dialler && other->link != nullptr && other->node_id == dialler.node_id) {
      return false;
    }
  }
  return true;
}

void Transport::Impl::TimerLoop() {
  const absl::Duration tick_interval =
      std::max(config_.heartbeat_interval / 2, absl::Milliseconds(1));
  absl::Time next_tick = absl::Now();
  for (;;) {
    std::vector<std::shared_ptr<OutboundLink>> dials;
    std::vector<std::shared_ptr<OutboundLink>> outbound;
    std::vector<std::shared_ptr<InboundLink>> inbound;
    std::vector<std::string> members;
    bool tick = false;
    absl::Time now;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (stopping_) return;
        now = absl::Now();
        absl::Time wake = next_tick;
        for (const auto& [address, dialler] : diallers_) {
          if (DialableLocked(*dialler)) wake = std::min(wake, dialler->next_dial);
        }
        if (wake <= now) break;
        timer_cv_.WaitWithDeadline(&mu_, wake);
      }
      for (auto& [address, dialler] : diallers_) {
        if (DialableLocked(*dialler) && dialler->next_dial <= now) {
          dialler->link = std::make_shared<OutboundLink>(this, dialler);
          dials.push_back(dialler->link);
        }
      }
      if (now >= next_tick) {
        tick = true;
        next_tick = now + tick_interval;
        for (auto& [address, dialler] : diallers_) {
          if (dialler->link != nullptr) outbound.push_back(dialler->link);
        }
        for (auto& [ptr, link] : inbound_) inbound.push_back(link);
      }
      if (tick || !dials.empty()) members = MembersLocked();
    }
    for (auto& link : dials) {
      EnterCall(/*refusable=*/false);
      link->Start(link, members);
    }
    if (tick) {
      for (auto& link : outbound) link->Tick(now, members);
      for (auto& link : inbound) link->CheckTimeout(now);
    }
  }
}

void Transport::Impl::DnsLoop() {
  for (;;) {
    std::vector<std::string> peers = ResolvePeers(config_.peers_dns, config_.peers_dns_port);
    absl::MutexLock lock(&mu_);
    for (const std::string& peer : peers) AddAddressLocked(peer);
    absl::Time next = absl::Now() + config_.dns_interval;
    while (!stopping_ && absl::Now() < next) dns_cv_.WaitWithDeadline(&mu_, next);
    if (stopping_) return;
  }
}

// ------------------------------------------------------------------------------------------
// Outbound link events

bool Transport::Impl::LinkNamed(const std::shared_ptr<OutboundLink>& link,
                                const std::string& node) {
  const std::string& address = link->dialler()->address;
  bool self = false;
  {
    absl::MutexLock lock(&mu_);
    Dialler& dialler = *link->dialler();
    if (node.empty()) {
      Log(LogLevel::kWarning, "meshmqd: cluster: %s did not say its node id", address.c_str());
      return false;
    }
    if (node == config_.node_id) {
      dialler.self = true;
      self_addresses_.insert(address);
      self = true;
    } else {
      dialler.node_id = node;
      if (stopping_) return false;
      if (!up_.try_emplace(node, link).second) return false;  // linked via another address
      link->MarkUp(node);
      stats_.links_up.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (self) {
    // Also what two nodes given the same --node_id see of each other.
    Log(LogLevel::kInfo, "meshmqd: cluster: %s is this node (%s): not dialled again",
        address.c_str(), node.c_str());
    return false;
  }
  Log(LogLevel::kDebug, "meshmqd: cluster: link to %s (%s) up", node.c_str(), address.c_str());
  PostEvent([this, link, node] {
    std::vector<Frame> snapshot;
    handler_->OnOutboundUp(node, &snapshot);
    link->InsertSnapshot(std::move(snapshot));
  });
  return true;
}

void Transport::Impl::LinkEnded(const std::shared_ptr<OutboundLink>& link, bool was_up,
                                const std::string& peer, const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    Dialler& dialler = *link->dialler();
    if (dialler.link == link) dialler.link.reset();
    if (was_up) {
      auto it = up_.find(peer);
      if (it != up_.end() && it->second == link) up_.erase(it);
      dialler.backoff = kInitialBackoff;
      stats_.links_down.fetch_add(1, std::memory_order_relaxed);
    }
    dialler.next_dial = absl::Now() + dialler.backoff;
    dialler.backoff = std::min(dialler.backoff * 2, kMaxBackoff);
    timer_cv_.Signal();
  }
  if (was_up) {
    Log(LogLevel::kInfo, "meshmqd: cluster: link to %s (%s) down: %s", peer.c_str(),
        link->dialler()->address.c_str(),
        status.error_message().empty() ? "stream ended" : status.error_message().c_str());
  }
}

void Transport::Impl::EndLinkCall(bool was_up, std::string peer,
                                  std::vector<std::function<void(bool)>> failed) {
  if (!was_up) {
    CallEnded();
    return;
  }
  PostEvent([this, peer = std::move(peer), failed = std::move(failed)]() mutable {
    for (auto& on_ack : failed) on_ack(false);
    failed.clear();  // what the callbacks hold goes before Stop can return
    handler_->OnOutboundDown(peer);
    CallEnded();
  });
}

// ------------------------------------------------------------------------------------------
// Inbound stream events

bool Transport::Impl::RegisterInbound(const std::shared_ptr<InboundLink>& link) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  inbound_.emplace(link.get(), link);
  return true;
}

void Transport::Impl::InboundHello(const std::shared_ptr<InboundLink>& link) {
  const std::string& peer = link->peer();
  std::shared_ptr<InboundLink> old;
  std::vector<std::shared_ptr<grpc::Channel>> redial;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      // Stop finishes every registered stream; this one is registered.
      return;
    }
    auto [it, inserted] = inbound_by_node_.try_emplace(peer, link);
    if (!inserted) {
      old = std::move(it->second);
      it->second = link;
    }
    if (!up_.contains(peer)) {
      // The peer is back (a restart) while our dials to it wait out their backoff: dial now.
      // Until our link is up, what we forward to it is not sent, and the publishers wait.
      const absl::Time now = absl::Now();
      for (auto& [address, dialler] : diallers_) {
        if (dialler->self || dialler->link != nullptr) continue;
        if (address != link->advertise() && dialler->node_id != peer) continue;
        dialler->next_dial = now;
        dialler->backoff = kInitialBackoff;
        redial.push_back(dialler->channel);
      }
      if (!redial.empty()) timer_cv_.Signal();
    }
  }
  // gRPC's own reconnect backoff too, or the new dial fails at once on the old failure.
  for (const auto& channel : redial) {
    grpc::experimental::ChannelResetConnectionBackoff(channel.get());
  }
  if (old != nullptr) old->FinishOnce(Unavailable("replaced by a newer link from the same node"));
  Log(LogLevel::kDebug, "meshmqd: cluster: link from %s (%s) up", peer.c_str(),
      link->advertise().c_str());
  PostEvent([this, link, peer, replaced = old != nullptr] {
    if (replaced) handler_->OnInboundDown(peer);
    handler_->OnInboundUp(peer);
    link->ProcessFrames(link, 1);
  });
}

void Transport::Impl::InboundEnded(const std::shared_ptr<InboundLink>& link) {
  bool was_up = false;
  {
    absl::MutexLock lock(&mu_);
    inbound_.erase(link.get());
    if (!link->peer().empty()) {
      auto it = inbound_by_node_.find(link->peer());
      if (it != inbound_by_node_.end() && it->second == link) {
        inbound_by_node_.erase(it);
        was_up = true;
      }
    }
  }
  if (!was_up) {
    CallEnded();
    return;
  }
  Log(LogLevel::kInfo, "meshmqd: cluster: link from %s down", link->peer().c_str());
  PostEvent([this, peer = link->peer()] {
    handler_->OnInboundDown(peer);
    CallEnded();
  });
}

// ------------------------------------------------------------------------------------------
// The public face

Transport::SendResult Transport::Impl::Send(const std::string& peer, Frame frame,
                                            std::function<void(bool)> on_ack, bool droppable) {
  std::shared_ptr<OutboundLink> link;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = up_.find(peer);
    if (it == up_.end()) return SendResult::kNotUp;
    link = it->second;
  }
  return link->Queue(std::move(frame), std::move(on_ack), droppable);
}

std::vector<std::string> Transport::Impl::UpPeers() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> peers;
  peers.reserve(up_.size());
  for (const auto& [node, link] : up_) peers.push_back(node);
  std::sort(peers.begin(), peers.end());
  return peers;
}

std::vector<Transport::LinkStats> Transport::Impl::OutboundLinkStats() const {
  std::vector<std::pair<std::string, std::shared_ptr<OutboundLink>>> links;
  {
    absl::ReaderMutexLock lock(&mu_);
    links.assign(up_.begin(), up_.end());
  }
  std::sort(links.begin(), links.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const absl::Time now = absl::Now();
  std::vector<LinkStats> stats(links.size());
  for (size_t i = 0; i < links.size(); ++i) {
    stats[i].peer = links[i].first;
    links[i].second->PendingStats(now, &stats[i]);  // outside mu_: the link's lock alone
  }
  return stats;
}

std::vector<Transport::PeerInfo> Transport::Impl::Peers() const {
  absl::ReaderMutexLock lock(&mu_);
  std::map<std::string, PeerInfo> by_node;
  std::vector<PeerInfo> unnamed;
  for (const auto& [address, dialler] : diallers_) {
    if (dialler->self) continue;
    if (dialler->node_id.empty()) {
      unnamed.push_back(PeerInfo{std::string(), address, false, false});
      continue;
    }
    PeerInfo& info = by_node[dialler->node_id];
    info.node_id = dialler->node_id;
    auto up = up_.find(dialler->node_id);
    const bool this_link_up = up != up_.end() && up->second->dialler() == dialler;
    if (info.address.empty() || this_link_up) info.address = address;
    info.outbound_up = info.outbound_up || this_link_up;
  }
  for (const auto& [node, link] : inbound_by_node_) {
    PeerInfo& info = by_node[node];
    info.node_id = node;
    if (info.address.empty()) info.address = link->advertise();
    info.inbound_up = true;
  }
  std::vector<PeerInfo> peers;
  for (auto& [node, info] : by_node) peers.push_back(std::move(info));
  for (PeerInfo& info : unnamed) peers.push_back(std::move(info));
  return peers;
}

void Transport::Impl::TakeSessionFromPeers(
    const TakeSessionRequest& request, std::function<void(std::vector<TakeSessionReply>)> done) {
  struct Gather {
    absl::Mutex mu;
    size_t remaining;
    std::vector<TakeSessionReply> replies;
    std::function<void(std::vector<TakeSessionReply>)> done;
    // One call in: runs `done` if it was the last.
    void Add(TakeSessionReply* reply) {
      std::vector<TakeSessionReply> all;
      {
        absl::MutexLock lock(&mu);
        if (reply != nullptr) replies.push_back(std::move(*reply));
        if (--remaining > 0) return;
        all = std::move(replies);
      }
      done(std::move(all));
    }
  };
  struct Call {
    grpc::ClientContext context;
    TakeSessionRequest request;
    TakeSessionReply reply;
  };
  std::vector<Cluster::Stub*> stubs;  // the diallers (and their stubs) live as long as we do
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!stopping_) {
      for (const auto& [node, link] : up_) stubs.push_back(link->dialler()->stub.get());
    }
  }
  if (stubs.empty()) {
    done({});
    return;
  }
  auto gather = std::make_shared<Gather>();
  gather->remaining = stubs.size();
  gather->done = std::move(done);
  for (Cluster::Stub* stub : stubs) {
    auto* call = new Call;
    call->request = request;
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + config_.peer_timeout));
    bool entered = EnterCall(/*refusable=*/true);
    bool registered = false;
    if (entered) {
      absl::MutexLock lock(&mu_);
      if (!stopping_) {
        take_session_calls_.insert(&call->context);
        registered = true;
      }
    }
    if (!registered) {
      delete call;
      gather->Add(nullptr);
      if (entered) CallEnded();
      continue;
    }
    stub->async()->TakeSession(&call->context, &call->request, &call->reply,
                               [this, call, gather](grpc::Status status) {
                                 {
                                   absl::MutexLock lock(&mu_);
                                   take_session_calls_.erase(&call->context);
                                 }
                                 if (!status.ok()) {
                                   call->reply.Clear();
                                   call->reply.set_unanswered(true);
                                 }
                                 gather->Add(&call->reply);
                                 delete call;
                                 CallEnded();
                               });
  }
}

// ------------------------------------------------------------------------------------------

Transport::Transport(TransportConfig config, Handler* handler)
    : impl_(std::make_unique<Impl>(std::move(config), handler)) {}
Transport::~Transport() { impl_->Stop(); }
absl::Status Transport::Start() { return impl_->Start(); }
void Transport::Stop() { impl_->Stop(); }
int Transport::port() const { return impl_->port(); }
const std::string& Transport::node_id() const { return impl_->node_id(); }
Transport::SendResult Transport::Send(const std::string& peer, Frame frame,
                                      std::function<void(bool)> on_ack, bool droppable) {
  return impl_->Send(peer, std::move(frame), std::move(on_ack), droppable);
}
std::vector<std::string> Transport::UpPeers() const { return impl_->UpPeers(); }
void Transport::TakeSessionFromPeers(const TakeSessionRequest& request,
                                     std::function<void(std::vector<TakeSessionReply>)> done) {
  impl_->TakeSessionFromPeers(request, std::move(done));
}
const TransportStats& Transport::stats() const { return impl_->stats(); }
void Transport::AddService(grpc::Service* service) { impl_->AddService(service); }
std::vector<Transport::PeerInfo> Transport::Peers() const { return impl_->Peers(); }
std::vector<Transport::LinkStats> Transport::OutboundLinkStats() const {
  return impl_->OutboundLinkStats();
}
void Transport::AddPeer(const std::string& address) { impl_->AddPeer(address); }

}  // namespace meshmq::cluster
