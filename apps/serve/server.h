// `emotune serve`: one process that serves the page (embedded at build time, apps/serve/static/)
// and the versioned JSON API over HTTP/1.1 with cpp-httplib (Debian's libcpp-httplib-dev).
//
//   GET  /                   the page (index.html, app.js, style.css from the embedded set only)
//   POST /api/v1/predict     image bytes (raw body or multipart field "image") -> predict --json
//   POST /api/v1/recommend   the same, ?top=N&policy=match|uplift -> recommend --json
//   GET  /api/v1/model       {"arch", "classes", "file", "sha256", "input"}
//   GET  /healthz            {"status": "ok", "workers", "queued", "running"}
//   GET  /openapi.json       docs/openapi.json, the API's schema (checked by tests/test_serve.cpp)
//
// Threads: the connection pool (--connections threads) reads requests and writes responses; the
// network runs only on the --workers inference threads, each with its own EmotionPipeline
// (inference_pool.h says why). Every limit below is a flag of `emotune serve`; docs/serve.md has
// the table with the status code each one answers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace emotune {

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback: nothing outside the machine reaches it by default
  int port = 8080;                 // 0: any free port (tests); WebServer::port() says which
  std::string model;               // checkpoint path (resolved by the caller)
  std::string tracks;              // mood table path (resolved by the caller)
  std::string detector = "hog", align = "none";
  double margin = 0.1;
  double unsure_below = 0.5;  // apps/pipeline/pipeline.h kDefaultUnsureBelow

  int workers = 0;        // inference threads, one pipeline each; 0: the machine's core count
  int queue = 16;         // requests waiting for a worker; one more gets 503 + Retry-After
  int connections = 32;   // connection threads (reading requests, writing answers)
  int backlog = 64;       // accepted connections waiting for a connection thread; then 503
  int64_t max_upload = 10ll << 20;      // bytes of request body (413); Content-Length required
  int64_t max_pixels = 40ll << 20;      // decoded width*height (413), from the image header
  int max_header_bytes = 16 << 10;      // all request headers together (431)
  double request_timeout = 10;  // s from a worker job's submission to its answer (503/504)
  double client_timeout = 10;   // s a client may take to send one request (headers + body)
  double idle_timeout = 5;      // s an idle keep-alive connection is kept open
  int max_top = 100;            // largest ?top= (400 above)
  bool quiet = false;           // no access log on stderr
};

class WebServer {
 public:
  // Loads the model once per worker and the mood table once; binds host:port. Throws
  // emotune::Error for a bad option, a missing model or table, or a port that cannot be bound.
  explicit WebServer(const ServeOptions& options);
  ~WebServer();  // stops and joins everything
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  int port() const;
  // Serves until stop() (from another thread or a signal handler's thread); returns then.
  void run();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace emotune
