// `emotune serve`: the routes (page, API, health) and the server's construction. The socket and
// limits layer under them, and why it exists, is apps/serve/connection.h.
#include "apps/serve/server.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "apps/music/mood_table.h"
#include "apps/pipeline/recommendation.h"
#include "apps/report/predict.h"
#include "apps/report/recommend.h"
#include "apps/serve/api.h"
#include "apps/serve/assets.h"
#include "apps/serve/connection.h"
#include "apps/serve/inference_pool.h"
#include "base/error.h"

namespace emotune {

using namespace serve;  // the connection layer (connection.h)
using json = nlohmann::ordered_json;

struct WebServer::Impl {
  ServeOptions options;
  MoodTable table;
  std::unique_ptr<InferencePool> pool;
  std::string model_json;
  std::atomic<bool> stopping{false};
  // Destroyed in reverse: the rejector (whose queued connections call into http) before http,
  // http (whose connection threads use the pool) before the pool.
  HardenedServer http{options, stopping, [this](int sock) { reject_busy(sock); }};
  Rejector rejector;
  std::atomic<long> rejected_backlog{0}, rejected_queue{0}, timed_out{0};
  int port = 0;
  std::mutex run_mutex;
  std::condition_variable run_cv;
  bool running = false;

  // A connection past --backlog: counted, answered 503, closed (connection.h).
  void reject_busy(int sock) {
    rejected_backlog++;
    send_busy_and_close(sock, options.backlog);
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
      return check_request_limits(q, s, options);
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
    install_hardening(http, options);
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
