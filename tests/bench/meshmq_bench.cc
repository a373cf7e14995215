// meshmq_bench: a single-process MQTT 3.1.1 / MQTT 5 load generator for meshmqd and any other
// broker.
//
// It shares the machine with the broker under test, so it is deliberately lean: one epoll loop per
// --threads (default 1), non-blocking sockets, edge-triggered events, writes batched per wake-up.
// The main thread only orchestrates phases (connect, subscribe, run, drain, close) by polling
// shared counters against deadlines; it never touches a socket.
//
// Scenarios (each prints one human line and one machine-readable `RESULT key=value ...` line):
//   fanin    --connections publishers (default 16) -> 1 subscriber on "<prefix>/fanin/#".
//            Each publisher keeps at most --window messages that the subscriber has not yet
//            received (and, at QoS 1, at most --inflight unacknowledged PUBLISHes), so publishers
//            go exactly as fast as the subscriber keeps up and no queue grows without bound.
//   fanout   1 publisher -> --connections subscribers (default 1000) on one topic. The window
//            counts deliveries: at most --window messages times the subscriber count outstanding.
//            Reports deliveries/s summed over subscribers and whether every subscriber got all.
//   latency  1 publisher -> 1 subscriber at a fixed --rate (default 1000 msg/s); p50/p99/max.
//   idle     --connections idle clients (default 19000): CONNECT with keepalive 300, wait CONNACK,
//            hold, and report the broker's VmRSS growth per connection (needs --broker_pid).
//
// --mqtt_version=5 speaks MQTT 5 on every connection: CONNECT with Receive Maximum (so the broker's
// outbound window is --receive_maximum, as --max_inflight / max_inflight_messages is for 3.1.1),
// SUBSCRIBE and PUBLISH with a property block (PUBLISH carries --user_properties pairs), and every
// packet from the broker decoded as level 5. A publisher honours the Receive Maximum of CONNACK.
// The 3.1.1 path is unchanged: the level is only an argument to the codec.
//
// --persistent_subscribers makes every subscriber a persistent session: Clean Session 0 at 3.1.1,
// Clean Start 0 with Session Expiry Interval --session_expiry at MQTT 5, each under its own client
// id (unique per run: the prefix is a nonce), so a broker with persistence stores what it queues
// for them. A CONNACK with Session Present set (a stale session) is an error in the RESULT line.
// The sessions are left on the broker when the bench exits; run_persistence_bench.sh starts every
// broker on an empty data directory.
//
// Every payload starts with a 16-byte header: CLOCK_MONOTONIC send time in ns (8 bytes), publisher
// index (4), sequence number (4). The bench is one process, so latency is exact without clock sync,
// and the subscriber can credit each delivery to its publisher's window and check ordering.
//
// Only 127.0.0.0/8 is allowed as --host: this is a local benchmark. Client sockets are bound to
// 127.0.0.2..127.0.0.(1+--source_addrs) with IP_BIND_ADDRESS_NO_PORT, so the ephemeral port is
// picked per 4-tuple at connect() and 19000+ connections to one port never exhaust it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/codec/codec.h"
#include "node/codec/packet.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Broker address; must be in 127.0.0.0/8.");
ABSL_FLAG(int, port, 1883, "Broker MQTT port.");
ABSL_FLAG(int, subscriber_port, 0,
          "If set, subscribers connect to this port instead of --port: another node of a cluster "
          "(publishers on one node, subscribers on another).");
ABSL_FLAG(std::string, scenario, "fanin", "fanin | fanout | latency | idle");
ABSL_FLAG(int, qos, 0, "QoS of publishes and subscriptions: 0 or 1.");
ABSL_FLAG(int, payload, 64, "Payload size in bytes (at least 16: the timestamp header).");
ABSL_FLAG(double, duration, 10, "Measured seconds (after --warmup). Ignored when --messages > 0.");
ABSL_FLAG(double, warmup, 1, "Seconds of load before measuring starts.");
ABSL_FLAG(int64_t, messages, 0,
          "If > 0, publish exactly this many messages in total (split across publishers) and "
          "measure from the first send until all are received; --duration is then the time "
          "limit.");
ABSL_FLAG(double, rate, 0,
          "Total publish rate in msg/s over all publishers; 0 = as fast as the window allows. "
          "The latency scenario defaults to 1000.");
ABSL_FLAG(int, connections, 0,
          "fanin: publishers (default 16); fanout: subscribers (default 1000); idle: connections "
          "(default 19000). Unused by latency.");
ABSL_FLAG(int, window, 0,
          "Per publisher: max messages sent but not yet received by every subscriber. Default: "
          "100 for fanin, 10 for fanout (10 x subscribers deliveries), 1000 for latency.");
ABSL_FLAG(
    int, inflight, 20,
    "QoS 1: max PUBLISHes a publisher has awaiting PUBACK (a client's in-flight window; 20 is "
    "libmosquitto's and paho's default).");
ABSL_FLAG(int, threads, 1, "Event-loop threads; connections are spread round-robin.");
ABSL_FLAG(int, broker_pid, 0, "If set, read the broker's VmRSS and CPU time from /proc.");
ABSL_FLAG(int, source_addrs, 32, "Bind client sockets to 127.0.0.2 .. 127.0.0.(1+N); 0 = don't.");
ABSL_FLAG(int, connect_concurrency, 256, "Max connections in TCP/CONNECT handshake at once.");
ABSL_FLAG(double, connect_timeout, 60, "Seconds allowed to connect (and subscribe) everything.");
ABSL_FLAG(double, drain_timeout, 5,
          "Seconds to wait for in-flight messages after publishing stops.");
ABSL_FLAG(double, idle_hold, 2, "idle: seconds to hold all connections before reading RSS again.");
ABSL_FLAG(int, keepalive, 300, "Keepalive seconds sent in CONNECT.");
ABSL_FLAG(double, stall_timeout, 1,
          "Seconds without any delivery progress after which a publisher writes off its "
          "outstanding window (counted as a stall) instead of waiting forever for lost messages.");
ABSL_FLAG(int, mqtt_version, 4,
          "Protocol level of every connection: 4 (MQTT 3.1.1) or 5 (MQTT 5).");
ABSL_FLAG(int, user_properties, 0,
          "MQTT 5: user properties (small key/value pairs) attached to every PUBLISH.");
ABSL_FLAG(int, receive_maximum, 20,
          "MQTT 5: Receive Maximum sent in CONNECT, the broker's window of unacknowledged QoS 1 "
          "deliveries to this client (20 matches meshmqd's --max_inflight and Mosquitto's "
          "max_inflight_messages of run_bench.sh); 0 = leave it out (the spec's default 65535).");
