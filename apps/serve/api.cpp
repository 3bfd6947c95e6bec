#include "apps/serve/api.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "apps/report/predict.h"
#include "base/image.h"

namespace emotune {

nlohmann::ordered_json error_json(int status, const std::string& message) {
  return {{"error", message}, {"status", status}};
}

void check_upload_type(std::string_view type) {
  std::string_view t = type.substr(0, type.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (t.empty() || t == "application/octet-stream" || t.starts_with("image/")) return;
  throw ApiError(415, "Content-Type " + std::string(t) +
                          " is not an image: send the image bytes (image/jpeg, image/png, "
                          "image/bmp, image/gif or application/octet-stream) or multipart/form-data "
                          "with an \"image\" file");
}

void check_upload_bytes(std::string_view bytes) {
  if (bytes.empty()) throw ApiError(400, "empty upload: the body holds no image");
  if (!has_image_signature((const uint8_t*)bytes.data(), bytes.size()))
    throw ApiError(415, "not an image: the upload has no PNG, JPEG, BMP or GIF signature");
}

GrayImage decode_upload(std::string_view bytes, const std::string& name, int64_t max_pixels) {
  try {
    return decode_gray_image((const uint8_t*)bytes.data(), bytes.size(), name, max_pixels);
  } catch (const ImageTooLargeError& e) {
    throw ApiError(413, e.what());
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
}

RecommendParams parse_recommend_params(const std::string& top, const std::string& policy,
                                       int max_top) {
  RecommendParams p;
  if (!top.empty()) {
    int v = 0;
    size_t used = 0;
    try {
      v = std::stoi(top, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != top.size() || v < 1 || v > max_top)
      throw ApiError(400, "top must be a whole number from 1 to " + std::to_string(max_top) +
                              ", got \"" + top.substr(0, 32) + "\"");
    p.top = v;
  }
  if (!policy.empty()) {
    if (policy != "match" && policy != "uplift")
      throw ApiError(400, "policy must be match or uplift, got \"" + policy.substr(0, 32) + "\"");
    p.policy = parse_policy(policy);
  }
  return p;
}

ExplainOptions parse_explain_params(const std::string& explain, const std::string& explain_class,
                                    const std::vector<std::string>& classes) {
  ExplainOptions ex;
  if (explain == "1" || explain == "true") ex.on = true;
  else if (!explain.empty() && explain != "0" && explain != "false")
    throw ApiError(400, "explain must be 1, true, 0 or false, got \"" + explain.substr(0, 32) + "\"");
  if (!explain_class.empty()) {
    auto it = std::find(classes.begin(), classes.end(), explain_class);
    if (it == classes.end()) {
      std::string known;
      for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
      throw ApiError(400, "explain_class must be one of the model's classes (" + known + "), got \"" +
                              explain_class.substr(0, 32) + "\"");
    }
    ex.on = true;
    ex.target = (int)(it - classes.begin());
  }
  return ex;
}

namespace {
std::string base64(const std::vector<uint8_t>& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(), (int)bytes.size());
  out.resize((size_t)n);
  return out;
}
}  // namespace

void add_explanation_images(nlohmann::ordered_json& doc, const ImageResult& r, const ModelInfo& info) {
  auto& faces = doc["images"][0]["faces"];
  for (size_t i = 0; i < r.faces.size() && i < faces.size(); ++i) {
    const FaceResult& f = r.faces[i];
    if (!f.explanation) continue;
    faces[i]["explanation"]["image"] =
        "data:image/png;base64," + base64(explanation_png(f, explanation_caption(f, info), explanation_note(f)));
  }
}

std::string sha256_file_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open to hash");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw Error("sha256: cannot initialise OpenSSL's digest");
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), (std::streamsize)buf.size());
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), (size_t)in.gcount());
  }
  if (in.bad()) throw Error(path + ": read error while hashing");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  std::string hex;
  char b[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

nlohmann::ordered_json model_info_json(const EmotionPipeline& pipeline, const std::string& sha256,
                                       const std::string& detector, const std::string& align) {
  const ModelInfo& info = pipeline.model().info;
  std::error_code ec;
  auto bytes = std::filesystem::file_size(pipeline.model_path(), ec);
  return {{"arch", info.arch},
          {"classes", info.classes},
          {"file", std::filesystem::path(pipeline.model_path()).filename().string()},
          {"sha256", sha256},
          {"bytes", ec ? 0 : (uint64_t)bytes},
          {"input_size", info.preprocess.size},
          {"detector", detector},
          {"align", align},
          {"temperature", info.temperature},
          {"unsure_below", pipeline.unsure_below()}};
}

}  // namespace emotune
