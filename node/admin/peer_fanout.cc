#include "node/admin/peer_fanout.h"

#include <algorithm>
#include <set>

namespace meshmq::admin {

std::vector<cluster::ClusterNode::PeerView> PeerFanout::UpPeers() {
  std::vector<cluster::ClusterNode::PeerView> up;
  if (cluster_ == nullptr) return up;
  for (cluster::ClusterNode::PeerView& peer : cluster_->Peers()) {
    if (peer.up) up.push_back(std::move(peer));
  }
  return up;
}

std::vector<NodeError> PeerFanout::NotUp() {
  std::vector<NodeError> errors;
  if (cluster_ == nullptr) return errors;
  std::set<std::string> up;
  std::vector<cluster::ClusterNode::PeerView> peers = cluster_->Peers();
  for (const cluster::ClusterNode::PeerView& peer : peers) {
    if (peer.up) up.insert(peer.node_id);
  }
  std::set<std::string> reported;
  const std::string& self = cluster_->transport().node_id();
  const std::vector<std::string> members = cluster_->Members();
  auto member = [&members](const std::string& node) {
    return std::find(members.begin(), members.end(), node) != members.end();
  };
  auto report = [&](const std::string& node, const std::string& address) {
    if (node == self || up.count(node) > 0 || !reported.insert(node + "\n" + address).second) {
      return;
    }
    NodeError error;
    error.set_node_id(node);
    error.set_address(address);
    error.set_error(node.empty() ? "not answering" : "down (not linked with this node)");
    errors.push_back(std::move(error));
  };
  // A node that left or was removed is no longer missed, though its address is still dialled.
  for (const cluster::ClusterNode::PeerView& peer : peers) {
    if (!peer.node_id.empty() && member(peer.node_id)) report(peer.node_id, peer.address);
  }
  for (const std::string& node : members) {
    bool known = false;
    for (const cluster::ClusterNode::PeerView& peer : peers) known |= peer.node_id == node;
    if (!known) report(node, "");
  }
  return errors;
}

AdminPeer::Stub* PeerFanout::StubFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<AdminPeer::Stub>& stub = stubs_[address];
  if (stub == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // a big node's client list
    stub = AdminPeer::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  return stub.get();
}

}  // namespace meshmq::admin
