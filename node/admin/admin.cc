#include "node/admin/admin.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cluster/cluster_node.h"
#include "node/admin/access.h"
#include "node/admin/admin_service.h"
#include "node/admin/peer_service.h"
#include "node/admin/sys_totals.h"
#include "node/broker.h"

namespace meshmq::admin {
namespace {

std::string HostOf(const std::string& address) {
  return address.substr(0, address.rfind(':'));
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

absl::Status CheckAdminOptions(const AdminOptions& options) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--admin_tls_cert and --admin_tls_key go together");
  }
  if (options.listen.empty()) return absl::OkStatus();
  return CheckListenAccess(options.listen, !options.token_file.empty());
}

Admin::Admin(Broker* broker, cluster::ClusterNode* cluster, AdminOptions options)
    : options_(std::move(options)), local_(broker, cluster) {
  local_.SetDrainHandler(options_.on_drain);
  peer_service_ = std::make_unique<PeerService>(&local_);
  if (cluster != nullptr) cluster->AddService(peer_service_.get());
  sys_totals_ = std::make_unique<SysTotals>(broker, &local_, broker->config().sys_interval,
                                            options_.peer_deadline);
}

Admin::~Admin() { Stop(); }

absl::Status Admin::Start() {
  absl::Status status = StartService();
  if (status.ok()) sys_totals_->Start();
  return status;
}

absl::Status Admin::StartService() {
  if (absl::Status status = CheckAdminOptions(options_); !status.ok()) return status;
  if (cluster::ClusterNode* cluster = local_.cluster(); cluster != nullptr) {
    local_.AddListener("cluster", absl::StrCat(HostOf(options_.cluster_listen), ":",
                                               cluster->port()));
  }
  if (options_.listen.empty()) return absl::OkStatus();
  std::string token;
  if (!options_.token_file.empty()) {
    absl::StatusOr<std::string> read = ReadToken(options_.token_file);
    if (!read.ok()) return read.status();
    token = std::move(*read);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options_.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(options_.tls_cert, "--admin_tls_cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options_.tls_key, "--admin_tls_key");
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  service_ = std::make_unique<AdminServiceImpl>(&local_, std::move(token), options_.peer_deadline);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, credentials, &port_);
  builder.RegisterService(service_.get());
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    port_ = 0;
    return absl::UnavailableError(absl::StrCat("admin: cannot listen on ", options_.listen));
  }
  local_.AddListener("admin", address());
  return absl::OkStatus();
}

void Admin::Stop() {
  sys_totals_->Stop();
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  server_->Wait();
  server_.reset();
}

std::string Admin::address() const {
  return absl::StrCat(HostOf(options_.listen), ":", port_);
}

}  // namespace meshmq::admin
