// `emotune serve` against a real server: each case starts a WebServer in this process on a free
// loopback port (port 0) with the shipped vgg model, and talks to it over TCP with httplib's
// client or, for malformed and abusive requests, raw bytes on a socket. Checked: every route,
// every error status of docs/serve.md, the answers against the CLI's own JSON (`predict --json`,
// `recommend --json` run in-process on the same image) also under concurrent requests, every
// document against docs/openapi.json's schemas, and that the server keeps serving after abuse.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/serve/server.h"
#include "layers/model.h"
#include "tests/testing.h"

using namespace emotune;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

std::string repo(const std::string& rel) { return testing::source_dir() + "/" + rel; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ServeOptions test_options() {
  ServeOptions o;
  o.port = 0;
  o.model = repo("models/vgg.safetensors");
  o.tracks = repo("data/music/tracks.csv");
  o.workers = 1;  // each worker loads its own model; the concurrency case takes 2
  o.queue = 8;
  o.connections = 24;
  o.backlog = 16;
  o.max_upload = 1 << 20;     // face.jpg is 52 KB
  o.max_pixels = 4ll << 20;   // face.jpg is 640x480
  o.request_timeout = 60;     // generous: a sanitizer build on 2 busy cores is slow
  o.client_timeout = 2;
  o.quiet = true;
  return o;
}

// A server on its own thread for the length of a test case.
struct Running {
  explicit Running(const ServeOptions& o) : server(std::make_unique<WebServer>(o)) {
    port = server->port();
    thread = std::thread([this] { server->run(); });
  }
  ~Running() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    c.set_connection_timeout(10, 0);
    return c;
  }
  std::unique_ptr<WebServer> server;
  std::thread thread;
  int port = 0;
};

// Raw bytes to the server; returns everything it sends back until it closes the connection or
// `timeout_s` passes. For requests httplib's client will not send (bad framing, huge headers).
struct RawReply {
  std::string bytes;
  bool closed = false;  // the server closed the connection (vs. our timeout)
  double seconds = 0;
  int status() const {
    if (bytes.rfind("HTTP/1.1 ", 0) != 0 || bytes.size() < 12) return 0;
    return std::stoi(bytes.substr(9, 3));
  }
  json body() const {
    auto p = bytes.find("\r\n\r\n");
    return p == std::string::npos ? json() : json::parse(bytes.substr(p + 4), nullptr, false);
  }
};

int connect_to(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(s, (sockaddr*)&a, sizeof a) == 0);
  return s;
}

