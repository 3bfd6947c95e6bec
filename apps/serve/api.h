// The API's pieces that do not touch HTTP: what an upload must look like, the parameters of
// /recommend, the decode with the server's limits, the /model document and the error document.
// Each failure is an ApiError carrying the status the server answers with (docs/serve.md).
// The predict and recommend documents themselves are apps/report's, unchanged, so the API and
// `predict --json` / `recommend --json` have one schema by construction.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "apps/music/recommend.h"
#include "apps/pipeline/pipeline.h"
#include "base/error.h"

namespace emotune {

struct ApiError : Error {
  ApiError(int status, const std::string& message) : Error(message), status(status) {}
  int status;
};

// {"error": message, "status": status}: the body of every 4xx/5xx answer.
nlohmann::ordered_json error_json(int status, const std::string& message);

// A raw (non-multipart) body's Content-Type: empty, application/octet-stream or image/*, else
// 415. The bytes: empty -> 400, no PNG/JPEG/BMP/GIF signature -> 415.
void check_upload_type(std::string_view content_type);
void check_upload_bytes(std::string_view bytes);

// Decodes an upload with the server's pixel limit: over it -> 413, any other failure -> 400
// ("upload.jpg: truncated JPEG ..."). Nothing is written to disk.
GrayImage decode_upload(std::string_view bytes, const std::string& name, int64_t max_pixels);

// ?top=N (1..max_top, default 5) and ?policy=match|uplift (default match), as recommend's flags;
// anything else -> 400 naming the parameter. An empty string means "not given".
struct RecommendParams {
  int top = 5;
  Policy policy = Policy::match;
};
RecommendParams parse_recommend_params(const std::string& top, const std::string& policy,
                                       int max_top);

// ?explain=1|true|0|false (default off) and ?explain_class=NAME (one of `classes`; implies
// explain): anything else -> 400 naming the parameter. An empty string means "not given".
ExplainOptions parse_explain_params(const std::string& explain, const std::string& explain_class,
                                    const std::vector<std::string>& classes);

// Adds "image": "data:image/png;base64,..." (the picture `predict --explain` writes) to the
// "explanation" of every explained face of a predict document built from `result`.
void add_explanation_images(nlohmann::ordered_json& predict_doc, const ImageResult& result, const ModelInfo& info);

// SHA-256 of a file as 64 lowercase hex digits (OpenSSL's libcrypto); Error naming the file.
std::string sha256_file_hex(const std::string& path);

// GET /api/v1/model: {"arch", "classes", "file", "sha256", "bytes", "input_size", "detector",
// "align", "temperature", "unsure_below"}.
nlohmann::ordered_json model_info_json(const EmotionPipeline& pipeline, const std::string& sha256,
                                       const std::string& detector, const std::string& align);

}  // namespace emotune
