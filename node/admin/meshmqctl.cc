// meshmqctl: the meshmq admin CLI (README "Operations: meshmqctl"; commands in
// node/admin/command.h). It talks gRPC to one node's AdminService, which answers for the whole
// cluster.
//
// Output: aligned tables on stdout (--json: the reply in protobuf's JSON mapping). Nodes the
// answer could not include are named on stderr. Errors are one line on stderr and exit status 1
// (2 for a bad command line).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "node/admin/command.h"
#include "node/admin/render.h"
#include "proto/admin.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:9883", "The node to ask: its --admin_listen, HOST:PORT");
ABSL_FLAG(std::string, token_file, "", "File holding the node's admin token (--admin_token_file)");
ABSL_FLAG(bool, json, false, "Print the reply as JSON");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the node's --admin_tls_cert: talk TLS");
ABSL_FLAG(std::string, tls_server_name, "",
          "The name the node's certificate is checked against (default: --server's host)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(15),
          "How long a command may take (node drain: until the node has stopped)");
ABSL_FLAG(std::string, node, "", "clients list: only the clients of this node");
ABSL_FLAG(uint32_t, limit, 0, "clients, sessions, retained list: at most this many (0: all)");
ABSL_FLAG(std::string, client, "", "subscriptions list: only this client's");
ABSL_FLAG(std::string, topic, "",
          "subscriptions list: a filter (exactly it) or a topic (the filters matching it)");
ABSL_FLAG(uint32_t, qos, 0, "publish: QoS 0, 1 or 2");
ABSL_FLAG(bool, retain, false, "publish: retained");

namespace meshmq::admin {
namespace {

// One line, whatever gRPC put in the message.
std::string OneLine(std::string text) {
  text = absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " "}});
  return std::string(absl::StripAsciiWhitespace(text));
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "meshmqctl: %s\n", OneLine(message).c_str());
  return 1;
}

class Cli {
 public:
  Cli(std::unique_ptr<AdminService::Stub> stub, std::string server, std::string token,
      bool json, absl::Time deadline)
      : stub_(std::move(stub)),
        server_(std::move(server)),
        token_(std::move(token)),
        json_(json),
        deadline_(deadline) {}

  int Run(const Command& command);

 private:
  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(absl::ToChronoTime(deadline_));
    if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  }
  int Error(const grpc::Status& status) const;
  template <typename Reply>
  int Print(const Reply& reply, const std::string& text) const {
    const std::string out = json_ ? RenderJson(reply) : text;
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  template <typename Reply>
  void Warn(const Reply& reply) const {
    const std::string warnings = RenderUnreachable(reply.unreachable());
    std::fwrite(warnings.data(), 1, warnings.size(), stderr);
  }
  // Waits until the node no longer answers (it stopped): true, or false at the deadline.
  bool WaitStopped() const;
  // Waits until `node` no longer answers within the cluster.
  bool WaitGone(const std::string& node) const;

  std::unique_ptr<AdminService::Stub> stub_;
  const std::string server_;
  const std::string token_;
  const bool json_;
  const absl::Time deadline_;
};

