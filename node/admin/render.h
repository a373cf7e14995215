// meshmqctl's output: for people, aligned tables (node/admin/table.h) and `key: value` blocks;
// for machines (--json), the reply itself in protobuf's JSON mapping (field names as in
// proto/admin.proto; 64-bit integers as strings, as that mapping has them).
#ifndef MESHMQ_NODE_ADMIN_RENDER_H_
#define MESHMQ_NODE_ADMIN_RENDER_H_

#include <cstdint>
#include <string>

#include "google/protobuf/message.h"
#include "proto/admin.pb.h"

namespace meshmq::admin {

std::string RenderJson(const google::protobuf::Message& message);

// "3d04h", "2h05m", "4m10s", "12s".
std::string FormatUptime(int64_t seconds);
// A session expiry interval: "never" (0xFFFFFFFF), "0s" (ends with the connection), "2h00m".
std::string FormatExpiry(uint32_t seconds);

std::string RenderStatus(const StatusReply& reply);
std::string RenderMembers(const MembersReply& reply);
std::string RenderClients(const ClientsReply& reply);
std::string RenderClient(const Client& client);
std::string RenderSessions(const SessionsReply& reply);
std::string RenderSession(const Session& session);
std::string RenderSubscriptions(const SubscriptionsReply& reply);
std::string RenderRoutes(const RoutesReply& reply);
std::string RenderRetainedList(const RetainedReply& reply);
std::string RenderRetained(const RetainedMessage& message);
std::string RenderMetrics(const MetricsReply& reply);

// One "meshmqctl: warning: ..." line per node that was not asked (for stderr); empty if none.
std::string RenderUnreachable(const google::protobuf::RepeatedPtrField<NodeError>& unreachable);

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_RENDER_H_
