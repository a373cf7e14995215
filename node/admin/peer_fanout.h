// Asks the cluster's other nodes one AdminPeer question at once: every peer that is up gets the
// call, each with a deadline, and the answers come back together. Members that are down (or
// addresses that never answered) are reported as unreachable rather than asked.
//
// THREADING: thread-safe; Ask blocks its caller (an AdminService thread) until every call has
// answered or reached its deadline.
#ifndef MESHMQ_NODE_ADMIN_PEER_FANOUT_H_
#define MESHMQ_NODE_ADMIN_PEER_FANOUT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster/cluster_node.h"
#include "proto/admin.grpc.pb.h"

namespace meshmq::admin {

class PeerFanout {
 public:
  // `cluster`: null for a node on its own (then there is nobody to ask).
  PeerFanout(cluster::ClusterNode* cluster, absl::Duration deadline)
      : cluster_(cluster), deadline_(deadline) {}

  template <typename Reply>
  struct Answer {
    std::string node_id;
    std::string address;
    grpc::Status status;
    Reply reply;
  };
  // Starts one call: stub->async()->Method(context, &request, reply, done).
  template <typename Reply>
  using Call = std::function<void(AdminPeer::Stub* stub, grpc::ClientContext* context,
                                  Reply* reply, std::function<void(grpc::Status)> done)>;

  // Asks every peer that is up (or only `only_node`, when not empty) and returns their answers,
  // failed ones included (status not OK).
  template <typename Reply>
  std::vector<Answer<Reply>> Ask(const Call<Reply>& call, const std::string& only_node = "");

  // The members this node cannot ask now (down, or not answering yet), for `unreachable`.
  std::vector<NodeError> NotUp();
  // The peers that are up now.
  std::vector<cluster::ClusterNode::PeerView> UpPeers();

 private:
  AdminPeer::Stub* StubFor(const std::string& address);

  cluster::ClusterNode* const cluster_;
  const absl::Duration deadline_;
  absl::Mutex mu_;
  // One channel per peer address, kept: admin calls are rare, but a channel costs a handshake.
  absl::flat_hash_map<std::string, std::unique_ptr<AdminPeer::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
};

// Adds the failed answers among `answers` to `out` (a reply's `unreachable`).
template <typename Reply>
void AddFailures(const std::vector<PeerFanout::Answer<Reply>>& answers,
                 google::protobuf::RepeatedPtrField<NodeError>* out) {
  for (const PeerFanout::Answer<Reply>& answer : answers) {
    if (answer.status.ok()) continue;
    NodeError* error = out->Add();
    error->set_node_id(answer.node_id);
    error->set_address(answer.address);
    error->set_error(answer.status.error_message().empty()
                         ? "no answer"
                         : std::string(answer.status.error_message()));
  }
}

template <typename Reply>
std::vector<PeerFanout::Answer<Reply>> PeerFanout::Ask(const Call<Reply>& call,
                                                       const std::string& only_node) {
  struct Pending {
    grpc::ClientContext context;
    Answer<Reply> answer;
  };
  struct Tally {
    absl::Mutex mu;
    size_t remaining ABSL_GUARDED_BY(mu) = 0;
  };
  auto tally = std::make_shared<Tally>();
  std::vector<std::shared_ptr<Pending>> pending;
  for (cluster::ClusterNode::PeerView& peer : UpPeers()) {
    if (!only_node.empty() && peer.node_id != only_node) continue;
    auto one = std::make_shared<Pending>();
    one->answer.node_id = std::move(peer.node_id);
    one->answer.address = std::move(peer.address);
    one->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
    pending.push_back(one);
  }
  {
    absl::MutexLock lock(&tally->mu);
    tally->remaining = pending.size();
  }
  for (const std::shared_ptr<Pending>& one : pending) {
    // The call's deadline bounds the wait below: gRPC answers every call by then.
    call(StubFor(one->answer.address), &one->context, &one->answer.reply,
         [one, tally](grpc::Status status) {
           one->answer.status = std::move(status);
           absl::MutexLock lock(&tally->mu);
           --tally->remaining;
         });
  }
  {
    absl::MutexLock lock(&tally->mu);
    auto all_in = [&tally]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tally->mu) {
      return tally->remaining == 0;
    };
    tally->mu.Await(absl::Condition(&all_in));
  }
  std::vector<Answer<Reply>> answers;
  for (const std::shared_ptr<Pending>& one : pending) answers.push_back(std::move(one->answer));
  return answers;
}

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_PEER_FANOUT_H_
