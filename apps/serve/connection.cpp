// The socket and limits layer of `emotune serve`: see connection.h.
#include "apps/serve/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "apps/serve/api.h"

namespace emotune::serve {

thread_local bool t_reject = false;
thread_local bool t_reject_inline = false;
thread_local bool t_close_after = false;
thread_local Clock::time_point t_request_start;

int poll_one(int sock, short events, int timeout_ms) {
  pollfd p{sock, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, std::max(timeout_ms, 0));
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

// A Content-Length value we accept: 1 to 19 decimal digits (fits in 64 bits), nothing else.
bool is_length(const std::string& v) {
  return !v.empty() && v.size() <= 19 &&
         std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

const char* status_text(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 408: return "request timeout";
    case 411: return "length required";
    case 413: return "payload too large";
    case 414: return "request URI too long";
    case 415: return "unsupported media type";
    case 416: return "range not satisfiable";
    case 422: return "unprocessable entity";
    case 431: return "request header fields too large";
    case 500: return "internal server error";
    case 503: return "service unavailable";
    case 504: return "gateway timeout";
    default: return "error";
  }
}

void set_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(error_json(status, message).dump(), "application/json");
  if (status == 503) res.set_header("Retry-After", "1");
}

namespace {

// httplib::Stream over a connected socket with one deadline for everything read in a request,
// plus a small read buffer (httplib reads request lines one byte at a time).
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int sock, Clock::time_point read_deadline, int write_timeout_ms)
      : sock_(sock), deadline_(read_deadline), write_timeout_ms_(write_timeout_ms) {}

  bool is_readable() const override {
    if (begin_ < end_) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    return left.count() > 0 && poll_one(sock_, POLLIN, (int)left.count()) > 0;
  }
  bool is_writable() const override { return poll_one(sock_, POLLOUT, write_timeout_ms_) > 0; }

