// From the pipeline's faces to music: which face speaks for the listener, the mood target in
// valence/energy space, the ranked tracks and the explanation (apps/music does the ranking).
// Shared by `emotune recommend` and the video and web commands; the output documents are the
// commands' business (apps/cmd_recommend.h).
#pragma once
#include <string>
#include <vector>

#include "apps/music/recommend.h"
#include "apps/pipeline/pipeline.h"

namespace emotune {

struct Recommendation {
  std::string image;
  int faces_found = 0;                // by FaceDetector::detect_listener (listener-sized first)
  FaceResult face;                    // the face the mood was read from (the largest)
  std::vector<std::string> classes;   // model class order
  MoodTarget target;
  std::vector<RankedTrack> tracks;
  std::string tracks_file;
  std::string explanation;
};

// The face a recommendation is for: the largest box (a listener's own photo is a close-up;
// faces in the background are smaller), the first in left-to-right order on a tie.
size_t largest_face(const std::vector<FaceResult>& faces);

// Builds everything after the model: target, ranking, explanation. Throws emotune::Error
// naming the image when there is no face.
Recommendation make_recommendation(const std::string& image, const std::vector<FaceResult>& faces,
                                   const std::vector<std::string>& classes, const MoodTable& table,
                                   Policy policy, int top_n);

}  // namespace emotune
