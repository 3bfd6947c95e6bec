// `emotune serve` on cpp-httplib 0.11 (Debian's libcpp-httplib-dev). What httplib does for us:
// request-line, header and multipart parsing, routing, response writing. What it does not do in
// this version, and is done here (docs/serve.md, docs/reliability.md):
//   * a deadline for a whole request: httplib's read timeout is per recv(), so a client sending a
//     byte every 4 s would hold a thread forever. Our connection loop reads through DeadlineStream,
//     which refuses to read past --client-timeout from the request's first byte.
//   * a bound on waiting connections: httplib's ThreadPool queues every accepted socket. Ours
//     (ConnectionQueue) holds at most --backlog; past it a connection gets a canned 503 from a
//     separate thread and is closed, without ever reaching a handler.
//   * a bound on bodies before they are read: httplib 0.11 reads (and discards) a too-long
//     Content-Length body before its 413, and reads chunked bodies without any limit. The
//     pre-routing check answers 411/413 from the headers alone and closes the connection.
//   * 431 for oversized headers (httplib only limits a single line, to 8 KiB, with a 400).
#include "apps/serve/server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "apps/music/mood_table.h"
#include "apps/pipeline/recommendation.h"
#include "apps/report/predict.h"
#include "apps/report/recommend.h"
#include "apps/serve/api.h"
#include "apps/serve/assets.h"
#include "apps/serve/inference_pool.h"
#include "base/error.h"

namespace emotune {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

// Requests one keep-alive connection may carry before the server closes it (httplib's default
// of 5 makes a browser or a load generator reconnect every 5 requests).
constexpr size_t kKeepAliveMax = 100;
// How long a closing connection whose request body was not read is drained, so the kernel does
// not answer the client's unread bytes with a reset that can destroy our 4xx before it is read.
constexpr int kLingerMs = 500;

thread_local bool t_reject = false;       // this connection is past --backlog: canned 503
thread_local bool t_reject_inline = false;  // ... and is rejected on the accept thread itself
thread_local bool t_close_after = false;  // close the connection after this response
thread_local Clock::time_point t_request_start;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

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

// Connections waiting for a connection thread: at most `backlog`; past it, `overflow` gets them.
class ConnectionQueue : public httplib::TaskQueue {
 public:
  ConnectionQueue(int threads, int backlog, std::function<void(std::function<void()>)> overflow)
      : threads_count_((size_t)threads), backlog_((size_t)backlog), overflow_(std::move(overflow)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Taken while a thread is free for it or a backlog place is: connections being served
      // plus those waiting stay below threads + backlog.
      if (busy_ + jobs_.size() < threads_count_ + backlog_) {
        jobs_.push_back(std::move(fn));
        cv_.notify_one();
        return;
      }
    }
    overflow_(std::move(fn));
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every accepted connection was served
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        ++busy_;
      }
      fn();
      std::lock_guard<std::mutex> lock(mutex_);
      --busy_;
    }
  }
  size_t threads_count_, backlog_;
  std::function<void(std::function<void()>)> overflow_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t busy_ = 0;  // threads serving a connection
  bool stopping_ = false;
};

// Answers connections past the backlog with a canned 503 on one thread of its own; when even its
// queue is full, on the accept thread (no linger then: the accept loop must not wait).
class Rejector {
 public:
  Rejector() : thread_([this] { loop(); }) {}
  ~Rejector() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void push(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (jobs_.size() < kMaxQueued) {
        jobs_.push_back(std::move(fn));
        cv_.notify_one();
        return;
      }
    }
    t_reject = t_reject_inline = true;
    fn();
    t_reject = t_reject_inline = false;
  }

 private:
  static constexpr size_t kMaxQueued = 256;
  void loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      t_reject = true;
      fn();
      t_reject = false;
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

struct WebServer::Impl {
  class Http : public httplib::Server {
   public:
    explicit Http(Impl& impl) : impl_(impl) {}
    using httplib::Server::process_request;
    // httplib listens with a backlog of 5 (compiled into Debian's library): a burst of 16
    // connections would see SYNs dropped and 1 s retransmits. Linux lets a second listen() on
    // the bound socket raise it; ConnectionQueue, not the kernel, is the bound that answers.
    void raise_listen_backlog(int n) { ::listen(svr_sock_, n); }

