#include "datasets/augment.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "base/error.h"
#include "datasets/random.h"

namespace emotune {

namespace {

// Which Philox draw (counter high word) feeds which decision: fixed, so switching one transform
// on or off never changes the numbers another one sees.
enum Draw : uint64_t {
  kDrawCrop = 0,      // crop offsets
  kDrawGeometry = 1,  // flip, angle, translation
  kDrawColor = 2,     // brightness, contrast, erase yes/no
  kDrawRcrop = 8,     // 8..17: random resized crop attempts
  kDrawErase = 20,    // 20..29: erase attempts
  kDrawNoise = 64,    // 64..: erase fill noise, 4 values per draw
};

// src = (a x + b y + c, d x + e y + f) for output pixel (x, y); pixel centres at integers.
struct Affine {
  double a = 1, b = 0, c = 0, d = 0, e = 1, f = 0;
  // (this after other): apply other first, then this.
  Affine after(const Affine& o) const {
    return {a * o.a + b * o.d, a * o.b + b * o.e, a * o.c + b * o.f + c,
            d * o.a + e * o.d, d * o.b + e * o.e, d * o.c + e * o.f + f};
  }
  bool identity() const { return a == 1 && b == 0 && c == 0 && d == 0 && e == 1 && f == 0; }
};

// Bilinear resampling with the border replicated (coordinates clamped into the image). At
// integer source coordinates the weights are exactly 0 and 1, so shifts and flips are exact.
void warp_bilinear(const float* src, float* dst, int side, const Affine& m) {
  const float a = (float)m.a, b = (float)m.b, c = (float)m.c;
  const float d = (float)m.d, e = (float)m.e, f = (float)m.f;
  const float maxc = (float)(side - 1);
  for (int y = 0; y < side; ++y) {
    float* out = dst + (size_t)y * side;
    for (int x = 0; x < side; ++x) {
      float sx = std::clamp(a * x + b * y + c, 0.0f, maxc);
      float sy = std::clamp(d * x + e * y + f, 0.0f, maxc);
      int x0 = (int)sx, y0 = (int)sy;
      float fx = sx - x0, fy = sy - y0;
      int x1 = std::min(x0 + 1, side - 1), y1 = std::min(y0 + 1, side - 1);
      const float* r0 = src + (size_t)y0 * side;
      const float* r1 = src + (size_t)y1 * side;
      float top = r0[x0] + fx * (r0[x1] - r0[x0]);
      float bot = r1[x0] + fx * (r1[x1] - r1[x0]);
      out[x] = top + fy * (bot - top);
    }
  }
}

// Maps output pixels of a box-crop resized to side x side back into the source.
Affine crop_resize_map(double x0, double y0, double w, double h, int side) {
  Affine m;
  m.a = w / side;
  m.c = x0 + 0.5 * w / side - 0.5;
  m.e = h / side;
  m.f = y0 + 0.5 * h / side - 0.5;
  return m;
}

Affine flip_map(int side) {
  Affine m;
  m.a = -1;
  m.c = side - 1;
  return m;
}

float signed_unit(uint32_t w) { return 2.0f * bits_uniform(w) - 1.0f; }  // [-1, 1)

bool parse_float(const std::string& s, float* out) {
  std::istringstream is(s);
  is >> *out;
  return !is.fail() && is.eof();
}

}  // namespace

bool AugmentOptions::geometric() const {
  return crop_padding > 0 || resized_crop || hflip || rotate_degrees != 0 || translate != 0;
}

bool AugmentOptions::any() const {
  return geometric() || brightness != 0 || contrast != 0 || erase_prob > 0;
}

void AugmentOptions::validate() const {
  auto bad = [](const std::string& what) { throw Error("augment: " + what); };
  if (crop_padding < 0 || crop_padding > 24) bad("crop padding must be 0..24 pixels");
  if (resized_crop && crop_padding > 0) bad("choose crop (padding) or rcrop (resized crop), not both");
  if (!(crop_scale_min > 0 && crop_scale_min <= crop_scale_max && crop_scale_max <= kMaxCropScale))
    bad("rcrop scale range must satisfy 0 < min <= max <= 4 (got " + std::to_string(crop_scale_min) + ":" +
        std::to_string(crop_scale_max) + ")");
  if (!(crop_ratio_min > 0 && crop_ratio_min <= crop_ratio_max)) bad("rcrop ratio range is empty");
  if (!(rotate_degrees >= 0 && rotate_degrees <= 180)) bad("rotate must be 0..180 degrees");
  if (!(translate >= 0 && translate <= 0.5f)) bad("translate must be 0..0.5 of the side");
  if (!(brightness >= 0 && brightness <= 1)) bad("brightness must be 0..1");
  if (!(contrast >= 0 && contrast <= 1)) bad("contrast must be 0..1");
  if (!(erase_prob >= 0 && erase_prob <= 1)) bad("erase probability must be 0..1");
  if (!(erase_area_min > 0 && erase_area_min <= erase_area_max && erase_area_max < 1))
    bad("erase area range must satisfy 0 < min <= max < 1");
  if (!(erase_ratio_min > 0 && erase_ratio_min <= erase_ratio_max)) bad("erase ratio range is empty");
}

AugmentOptions AugmentOptions::full() {
  AugmentOptions o;
  o.crop_padding = 4;
  o.hflip = true;
  o.rotate_degrees = 10;
  o.translate = 0.05f;
  o.brightness = 0.2f;
  o.contrast = 0.2f;
  o.erase_prob = 0.25f;
  return o;
}

AugmentOptions AugmentOptions::parse(const std::string& spec) {
  AugmentOptions o;
  if (spec.empty() || spec == "none") return o;
  if (spec == "full") return full();
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string name = item.substr(0, eq);
    float v = 0;
    bool has_value = eq != std::string::npos;
    if (const size_t colon = item.find(':', eq); name == "rcrop" && has_value && colon != std::string::npos) {
      float hi = 0;  // rcrop=MIN:MAX
      if (!parse_float(item.substr(eq + 1, colon - eq - 1), &v) || !parse_float(item.substr(colon + 1), &hi))
        throw Error("augment: '" + item + "': expected rcrop=MIN:MAX with two numbers");
      o.resized_crop = true, o.crop_scale_min = v, o.crop_scale_max = hi;
      continue;
    }
    if (has_value && !parse_float(item.substr(eq + 1), &v))
      throw Error("augment: '" + item + "': the value is not a number");
    auto val = [&](float def) { return has_value ? v : def; };
    if (name == "crop") o.crop_padding = (int)val(4);
    else if (name == "rcrop") o.resized_crop = true, o.crop_scale_min = val(0.8f);
    else if (name == "flip") o.hflip = true;
    else if (name == "rotate") o.rotate_degrees = val(10);
    else if (name == "translate") o.translate = val(0.05f);
    else if (name == "brightness") o.brightness = val(0.2f);
    else if (name == "contrast") o.contrast = val(0.2f);
    else if (name == "jitter") o.brightness = o.contrast = val(0.2f);
    else if (name == "erase") o.erase_prob = val(0.25f);
    else
      throw Error("augment: unknown item '" + name +
                  "' (expected none, full, or a comma list of crop[=4], rcrop[=0.8 or =MIN:MAX], flip, "
                  "rotate[=10], translate[=0.05], brightness[=0.2], contrast[=0.2], "
                  "jitter[=0.2], erase[=0.25])");
  }
  o.validate();
  return o;
}

