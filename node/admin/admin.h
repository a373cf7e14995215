// The admin side of a node (proto/admin.proto): AdminService on --admin_listen for meshmqctl,
// AdminPeer on the cluster listener for the other nodes, and the cluster-wide $SYS totals
// (node/admin/sys_totals.h), which it gathers through AdminPeer. node/main.cc builds one before
// the cluster starts (AdminPeer must be registered by then), starts it once the node runs, and
// stops it after a graceful leave, before the broker stops.
//
// Access: a bearer token read from --admin_token_file, which every call must carry
// ("authorization: Bearer <token>"). Without a token file the service starts only on a loopback
// address, where only local users reach it. TLS with --admin_tls_cert and --admin_tls_key.
//
// THREADING: Start and Stop from the main thread.
#ifndef MESHMQ_NODE_ADMIN_ADMIN_H_
#define MESHMQ_NODE_ADMIN_ADMIN_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "node/admin/local_admin.h"

namespace grpc {
class Server;
}

namespace meshmq::admin {

class AdminServiceImpl;
class PeerService;
class SysTotals;

struct AdminOptions {
  std::string listen = "127.0.0.1:9883";  // --admin_listen; empty: no AdminService here
  std::string token_file;                 // --admin_token_file
  std::string tls_cert;                   // --admin_tls_cert (PEM)
  std::string tls_key;                    // --admin_tls_key (PEM)
  std::string cluster_listen;             // --cluster_listen, reported by status
  absl::Duration peer_deadline = absl::Seconds(3);
  // Starts the node's graceful stop (node drain, cluster leave).
  std::function<void()> on_drain;
};

// Refuses what must not start: no token file on a listener that is not loopback-only, one of
// the TLS files without the other, an address without a port.
absl::Status CheckAdminOptions(const AdminOptions& options);

class Admin {
 public:
  // `cluster` may be null. Registers AdminPeer on the cluster listener: before the cluster
  // starts.
  Admin(Broker* broker, cluster::ClusterNode* cluster, AdminOptions options);
  ~Admin();

  // Reads the token and TLS files and binds --admin_listen (errors name what failed); once it
  // did, starts publishing the $SYS totals.
  absl::Status Start();
  // Ends AdminService, letting calls in progress finish (a drain's reply) for a moment, and the
  // $SYS totals: before the broker stops.
  void Stop();
  // The bound port (after binding port 0); 0 when not serving.
  int port() const { return port_; }
  std::string address() const;

 private:
  absl::Status StartService();

  const AdminOptions options_;
  LocalAdmin local_;
  std::unique_ptr<PeerService> peer_service_;
  std::unique_ptr<SysTotals> sys_totals_;
  std::unique_ptr<AdminServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_ADMIN_H_