int Cli::Error(const grpc::Status& status) const {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return Fail(absl::StrCat("cannot reach ", server_, ": ", status.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Fail(absl::StrCat(server_, " did not answer in time: ", status.error_message()));
    case grpc::StatusCode::UNAUTHENTICATED:
      return Fail(absl::StrCat(server_, " refused the call: ", status.error_message()));
    default:
      return Fail(status.error_message().empty() ? absl::StrCat("error ", status.error_code())
                                                 : status.error_message());
  }
}

bool Cli::WaitStopped() const {
  while (absl::Now() < deadline_) {
    grpc::ClientContext context;
    Prepare(&context);
    context.set_deadline(absl::ToChronoTime(std::min(deadline_, absl::Now() + absl::Seconds(1))));
    StatusReply reply;
    grpc::Status status = stub_->Status(&context, StatusRequest(), &reply);
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

bool Cli::WaitGone(const std::string& node) const {
  while (absl::Now() < deadline_) {
    grpc::ClientContext context;
    Prepare(&context);
    StatusReply reply;
    if (stub_->Status(&context, StatusRequest(), &reply).ok()) {
      bool present = false;
      for (const NodeStatus& status : reply.nodes()) present |= status.node_id() == node;
      if (!present) return true;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

int Cli::Run(const Command& command) {
  grpc::ClientContext context;
  Prepare(&context);
  const CommandOptions& options = command.options;
  switch (command.kind) {
    case CommandKind::kStatus: {
      StatusReply reply;
      if (grpc::Status s = stub_->Status(&context, StatusRequest(), &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      return Print(reply, RenderStatus(reply));
    }
    case CommandKind::kClusterMembers: {
      MembersReply reply;
      if (grpc::Status s = stub_->ClusterMembers(&context, MembersRequest(), &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      return Print(reply, RenderMembers(reply));
    }
    case CommandKind::kClusterJoin: {
      JoinRequest request;
      request.set_address(command.arg);
      JoinReply reply;
      if (grpc::Status s = stub_->ClusterJoin(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      return Print(reply, absl::StrCat("joined node ", reply.node_id(), " at ", command.arg, "\n"));
    }
    case CommandKind::kClusterLeave:
    case CommandKind::kNodeDrain: {
      // Both end a node: it hands its sessions to its peers, then exits. Wait for that.
      std::string node;
      uint64_t sessions = 0;
      LeaveReply leave;
      DrainReply drain;
      grpc::Status s;
      if (command.kind == CommandKind::kNodeDrain) {
        s = stub_->Drain(&context, DrainRequest(), &drain);
        node = drain.node_id();
        sessions = drain.sessions();
      } else {
        LeaveRequest request;
        request.set_node_id(command.arg);
        s = stub_->ClusterLeave(&context, request, &leave);
        node = leave.node_id();
        sessions = leave.sessions();
      }
      if (!s.ok()) return Error(s);
      if (leave.removed()) {
        // It was not up (dead): the live nodes forgot it; nothing to wait for.
        Warn(leave);
        return Print(leave, absl::StrCat("node ", node, " was not up: removed from the members "
                                         "of ", absl::StrJoin(leave.node_ids(), ", "), "\n"));
      }
      // The node called stops answering once it is gone; another node stops listing it.
      const bool self = command.kind == CommandKind::kNodeDrain || command.arg.empty();
      if (!(self ? WaitStopped() : WaitGone(node))) {
        return Fail(absl::StrCat("node ", node, " is still running after --timeout=",
                                 absl::FormatDuration(absl::GetFlag(FLAGS_timeout))));
      }
      const std::string text = absl::StrCat("node ", node, " handed ", sessions,
                                            " sessions to its peers and stopped\n");
      if (command.kind == CommandKind::kNodeDrain) return Print(drain, text);
      return Print(leave, text);
    }
    case CommandKind::kClientsList:
    case CommandKind::kClientsShow: {
      ClientsRequest request;
      if (command.kind == CommandKind::kClientsShow) {
        request.set_client_id(command.arg);
      } else {
        request.set_node_id(options.node);
        request.set_limit(options.limit);
      }
      ClientsReply reply;
      if (grpc::Status s = stub_->ListClients(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      if (command.kind == CommandKind::kClientsShow) {
        std::string text;
        for (const Client& client : reply.clients()) {
          if (!text.empty()) text.append("\n");
          text.append(RenderClient(client));
        }
        return Print(reply, text);
      }
      return Print(reply, RenderClients(reply));
    }
    case CommandKind::kClientsKick: {
      ClientRequest request;
      request.set_client_id(command.arg);
      KickReply reply;
      if (grpc::Status s = stub_->KickClient(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      return Print(reply, absl::StrCat("kicked client ", command.arg, " from node ",
                                       reply.node_id(), "\n"));
    }
    case CommandKind::kSessionsList:
    case CommandKind::kSessionsShow: {
      SessionsRequest request;
      if (command.kind == CommandKind::kSessionsShow) {
        request.set_client_id(command.arg);
      } else {
        request.set_limit(options.limit);
      }
      SessionsReply reply;
      if (grpc::Status s = stub_->ListSessions(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      if (command.kind == CommandKind::kSessionsShow) {
        std::string text;
        for (const Session& session : reply.sessions()) {
          if (!text.empty()) text.append("\n");
          text.append(RenderSession(session));
        }
        return Print(reply, text);
      }
      return Print(reply, RenderSessions(reply));
    }
    case CommandKind::kSessionsDrop: {
      ClientRequest request;
      request.set_client_id(command.arg);
      DropSessionReply reply;
      if (grpc::Status s = stub_->DropSession(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      std::vector<std::string> nodes(reply.node_ids().begin(), reply.node_ids().end());
      return Print(reply, absl::StrCat("dropped the session of ", command.arg, " on ",
                                       absl::StrJoin(nodes, ", "), "\n"));
    }
    case CommandKind::kSubscriptionsList: {
      SubscriptionsRequest request;
      request.set_client_id(options.client);
      request.set_topic(options.topic);
      SubscriptionsReply reply;
      if (grpc::Status s = stub_->ListSubscriptions(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      return Print(reply, RenderSubscriptions(reply));
    }
    case CommandKind::kRoutes: {
      RoutesReply reply;
      if (grpc::Status s = stub_->Routes(&context, RoutesRequest(), &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      return Print(reply, RenderRoutes(reply));
    }
    case CommandKind::kRetainedList: {
      RetainedRequest request;
      request.set_filter(command.arg);
      request.set_limit(options.limit);
      RetainedReply reply;
      if (grpc::Status s = stub_->ListRetained(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      return Print(reply, RenderRetainedList(reply));
    }
    case CommandKind::kRetainedGet: {
      RetainedRequest request;
      request.set_filter(command.arg);
      RetainedMessage reply;
      if (grpc::Status s = stub_->GetRetained(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      return Print(reply, RenderRetained(reply));
    }
    case CommandKind::kRetainedDelete: {
      RetainedRequest request;
      request.set_filter(command.arg);
      DeleteRetainedReply reply;
      if (grpc::Status s = stub_->DeleteRetained(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      return Print(reply, absl::StrCat("deleted the retained message of ", command.arg, "\n"));
    }
    case CommandKind::kPublish: {
      PublishRequest request;
      request.set_topic(command.arg);
      request.set_payload(command.arg2);
      request.set_qos(options.qos);
      request.set_retain(options.retain);
      PublishReply reply;
      if (grpc::Status s = stub_->Publish(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      return Print(reply, absl::StrCat("published to ", command.arg, " (", reply.receivers(),
                                       " receivers)\n"));
    }
    case CommandKind::kMetrics: {
      MetricsReply reply;
      if (grpc::Status s = stub_->Metrics(&context, MetricsRequest(), &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      return Print(reply, RenderMetrics(reply));
    }
    case CommandKind::kLogLevel: {
      LogLevelRequest request;
      request.set_level(command.arg);
      LogLevelReply reply;
      if (grpc::Status s = stub_->SetLogLevel(&context, request, &reply); !s.ok()) {
        return Error(s);
      }
      Warn(reply);
      std::vector<std::string> nodes(reply.node_ids().begin(), reply.node_ids().end());
      return Print(reply, absl::StrCat("log level ", command.arg, " on ",
                                       absl::StrJoin(nodes, ", "), "\n"));
    }
  }
  return Fail("unhandled command");
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", flag, " ", path));
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

int Main(int argc, char** argv) {
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "node/admin/meshmqctl.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(CommandUsage());
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> words(rest.begin() + 1, rest.end());
  CommandOptions options;
  options.node = absl::GetFlag(FLAGS_node);
  options.limit = absl::GetFlag(FLAGS_limit);
  options.client = absl::GetFlag(FLAGS_client);
  options.topic = absl::GetFlag(FLAGS_topic);
  options.qos = absl::GetFlag(FLAGS_qos);
  options.retain = absl::GetFlag(FLAGS_retain);
  absl::StatusOr<Command> command = ParseCommand(words, options);
  if (!command.ok()) {
    std::fprintf(stderr, "meshmqctl: %s\n", std::string(command.status().message()).c_str());
    return 2;
  }
  std::string token;
  if (const std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    absl::StatusOr<std::string> read = ReadFile(path, "--token_file");
    if (!read.ok()) return Fail(std::string(read.status().message()));
    token = std::string(absl::StripAsciiWhitespace(*read));
  }
  const std::string server = absl::GetFlag(FLAGS_server);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca); !ca.empty()) {
    absl::StatusOr<std::string> pem = ReadFile(ca, "--tls_ca");
    if (!pem.ok()) return Fail(std::string(pem.status().message()));
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *pem;
    credentials = grpc::SslCredentials(ssl);
    if (const std::string name = absl::GetFlag(FLAGS_tls_server_name); !name.empty()) {
      args.SetSslTargetNameOverride(name);
    }
  }
  Cli cli(AdminService::NewStub(grpc::CreateCustomChannel(server, credentials, args)), server,
          std::move(token), absl::GetFlag(FLAGS_json),
          absl::Now() + absl::GetFlag(FLAGS_timeout));
  return cli.Run(*command);
}

}  // namespace
}  // namespace meshmq::admin

int main(int argc, char** argv) { return meshmq::admin::Main(argc, argv); }