ABSL_FLAG(bool, persistent_subscribers, false,
          "Subscribers connect as persistent sessions: Clean Session 0 (3.1.1), or Clean Start 0 "
          "with Session Expiry Interval --session_expiry (MQTT 5). Publishers stay clean.");
ABSL_FLAG(
    int, session_expiry, 3600,
    "MQTT 5 with --persistent_subscribers: Session Expiry Interval (seconds) of subscribers.");
ABSL_FLAG(std::string, label, "", "Free text copied into the RESULT line as label=...");

namespace meshmq::bench {
namespace {

namespace codec = ::meshmq::codec;

constexpr size_t kPayloadHeader = 16;
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxPacket = 16 * 1024 * 1024;
constexpr size_t kMaxPendingOut = 256 * 1024;  // stop producing while this much is unsent
constexpr int kMaxSendsPerPump = 256;          // fairness between publishers in one wake-up
constexpr int kMaxReadsPerEvent = 32;          // fairness between connections in one wake-up

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void SleepNs(int64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  nanosleep(&ts, nullptr);
}

// Log-linear histogram of nanosecond values: exact below 128 ns, then 64 sub-buckets per power of
// two (about 1.6% resolution). Fixed size, so recording millions of samples costs no allocation.
class Histogram {
 public:
  void Record(int64_t v) {
    if (v < 0) v = 0;
    ++buckets_[Index(static_cast<uint64_t>(v))];
    ++count_;
    max_ = std::max(max_, v);
  }
  void Merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
  }
  uint64_t count() const { return count_; }
  int64_t max() const { return max_; }
  // The value at quantile q (0..1), as the midpoint of its bucket, capped at the exact max.
  int64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(Midpoint(i), max_);
    }
    return max_;
  }

 private:
  static constexpr size_t kBuckets = 128 + 57 * 64;
  static size_t Index(uint64_t v) {
    if (v < 128) return v;
    int e = 63 - __builtin_clzll(v);  // 7..63
    uint64_t sub = (v >> (e - 6)) - 64;
    return 128 + static_cast<size_t>(e - 7) * 64 + sub;
  }
  static int64_t Midpoint(size_t i) {
    if (i < 128) return static_cast<int64_t>(i);
    size_t e = (i - 128) / 64 + 7, sub = (i - 128) % 64;
    uint64_t lo = (64 + sub) << (e - 6), width = uint64_t{1} << (e - 6);
    return static_cast<int64_t>(lo + width / 2);
  }
  std::vector<uint64_t> buckets_ = std::vector<uint64_t>(kBuckets, 0);
  uint64_t count_ = 0;
  int64_t max_ = 0;
};

enum class Scenario { kFanin, kFanout, kLatency, kIdle };

struct Config {
  Scenario scenario = Scenario::kFanin;
  std::string scenario_name;
  in_addr host{};
  int port = 0;
  int subscriber_port = 0;  // 0: --port
  int qos = 0;
  codec::ProtocolVersion version = codec::ProtocolVersion::kV311;
  int user_properties = 0;  // MQTT 5 only
  int receive_maximum = 0;  // MQTT 5 only; 0 = not sent
  bool persistent_subscribers = false;
  uint32_t session_expiry = 0;  // MQTT 5 persistent subscribers only
  size_t payload = 64;
  int publishers = 0;
  int subscribers = 0;
  int idle = 0;
  double rate = 0;  // total msg/s, 0 = unlimited
  int64_t messages = 0;
  int window = 100;
  int inflight = 20;
  int threads = 1;
  int source_addrs = 0;
  int connect_concurrency = 256;
  int keepalive = 300;
  int64_t stall_ns = 0;
  std::string topic_prefix;
  std::string client_prefix;
};

enum Phase : int { kSetup = 0, kConnect, kRun, kDrain, kClose };

// Padded so that counters written by different loops never share a cache line.
struct alignas(64) PaddedCounter {
  std::atomic<uint64_t> value{0};
};

// THREADING: written by the loop threads with relaxed atomics, read by the main thread. Each
// publisher's `delivered` counter is incremented by whichever loop owns the subscriber and read
// by the loop that owns the publisher.
struct Shared {
  std::atomic<int> phase{kSetup};
  std::atomic<int64_t> run_start_ns{0};
  std::atomic<int64_t> measure_start_ns{INT64_MAX};
  std::atomic<int64_t> measure_end_ns{INT64_MAX};
  std::atomic<int64_t> last_receive_ns{0};
  std::atomic<uint64_t> connacked{0}, subacked{0}, failed{0}, dropped{0};
  std::atomic<uint64_t> sent{0}, received{0}, gaps{0}, duplicates{0}, stalls{0};
  std::unique_ptr<PaddedCounter[]> delivered;  // per publisher, deliveries over all subscribers
  std::string first_error;                     // written once under first_error_taken
  std::atomic<bool> first_error_taken{false};

  void Error(std::string what) {
    if (!first_error_taken.exchange(true)) first_error = std::move(what);
  }
};

enum class Role { kPublisher, kSubscriber, kIdle };

struct Conn {
  enum class State { kPending, kConnecting, kWaitConnack, kWaitSuback, kReady, kClosed };
  State state = State::kPending;
  Role role = Role::kIdle;
  int index = 0;  // publisher index for publishers, subscriber index for subscribers
  int fd = -1;
  std::string client_id;
  std::string in;  // a partial packet carried over between reads
  std::string out;
  size_t out_off = 0;
  std::string topic;  // publishers: the topic; subscribers: the filter
  // Publisher state.
  std::string payload;
  uint64_t sent = 0;
  uint64_t quota = 0;  // 0 = unlimited
  uint32_t unacked = 0;
  uint32_t inflight_limit = 0;  // --inflight, or the broker's Receive Maximum if lower (MQTT 5)
  uint16_t next_packet_id = 0;
  uint64_t forgiven = 0;  // deliveries written off after a stall
  uint64_t last_seen_delivered = 0;
  int64_t last_progress_ns = 0;
  // Subscriber state: next expected sequence number per publisher.
  std::vector<uint32_t> next_seq;
  bool readable_again = false;  // queued in Loop::again_ for another read
};

