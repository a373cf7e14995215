#include "node/http/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "node/log.h"

namespace meshmq::http {
namespace {

// Enough for a scrape and two probes at once; civetweb's default is 50 threads.
constexpr char kThreads[] = "4";
constexpr char kRequestTimeoutMs[] = "10000";

int LogMessage(const mg_connection*, const char* message) {
  Log(LogLevel::kError, "meshmqd: http: %s", message);
  return 1;  // logged: civetweb need not print it again
}

// Opens and closes a connection to the listener: wakes civetweb's accept loop, which otherwise
// notices a stop only at its next 2 s poll timeout.
void Poke(in_addr address, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr = address;
  connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  close(fd);
}

}  // namespace

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(const std::string& path, Handler handler) {
  handlers_[path] = std::move(handler);
}

absl::Status HttpServer::Start(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http listen address '", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  in_addr address{};
  // Debian's civetweb is built without IPv6.
  if (inet_pton(AF_INET, host.c_str(), &address) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("http listen address '", listen, "': '", host,
                                                   "' is not an IPv4 address"));
  }
  // The stop's wake-up call goes to the listener's address (loopback for a wildcard).
  poke_address_ = address.s_addr == htonl(INADDR_ANY) ? htonl(INADDR_LOOPBACK) : address.s_addr;
  mg_init_library(0);
  const std::string ports = absl::StrCat(host, ":", port);
  const char* options[] = {"listening_ports",    ports.c_str(),     "num_threads", kThreads,
                           "request_timeout_ms", kRequestTimeoutMs, nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = LogMessage;
  mg_init_data init{&callbacks, this, options};
  char error_text[256] = {};
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof(error_text)};
  context_ = mg_start2(&init, &error);
  if (context_ == nullptr) {
    mg_exit_library();
    return absl::UnavailableError(absl::StrCat("http listener ", ports, ": ",
                                               error_text[0] ? error_text : "cannot start"));
  }
  mg_server_port bound[4];
  const int count = mg_get_server_ports(context_, 4, bound);
  port_ = count > 0 ? bound[0].port : port;
  for (auto& [path, handler] : handlers_) {
    // A trailing '$' makes civetweb match the path exactly rather than as a prefix.
    mg_set_request_handler(context_, absl::StrCat(path, "$").c_str(), &HttpServer::Dispatch,
                           &handler);
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (context_ == nullptr) return;
  std::atomic<bool> stopped{false};
  std::thread stopper([this, &stopped] {
    mg_stop(context_);
    stopped.store(true);
  });
  in_addr address{};
  address.s_addr = poke_address_;
  while (!stopped.load()) {
    Poke(address, port_);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stopper.join();
  context_ = nullptr;
  mg_exit_library();
}

int HttpServer::Dispatch(mg_connection* connection, void* handler) {
  const mg_request_info* request = mg_get_request_info(connection);
  const bool head = std::strcmp(request->request_method, "HEAD") == 0;
  Response response;
  if (!head && std::strcmp(request->request_method, "GET") != 0) {
    response.status = 405;
    response.body = "only GET and HEAD\n";
  } else {
    // civetweb's threads have 100 KiB stacks, a quarter of it used before a handler is called:
    // too tight for code that was not written for it. A request is rare enough to get a thread
    // of its own, with an ordinary stack.
    std::thread([&response, handler] { response = (*static_cast<Handler*>(handler))(); }).join();
  }
  const std::string length = absl::StrCat(response.body.size());
  mg_response_header_start(connection, response.status);
  mg_response_header_add(connection, "Content-Type", response.content_type.c_str(), -1);
  mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  mg_response_header_add(connection, "Cache-Control", "no-store", -1);
  if (response.status == 405) mg_response_header_add(connection, "Allow", "GET, HEAD", -1);
  mg_response_header_send(connection);
  if (!head && !response.body.empty()) {
    mg_write(connection, response.body.data(), response.body.size());
  }
  return response.status;
}

}  // namespace meshmq::http