  ssize_t read(char* ptr, size_t size) override {
    if (begin_ == end_) {
      if (!is_readable()) return -1;  // the client missed --client-timeout
      ssize_t n;
      do n = ::recv(sock_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      begin_ = 0;
      end_ = (size_t)n;
    }
    size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buf_ + begin_, n);
    begin_ += n;
    return (ssize_t)n;
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (getpeername(sock_, (sockaddr*)&a, &len) == 0) describe(a, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (getsockname(sock_, (sockaddr*)&a, &len) == 0) describe(a, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  static void describe(const sockaddr_storage& a, std::string& ip, int& port) {
    char b[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET) {
      auto* in = (const sockaddr_in*)&a;
      inet_ntop(AF_INET, &in->sin_addr, b, sizeof b);
      port = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* in = (const sockaddr_in6*)&a;
      inet_ntop(AF_INET6, &in->sin6_addr, b, sizeof b);
      port = ntohs(in->sin6_port);
    }
    ip = b;
  }

  int sock_;
  Clock::time_point deadline_;
  int write_timeout_ms_;
  char buf_[4096];
  size_t begin_ = 0, end_ = 0;
};

}  // namespace

// Reads what the client already sent (or sends within linger_ms), so that closing the socket
// does not reset the connection under a response the client has not read yet; then closes.
void drain_and_close(int sock, int linger_ms) {
  ::shutdown(sock, SHUT_WR);
  auto until = Clock::now() + std::chrono::milliseconds(linger_ms);
  char b[16384];
  size_t total = 0;
  for (;;) {
    ssize_t n = ::recv(sock, b, sizeof b, MSG_DONTWAIT);
    if (n > 0) {
      if ((total += (size_t)n) > (64u << 20)) break;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0 || poll_one(sock, POLLIN, (int)left.count()) <= 0) break;
  }
  ::close(sock);
}

  // httplib's own version runs its keep-alive loop over its SocketStream (per-read timeouts
  // only); ours runs the same loop over DeadlineStream and closes the connection after an
  // early rejection (t_close_after).
bool HardenedServer::process_and_close_socket(socket_t sock) {
    if (t_reject) {
      on_busy_(sock);
      return true;
    }
    // httplib writes a response's headers and body in two send()s; with Nagle's algorithm the
    // body waits for the client's delayed ACK of the headers: +40 ms per request on loopback.
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const ServeOptions& o = options_;
    const int client_ms = (int)(o.client_timeout * 1000);
    bool ret = false, linger = false;
    for (size_t n = 0; n < kKeepAliveMax; ++n) {
      // The first request may take --client-timeout to start, later ones --idle-timeout.
      int wait_ms = n == 0 ? client_ms : (int)(o.idle_timeout * 1000);
      bool readable = false;
      for (int waited = 0; waited < wait_ms && !stopping_; waited += 100) {
        int r = poll_one(sock, POLLIN, std::min(100, wait_ms - waited));
        if (r != 0) {
          readable = r > 0;
          break;
        }
      }
      if (!readable) break;
      t_request_start = Clock::now();
      t_close_after = false;
      DeadlineStream strm(sock, t_request_start + std::chrono::milliseconds(client_ms), client_ms);
      bool closed = false;
      ret = process_request(strm, n + 1 == kKeepAliveMax || stopping_, closed, nullptr);
      if (t_close_after) linger = true;
      if (!ret || closed || t_close_after) break;
    }
    if (linger) {
      drain_and_close(sock, kLingerMs);
    } else {
      ::shutdown(sock, SHUT_RDWR);
      ::close(sock);
    }
    return ret;
  }

void send_busy_and_close(int sock, int backlog) {
  const std::string body =
      error_json(503, "server busy: every connection thread is taken and " +
                          std::to_string(backlog) +
                          " connections are waiting (--backlog); retry in a second")
          .dump();
  const std::string head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                           "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  // What the client has sent so far is read first (not parsed), so the close is not a reset.
  char b[16384];
  while (::recv(sock, b, sizeof b, MSG_DONTWAIT) > 0) {
  }
  std::string all = head + body;
  ::send(sock, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (t_reject_inline) {
    ::close(sock);
  } else {
    drain_and_close(sock, 200);
  }
}

httplib::Server::HandlerResponse check_request_limits(const httplib::Request& req, httplib::Response& res,
                                                    const ServeOptions& options) {
  auto reject = [&](int status, const std::string& message) {
    set_error(res, status, message);
    res.set_header("Connection", "close");
    t_close_after = true;
    return httplib::Server::HandlerResponse::Handled;
  };
  if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
    res.set_header("Allow", "GET, HEAD, POST");
    return reject(405, "method " + req.method.substr(0, 16) + " is not allowed here (GET, HEAD, POST)");
  }
  size_t header_bytes = req.method.size() + req.target.size() + 12;
  for (const auto& [k, v] : req.headers)
    if (k != "REMOTE_ADDR" && k != "REMOTE_PORT" && k != "LOCAL_ADDR" && k != "LOCAL_PORT")
      header_bytes += k.size() + v.size() + 4;
  if (header_bytes > (size_t)options.max_header_bytes)
    return reject(431, "request headers are " + std::to_string(header_bytes) +
                           " bytes, more than --max-header-bytes " +
                           std::to_string(options.max_header_bytes));
  if (req.has_header("Transfer-Encoding"))
    return reject(411, "chunked uploads are not accepted: send a Content-Length");
  bool has_length = req.has_header("Content-Length");
  if (req.method == "POST" && !has_length)
    return reject(411, "a POST needs a Content-Length header");
  if (has_length) {
    const std::string v = req.get_header_value("Content-Length");
    if (!is_length(v)) return reject(400, "Content-Length is not a number");
    unsigned long long len = std::stoull(v);
    if (len > (unsigned long long)options.max_upload)
      return reject(413, "upload is " + std::to_string(len) + " bytes, more than --max-upload " +
                             std::to_string(options.max_upload));
    if (req.method != "POST" && len > 0)
      return reject(400, "a " + req.method + " request carries no body");
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

void install_hardening(HardenedServer& http, const ServeOptions& options) {
  // httplib's own errors (400 malformed request or multipart, 404 unknown POST route, 414,
  // 413 from its own payload check) get the same JSON body as ours.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
        if (res.body.empty()) {
          // httplib's own error: the request may be half read (a body cut off, a bad line),
          // so the connection cannot carry another request.
          set_error(res, res.status, status_text(res.status));
          res.set_header("Connection", "close");
          t_close_after = true;
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    set_error(res, 500, what);
  });
  // curl sends "Expect: 100-continue" before a large body; a body over the limit is refused
  // then, before the client sends it (the pre-routing check would see it only afterwards).
  http.set_expect_100_continue_handler([&options](const httplib::Request& req, httplib::Response& res) {
    const std::string v = req.get_header_value("Content-Length");
    if (is_length(v) && std::stoull(v) > (unsigned long long)options.max_upload) {
      set_error(res, 413, "upload is " + v + " bytes, more than --max-upload " +
                              std::to_string(options.max_upload));
      res.set_header("Connection", "close");
      t_close_after = true;
      return 413;
    }
    return 100;
  });
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                            {"Referrer-Policy", "no-referrer"},
                            {"Content-Security-Policy",
                             "default-src 'self'; img-src 'self' blob: data:; media-src 'self' "
                             "blob: mediastream:; style-src 'self'; script-src 'self'; "
                             "connect-src 'self'; frame-ancestors 'none'"}});
}

}  // namespace emotune::serve