class Loop {
 public:
  Loop(const Config& cfg, Shared* shared, int id)
      : cfg_(cfg), shared_(shared), source_counter_(static_cast<uint64_t>(id)) {
    for (int i = 0; i < cfg.user_properties; ++i)
      publish_properties_.user_properties.emplace_back(absl::StrCat("k", i), absl::StrCat("v", i));
  }
  ~Loop() {
    for (auto& c : conns_)
      if (c->fd >= 0) close(c->fd);
    if (timer_fd_ >= 0) close(timer_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  void Add(std::unique_ptr<Conn> c) {
    if (c->role == Role::kPublisher) publishers_.push_back(c.get());
    conns_.push_back(std::move(c));
  }
  const Histogram& histogram() const { return histogram_; }

  void Run() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      shared_->Error(absl::StrCat("epoll_create1: ", strerror(errno)));
      return;
    }
    // A rate-limited publisher is paced by a 100 us tick; with several loops, a publisher also
    // needs a tick to notice deliveries credited by another loop's subscriber.
    if (cfg_.rate > 0 || cfg_.threads > 1) {
      timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
      itimerspec spec{};
      spec.it_interval.tv_nsec = cfg_.rate > 0 ? 100'000 : 200'000;
      spec.it_value = spec.it_interval;
      timerfd_settime(timer_fd_, 0, &spec, nullptr);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = nullptr;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev);
    }
    std::vector<epoll_event> events(512);
    std::vector<Conn*> again;
    while (true) {
      int phase = shared_->phase.load(std::memory_order_acquire);
      if (phase == kClose) break;
      if (phase >= kConnect) StartConnects();
      if (phase == kRun) PumpAll();
      int timeout_ms = again_.empty() ? 5 : 0;
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) {
        shared_->Error(absl::StrCat("epoll_wait: ", strerror(errno)));
        break;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr) {
          uint64_t expirations;
          (void)!read(timer_fd_, &expirations, sizeof expirations);
          continue;
        }
        HandleEvent(static_cast<Conn*>(events[i].data.ptr), events[i].events);
      }
      again.swap(again_);
      again_.clear();
      for (Conn* c : again) {
        c->readable_again = false;
        if (c->state != Conn::State::kClosed) OnReadable(c);
      }
      again.clear();
    }
    CloseAll();
  }

 private:
  // ---- connection setup -------------------------------------------------------------------
  void StartConnects() {
    while (next_to_start_ < conns_.size() && in_handshake_ < per_loop_concurrency()) {
      Conn* c = conns_[next_to_start_++].get();
      StartConnect(c);
    }
  }
  int per_loop_concurrency() const {
    return std::max(1, cfg_.connect_concurrency / std::max(1, cfg_.threads));
  }

  void StartConnect(Conn* c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return Fail(c, absl::StrCat("socket: ", strerror(errno)));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg_.source_addrs > 0) {
      setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in src{};
      src.sin_family = AF_INET;
      // 127.0.0.2 .. 127.0.0.(1+N), spread by connection order.
      uint32_t host = 0x7f000002u + static_cast<uint32_t>(source_counter_++ % cfg_.source_addrs);
      source_counter_ += cfg_.threads - 1;  // loops interleave, keep the spread even
      src.sin_addr.s_addr = htonl(host);
      if (bind(c->fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0)
        return Fail(c, absl::StrCat("bind source address: ", strerror(errno)));
    }
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    const int port = c->role == Role::kSubscriber && cfg_.subscriber_port != 0
                         ? cfg_.subscriber_port
                         : cfg_.port;
    dst.sin_port = htons(static_cast<uint16_t>(port));
    dst.sin_addr = cfg_.host;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev) != 0)
      return Fail(c, absl::StrCat("epoll_ctl: ", strerror(errno)));
    ++in_handshake_;
    c->state = Conn::State::kConnecting;
    if (connect(c->fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0) {
      SendConnect(c);
    } else if (errno != EINPROGRESS) {
      Fail(c, absl::StrCat("connect: ", strerror(errno)));
    }
  }

  void SendConnect(Conn* c) {
    codec::Connect connect;
    const bool persistent = cfg_.persistent_subscribers && c->role == Role::kSubscriber;
    connect.clean_session = !persistent;
    connect.keep_alive = static_cast<uint16_t>(cfg_.keepalive);
    connect.client_id = c->client_id;
    connect.version = cfg_.version;
    if (v5() && cfg_.receive_maximum > 0)
      connect.properties.Mutable().receive_maximum = static_cast<uint16_t>(cfg_.receive_maximum);
    if (v5() && persistent)
      connect.properties.Mutable().session_expiry_interval = cfg_.session_expiry;
    codec::Encode(codec::Packet{std::move(connect)}, cfg_.version, &c->out);
    c->state = Conn::State::kWaitConnack;
    Flush(c);
  }

  // A connection that could not be set up, or that the broker closed before the scenario ended.
  void Fail(Conn* c, std::string what) {
    bool handshaking = c->state == Conn::State::kConnecting ||
                       c->state == Conn::State::kWaitConnack ||
                       c->state == Conn::State::kWaitSuback || c->state == Conn::State::kPending;
    if (c->state == Conn::State::kConnecting || c->state == Conn::State::kWaitConnack)
      --in_handshake_;
    if (handshaking) {
      shared_->failed.fetch_add(1, std::memory_order_relaxed);
    } else if (shared_->phase.load(std::memory_order_relaxed) < kClose) {
      shared_->dropped.fetch_add(1, std::memory_order_relaxed);
    }
    shared_->Error(absl::StrCat(c->client_id, ": ", what));
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = Conn::State::kClosed;
  }

  // ---- I/O --------------------------------------------------------------------------------
  void HandleEvent(Conn* c, uint32_t events) {
    if (c->state == Conn::State::kClosed) return;
    if (c->state == Conn::State::kConnecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return Fail(c, absl::StrCat("connect: ", strerror(err)));
      SendConnect(c);
      if (c->state == Conn::State::kClosed) return;
    }
    if (events & EPOLLOUT) Flush(c);
    if (c->state != Conn::State::kClosed && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
      OnReadable(c, /*until_eof=*/(events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0);
  }

  // Reads and handles what the socket holds. A short read means the socket was drained, and with
  // edge triggering any later byte raises a new event, so the confirming EAGAIN read is skipped,
  // except when the peer hung up: then read on until EOF so the close is seen now.
  void OnReadable(Conn* c, bool until_eof = true) {
    for (int reads = 0;; ++reads) {
      if (reads == kMaxReadsPerEvent) {
        // Edge-triggered: we owe this socket another read before it reports again.
        if (!c->readable_again) {
          c->readable_again = true;
          again_.push_back(c);
        }
        break;
      }
      ssize_t n = read(c->fd, read_buffer_.get(), kReadChunk);
      if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        return Fail(c, n == 0 ? "closed by broker" : absl::StrCat("read: ", strerror(errno)));
      }
      bool drained = static_cast<size_t>(n) < kReadChunk;
      std::string_view chunk(read_buffer_.get(), static_cast<size_t>(n));
      if (c->in.empty()) {
        // Common case: parse straight from the loop's buffer, keep only a partial packet.
        size_t used = 0;
        if (!ParsePackets(c, chunk, &used)) return;
        c->in.assign(chunk.substr(used));
      } else {
        c->in.append(chunk);
        size_t used = 0;
        if (!ParsePackets(c, c->in, &used)) return;
        c->in.erase(0, used);
      }
      if (drained && !until_eof) break;
    }
    Flush(c);
  }

  // Handles every complete packet at the front of `data`; `*used` is how many bytes they took.
  bool ParsePackets(Conn* c, std::string_view data, size_t* used) {
    while (true) {
      std::string_view rest = data.substr(*used);
      codec::Frame frame = codec::ParseFrame(rest, kMaxPacket);
      if (frame.status == codec::Frame::Status::kIncomplete) return true;
      if (frame.status != codec::Frame::Status::kComplete) {
        Fail(c, "malformed or oversized packet from broker");
        return false;
      }
      codec::DecodeResult result = codec::Decode(
          frame.first_byte, rest.substr(frame.header_size, frame.remaining_length), cfg_.version);
      *used += frame.total_size();
      if (auto* error = std::get_if<codec::DecodeError>(&result)) {
        Fail(c, absl::StrCat("undecodable packet from broker: ", error->what));
        return false;
      }
      if (!HandlePacket(c, std::get<codec::Packet>(result))) return false;
    }
  }

  void Flush(Conn* c) {
    while (c->out_off < c->out.size()) {
      ssize_t n = send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT (edge) will call again
        if (errno == EINTR) continue;
        return Fail(c, absl::StrCat("send: ", strerror(errno)));
      }
      c->out_off += static_cast<size_t>(n);
    }
    c->out.clear();
    c->out_off = 0;
  }

  // ---- protocol ---------------------------------------------------------------------------
  bool HandlePacket(Conn* c, codec::Packet& packet) {
    if (auto* publish = std::get_if<codec::Publish>(&packet)) {
      OnPublish(c, *publish);
      return true;
    }
    if (auto* connack = std::get_if<codec::Connack>(&packet)) {
      if (c->state != Conn::State::kWaitConnack) {
        Fail(c, "unexpected CONNACK");
        return false;
      }
      // 0 is both 3.1.1's Accepted and v5's Success.
      if (connack->return_code != codec::connack::kAccepted) {
        Fail(c, absl::StrCat("CONNACK refused, code ", connack->return_code));
        return false;
      }
      --in_handshake_;
      // Every client id is new, so a broker that remembers a session for it is reusing state.
      if (connack->session_present)
        shared_->Error(
            absl::StrCat(c->client_id, ": CONNACK with Session Present (stale session)"));
      c->inflight_limit = static_cast<uint32_t>(cfg_.inflight);
      // MQTT-3.3.4-7: a v5 client never has more unacknowledged QoS 1 PUBLISHes than this.
      if (auto limit = connack->properties->receive_maximum; limit && *limit > 0)
        c->inflight_limit = std::min<uint32_t>(c->inflight_limit, *limit);
      shared_->connacked.fetch_add(1, std::memory_order_relaxed);
      if (c->role == Role::kSubscriber) {
        codec::Subscribe subscribe;
        subscribe.packet_id = 1;
        codec::SubscribeTopic topic;
        topic.filter = c->topic;
        topic.qos = static_cast<uint8_t>(cfg_.qos);
        subscribe.topics.push_back(std::move(topic));
        codec::Encode(codec::Packet{std::move(subscribe)}, cfg_.version, &c->out);
        c->state = Conn::State::kWaitSuback;
      } else {
        c->state = Conn::State::kReady;
      }
      return true;
    }
    if (auto* suback = std::get_if<codec::Suback>(&packet)) {
      if (c->state != Conn::State::kWaitSuback || suback->return_codes.size() != 1 ||
          suback->return_codes[0] >= codec::kSubackFailure) {  // v5: any code >= 0x80
        Fail(c, "SUBSCRIBE refused or unexpected SUBACK");
        return false;
      }
      if (suback->return_codes[0] != cfg_.qos)
        shared_->Error(absl::StrCat(c->client_id, ": granted QoS ", suback->return_codes[0]));
      c->state = Conn::State::kReady;
      shared_->subacked.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (auto* ack = std::get_if<codec::Ack>(&packet)) {
      if (ack->type == codec::PacketType::kPuback && c->role == Role::kPublisher &&
          c->unacked > 0) {
        --c->unacked;
        // v5: 0x10 No matching subscribers is a success; >= 0x80 means the broker refused it.
        if (ack->reason_code >= codec::reason::kUnspecifiedError)
          shared_->Error(absl::StrCat(c->client_id, ": PUBACK reason code ", ack->reason_code));
        return true;
      }
      Fail(c, "unexpected acknowledgement");
      return false;
    }
    if (std::holds_alternative<codec::Pingresp>(packet)) return true;
    if (auto* disconnect = std::get_if<codec::Disconnect>(&packet)) {  // v5 only
      Fail(c, absl::StrCat("DISCONNECT from broker, reason code ", disconnect->reason_code));
      return false;
    }
    Fail(c, "unexpected packet from broker");
    return false;
  }

  void OnPublish(Conn* c, const codec::Publish& publish) {
    int64_t now = NowNs();
    if (publish.qos == 1) {
      codec::Ack puback;
      puback.type = codec::PacketType::kPuback;
      puback.packet_id = publish.packet_id;
      codec::Encode(codec::Packet{std::move(puback)}, cfg_.version, &c->out);
    }
    if (c->role != Role::kSubscriber || publish.payload.size() < kPayloadHeader) {
      shared_->Error(absl::StrCat(c->client_id, ": unexpected PUBLISH on ", publish.topic));
      return;
    }
    int64_t sent_ns;
    uint32_t publisher, seq;
    memcpy(&sent_ns, publish.payload.data(), 8);
    memcpy(&publisher, publish.payload.data() + 8, 4);
    memcpy(&seq, publish.payload.data() + 12, 4);
    if (publisher >= c->next_seq.size()) {
      shared_->Error(absl::StrCat(c->client_id, ": PUBLISH from unknown publisher"));
      return;
    }
    // MQTT-4.6.0: messages of one publisher on one topic arrive in order. A repeat is a
    // duplicate (legal at QoS 1 after a resend, none are expected here); a gap is a loss.
    if (seq < c->next_seq[publisher]) {
      shared_->duplicates.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (seq > c->next_seq[publisher]) shared_->gaps.fetch_add(1, std::memory_order_relaxed);
      c->next_seq[publisher] = seq + 1;
    }
    shared_->delivered[publisher].value.fetch_add(1, std::memory_order_relaxed);
    shared_->received.fetch_add(1, std::memory_order_relaxed);
    shared_->last_receive_ns.store(now, std::memory_order_relaxed);
    if (sent_ns >= shared_->measure_start_ns.load(std::memory_order_relaxed) &&
        sent_ns < shared_->measure_end_ns.load(std::memory_order_relaxed))
      histogram_.Record(now - sent_ns);
  }

  // ---- publishing -------------------------------------------------------------------------
  void PumpAll() {
    if (publishers_.empty()) return;
    int64_t now = NowNs();
    for (Conn* c : publishers_)
      if (c->state == Conn::State::kReady) Pump(c, now);
  }

  void Pump(Conn* c, int64_t now) {
    const uint64_t per_message =
        static_cast<uint64_t>(cfg_.scenario == Scenario::kFanout ? cfg_.subscribers : 1);
    const uint64_t window = static_cast<uint64_t>(cfg_.window) * per_message;
    const int64_t start = shared_->run_start_ns.load(std::memory_order_relaxed);
    const double rate_per_pub = cfg_.rate / cfg_.publishers;
    if (c->last_progress_ns == 0) c->last_progress_ns = now;  // the stall clock starts now
    bool wrote = false;
    for (int i = 0; i < kMaxSendsPerPump; ++i) {
      if (c->quota != 0 && c->sent >= c->quota) break;
      if (rate_per_pub > 0 &&
          static_cast<double>(c->sent) >= rate_per_pub * static_cast<double>(now - start) / 1e9)
        break;
      uint64_t delivered =
          shared_->delivered[c->index].value.load(std::memory_order_relaxed) + c->forgiven;
      if (delivered != c->last_seen_delivered) {
        c->last_seen_delivered = delivered;
        c->last_progress_ns = now;
      }
      uint64_t expected = c->sent * per_message;
      uint64_t outstanding = expected > delivered ? expected - delivered : 0;
      if (outstanding >= window) {
        // Lost messages (a QoS 0 broker may drop under load) would block the window forever.
        if (now - c->last_progress_ns > cfg_.stall_ns) {
          c->forgiven += outstanding;
          c->last_progress_ns = now;
          shared_->stalls.fetch_add(1, std::memory_order_relaxed);
        }
        break;
      }
      if (cfg_.qos == 1 && c->unacked >= c->inflight_limit) break;
      if (c->out.size() - c->out_off > kMaxPendingOut) break;
      SendPublish(c);
      wrote = true;
    }
    if (wrote) Flush(c);
  }

  void SendPublish(Conn* c) {
    uint32_t publisher = static_cast<uint32_t>(c->index);
    uint32_t seq = static_cast<uint32_t>(c->sent);
    int64_t stamp = NowNs();  // as late as possible: the batch is written right after
    memcpy(c->payload.data(), &stamp, 8);
    memcpy(c->payload.data() + 8, &publisher, 4);
    memcpy(c->payload.data() + 12, &seq, 4);
    uint16_t packet_id = 0;
    if (cfg_.qos == 1) {
      if (++c->next_packet_id == 0) c->next_packet_id = 1;
      packet_id = c->next_packet_id;
      ++c->unacked;
    }
    codec::EncodePublish(c->topic, c->payload, static_cast<uint8_t>(cfg_.qos), false, false,
                         packet_id, publish_properties_ptr(), nullptr, cfg_.version, &c->out);
    ++c->sent;
    shared_->sent.fetch_add(1, std::memory_order_relaxed);
  }

  void CloseAll() {
    std::string disconnect;
    codec::Encode(codec::Packet{codec::Disconnect{}}, cfg_.version, &disconnect);
    for (auto& c : conns_) {
      if (c->fd < 0) continue;
      if (c->state == Conn::State::kReady && c->out_off == c->out.size())
        (void)!send(c->fd, disconnect.data(), disconnect.size(), MSG_NOSIGNAL);
      close(c->fd);
      c->fd = -1;
      c->state = Conn::State::kClosed;
    }
  }

  bool v5() const { return cfg_.version == codec::ProtocolVersion::kV5; }
  // Null when there is nothing to send: the v5 encoder then writes an empty property block.
  const codec::Properties* publish_properties_ptr() const {
    return publish_properties_.user_properties.empty() ? nullptr : &publish_properties_;
  }

  const Config& cfg_;
  Shared* shared_;
  codec::Properties publish_properties_;  // what every PUBLISH carries (v5 only)
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> publishers_;
  std::vector<Conn*> again_;
  std::unique_ptr<char[]> read_buffer_ = std::make_unique<char[]>(kReadChunk);
  size_t next_to_start_ = 0;
  int in_handshake_ = 0;
  uint64_t source_counter_;
  Histogram histogram_;
};

