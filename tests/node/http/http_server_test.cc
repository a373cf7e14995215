// The operations HTTP server (node/http/http_server.h) on 127.0.0.1, port 0, spoken to with a
// plain socket: handlers answer their exact path, HEAD gets headers only, other methods 405,
// other paths 404, the bound port is reported, and a taken port is an error naming it.
#include "node/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Sends `request` and reads until the server closes (it keeps nothing alive).
std::string Exchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "connect failed";
  }
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  // Said all: civetweb drains the request side before it closes, as a lingering close.
  shutdown(fd, SHUT_WR);
  std::string response;
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

std::string Get(int port, const std::string& path, const std::string& method = "GET") {
  return Exchange(port, method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                            "Connection: close\r\n\r\n");
}

std::string Body(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Handle("/metrics", [this] {
      calls_.fetch_add(1);
      return HttpServer::Response{200, "text/plain; version=0.0.4", "m_total 1\n"};
    });
    server_.Handle("/readyz",
                   [] { return HttpServer::Response{503, "text/plain", "no quorum\n"}; });
    ASSERT_TRUE(server_.Start("127.0.0.1:0").ok());
    ASSERT_GT(server_.port(), 0);
  }

  HttpServer server_;
  std::atomic<int> calls_{0};
};

TEST_F(HttpServerTest, ServesTheHandlerOfThePath) {
  const std::string response = Get(server_.port(), "/metrics");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Length: 10\r\n"));
  EXPECT_EQ(Body(response), "m_total 1\n");
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(HttpServerTest, ReportsTheHandlersStatus) {
  const std::string response = Get(server_.port(), "/readyz");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_EQ(Body(response), "no quorum\n");
}

TEST_F(HttpServerTest, HeadHasHeadersWithoutBody) {
  const std::string response = Get(server_.port(), "/metrics", "HEAD");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Length: 10\r\n"));
  EXPECT_EQ(Body(response), "");
}

TEST_F(HttpServerTest, OtherMethodsAreRefused) {
  const std::string response = Get(server_.port(), "/metrics", "POST");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(response, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(HttpServerTest, UnknownPathsAndSubPathsAreNotFound) {
  EXPECT_THAT(Get(server_.port(), "/"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Get(server_.port(), "/metrics/x"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Get(server_.port(), "/metricsx"), StartsWith("HTTP/1.1 404 "));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(HttpServerTest, StopClosesTheListener) {
  const int port = server_.port();
  server_.Stop();
  EXPECT_EQ(Get(port, "/metrics"), "connect failed");
}

TEST(HttpServerStartTest, ATakenPortIsAnErrorNamingIt) {
  HttpServer first;
  ASSERT_TRUE(first.Start("127.0.0.1:0").ok());
  HttpServer second;
  const std::string listen = "127.0.0.1:" + std::to_string(first.port());
  absl::Status status = second.Start(listen);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(listen));
}

TEST(HttpServerStartTest, BadAddressesAreRefused) {
  HttpServer server;
  EXPECT_FALSE(server.Start("no-port").ok());
  EXPECT_FALSE(server.Start("127.0.0.1:99999").ok());
  EXPECT_FALSE(server.Start("[::1]:0").ok());  // Debian's civetweb has no IPv6
  EXPECT_FALSE(server.Start("example.com:80").ok());
}

}  // namespace
}  // namespace meshmq::http