RawReply read_reply(int s, double timeout_s) {
  RawReply r;
  auto t0 = Clock::now();
  auto until = t0 + std::chrono::milliseconds((int)(timeout_s * 1000));
  char b[65536];
  for (;;) {
    int left = (int)std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) break;
    ssize_t n = ::recv(s, b, sizeof b, 0);
    if (n <= 0) {
      r.closed = true;
      break;
    }
    r.bytes.append(b, (size_t)n);
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

RawReply raw(int port, const std::string& request, double timeout_s = 10, bool half_close = false) {
  int s = connect_to(port);
  ::send(s, request.data(), request.size(), MSG_NOSIGNAL);
  if (half_close) ::shutdown(s, SHUT_WR);
  RawReply r = read_reply(s, timeout_s);
  ::close(s);
  return r;
}

// --- a small validator for the OpenAPI 3.0 schema subset docs/openapi.json uses -----------------

struct SchemaCheck {
  const json& root;
  std::vector<std::string> errors;

  const json& resolve(const json& s) {
    if (!s.contains("$ref")) return s;
    std::string ref = s["$ref"];
    REQUIRE(ref.rfind("#/", 0) == 0);
    const json* at = &root;
    std::stringstream parts(ref.substr(2));
    for (std::string key; std::getline(parts, key, '/');) at = &(*at)[key];
    return resolve(*at);
  }

  void check(const json& v, const json& schema_in, const std::string& where) {
    const json& s = resolve(schema_in);
    if (v.is_null()) {
      if (!s.value("nullable", false)) errors.push_back(where + ": null where not nullable");
      return;
    }
    std::string type = s.value("type", "");
    bool ok = type.empty() || (type == "object" && v.is_object()) ||
              (type == "array" && v.is_array()) || (type == "string" && v.is_string()) ||
              (type == "integer" && v.is_number_integer()) ||
              (type == "number" && v.is_number()) || (type == "boolean" && v.is_boolean());
    if (!ok) {
      errors.push_back(where + ": " + v.dump().substr(0, 60) + " is not of type " + type);
      return;
    }
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
      errors.push_back(where + ": " + v.dump() + " not in " + s["enum"].dump());
    if (v.is_number()) {
      double x = v.get<double>();
      if (s.contains("minimum") && x < s["minimum"].get<double>())
        errors.push_back(where + ": " + v.dump() + " below the minimum");
      if (s.contains("maximum") && x > s["maximum"].get<double>())
        errors.push_back(where + ": " + v.dump() + " above the maximum");
    }
    if (v.is_string() && s.contains("pattern") &&
        !std::regex_search(v.get<std::string>(), std::regex(s["pattern"].get<std::string>())))
      errors.push_back(where + ": \"" + v.get<std::string>() + "\" does not match " +
                       s["pattern"].get<std::string>());
    if (v.is_array()) {
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>())
        errors.push_back(where + ": fewer items than minItems");
      if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>())
        errors.push_back(where + ": more items than maxItems");
      if (s.contains("items"))
        for (size_t i = 0; i < v.size(); ++i) check(v[i], s["items"], where + "/" + std::to_string(i));
    }
    if (v.is_object()) {
      for (const auto& r : s.value("required", json::array()))
        if (!v.contains(r.get<std::string>())) errors.push_back(where + ": missing " + r.dump());
      for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string here = where + "/" + it.key();
        if (s.contains("properties") && s["properties"].contains(it.key())) {
          check(it.value(), s["properties"][it.key()], here);
        } else if (s.contains("additionalProperties")) {
          const json& ap = s["additionalProperties"];
          if (ap.is_boolean()) {
            if (!ap.get<bool>()) errors.push_back(here + ": not in the schema");
          } else {
            check(it.value(), ap, here);
          }
        }
      }
    }
  }
};

const json& openapi() {
  static const json doc = json::parse(read_file(repo("docs/openapi.json")));
  return doc;
}

void check_schema(const json& v, const std::string& name) {
  SchemaCheck c{openapi(), {}};
  c.check(v, json{{"$ref", "#/components/schemas/" + name}}, name);
  for (const auto& e : c.errors) FAIL_CHECK(e);
}

// An error answer: the status, a JSON {"error", "status"} body naming it.
void check_error(int got_status, const std::string& body, int want, const std::string& words = "") {
  CHECK(got_status == want);
  json j = json::parse(body, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), "not JSON: " << body.substr(0, 200));
  check_schema(j, "Error");
  CHECK(j["status"] == want);
  if (!words.empty()) CHECK_MESSAGE(j["error"].get<std::string>().find(words) != std::string::npos,
                                    j["error"].get<std::string>() << " (wanted: " << words << ")");
}