// ---- /proc readings of the broker ----------------------------------------------------------

int64_t ReadRssKb(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// utime + stime of a process, in seconds.
double ReadCpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  // Fields after the command name start at field 3 (state); utime and stime are 14 and 15.
  std::vector<std::string> fields;
  size_t pos = paren + 2;
  while (pos < stat.size() && fields.size() < 13) {
    size_t end = stat.find(' ', pos);
    if (end == std::string::npos) end = stat.size();
    fields.push_back(stat.substr(pos, end - pos));
    pos = end + 1;
  }
  if (fields.size() < 13) return -1;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) /
         ticks;
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Raises the soft open-files limit to the hard one: idle needs one descriptor per connection.
rlim_t RaiseFileLimit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

// ---- orchestration ---------------------------------------------------------------------------

class Bench {
 public:
  Bench(Config cfg, int broker_pid) : cfg_(std::move(cfg)), broker_pid_(broker_pid) {}

  int Run() {
    int publishers = cfg_.publishers, subscribers = cfg_.subscribers;
    shared_.delivered = std::make_unique<PaddedCounter[]>(std::max(1, publishers));
    for (int t = 0; t < cfg_.threads; ++t)
      loops_.push_back(std::make_unique<Loop>(cfg_, &shared_, t));
    int next_loop = 0;
    auto add = [&](std::unique_ptr<Conn> c) {
      loops_[next_loop]->Add(std::move(c));
      next_loop = (next_loop + 1) % cfg_.threads;
    };
    // Subscribers first, so that they are connected before the publishers in each loop's order.
    for (int i = 0; i < subscribers; ++i) {
      auto c = std::make_unique<Conn>();
      c->role = Role::kSubscriber;
      c->index = i;
      c->client_id = absl::StrCat(cfg_.client_prefix, "s", i);
      c->topic = SubscriptionFilter();
      c->next_seq.assign(std::max(1, publishers), 0);
      add(std::move(c));
    }
    uint64_t quota = cfg_.messages > 0 && publishers > 0
                         ? static_cast<uint64_t>((cfg_.messages + publishers - 1) / publishers)
                         : 0;
    for (int i = 0; i < publishers; ++i) {
      auto c = std::make_unique<Conn>();
      c->role = Role::kPublisher;
      c->index = i;
      c->client_id = absl::StrCat(cfg_.client_prefix, "p", i);
      c->topic = PublishTopic(i);
      c->payload.assign(cfg_.payload, 'x');
      c->quota = quota;
      add(std::move(c));
    }
    for (int i = 0; i < cfg_.idle; ++i) {
      auto c = std::make_unique<Conn>();
      c->role = Role::kIdle;
      c->client_id = absl::StrCat(cfg_.client_prefix, "i", i);
      add(std::move(c));
    }
    const uint64_t total = static_cast<uint64_t>(publishers + subscribers + cfg_.idle);

    rss_before_kb_ = ReadRssKb(broker_pid_);
    for (auto& loop : loops_) threads_.emplace_back([l = loop.get()] { l->Run(); });

    // Connect everything (and subscribe) within the connect timeout.
    int64_t connect_start = NowNs();
    shared_.phase.store(kConnect, std::memory_order_release);
    bool connected = WaitFor(connect_timeout_ns_, [&] {
      return shared_.connacked.load() + shared_.failed.load() >= total &&
             shared_.subacked.load() + shared_.failed.load() >= static_cast<uint64_t>(subscribers);
    });
    connect_seconds_ = static_cast<double>(NowNs() - connect_start) / 1e9;
    bool setup_ok = connected && shared_.failed.load() == 0 &&
                    shared_.subacked.load() == static_cast<uint64_t>(subscribers);

    if (cfg_.scenario == Scenario::kIdle) {
      int code = FinishIdle(setup_ok, total);
      Stop();
      return code;
    }
    if (!setup_ok) {
      Stop();
      PrintMessageResult(false, 0, 0);
      return 1;
    }
    return RunMessages();
  }

