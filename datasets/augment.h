// On-the-fly augmentation of square gray faces (48x48 by default), each transform selectable,
// every random choice drawn from data_rng_bits(key, index, draw) (datasets/random.h) so a
// (seed, epoch, position in the epoch) gives the same image on any thread.
//
// Order: geometric (crop -> horizontal flip -> rotation + translation, composed into ONE affine
// map and resampled once, bilinear, border replicated), then contrast, brightness, then random
// erasing. Works on float images in any value range [lo, hi] (after Preprocess::apply: lo is the
// value of pixel 0, hi of pixel 255) or on uint8 images (range [0, 255], rounded back).
//   crop          random crop with padding p: shift by an integer in [-p, p] on each axis, the
//                 border replicated where the window leaves the image ("pad p, crop back to 48")
//   rcrop         random resized crop: area fraction in [scale_min, scale_max], aspect ratio
//                 log-uniform in [ratio_min, ratio_max], resized back to the full side
//                 (10 tries, then the whole image, as torchvision). Exclusive with crop.
//   flip          horizontal flip with probability 1/2
//   rotate        angle uniform in [-deg, deg] about the centre
//   translate     shift uniform in [-t, t] * side on each axis (sub-pixel)
//   brightness    add uniform [-b, b] * (hi - lo), clamped to [lo, hi]
//   contrast      scale around the image mean by uniform [1 - c, 1 + c], clamped
//   erase         with probability p, fill a rectangle (area fraction [area_min, area_max], aspect
//                 ratio log-uniform [0.3, 3.3]) with uniform noise in [lo, hi] (Zhong et al. 2017)
#pragma once
#include <cstdint>
#include <string>

namespace emotune {

// Largest rcrop scale (area fraction) accepted. Above 1 a draw never fits and is retried, as in
// torchvision's RandomResizedCrop, so a range past 1 only makes the whole image likelier.
inline constexpr float kMaxCropScale = 4.0f;

struct AugmentOptions {
  int crop_padding = 0;
  bool resized_crop = false;
  float crop_scale_min = 0.8f, crop_scale_max = 1.0f;
  float crop_ratio_min = 3.0f / 4.0f, crop_ratio_max = 4.0f / 3.0f;
  bool hflip = false;
  float rotate_degrees = 0.0f;
  float translate = 0.0f;
  float brightness = 0.0f;
  float contrast = 0.0f;
  float erase_prob = 0.0f;
  float erase_area_min = 0.02f, erase_area_max = 0.2f;
  float erase_ratio_min = 0.3f, erase_ratio_max = 3.3f;

  bool any() const;
  bool geometric() const;
  // Throws emotune::Error naming the bad option (negative sizes, empty ranges, crop + rcrop...).
  void validate() const;

  // The recipe we train with: crop 4, flip, rotate 10, translate 0.05, brightness 0.2,
  // contrast 0.2, erase 0.25.
  static AugmentOptions full();
  // "none", "full", or a comma list of name[=value]: crop[=4], rcrop[=0.8] (scale_min) or
  // rcrop=MIN:MAX (the scale range, MAX up to kMaxCropScale), flip,
  // rotate[=10], translate[=0.05], brightness[=0.2], contrast[=0.2], jitter[=0.2] (both),
  // erase[=0.25] (probability). Throws emotune::Error naming an unknown item.
  static AugmentOptions parse(const std::string& spec);
  // JSON object with every field (for configs and run records); from_json fills the fields it
  // finds and throws emotune::Error naming a field of the wrong type or an unknown key.
  std::string to_json() const;
  static AugmentOptions from_json(const std::string& json);
};

// Augments one side x side float image in place, values in [lo, hi]. `scratch` holds side*side
// floats. `key` comes from data_rng_key(seed, RngStream::augment, epoch), `index` is the sample's
// position in the epoch.
void augment_image(float* img, int side, const AugmentOptions& options, float lo, float hi,
                   uint64_t key, uint64_t index, float* scratch);
// The same on uint8 pixels (range [0, 255], results rounded to nearest).
void augment_image_u8(uint8_t* img, int side, const AugmentOptions& options, uint64_t key,
                      uint64_t index);

// Mirror left-right in place.
void hflip_image(float* img, int side);
void hflip_image_u8(uint8_t* img, int side);

// Test-time augmentation: the views whose predictions are averaged.
//   none     1 view: the image
//   flip     2 views: the image, its mirror
//   ten_crop 10 views: crops of crop x crop at the 4 corners and the centre (offset
//            (side-crop)/2 rounded down), each resized back to side x side (bilinear), then the
//            mirrors of those 5
enum class TtaMode { none, flip, ten_crop };
TtaMode tta_mode_from_name(const std::string& name);  // "none", "flip", "ten-crop"
int tta_view_count(TtaMode mode);
// Writes tta_view_count(mode) images of side*side floats to `out`.
void tta_views(const float* img, int side, TtaMode mode, int crop, float* out);

}  // namespace emotune
