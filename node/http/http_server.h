// A small HTTP/1.1 server for operations endpoints (/metrics, /healthz, /readyz), on Debian's
// civetweb. Each path has a handler that returns the whole response; GET and HEAD are served,
// other methods get 405, other paths 404. No files are served and nothing is kept alive.
//
// THREADING: Handle before Start; Start and Stop from one thread. Handlers run on the server's
// own threads (a few, so a slow probe does not hold up a scrape) and must be thread-safe.
#ifndef MESHMQ_NODE_HTTP_HTTP_SERVER_H_
#define MESHMQ_NODE_HTTP_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"

struct mg_context;
struct mg_connection;

namespace meshmq::http {

class HttpServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  using Handler = std::function<Response()>;

  HttpServer() = default;
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves `path` (exactly; no sub-paths) with `handler`. Before Start.
  void Handle(const std::string& path, Handler handler);
  // Listens on `listen`, "HOST:PORT" with an IPv4 host (empty: 0.0.0.0; port 0: any free port).
  // Errors name the address and what failed.
  absl::Status Start(const std::string& listen);
  // The bound port, once started.
  int port() const { return port_; }
  // Stops listening and waits for the requests being served.
  void Stop();

 private:
  static int Dispatch(mg_connection* connection, void* handler);

  std::map<std::string, Handler> handlers_;
  mg_context* context_ = nullptr;
  int port_ = 0;
  uint32_t poke_address_ = 0;  // IPv4, network order: where Stop wakes the listener
};

}  // namespace meshmq::http

#endif  // MESHMQ_NODE_HTTP_HTTP_SERVER_H_