std::string AugmentOptions::to_json() const {
  nlohmann::json j = {{"crop_padding", crop_padding},     {"resized_crop", resized_crop},
                      {"crop_scale_min", crop_scale_min}, {"crop_scale_max", crop_scale_max},
                      {"crop_ratio_min", crop_ratio_min}, {"crop_ratio_max", crop_ratio_max},
                      {"hflip", hflip},                   {"rotate_degrees", rotate_degrees},
                      {"translate", translate},           {"brightness", brightness},
                      {"contrast", contrast},             {"erase_prob", erase_prob},
                      {"erase_area_min", erase_area_min}, {"erase_area_max", erase_area_max},
                      {"erase_ratio_min", erase_ratio_min}, {"erase_ratio_max", erase_ratio_max}};
  return j.dump();
}

AugmentOptions AugmentOptions::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("augment: not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw Error("augment: expected a JSON object");
  AugmentOptions o;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    auto num = [&](float* f) {
      if (!v.is_number()) throw Error("augment: field '" + k + "' must be a number");
      *f = v.get<float>();
    };
    auto flag = [&](bool* b) {
      if (!v.is_boolean()) throw Error("augment: field '" + k + "' must be true or false");
      *b = v.get<bool>();
    };
    if (k == "crop_padding") {
      if (!v.is_number_integer()) throw Error("augment: field 'crop_padding' must be an integer");
      o.crop_padding = v.get<int>();
    } else if (k == "resized_crop") flag(&o.resized_crop);
    else if (k == "crop_scale_min") num(&o.crop_scale_min);
    else if (k == "crop_scale_max") num(&o.crop_scale_max);
    else if (k == "crop_ratio_min") num(&o.crop_ratio_min);
    else if (k == "crop_ratio_max") num(&o.crop_ratio_max);
    else if (k == "hflip") flag(&o.hflip);
    else if (k == "rotate_degrees") num(&o.rotate_degrees);
    else if (k == "translate") num(&o.translate);
    else if (k == "brightness") num(&o.brightness);
    else if (k == "contrast") num(&o.contrast);
    else if (k == "erase_prob") num(&o.erase_prob);
    else if (k == "erase_area_min") num(&o.erase_area_min);
    else if (k == "erase_area_max") num(&o.erase_area_max);
    else if (k == "erase_ratio_min") num(&o.erase_ratio_min);
    else if (k == "erase_ratio_max") num(&o.erase_ratio_max);
    else throw Error("augment: unknown field '" + k + "'");
  }
  o.validate();
  return o;
}

