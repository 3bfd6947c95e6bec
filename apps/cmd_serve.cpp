// `emotune serve [--host 127.0.0.1] [--port 8080] [--model PATH] [--tracks FILE] [--workers N]
//  [--queue N] [--connections N] [--backlog N] [--max-upload BYTES] [--max-pixels N]
//  [--max-header-bytes N] [--request-timeout S] [--client-timeout S] [--idle-timeout S]
//  [--max-top N] [--detector hog|haar|lbp] [--align landmarks|none] [--margin F] [--quiet]`
// The page and the JSON API (apps/serve/server.h, docs/serve.md) until SIGINT or SIGTERM; exit 0
// then. Exit 1 when the model or mood table does not load or the port cannot be bound.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/pipeline/pipeline.h"
#include "apps/serve/server.h"
#include "base/error.h"

namespace emotune {

namespace {

struct ServeCommandOptions {
  ServeOptions serve;
  FaceOptions faces;
  std::string tracks = kDefaultTracks;
};

void add_serve_flags(CLI::App* cmd, ServeCommandOptions& opt) {
  ServeOptions& s = opt.serve;
  cmd->add_option("--host", s.host, "address to listen on (loopback by default)")
      ->capture_default_str();
  cmd->add_option("--port", s.port, "TCP port (0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  add_face_options(cmd, opt.faces, /*with_device=*/false);
  cmd->add_option("--tracks", opt.tracks, "mood table CSV")->capture_default_str();
  cmd->add_option("--workers", s.workers,
                  "inference threads, each with its own model copy (0: one per core)")
      ->capture_default_str();
  cmd->add_option("--queue", s.queue, "requests that may wait for a worker; more get 503")
      ->capture_default_str();
  cmd->add_option("--connections", s.connections,
                  "connection threads (reading requests, writing answers)")
      ->capture_default_str();
  cmd->add_option("--backlog", s.backlog,
                  "connections that may wait for a connection thread; more get 503")
      ->capture_default_str();
  cmd->add_option("--max-upload", s.max_upload, "largest request body in bytes (413 above)")
      ->capture_default_str();
  cmd->add_option("--max-pixels", s.max_pixels,
                  "largest decoded image, width x height (413 above)")
      ->capture_default_str();
  cmd->add_option("--max-header-bytes", s.max_header_bytes,
                  "largest request header block (431 above)")
      ->capture_default_str();
  cmd->add_option("--request-timeout", s.request_timeout,
                  "seconds from a request's arrival at the worker queue to its answer (503/504)")
      ->capture_default_str();
  cmd->add_option("--client-timeout", s.client_timeout,
                  "seconds a client may take to send a whole request (then the connection closes)")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", s.idle_timeout, "seconds an idle keep-alive connection stays")
      ->capture_default_str();
  cmd->add_option("--max-top", s.max_top, "largest ?top= for /api/v1/recommend")
      ->capture_default_str();
  cmd->add_flag("--quiet", s.quiet, "no access log on stderr");
}

// Runs the server until SIGINT or SIGTERM (requests in flight finish) or its socket fails.
void serve_until_signalled(const ServeOptions& o) {
  // SIGINT/SIGTERM: the handler only writes a byte to a pipe (async-signal-safe); a thread
  // reading the pipe stops the server. Blocking the signals instead would not do: threads
  // started before this callback (OpenBLAS's pool) would still take them and die.
  static int stop_pipe[2] = {-1, -1};
  if (pipe(stop_pipe) != 0) throw Error("serve: cannot create a pipe for signals");
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    char c = 1;
    [[maybe_unused]] ssize_t n = write(stop_pipe[1], &c, 1);
  };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  WebServer server(o);
  std::fprintf(stderr, "emotune serve: http://%s:%d/ (%s, %d workers, queue %d); Ctrl-C stops\n",
               o.host.c_str(), server.port(), o.model.c_str(),
               o.workers ? o.workers : (int)std::max(1u, std::thread::hardware_concurrency()),
               o.queue);
  std::thread waiter([&] {
    char c = 0;
    while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (c == 1) std::fprintf(stderr, "emotune serve: stopping (requests in flight finish)\n");
    server.stop();
  });
  server.run();
  // run() also returns when the listening socket fails: wake the waiter either way.
  char c = 2;
  [[maybe_unused]] ssize_t n = write(stop_pipe[1], &c, 1);
  waiter.join();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto opt = std::make_shared<ServeCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve the web page and the JSON API (docs/serve.md) until interrupted");
  add_serve_flags(cmd, *opt);
  cmd->callback([opt]() {
    ServeOptions o = opt->serve;
    o.model = resolve_option_path(opt->faces.model, kDefaultModel);
    o.margin = opt->faces.margin;
    o.detector = opt->faces.detector;
    o.align = opt->faces.align;
    o.unsure_below = opt->faces.unsure_below;
    o.tracks = resolve_option_path(opt->tracks, kDefaultTracks);
    serve_until_signalled(o);
  });
}

}  // namespace emotune