  void set_connect_timeout_ns(int64_t ns) { connect_timeout_ns_ = ns; }
  void set_timing(int64_t warmup_ns, int64_t duration_ns, int64_t drain_ns, int64_t hold_ns) {
    warmup_ns_ = warmup_ns;
    duration_ns_ = duration_ns;
    drain_ns_ = drain_ns;
    hold_ns_ = hold_ns;
  }

 private:
  std::string SubscriptionFilter() const {
    switch (cfg_.scenario) {
      case Scenario::kFanin:
        return absl::StrCat(cfg_.topic_prefix, "/fanin/#");
      case Scenario::kFanout:
        return absl::StrCat(cfg_.topic_prefix, "/fanout");
      default:
        return absl::StrCat(cfg_.topic_prefix, "/latency");
    }
  }
  std::string PublishTopic(int i) const {
    switch (cfg_.scenario) {
      case Scenario::kFanin:
        return absl::StrCat(cfg_.topic_prefix, "/fanin/", i);
      case Scenario::kFanout:
        return absl::StrCat(cfg_.topic_prefix, "/fanout");
      default:
        return absl::StrCat(cfg_.topic_prefix, "/latency");
    }
  }

  // Polls `done` every 2 ms until it holds or `timeout_ns` passes. Returns whether it held.
  template <typename Pred>
  bool WaitFor(int64_t timeout_ns, Pred done) {
    int64_t deadline = NowNs() + timeout_ns;
    while (!done()) {
      if (NowNs() >= deadline || shared_.dropped.load() > 0) return done();
      SleepNs(2'000'000);
    }
    return true;
  }