// `emotune <args>` in this process, its stdout (the CLI's own JSON).
std::string cli_json(std::vector<std::string> args) {
  args.insert(args.begin(), "emotune");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  CLI::App app{"emotune (test)"};
  add_predict_command(app);
  add_recommend_command(app);
  cli_exit_code() = 0;
  std::ostringstream out;
  auto* old = std::cout.rdbuf(out.rdbuf());
  try {
    app.parse((int)argv.size(), argv.data());
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  REQUIRE(cli_exit_code() == 0);
  return out.str();
}

const std::string& face_jpg() {
  static const std::string bytes = read_file(repo("examples/face.jpg"));
  return bytes;
}

// The CLI's documents for examples/face.jpg, with the fields that name the input file blanked
// (the CLI names the path, the API the upload).
json cli_predict() {
  static const json doc = [] {
    json d = json::parse(cli_json({"predict", repo("examples/face.jpg"), "--model",
                                   repo("models/vgg.safetensors"), "--json"}));
    d["images"][0]["file"] = "";
    return d;
  }();
  return doc;
}

json cli_recommend(int top, const std::string& policy) {
  json d = json::parse(cli_json({"recommend", "--image", repo("examples/face.jpg"), "--model",
                                 repo("models/vgg.safetensors"), "--tracks",
                                 repo("data/music/tracks.csv"), "--top", std::to_string(top),
                                 "--policy", policy, "--json"}));
  d["image"] = "";
  return d;
}

json api_doc(const httplib::Result& r, int want = 200) {
  REQUIRE_MESSAGE(r, "no answer: " << httplib::to_string(r.error()));
  REQUIRE_MESSAGE(r->status == want, r->status << " " << r->body.substr(0, 300));
  return json::parse(r->body);
}

// An image bomb: a PNG whose header says width x height (8-bit grey) with a short zlib stream of
// zero rows as its data, a few hundred bytes that would inflate to width * height bytes.
std::string png_bomb(uint32_t width, uint32_t height) {
  auto put32 = [](std::string& s, uint32_t v) {
    for (int i = 3; i >= 0; --i) s += (char)((v >> (8 * i)) & 0xFF);
  };
  auto chunk = [&](std::string& png, const std::string& type_and_data) {
    put32(png, (uint32_t)type_and_data.size() - 4);
    png += type_and_data;
    put32(png, (uint32_t)crc32(0, (const Bytef*)type_and_data.data(), (uInt)type_and_data.size()));
  };
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr = "IHDR";
  put32(ihdr, width);
  put32(ihdr, height);
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);  // 8-bit grey, no interlace
  chunk(png, ihdr);
  std::string zeros(64 << 10, '\0');
  std::vector<Bytef> z(compressBound((uLong)zeros.size()));
  uLongf zn = (uLongf)z.size();
  REQUIRE(compress(z.data(), &zn, (const Bytef*)zeros.data(), (uLong)zeros.size()) == Z_OK);
  chunk(png, "IDAT" + std::string((const char*)z.data(), zn));
  chunk(png, "IEND");
  return png;
}

std::string post_head(const std::string& path, size_t length, const std::string& type = "image/jpeg") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

}  // namespace