namespace {

// The crop step as a map from its output to the source: a padded shift (crop) or a random
// resized crop (rcrop, up to 10 tries as torchvision's RandomResizedCrop); identity otherwise.
// As there, a draw that does not fit in the image (any scale above 1 does not) is retried, and
// after 10 misses the crop is the whole image: so a scale range reaching past 1 (Khaireddin &
// Chen's 0.8:1.2) keeps more images whole rather than zooming out.
Affine crop_map(const AugmentOptions& o, int side, uint64_t key, uint64_t index) {
  Affine crop;
  if (o.crop_padding > 0) {
    Philox4 r = data_rng_bits(key, index, kDrawCrop);
    uint32_t span = 2 * (uint32_t)o.crop_padding + 1;
    crop.c = (double)bits_below(r.v[0], span) - o.crop_padding;
    crop.f = (double)bits_below(r.v[1], span) - o.crop_padding;
  } else if (o.resized_crop) {
    const double area = (double)(side * side);
    const double log_lo = std::log(o.crop_ratio_min), log_hi = std::log(o.crop_ratio_max);
    for (int attempt = 0; attempt < 10; ++attempt) {
      Philox4 r = data_rng_bits(key, index, kDrawRcrop + attempt);
      double s = o.crop_scale_min + (o.crop_scale_max - o.crop_scale_min) * bits_uniform(r.v[0]);
      double ratio = std::exp(log_lo + (log_hi - log_lo) * bits_uniform(r.v[1]));
      int w = (int)std::lround(std::sqrt(s * area * ratio));
      int h = (int)std::lround(std::sqrt(s * area / ratio));
      if (w < 1 || h < 1 || w > side || h > side) continue;
      int x0 = (int)bits_below(r.v[2], (uint32_t)(side - w + 1));
      int y0 = (int)bits_below(r.v[3], (uint32_t)(side - h + 1));
      crop = crop_resize_map(x0, y0, w, h, side);
      break;
    }
  }
  return crop;
}

// Inverse of: rotate about the centre by theta, then shift by (tx, ty); identity when neither is on.
Affine rotation_map(const AugmentOptions& o, int side, const Philox4& g) {
  Affine rot;
  if (o.rotate_degrees != 0 || o.translate != 0) {
    double theta = o.rotate_degrees * signed_unit(g.v[1]) * (std::numbers::pi / 180.0);
    double tx = o.translate * side * signed_unit(g.v[2]);
    double ty = o.translate * side * signed_unit(g.v[3]);
    double cs = std::cos(theta), sn = std::sin(theta), ctr = 0.5 * (side - 1);
    // p = R^T (q - ctr - t) + ctr
    rot.a = cs, rot.b = sn, rot.d = -sn, rot.e = cs;
    double qx = -ctr - tx, qy = -ctr - ty;
    rot.c = cs * qx + sn * qy + ctr;
    rot.f = -sn * qx + cs * qy + ctr;
  }
  return rot;
}

// Crop, flip, rotate and shift composed into one map, warped once (bilinear) through scratch.
void warp_geometric(float* img, int side, const AugmentOptions& o, uint64_t key, uint64_t index, float* scratch) {
  const Affine crop = crop_map(o, side, key, index);  // output of the crop step -> source
  Philox4 g = data_rng_bits(key, index, kDrawGeometry);
  Affine flip;
  if (o.hflip && (g.v[0] >> 31)) flip = flip_map(side);
  const Affine m = crop.after(flip.after(rotation_map(o, side, g)));
  if (!m.identity()) {
    std::copy(img, img + side * side, scratch);
    warp_bilinear(scratch, img, side, m);
  }
}

// Contrast about the image mean, then a brightness shift, clamped to [lo, hi].
void jitter_colour(float* img, int n, const AugmentOptions& o, float lo, float hi, const Philox4& c) {
  float factor = 1.0f + o.contrast * signed_unit(c.v[0]);
  float delta = o.brightness * (hi - lo) * signed_unit(c.v[1]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += img[i];
  float mean = (float)(sum / n);
  for (int i = 0; i < n; ++i) img[i] = std::clamp((img[i] - mean) * factor + mean + delta, lo, hi);
}

// Random erasing: a rectangle of uniform noise in [lo, hi] (up to 10 tries for one that fits).
void erase_rectangle(float* img, int side, const AugmentOptions& o, float lo, float hi, uint64_t key,
                     uint64_t index) {
  const int n = side * side;
  const double log_lo = std::log(o.erase_ratio_min), log_hi = std::log(o.erase_ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    Philox4 r = data_rng_bits(key, index, kDrawErase + attempt);
    double a = (o.erase_area_min + (o.erase_area_max - o.erase_area_min) * bits_uniform(r.v[0])) * n;
    double ratio = std::exp(log_lo + (log_hi - log_lo) * bits_uniform(r.v[1]));
    int h = (int)std::lround(std::sqrt(a * ratio));
    int w = (int)std::lround(std::sqrt(a / ratio));
    if (w < 1 || h < 1 || w >= side || h >= side) continue;
    int x0 = (int)bits_below(r.v[2], (uint32_t)(side - w + 1));
    int y0 = (int)bits_below(r.v[3], (uint32_t)(side - h + 1));
    uint64_t k = 0;
    Philox4 noise{};
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x, ++k) {
        if (k % 4 == 0) noise = data_rng_bits(key, index, kDrawNoise + k / 4);
        img[(size_t)y * side + x] = lo + (hi - lo) * bits_uniform(noise.v[k % 4]);
      }
    break;
  }
}

}  // namespace

