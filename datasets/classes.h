// The one class order used everywhere in emotune (labels, network outputs, confusion matrices,
// checkpoints, the app): FER-2013's own label order.
//
//   0 angry   1 disgust   2 fear   3 happy   4 sad   5 surprise   6 neutral   (+ 7 contempt)
//
// Class 7 (contempt) exists only in the FER+ 8-class mode; 7-class data never uses it.
// Each source names the classes its own way; class_from_name() accepts all of them:
//   FER-2013 CSV:          the index itself (0..6), names as above
//   Kaggle image folders:  angry, disgusted|disgust, fearful|fear, happy, neutral, sad,
//                          surprised|surprise  (the seed's folder names)
//   FER+ (fer2013new.csv): columns neutral, happiness, surprise, sadness, anger, disgust, fear,
//                          contempt (then unknown, NF, which are not classes)
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace emotune {

enum EmotionClass : int {
  kAngry = 0,
  kDisgust = 1,
  kFear = 2,
  kHappy = 3,
  kSad = 4,
  kSurprise = 5,
  kNeutral = 6,
  kContempt = 7,
};

inline constexpr int kNumClasses7 = 7;
inline constexpr int kNumClasses8 = 8;
inline constexpr int kMaxClasses = 8;

// Canonical lower-case name of class c (0..7): "angry", ..., "contempt". Throws for other c.
const char* class_name(int c);
// The canonical names of the first num_classes (7 or 8) classes.
std::vector<std::string> class_names(int num_classes);
// The Kaggle image release's folder name for class c ("disgusted", "fearful", "surprised", ...).
const char* kaggle_folder_name(int c);

// Class index for any source's name (case-insensitive): canonical, Kaggle folder or FER+ column
// names. Returns -1 when the name is unknown.
int class_from_name(std::string_view name);
// Every accepted name, comma-separated, for error messages.
std::string accepted_class_names();

// FER+ vote columns in file order (after "Usage", "Image name"): 8 emotions, then unknown and NF.
inline constexpr int kFerplusColumns = 10;
inline constexpr const char* kFerplusColumnNames[kFerplusColumns] = {
    "neutral", "happiness", "surprise", "sadness", "anger",
    "disgust", "fear",      "contempt", "unknown", "NF"};
// FER+ emotion column j (0..7) -> emotune class index.
inline constexpr int kFerplusColumnToClass[8] = {kNeutral, kHappy,   kSurprise, kSad,
                                                 kAngry,   kDisgust, kFear,     kContempt};

}  // namespace emotune