  void Stop() {
    shared_.phase.store(kClose, std::memory_order_release);
    for (auto& t : threads_) t.join();
    threads_.clear();
    for (auto& loop : loops_) histogram_.Merge(loop->histogram());
  }

  int FinishIdle(bool setup_ok, uint64_t total) {
    // Hold the connections: the broker must keep them all, and its RSS settles.
    bool held = true;
    if (setup_ok) {
      int64_t deadline = NowNs() + hold_ns_;
      while (NowNs() < deadline && shared_.dropped.load() == 0) SleepNs(10'000'000);
      held = shared_.dropped.load() == 0;
    }
    int64_t rss_after = ReadRssKb(broker_pid_);
    uint64_t connected = shared_.connacked.load();
    uint64_t dropped = shared_.dropped.load();
    Stop();
    double per_conn = -1;
    if (rss_before_kb_ >= 0 && rss_after >= 0 && connected > 0)
      per_conn =
          static_cast<double>(rss_after - rss_before_kb_) * 1024.0 / static_cast<double>(connected);
    bool ok = setup_ok && held;
    absl::PrintF(
        "idle: %d/%d connections up in %.2f s (%.0f conn/s), %d dropped while held; "
        "broker RSS %d -> %d KiB = %.0f bytes/connection\n",
        connected, total, connect_seconds_, connected / std::max(connect_seconds_, 1e-9), dropped,
        rss_before_kb_, rss_after, per_conn);
    absl::PrintF(
        "RESULT scenario=idle mqtt_version=%d connections=%d connected=%d failed=%d dropped=%d "
        "connect_s=%.2f conns_per_sec=%.0f rss_before_kb=%d rss_after_kb=%d "
        "bytes_per_conn=%.0f ok=%d%s\n",
        static_cast<int>(cfg_.version), total, connected, shared_.failed.load(), dropped,
        connect_seconds_, connected / std::max(connect_seconds_, 1e-9), rss_before_kb_, rss_after,
        per_conn, ok ? 1 : 0, LabelAndError());
    return ok ? 0 : 1;
  }