void augment_image(float* img, int side, const AugmentOptions& o, float lo, float hi,
                   uint64_t key, uint64_t index, float* scratch) {
  const int n = side * side;
  if (lo > hi) std::swap(lo, hi);
  if (o.geometric()) warp_geometric(img, side, o, key, index, scratch);
  Philox4 c = data_rng_bits(key, index, kDrawColor);
  if (o.contrast != 0 || o.brightness != 0) jitter_colour(img, n, o, lo, hi, c);
  if (o.erase_prob > 0 && bits_uniform(c.v[2]) < o.erase_prob) erase_rectangle(img, side, o, lo, hi, key, index);
}

void augment_image_u8(uint8_t* img, int side, const AugmentOptions& options, uint64_t key,
                      uint64_t index) {
  const int n = side * side;
  std::vector<float> f(n), scratch(n);
  for (int i = 0; i < n; ++i) f[i] = img[i];
  augment_image(f.data(), side, options, 0.0f, 255.0f, key, index, scratch.data());
  for (int i = 0; i < n; ++i) img[i] = (uint8_t)std::clamp(std::lround(f[i]), 0l, 255l);
}

void hflip_image(float* img, int side) {
  for (int y = 0; y < side; ++y) std::reverse(img + (size_t)y * side, img + (size_t)(y + 1) * side);
}

void hflip_image_u8(uint8_t* img, int side) {
  for (int y = 0; y < side; ++y) std::reverse(img + (size_t)y * side, img + (size_t)(y + 1) * side);
}

TtaMode tta_mode_from_name(const std::string& name) {
  if (name == "none") return TtaMode::none;
  if (name == "flip") return TtaMode::flip;
  if (name == "ten-crop" || name == "ten_crop" || name == "tencrop") return TtaMode::ten_crop;
  throw Error("unknown test-time augmentation '" + name + "' (expected none, flip or ten-crop)");
}

int tta_view_count(TtaMode mode) {
  switch (mode) {
    case TtaMode::flip: return 2;
    case TtaMode::ten_crop: return 10;
    default: return 1;
  }
}

void tta_views(const float* img, int side, TtaMode mode, int crop, float* out) {
  const size_t n = (size_t)side * side;
  if (mode == TtaMode::none) {
    std::copy(img, img + n, out);
    return;
  }
  if (mode == TtaMode::flip) {
    std::copy(img, img + n, out);
    std::copy(img, img + n, out + n);
    hflip_image(out + n, side);
    return;
  }
  if (crop < 1 || crop > side)
    throw Error("ten-crop: crop size " + std::to_string(crop) + " must be 1.." + std::to_string(side));
  const int far = side - crop, mid = (side - crop) / 2;
  const int origin[5][2] = {{0, 0}, {far, 0}, {0, far}, {far, far}, {mid, mid}};
  for (int v = 0; v < 5; ++v) {
    warp_bilinear(img, out + v * n, side,
                  crop_resize_map(origin[v][0], origin[v][1], crop, crop, side));
    std::copy(out + v * n, out + (v + 1) * n, out + (v + 5) * n);
    hflip_image(out + (v + 5) * n, side);
  }
}

}  // namespace emotune
