#include "datasets/classes.h"

#include <cctype>

#include "base/error.h"

namespace emotune {

namespace {

constexpr const char* kCanonical[kMaxClasses] = {"angry", "disgust",  "fear",    "happy",
                                                 "sad",   "surprise", "neutral", "contempt"};
constexpr const char* kKaggle[kMaxClasses] = {"angry", "disgusted", "fearful",   "happy",
                                              "sad",   "surprised", "neutral",   "contempt"};

struct Alias {
  const char* name;
  int cls;
};
// Every spelling we accept, grouped by source; canonical first so the error message reads well.
constexpr Alias kAliases[] = {
    {"angry", kAngry},        {"disgust", kDisgust},     {"fear", kFear},
    {"happy", kHappy},        {"sad", kSad},             {"surprise", kSurprise},
    {"neutral", kNeutral},    {"contempt", kContempt},   // canonical
    {"disgusted", kDisgust},  {"fearful", kFear},        {"surprised", kSurprise},  // Kaggle
    {"anger", kAngry},        {"happiness", kHappy},     {"sadness", kSad},  // FER+
};

bool iequals(std::string_view a, const char* b) {
  size_t i = 0;
  for (; i < a.size() && b[i]; ++i)
    if (std::tolower((unsigned char)a[i]) != std::tolower((unsigned char)b[i])) return false;
  return i == a.size() && b[i] == 0;
}

}  // namespace

const char* class_name(int c) {
  if (c < 0 || c >= kMaxClasses)
    throw Error("class index " + std::to_string(c) + " out of range 0..7");
  return kCanonical[c];
}

std::vector<std::string> class_names(int num_classes) {
  if (num_classes != kNumClasses7 && num_classes != kNumClasses8)
    throw Error("number of classes must be 7 or 8, not " + std::to_string(num_classes));
  return std::vector<std::string>(kCanonical, kCanonical + num_classes);
}

const char* kaggle_folder_name(int c) {
  if (c < 0 || c >= kMaxClasses)
    throw Error("class index " + std::to_string(c) + " out of range 0..7");
  return kKaggle[c];
}

int class_from_name(std::string_view name) {
  for (const Alias& a : kAliases)
    if (iequals(name, a.name)) return a.cls;
  return -1;
}

std::string accepted_class_names() {
  std::string s;
  for (const Alias& a : kAliases) {
    if (!s.empty()) s += ", ";
    s += a.name;
  }
  return s;
}

}  // namespace emotune
