// absl::Status <-> grpc::Status at the admin's edges (STYLE.md: convert at the edge).
#ifndef MESHMQ_NODE_ADMIN_STATUS_CONVERT_H_
#define MESHMQ_NODE_ADMIN_STATUS_CONVERT_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace meshmq::admin {

// The codes share their numbering (both follow google.rpc.Code).
inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_STATUS_CONVERT_H_