  int RunMessages() {
    const bool counted = cfg_.messages > 0;
    int64_t start = NowNs();
    shared_.run_start_ns.store(start, std::memory_order_relaxed);
    if (counted) shared_.measure_start_ns.store(start, std::memory_order_relaxed);
    shared_.phase.store(kRun, std::memory_order_release);

    uint64_t received_at_start = 0, sent_at_start = 0;
    int64_t measure_start = start, measure_end = start;
    double broker_cpu_start = 0, self_cpu_start = 0;
    const uint64_t per_message =
        static_cast<uint64_t>(cfg_.scenario == Scenario::kFanout ? cfg_.subscribers : 1);
    if (counted) {
      broker_cpu_start = ReadCpuSeconds(broker_pid_);
      self_cpu_start = SelfCpuSeconds();
      uint64_t expected = static_cast<uint64_t>(cfg_.messages) * per_message;
      int64_t budget = duration_ns_ > 0 ? duration_ns_ : int64_t{60} * 1'000'000'000;
      timed_out_ = !WaitFor(budget, [&] { return shared_.received.load() >= expected; });
      measure_end = std::max(shared_.last_receive_ns.load(), start + 1);
    } else {
      WaitFor(warmup_ns_, [] { return false; });
      measure_start = NowNs();
      received_at_start = shared_.received.load();
      sent_at_start = shared_.sent.load();
      broker_cpu_start = ReadCpuSeconds(broker_pid_);
      self_cpu_start = SelfCpuSeconds();
      shared_.measure_start_ns.store(measure_start, std::memory_order_relaxed);
      WaitFor(duration_ns_, [] { return false; });
      measure_end = NowNs();
    }
    uint64_t received_in_window = shared_.received.load() - received_at_start;
    uint64_t sent_in_window = shared_.sent.load() - sent_at_start;
    shared_.measure_end_ns.store(measure_end, std::memory_order_relaxed);
    double broker_cpu_end = ReadCpuSeconds(broker_pid_);
    double broker_cpu = broker_cpu_end - broker_cpu_start;
    double self_cpu = SelfCpuSeconds() - self_cpu_start;

    // Stop publishing and let everything in flight arrive, so completeness is exact.
    shared_.phase.store(kDrain, std::memory_order_release);
    WaitFor(drain_ns_,
            [&] { return shared_.received.load() >= shared_.sent.load() * per_message; });
    broker_rss_kb_ = ReadRssKb(broker_pid_);
    Stop();

    double seconds = static_cast<double>(measure_end - measure_start) / 1e9;
    // -1 when there is no --broker_pid or the broker is gone.
    broker_cpu_pct_ =
        broker_cpu_start >= 0 && broker_cpu_end >= 0 ? 100.0 * broker_cpu / seconds : -1;
    self_cpu_pct_ = 100.0 * self_cpu / seconds;
    PrintMessageResult(true, static_cast<double>(received_in_window) / seconds,
                       static_cast<double>(sent_in_window) / seconds);
    bool complete = shared_.received.load() == shared_.sent.load() * per_message;
    return shared_.dropped.load() == 0 && !timed_out_ && (complete || cfg_.qos == 0) ? 0 : 1;
  }

  void PrintMessageResult(bool ran, double msgs_per_sec, double publish_per_sec) {
    const uint64_t per_message =
        static_cast<uint64_t>(cfg_.scenario == Scenario::kFanout ? cfg_.subscribers : 1);
    uint64_t sent = shared_.sent.load(), received = shared_.received.load();
    uint64_t expected = sent * per_message;
    bool complete = ran && received == expected;
    auto us = [](int64_t ns) { return static_cast<double>(ns) / 1000.0; };
    absl::PrintF(
        "%s qos=%d: %.0f msgs/s delivered (%.0f published/s), latency p50 %.1f us, "
        "p99 %.1f us, max %.1f us; received %d of %d%s\n",
        cfg_.scenario_name, cfg_.qos, msgs_per_sec, publish_per_sec, us(histogram_.Quantile(0.5)),
        us(histogram_.Quantile(0.99)), us(histogram_.max()), received, expected,
        complete ? " (complete)" : " (INCOMPLETE)");
    absl::PrintF(
        "RESULT scenario=%s qos=%d mqtt_version=%d user_properties=%d persistent=%d payload=%d "
        "publishers=%d "
        "subscribers=%d msgs_per_sec=%.0f publish_per_sec=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f "
        "samples=%d sent=%d received=%d expected=%d complete=%d duplicates=%d gaps=%d "
        "stalls=%d failed=%d dropped=%d broker_cpu_pct=%.0f bench_cpu_pct=%.0f "
        "broker_rss_kb=%d ok=%d%s\n",
        cfg_.scenario_name, cfg_.qos, static_cast<int>(cfg_.version), cfg_.user_properties,
        cfg_.persistent_subscribers ? 1 : 0, cfg_.payload, cfg_.publishers, cfg_.subscribers,
        msgs_per_sec, publish_per_sec, us(histogram_.Quantile(0.5)), us(histogram_.Quantile(0.99)),
        us(histogram_.max()), histogram_.count(), sent, received, expected, complete ? 1 : 0,
        shared_.duplicates.load(), shared_.gaps.load(), shared_.stalls.load(),
        shared_.failed.load(), shared_.dropped.load(), broker_cpu_pct_, self_cpu_pct_,
        broker_rss_kb_, ran && !timed_out_ && shared_.dropped.load() == 0 ? 1 : 0, LabelAndError());
  }

  std::string LabelAndError() const {
    std::string s;
    std::string label = absl::GetFlag(FLAGS_label);
    if (!label.empty()) absl::StrAppend(&s, " label=", label);
    if (timed_out_) absl::StrAppend(&s, " timed_out=1");
    if (shared_.first_error_taken.load()) {
      std::string error = shared_.first_error;
      std::replace(error.begin(), error.end(), ' ', '_');
      absl::StrAppend(&s, " first_error=", error);
    }
    return s;
  }

  Config cfg_;
  int broker_pid_;
  Shared shared_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
  Histogram histogram_;
  int64_t connect_timeout_ns_ = 0, warmup_ns_ = 0, duration_ns_ = 0, drain_ns_ = 0, hold_ns_ = 0;
  double connect_seconds_ = 0;
  int64_t rss_before_kb_ = -1, broker_rss_kb_ = -1;
  double broker_cpu_pct_ = -1, self_cpu_pct_ = -1;
  bool timed_out_ = false;  // --messages were not all delivered within --duration
};