TEST_CASE("serve: GET routes - healthz, model, openapi.json, the page") {
  Running srv(test_options());
  auto c = srv.client();

  json health = api_doc(c.Get("/healthz"));
  check_schema(health, "Health");
  CHECK(health["status"] == "ok");
  CHECK(health["workers"] == 1);

  json model = api_doc(c.Get("/api/v1/model"));
  check_schema(model, "Model");
  CHECK(model["temperature"].get<double>() == doctest::Approx(load_model(repo("models/vgg.safetensors")).info.temperature));
  CHECK(model["unsure_below"] == 0.5);
  CHECK(model["arch"] == "vgg");
  CHECK(model["classes"] == json({"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}));
  CHECK(model["file"] == "vgg.safetensors");
  // The hash, recomputed by coreutils, not by the code under test.
  FILE* p = popen(("sha256sum " + repo("models/vgg.safetensors")).c_str(), "r");
  REQUIRE(p);
  char hex[65] = {};
  REQUIRE(fread(hex, 1, 64, p) == 64);
  pclose(p);
  CHECK(model["sha256"] == std::string(hex));

  auto spec = c.Get("/openapi.json");
  REQUIRE(spec);
  CHECK(spec->status == 200);
  CHECK(spec->get_header_value("Content-Type") == "application/json");
  CHECK(spec->body == read_file(repo("docs/openapi.json")));  // the served copy is docs/'s
  CHECK(json::parse(spec->body)["openapi"] == "3.0.3");

  for (auto [path, type, marker] :
       {std::tuple{"/", "text/html; charset=utf-8", "<title>emotune"},
        std::tuple{"/index.html", "text/html; charset=utf-8", "id=\"drop\""},
        std::tuple{"/app.js", "text/javascript; charset=utf-8", "/api/v1/recommend"},
        std::tuple{"/style.css", "text/css; charset=utf-8", "@media (max-width"}}) {
    auto r = c.Get(path);
    REQUIRE(r);
    CHECK_MESSAGE(r->status == 200, path);
    CHECK(r->get_header_value("Content-Type") == type);
    CHECK(r->body.find(marker) != std::string::npos);
    CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
  }
}

TEST_CASE("serve: predict and recommend answer exactly what the CLI prints") {
  Running srv(test_options());
  auto c = srv.client();

  // Raw bytes.
  json raw_doc = api_doc(c.Post("/api/v1/predict", face_jpg(), "image/jpeg"));
  check_schema(raw_doc, "Predict");
  CHECK(raw_doc["images"][0]["file"] == "upload");
  CHECK(raw_doc["images"][0]["status"] == "ok");
  CHECK(raw_doc["images"][0]["faces"].size() == 1);
  raw_doc["images"][0]["file"] = "";
  CHECK(raw_doc.dump() == cli_predict().dump());  // same model path given to both

  // Multipart, as the page and curl -F send it.
  httplib::MultipartFormDataItems form = {{"image", face_jpg(), "face.jpg", "image/jpeg"}};
  json mp = api_doc(c.Post("/api/v1/predict", form));
  CHECK(mp["images"][0]["file"] == "face.jpg");
  mp["images"][0]["file"] = "";
  CHECK(mp.dump() == cli_predict().dump());

  // recommend: defaults, query parameters, multipart fields.
  json rec = api_doc(c.Post("/api/v1/recommend", face_jpg(), "image/jpeg"));
  check_schema(rec, "Recommend");
  CHECK(rec["tracks"].size() == 5);
  rec["image"] = "";
  CHECK(rec.dump() == cli_recommend(5, "match").dump());

  json up = api_doc(c.Post("/api/v1/recommend?top=3&policy=uplift", face_jpg(), "image/jpeg"));
  check_schema(up, "Recommend");
  up["image"] = "";
  CHECK(up.dump() == cli_recommend(3, "uplift").dump());

  httplib::MultipartFormDataItems form2 = {{"image", face_jpg(), "me.jpg", "image/jpeg"},
                                           {"top", "7", "", ""},
                                           {"policy", "uplift", "", ""}};
  json mp2 = api_doc(c.Post("/api/v1/recommend", form2));
  CHECK(mp2["image"] == "me.jpg");
  CHECK(mp2["tracks"].size() == 7);
  CHECK(mp2["target"]["policy"] == "uplift");

  // A photo without a face: predict says so in its document, recommend refuses with 422.
  std::string flat = read_file(repo("tests/data/app/flat_gray.png"));
  json nf = api_doc(c.Post("/api/v1/predict", flat, "image/png"));
  check_schema(nf, "Predict");
  CHECK(nf["images"][0]["status"] == "no_face");
  auto r = c.Post("/api/v1/recommend", flat, "image/png");
  REQUIRE(r);
  check_error(r->status, r->body, 422, "no face found");
}

TEST_CASE("serve: ?explain=1 adds each face's Grad-CAM picture and the CLI's map; bad values are 400") {
  Running srv(test_options());
  auto c = srv.client();
  json doc = api_doc(c.Post("/api/v1/predict?explain=1", face_jpg(), "image/jpeg"));
  check_schema(doc, "Predict");
  const json& e = doc["images"][0]["faces"][0]["explanation"];
  CHECK(e["class"] == doc["images"][0]["faces"][0]["top"]["class"]);
  CHECK(e["file"].is_null());
  const std::string image = e["image"].get<std::string>();
  CHECK(image.rfind("data:image/png;base64,iVBORw0KGgo", 0) == 0);  // base64 of the PNG signature
  // The map is the CLI's, number for number (the same pipeline and model).
  json cli = json::parse(cli_json({"predict", repo("examples/face.jpg"), "--model", repo("models/vgg.safetensors"),
                                   "--json", "--explain-json"}));
  CHECK(e["map"].dump() == cli["images"][0]["faces"][0]["explanation"]["map"].dump());
  // Without the parameter nothing is explained; a chosen class; multipart fields work too.
  json plain = api_doc(c.Post("/api/v1/predict", face_jpg(), "image/jpeg"));
  CHECK_FALSE(plain["images"][0]["faces"][0].contains("explanation"));
  httplib::MultipartFormDataItems form = {{"image", face_jpg(), "face.jpg", "image/jpeg"},
                                          {"explain_class", "sad", "", ""}};
  json sad = api_doc(c.Post("/api/v1/predict", form));
  check_schema(sad, "Predict");
  CHECK(sad["images"][0]["faces"][0]["explanation"]["class"] == "sad");
  auto bad = c.Post("/api/v1/predict?explain=yes", face_jpg(), "image/jpeg");
  REQUIRE(bad);
  check_error(bad->status, bad->body, 400, "explain must be 1, true, 0 or false");
  auto cls = c.Post("/api/v1/predict?explain_class=bored", face_jpg(), "image/jpeg");
  REQUIRE(cls);
  check_error(cls->status, cls->body, 400, "explain_class must be one of the model's classes");
}

TEST_CASE("serve: concurrent requests give the CLI's answers") {
  ServeOptions o = test_options();
  o.workers = 2;
  Running srv(o);
  const std::string want_predict = cli_predict().dump();
  const std::string want_recommend = cli_recommend(4, "match").dump();
  constexpr int kThreads = 6, kEach = 3;  // 18 requests, 2 workers, queue 8: nobody is refused
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      auto c = srv.client();
      for (int i = 0; i < kEach; ++i) {
        bool rec = (t + i) % 2;
        auto r = rec ? c.Post("/api/v1/recommend?top=4", face_jpg(), "image/jpeg")
                     : c.Post("/api/v1/predict", face_jpg(), "image/jpeg");
        if (!r || r->status != 200) {
          bad++;
          failures[t] = r ? r->body : httplib::to_string(r.error());
          continue;
        }
        json d = json::parse(r->body);
        if (rec) d["image"] = "";
        else d["images"][0]["file"] = "";
        if (d.dump() == (rec ? want_recommend : want_predict)) ok++;
        else bad++, failures[t] = d.dump().substr(0, 300);
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& f : failures) CHECK_MESSAGE(f.empty(), f);
  CHECK(ok == kThreads * kEach);
  CHECK(bad == 0);
}

TEST_CASE("serve: bad uploads get 400/411/413/415 with the reason in words") {
  ServeOptions o = test_options();
  o.max_pixels = 1 << 20;  // 1 Mpx, so a small PNG header can be a bomb
  Running srv(o);
  auto c = srv.client();
  auto post = [&](const std::string& path, const std::string& body, const std::string& type) {
    auto r = c.Post(path, body, type);
    REQUIRE_MESSAGE(r, httplib::to_string(r.error()));
    return std::make_pair(r->status, r->body);
  };
  for (const char* route : {"/api/v1/predict", "/api/v1/recommend"}) {
    CAPTURE(route);
    auto [s1, b1] = post(route, "hello, not an image", "text/plain");
    check_error(s1, b1, 415, "text/plain is not an image");
    auto [s2, b2] = post(route, read_file(repo("tests/data/app/not_an_image.jpg")), "image/jpeg");
    check_error(s2, b2, 415, "no PNG, JPEG, BMP or GIF signature");
    auto [s3, b3] = post(route, read_file(repo("tests/data/app/truncated.jpg")), "image/jpeg");
    check_error(s3, b3, 400, "truncated JPEG");
    auto [s4, b4] = post(route, "", "image/jpeg");
    check_error(s4, b4, 400, "empty upload");
    // An image bomb: 30000 x 30000 in a few hundred bytes; refused from the header, nothing decoded.
    auto [s5, b5] = post(route, png_bomb(30000, 30000), "image/png");
    check_error(s5, b5, 413, "more than the limit of 1048576 pixels");
    // Multipart without the "image" part, and multipart that is not multipart.
    httplib::MultipartFormDataItems form = {{"photo", face_jpg(), "face.jpg", "image/jpeg"}};
    auto r6 = c.Post(route, form);
    REQUIRE(r6);
    check_error(r6->status, r6->body, 400, "no file part named \"image\"");
    auto [s7, b7] = post(route, "--x\r\nnot a part header\r\n\r\nbytes\r\n--x--\r\n",
                         "multipart/form-data; boundary=x");
    check_error(s7, b7, 400);
    auto [s8, b8] = post(route, "garbage", "multipart/form-data");  // no boundary
    check_error(s8, b8, 400);
  }
  for (const char* q : {"top=0", "top=101", "top=abc", "top=5x", "policy=sideways"}) {
    auto [s, b] = post(std::string("/api/v1/recommend?") + q, face_jpg(), "image/jpeg");
    CAPTURE(q);
    check_error(s, b, 400, q[0] == 't' ? "top must be" : "policy must be");
  }
  // Body limits are checked from the headers, before a byte of the body is read.
  RawReply big = raw(srv.port, post_head("/api/v1/predict", 50u << 20), 5);
  CHECK(big.status() == 413);
  CHECK(big.body()["error"].get<std::string>().find("--max-upload") != std::string::npos);
  CHECK(big.closed);  // the connection is closed: the unread body cannot become a request
  RawReply chunked = raw(srv.port,
                         "POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         "Content-Type: image/jpeg\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  CHECK(chunked.status() == 411);
  RawReply no_length = raw(srv.port, "POST /api/v1/predict HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(no_length.status() == 411);
  RawReply bad_length = raw(srv.port, "POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
  CHECK(bad_length.status() == 400);

  // Still serving.
  json d = api_doc(c.Post("/api/v1/predict", face_jpg(), "image/jpeg"));
  CHECK(d["images"][0]["status"] == "ok");
}

TEST_CASE("serve: routes, methods, headers and paths that are refused") {
  Running srv(test_options());
  auto c = srv.client();
  auto r1 = c.Get("/api/v1/predict");
  REQUIRE(r1);
  check_error(r1->status, r1->body, 405);
  CHECK(r1->get_header_value("Allow") == "POST");
  auto r2 = c.Put("/api/v1/predict", face_jpg(), "image/jpeg");
  REQUIRE(r2);
  check_error(r2->status, r2->body, 405);
  auto r3 = c.Post("/api/v1/nothing", face_jpg(), "image/jpeg");
  REQUIRE(r3);
  check_error(r3->status, r3->body, 404);
  auto r4 = c.Get("/nothing.html");
  REQUIRE(r4);
  check_error(r4->status, r4->body, 404);

  // Path traversal: the page is served from the embedded set only, never from a folder.
  for (const char* path :
       {"/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
        "/static/../../CMakeLists.txt", "/index.html/../../../etc/passwd", "//etc/passwd",
        "/apps/serve/static/index.html", "/docs/openapi.json", "/.git/config", "/%00index.html"}) {
    RawReply r = raw(srv.port, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CAPTURE(path);
    CHECK(r.status() == 404);
    CHECK(r.bytes.find("root:") == std::string::npos);
    CHECK(r.bytes.find("[core]") == std::string::npos);
    CHECK(r.bytes.find("cmake_minimum_required") == std::string::npos);
  }

  // Oversized headers: 431 for the block, 414 for the request line (httplib's limit, 8 KiB).
  std::string headers;
  for (int i = 0; i < 4; ++i) headers += "X-Pad-" + std::to_string(i) + ": " + std::string(6000, 'a') + "\r\n";
  RawReply h = raw(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
  CHECK(h.status() == 431);
  CHECK(h.body()["status"] == 431);
  RawReply uri = raw(srv.port, "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(uri.status() == 414);
  RawReply garbage = raw(srv.port, "\x16\x03\x01 not http at all\r\n\r\n");
  CHECK((garbage.status() == 400 || (garbage.bytes.empty() && garbage.closed)));

  json health = api_doc(c.Get("/healthz"));
  CHECK(health["status"] == "ok");
}

TEST_CASE("serve: slow, stalled and truncated clients are cut off") {
  ServeOptions o = test_options();
  o.client_timeout = 1;
  Running srv(o);

  // Headers and 10 bytes of a 52 KB body, then silence: closed at --client-timeout.
  int s = connect_to(srv.port);
  std::string head = post_head("/api/v1/predict", face_jpg().size());
  ::send(s, head.data(), head.size(), MSG_NOSIGNAL);
  ::send(s, face_jpg().data(), 10, MSG_NOSIGNAL);
  RawReply stalled = read_reply(s, 10);
  ::close(s);
  CHECK(stalled.closed);
  CHECK(stalled.seconds < 5);  // 1 s limit; generous for a loaded machine

  // A byte every 200 ms (each read is quick, the request never ends): closed at the same deadline.
  s = connect_to(srv.port);
  std::string drip = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(100, 'z');
  auto t0 = Clock::now();
  bool cut = false;
  for (char ch : drip) {
    if (::send(s, &ch, 1, MSG_NOSIGNAL) < 0) {
      cut = true;
      break;
    }
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) {  // the server answered or closed
      cut = true;
      break;
    }
  }
  double drip_s = std::chrono::duration<double>(Clock::now() - t0).count();
  ::close(s);
  CHECK(cut);
  CHECK(drip_s < 5);

  // A truncated upload: the client sends half its body and closes its side.
  RawReply half = raw(srv.port, post_head("/api/v1/predict", face_jpg().size()) +
                                    face_jpg().substr(0, face_jpg().size() / 2), 10, true);
  CHECK(half.closed);
  CHECK((half.status() == 400 || half.bytes.empty()));

  // A connection that never sends a byte holds a thread for --client-timeout at most.
  s = connect_to(srv.port);
  RawReply idle = read_reply(s, 10);
  ::close(s);
  CHECK(idle.closed);
  CHECK(idle.seconds < 5);

  auto c = srv.client();
  json d = api_doc(c.Post("/api/v1/predict", face_jpg(), "image/jpeg"));
  CHECK(d["images"][0]["status"] == "ok");
}

TEST_CASE("serve: a flood past the queue gets 503 + Retry-After, then the server serves again") {
  ServeOptions o = test_options();
  o.workers = 1;
  o.queue = 1;
  Running srv(o);
  constexpr int kClients = 16;
  std::vector<int> status(kClients, 0);
  std::vector<std::string> retry(kClients), body(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {  // no doctest assertion off the main thread
      auto c = srv.client();
      auto r = c.Post("/api/v1/recommend", face_jpg(), "image/jpeg");
      if (!r) {
        body[i] = httplib::to_string(r.error());
        return;
      }
      status[i] = r->status;
      retry[i] = r->get_header_value("Retry-After");
      body[i] = r->body;
    });
  for (auto& t : threads) t.join();
  int ok = 0, busy = 0;
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    CHECK_MESSAGE((status[i] == 200 || status[i] == 503), body[i]);
    ok += status[i] == 200;
    busy += status[i] == 503;
    if (status[i] == 503) {
      CHECK(retry[i] == "1");
      check_error(status[i], body[i], 503, "--queue");
    }
  }
  CHECK(ok >= 1);    // the worker's and the queue's requests are served
  CHECK(busy >= 1);  // 16 at once cannot all fit one worker and one queue place
  auto c = srv.client();
  json h = api_doc(c.Get("/healthz"));
  CHECK(h["rejected_queue"].get<int>() == busy);
  json d = api_doc(c.Post("/api/v1/recommend", face_jpg(), "image/jpeg"));
  CHECK(d["tracks"].size() == 5);
}

TEST_CASE("serve: connections past --backlog get a canned 503; the request deadline gives 503/504") {
  ServeOptions o = test_options();
  o.connections = 2;
  o.backlog = 0;
  o.client_timeout = 3;
  Running srv(o);
  // Two silent connections take both connection threads for up to --client-timeout.
  int a = connect_to(srv.port), b = connect_to(srv.port);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  RawReply third = raw(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5);
  CHECK(third.status() == 503);
  CHECK(third.bytes.find("Retry-After: 1") != std::string::npos);
  CHECK(third.body()["error"].get<std::string>().find("--backlog") != std::string::npos);
  ::close(a);
  ::close(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto c = srv.client();
  json h = api_doc(c.Get("/healthz"));
  CHECK(h["rejected_backlog"].get<int>() >= 1);

  ServeOptions t = test_options();
  t.workers = 1;
  t.request_timeout = 0.001;  // no image is analysed in 1 ms
  Running slow(t);
  auto c2 = slow.client();
  auto r = c2.Post("/api/v1/predict", face_jpg(), "image/jpeg");
  REQUIRE(r);
  CHECK((r->status == 503 || r->status == 504));
  check_error(r->status, r->body, r->status, "--request-timeout");
  json h2 = api_doc(c2.Get("/healthz"));
  CHECK(h2["timed_out"].get<int>() == 1);
}

TEST_CASE("serve: bad options and a taken port are errors naming the flag") {
  ServeOptions o = test_options();
  o.workers = -1;
  CHECK_THROWS_WITH_AS(WebServer{o}, doctest::Contains("--workers"), Error);
  o = test_options();
  o.model = repo("tests/data/app/not_an_image.jpg");
  CHECK_THROWS_AS(WebServer{o}, Error);
  o = test_options();
  o.tracks = repo("tests/data/app/tracks_nan.csv");
  CHECK_THROWS_AS(WebServer{o}, Error);
  Running first(test_options());
  o = test_options();
  o.port = first.port;
  CHECK_THROWS_WITH_AS(WebServer{o}, doctest::Contains("cannot listen on 127.0.0.1:"), Error);
}