   private:
    // httplib's own version runs its keep-alive loop over its SocketStream (per-read timeouts
    // only); ours runs the same loop over DeadlineStream and closes the connection after an
    // early rejection (t_close_after).
    bool process_and_close_socket(socket_t sock) override {
      if (t_reject) {
        impl_.reject_busy(sock);
        return true;
      }
      // httplib writes a response's headers and body in two send()s; with Nagle's algorithm the
      // body waits for the client's delayed ACK of the headers: +40 ms per request on loopback.
      int one = 1;
      setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const ServeOptions& o = impl_.options;
      const int client_ms = (int)(o.client_timeout * 1000);
      bool ret = false, linger = false;
      for (size_t n = 0; n < kKeepAliveMax; ++n) {
        // The first request may take --client-timeout to start, later ones --idle-timeout.
        int wait_ms = n == 0 ? client_ms : (int)(o.idle_timeout * 1000);
        bool readable = false;
        for (int waited = 0; waited < wait_ms && !impl_.stopping; waited += 100) {
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
        ret = process_request(strm, n + 1 == kKeepAliveMax || impl_.stopping, closed, nullptr);
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
    Impl& impl_;
  };

  ServeOptions options;
  MoodTable table;
  std::unique_ptr<InferencePool> pool;
  std::string model_json;
  // Destroyed in reverse: the rejector (whose queued connections call into http) before http,
  // http (whose connection threads use the pool) before the pool.
  Http http{*this};
  Rejector rejector;
  std::atomic<bool> stopping{false};
  std::atomic<long> rejected_backlog{0}, rejected_queue{0}, timed_out{0};
  int port = 0;
  std::mutex run_mutex;
  std::condition_variable run_cv;
  bool running = false;

  void reject_busy(int sock) {
    rejected_backlog++;
    const std::string body =
        error_json(503, "server busy: every connection thread is taken and " +
                            std::to_string(options.backlog) +
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

  // Before any body is read: method, header size, Content-Length (docs/serve.md, "Limits").
  httplib::Server::HandlerResponse pre_route(const httplib::Request& req, httplib::Response& res) {
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

  // POST /api/v1/predict and /api/v1/recommend.
  void handle_image(const httplib::Request& req, httplib::Response& res, bool recommend) {
    std::string name = "upload";
    std::string_view bytes;
    auto field = [&](const std::string& key) {
      if (req.has_param(key)) return req.get_param_value(key);
      auto it = req.files.find(key);
      return it != req.files.end() && it->second.filename.empty() ? it->second.content
                                                                   : std::string();
    };
    if (req.is_multipart_form_data()) {
      auto it = req.files.find("image");
      if (it == req.files.end() || it->second.filename.empty())
        throw ApiError(400, "the multipart body has no file part named \"image\"");
      check_upload_type(it->second.content_type);
      bytes = it->second.content;
      name = upload_name(it->second.filename);
    } else {
      check_upload_type(req.get_header_value("Content-Type"));
      bytes = req.body;
    }
    check_upload_bytes(bytes);
    RecommendParams params;
    if (recommend) params = parse_recommend_params(field("top"), field("policy"), options.max_top);
    const ExplainOptions explain =
        recommend ? ExplainOptions{} : parse_explain_params(field("explain"), field("explain_class"), pool->pipeline(0).model().info.classes);

    // The worker owns a copy of the bytes: a job that outlives its deadline still runs to the end.
    struct State {
      std::string bytes, name;
      json doc;
    };
    auto state = std::make_shared<State>();
    state->bytes.assign(bytes.data(), bytes.size());
    state->name = name;
    auto job = pool->submit([this, state, recommend, params, explain](const EmotionPipeline& p) {
      GrayImage image = decode_upload(state->bytes, state->name, options.max_pixels);
      std::string().swap(state->bytes);
      if (!recommend) {
        const ImageResult r = p.analyze_image(image, state->name, nullptr, explain);
        state->doc = predict_json({r}, options.model, p.model().info, /*explain_map=*/true);
        if (explain.on) add_explanation_images(state->doc, r, p.model().info);
        return;
      }
      // As `emotune recommend` does: the listener search (pipeline.h), then the largest face.
      std::vector<FaceResult> faces =
          p.analyze_image(image, state->name, nullptr, {}, FaceSearch::listener).faces;
      if (faces.empty())
        throw ApiError(422, "no face found in " + state->name +
                                ": no recommendation without a face (a clear, frontal face "
                                "of at least 15% of the picture works best)");
      Recommendation r = make_recommendation(state->name, faces, p.model().info.classes, table,
                                             params.policy, params.top);
      state->doc = recommendation_json(r, table);
    });
    if (!job) {
      rejected_queue++;
      throw ApiError(503, "server busy: " + std::to_string(pool->capacity()) +
                              " requests are already waiting for a worker (--queue); retry in a "
                              "second");
    }
    auto deadline = Clock::now() + std::chrono::milliseconds((int64_t)(options.request_timeout * 1000));
    switch (job->wait_until(deadline)) {
      case InferencePool::Outcome::done: break;
      case InferencePool::Outcome::expired_queued:
        timed_out++;
        throw ApiError(503, "no worker was free within --request-timeout " +
                                fmt_seconds(options.request_timeout) + "; retry in a second");
      case InferencePool::Outcome::expired_running:
        timed_out++;
        throw ApiError(504, "the image took longer than --request-timeout " +
                                fmt_seconds(options.request_timeout) + " to analyse");
    }
    res.set_content(state->doc.dump(), "application/json");
  }

  static std::string fmt_seconds(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%g s", s);
    return b;
  }

  // The name an upload is reported under: the file name the browser sent, without folders or
  // control characters, at most 100 bytes; "upload" when nothing is left.
  static std::string upload_name(const std::string& filename) {
    std::string base = filename.substr(filename.find_last_of("/\\") + 1);
    std::string out;
    for (unsigned char c : base)
      if (c >= 0x20 && c != 0x7f && out.size() < 100) out += (char)c;
    return out.empty() ? "upload" : out;
  }

  // Runs a handler, turning ApiError / Error into their JSON answer.
  template <typename F>
  void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const ApiError& e) {
      set_error(res, e.status, e.what());
    } catch (const std::exception& e) {
      set_error(res, 500, e.what());
    }
  }

  void serve_asset(const httplib::Request& req, httplib::Response& res) {
    const Asset* a = find_asset(req.path);
    if (!a) {
      set_error(res, 404, "no such page or API route: " + req.path.substr(0, 200));
      return;
    }
    res.set_content((const char*)a->data, a->size, std::string(a->content_type));
    res.set_header("Cache-Control", "no-cache");
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& q, httplib::Response& s) {
      return pre_route(q, s);
    });
    http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      const struct mallinfo2 mi = mallinfo2();
      json j = {{"status", "ok"},
                {"workers", pool->workers()},
                {"queue", pool->capacity()},
                {"queued", pool->queued()},
                {"running", pool->running()},
                {"rejected_backlog", rejected_backlog.load()},
                {"rejected_queue", rejected_queue.load()},
                {"timed_out", timed_out.load()},
                // Bytes malloc has handed out and not had back (all arenas; glibc's mallinfo2):
                // with the resident size it tells a leak (this grows) from fragmentation (only
                // the resident size grows). bench/serve_load.py samples both in its soak.
                {"heap_in_use", (uint64_t)(mi.uordblks + mi.hblkhd)}};
      res.set_content(j.dump(), "application/json");
    });
    http.Get("/api/v1/model", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(model_json, "application/json");
    });
    http.Get("/api/v1/(predict|recommend)", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", "POST");
      set_error(res, 405, req.path + " takes a POST with an image");
    });
    http.Post("/api/v1/predict", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { handle_image(req, res, false); });
    });
    http.Post("/api/v1/recommend", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { handle_image(req, res, true); });
    });
    http.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      serve_asset(req, res);
    });
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
    http.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
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
    if (!options.quiet)
      http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::fprintf(stderr, "serve: %s \"%s %s\" %d %zu B %.1f ms\n", req.remote_addr.c_str(),
                     req.method.c_str(), req.path.substr(0, 200).c_str(), res.status,
                     res.body.size(), ms_since(t_request_start));
      });
  }
};