int64_t SecondsToNs(double s) { return static_cast<int64_t>(s * 1e9); }

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "MQTT 3.1.1 / 5 load generator: meshmq_bench --port=1883 "
      "--scenario=fanin|fanout|latency|idle");
  absl::ParseCommandLine(argc, argv);

  Config cfg;
  cfg.scenario_name = absl::GetFlag(FLAGS_scenario);
  if (cfg.scenario_name == "fanin") {
    cfg.scenario = Scenario::kFanin;
  } else if (cfg.scenario_name == "fanout") {
    cfg.scenario = Scenario::kFanout;
  } else if (cfg.scenario_name == "latency") {
    cfg.scenario = Scenario::kLatency;
  } else if (cfg.scenario_name == "idle") {
    cfg.scenario = Scenario::kIdle;
  } else {
    absl::FPrintF(stderr, "unknown --scenario=%s\n", cfg.scenario_name);
    return 2;
  }
  std::string host = absl::GetFlag(FLAGS_host);
  if (inet_pton(AF_INET, host.c_str(), &cfg.host) != 1 || (ntohl(cfg.host.s_addr) >> 24) != 127) {
    absl::FPrintF(stderr, "--host must be an IPv4 address in 127.0.0.0/8, got %s\n", host);
    return 2;
  }
  cfg.port = absl::GetFlag(FLAGS_port);
  cfg.subscriber_port = absl::GetFlag(FLAGS_subscriber_port);
  cfg.qos = absl::GetFlag(FLAGS_qos);
  int payload = absl::GetFlag(FLAGS_payload);
  cfg.rate = absl::GetFlag(FLAGS_rate);
  cfg.messages = absl::GetFlag(FLAGS_messages);
  cfg.window = absl::GetFlag(FLAGS_window);
  cfg.inflight = absl::GetFlag(FLAGS_inflight);
  cfg.threads = absl::GetFlag(FLAGS_threads);
  cfg.source_addrs = absl::GetFlag(FLAGS_source_addrs);
  cfg.connect_concurrency = absl::GetFlag(FLAGS_connect_concurrency);
  cfg.keepalive = absl::GetFlag(FLAGS_keepalive);
  cfg.stall_ns = SecondsToNs(absl::GetFlag(FLAGS_stall_timeout));
  int connections = absl::GetFlag(FLAGS_connections);
  int mqtt_version = absl::GetFlag(FLAGS_mqtt_version);
  cfg.user_properties = absl::GetFlag(FLAGS_user_properties);
  cfg.receive_maximum = absl::GetFlag(FLAGS_receive_maximum);
  cfg.persistent_subscribers = absl::GetFlag(FLAGS_persistent_subscribers);
  int session_expiry = absl::GetFlag(FLAGS_session_expiry);
  if (session_expiry < 0) {
    absl::FPrintF(stderr, "bad flags: need session_expiry >= 0\n");
    return 2;
  }
  cfg.session_expiry = static_cast<uint32_t>(session_expiry);
  if ((mqtt_version != 4 && mqtt_version != 5) || cfg.user_properties < 0 ||
      cfg.user_properties > 1000 || cfg.receive_maximum < 0 || cfg.receive_maximum > 65535 ||
      (mqtt_version == 4 && cfg.user_properties > 0)) {
    absl::FPrintF(stderr,
                  "bad flags: need mqtt_version 4|5, 0<=user_properties<=1000 (only with "
                  "mqtt_version=5), 0<=receive_maximum<=65535\n");
    return 2;
  }
  cfg.version = mqtt_version == 5 ? codec::ProtocolVersion::kV5 : codec::ProtocolVersion::kV311;
  if (cfg.port <= 0 || cfg.port > 65535 || cfg.subscriber_port < 0 || cfg.subscriber_port > 65535 ||
      (cfg.qos != 0 && cfg.qos != 1) || payload < static_cast<int>(kPayloadHeader) ||
      cfg.window < 0 || cfg.window > 100000 || cfg.inflight < 1 || cfg.inflight > 30000 ||
      cfg.threads < 1 || cfg.threads > 16 || cfg.source_addrs < 0 || cfg.source_addrs > 250 ||
      connections < 0 || cfg.rate < 0 || cfg.keepalive < 0 || cfg.keepalive > 65535) {
    absl::FPrintF(
        stderr,
        "bad flags: need 0<port<65536, qos 0|1, payload>=16, 0<=window<=100000, "
        "1<=inflight<=30000, 1<=threads<=16, 0<=source_addrs<=250, connections>=0, rate>=0\n");
    return 2;
  }
  cfg.payload = static_cast<size_t>(payload);
  switch (cfg.scenario) {
    case Scenario::kFanin:
      cfg.publishers = connections > 0 ? connections : 16;
      cfg.subscribers = 1;
      if (cfg.window == 0) cfg.window = 100;
      break;
    case Scenario::kFanout:
      cfg.publishers = 1;
      cfg.subscribers = connections > 0 ? connections : 1000;
      if (cfg.window == 0) cfg.window = 10;
      break;
    case Scenario::kLatency:
      cfg.publishers = 1;
      cfg.subscribers = 1;
      if (cfg.rate == 0) cfg.rate = 1000;
      if (cfg.window == 0) cfg.window = 1000;
      break;
    case Scenario::kIdle:
      cfg.idle = connections > 0 ? connections : 19000;
      break;
  }
  uint64_t nonce = static_cast<uint64_t>(NowNs()) ^ (static_cast<uint64_t>(getpid()) << 32);
  cfg.topic_prefix = absl::StrFormat("bench/%x", nonce & 0xffffffffffu);
  cfg.client_prefix = absl::StrFormat("mb%x-", nonce & 0xffffffu);

  rlim_t files = RaiseFileLimit();
  uint64_t needed = static_cast<uint64_t>(cfg.publishers + cfg.subscribers + cfg.idle) + 32;
  if (files < needed) {
    absl::FPrintF(stderr, "open-files limit %d is below the %d this run needs\n", files, needed);
    return 2;
  }

  int broker_pid = absl::GetFlag(FLAGS_broker_pid);
  Bench bench(cfg, broker_pid);
  bench.set_connect_timeout_ns(SecondsToNs(absl::GetFlag(FLAGS_connect_timeout)));
  bench.set_timing(
      SecondsToNs(absl::GetFlag(FLAGS_warmup)), SecondsToNs(absl::GetFlag(FLAGS_duration)),
      SecondsToNs(absl::GetFlag(FLAGS_drain_timeout)), SecondsToNs(absl::GetFlag(FLAGS_idle_hold)));
  return bench.Run();
}

}  // namespace
}  // namespace meshmq::bench

int main(int argc, char** argv) { return meshmq::bench::Main(argc, argv); }
