// Who may call AdminService (node/admin/admin.h): a bearer token from --admin_token_file, which
// every call carries as gRPC metadata "authorization: Bearer <token>"; without one, only a
// loopback listener is allowed (only local users reach it).
#ifndef MESHMQ_NODE_ADMIN_ACCESS_H_
#define MESHMQ_NODE_ADMIN_ACCESS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meshmq::admin {

// True for 127.0.0.0/8, ::1 and "localhost" ("[::1]" too).
bool IsLoopbackHost(std::string_view host);
// OK unless `listen` (HOST:PORT) is reachable from other machines and there is no token.
absl::Status CheckListenAccess(const std::string& listen, bool have_token);
// The token in `path`: its content without surrounding white space; an empty file is an error.
absl::StatusOr<std::string> ReadToken(const std::string& path);
// Constant-time comparison of an authorization header value with "Bearer <token>".
bool BearerMatches(std::string_view header, std::string_view token);

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_ACCESS_H_