WebServer::WebServer(const ServeOptions& o) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = o;
  ServeOptions& opt = m.options;
  if (opt.workers == 0) opt.workers = (int)std::max(1u, std::thread::hardware_concurrency());
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw Error(what);
  };
  check(opt.workers >= 1 && opt.workers <= 256, "--workers must be from 1 to 256");
  check(opt.queue >= 0 && opt.queue <= 100000, "--queue must be from 0 to 100000");
  check(opt.connections >= 2 && opt.connections <= 4096, "--connections must be from 2 to 4096");
  check(opt.backlog >= 0 && opt.backlog <= 100000, "--backlog must be from 0 to 100000");
  check(opt.max_upload >= 1024, "--max-upload must be at least 1024 bytes");
  check(opt.max_pixels >= 1, "--max-pixels must be positive");
  check(opt.max_header_bytes >= 1024, "--max-header-bytes must be at least 1024");
  check(opt.request_timeout > 0 && opt.client_timeout > 0 && opt.idle_timeout > 0,
        "--request-timeout, --client-timeout and --idle-timeout must be positive");
  check(opt.max_top >= 1, "--max-top must be at least 1");

  // Cheap and likely failures first: the mood table, then the port, then the models.
  m.table = read_mood_table(opt.tracks);
  const DetectorKind detector = parse_detector(opt.detector);
  const AlignKind align = parse_align(opt.align);
  m.routes();
  m.http.set_keep_alive_max_count(kKeepAliveMax);
  m.http.set_keep_alive_timeout((time_t)std::max(1.0, opt.idle_timeout));
  m.http.set_payload_max_length((size_t)opt.max_upload);
  m.http.new_task_queue = [&m] {
    return new ConnectionQueue(m.options.connections, m.options.backlog,
                               [&m](std::function<void()> fn) { m.rejector.push(std::move(fn)); });
  };
  // httplib's default sets SO_REUSEPORT, which lets a second server bind a port in use and
  // silently share its connections; SO_REUSEADDR alone still allows a quick restart.
  m.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  if (opt.port == 0) {
    m.port = m.http.bind_to_any_port(opt.host);
    check(m.port > 0, "cannot bind " + opt.host + " to a free port");
  } else {
    check(m.http.bind_to_port(opt.host, opt.port),
          "cannot listen on " + opt.host + ":" + std::to_string(opt.port) +
              " (in use, or not an address of this machine; --port 0 takes any free port)");
    m.port = opt.port;
  }
  m.http.raise_listen_backlog(std::min(4096, opt.connections + opt.backlog + 64));
  m.pool = std::make_unique<InferencePool>(opt.workers, opt.queue, [&] {
    auto p = std::make_unique<EmotionPipeline>(opt.model, Device::cpu, /*detect=*/true, opt.margin,
                                               /*listener=*/false, detector, align);
    p->set_unsure_below(opt.unsure_below);
    return p;
  });
  const EmotionPipeline& first = m.pool->pipeline(0);
  for (const auto& c : first.model().info.classes) emotion_target(c);  // every class has a target
  m.model_json =
      model_info_json(first, sha256_file_hex(opt.model), opt.detector, opt.align).dump();
}

WebServer::~WebServer() {
  stop();
  // run() on another thread returns once the listen loop has joined its connection threads.
  std::unique_lock<std::mutex> lock(impl_->run_mutex);
  impl_->run_cv.wait(lock, [&] { return !impl_->running; });
}

int WebServer::port() const { return impl_->port; }

void WebServer::run() {
  {
    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    if (impl_->stopping) return;
    impl_->running = true;
  }
  impl_->http.listen_after_bind();
  std::lock_guard<std::mutex> lock(impl_->run_mutex);
  impl_->running = false;
  impl_->run_cv.notify_all();
}

void WebServer::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace emotune
