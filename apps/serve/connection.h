// The socket and limits layer of `emotune serve` (the routes are apps/serve/server.cpp's), on
// cpp-httplib 0.11 (Debian's libcpp-httplib-dev). What httplib does for us:
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
#pragma once
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apps/serve/server.h"

namespace emotune::serve {

using Clock = std::chrono::steady_clock;

// Requests one keep-alive connection may carry before the server closes it (httplib's default
// of 5 makes a browser or a load generator reconnect every 5 requests).
constexpr size_t kKeepAliveMax = 100;
// How long a closing connection whose request body was not read is drained, so the kernel does
// not answer the client's unread bytes with a reset that can destroy our 4xx before it is read.
constexpr int kLingerMs = 500;

// The state of the connection the calling thread serves.
extern thread_local bool t_reject;         // this connection is past --backlog: canned 503
extern thread_local bool t_reject_inline;  // ... and is rejected on the accept thread itself
extern thread_local bool t_close_after;    // close the connection after this response
extern thread_local Clock::time_point t_request_start;

inline double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int poll_one(int sock, short events, int timeout_ms);
// A Content-Length value we accept: 1 to 19 decimal digits (fits in 64 bits), nothing else.
bool is_length(const std::string& v);
const char* status_text(int status);
// The JSON error answer ({"error", "status"}), with Retry-After on a 503.
void set_error(httplib::Response& res, int status, const std::string& message);
// Reads what the client already sent (or sends within linger_ms), so that closing the socket
// does not reset the connection under a response the client has not read yet; then closes.
void drain_and_close(int sock, int linger_ms);

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

// The canned 503 for a connection past --backlog: what the client sent is read (not parsed), the
// answer sent, the socket closed (drained first unless rejected on the accept thread).
void send_busy_and_close(int sock, int backlog);

// Before any body is read: method, header size, Content-Length (docs/serve.md, "Limits");
// Handled (with the error set and the connection marked to close) or Unhandled.
httplib::Server::HandlerResponse check_request_limits(const httplib::Request& req, httplib::Response& res,
                                                      const ServeOptions& options);

// httplib::Server whose connection loop reads every request through one deadline
// (--client-timeout), waits --idle-timeout between keep-alive requests, closes after an early
// rejection, and hands connections past --backlog to `on_busy`.
class HardenedServer : public httplib::Server {
 public:
  HardenedServer(const ServeOptions& options, const std::atomic<bool>& stopping, std::function<void(int)> on_busy)
      : options_(options), stopping_(stopping), on_busy_(std::move(on_busy)) {}
  using httplib::Server::process_request;
  // httplib listens with a backlog of 5 (compiled into Debian's library): a burst of 16
  // connections would see SYNs dropped and 1 s retransmits. Linux lets a second listen() on
  // the bound socket raise it; ConnectionQueue, not the kernel, is the bound that answers.
  void raise_listen_backlog(int n) { ::listen(svr_sock_, n); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  const ServeOptions& options_;
  const std::atomic<bool>& stopping_;
  std::function<void(int)> on_busy_;
};

// The answers httplib gives on its own, made ours: its errors and exceptions as our JSON, an
// early 413 on "Expect: 100-continue", the security headers on every answer.
void install_hardening(HardenedServer& http, const ServeOptions& options);

}  // namespace emotune::serve
