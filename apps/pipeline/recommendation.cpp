#include "apps/pipeline/recommendation.h"

#include "base/error.h"

namespace emotune {

size_t largest_face(const std::vector<FaceResult>& faces) {
  size_t best = 0;
  for (size_t i = 1; i < faces.size(); ++i)
    if (faces[i].box.area() > faces[best].box.area()) best = i;
  return best;
}

Recommendation make_recommendation(const std::string& image, const std::vector<FaceResult>& faces,
                                   const std::vector<std::string>& classes, const MoodTable& table,
                                   Policy policy, int top_n) {
  if (faces.empty()) throw Error("no face found in " + image);
  Recommendation r;
  r.image = image;
  r.faces_found = (int)faces.size();
  r.face = faces[largest_face(faces)];
  r.classes = classes;
  r.target = compute_mood_target(classes, r.face.probabilities, policy);
  r.tracks = rank_tracks(table, r.target.target, top_n);
  r.tracks_file = table.path;
  r.explanation = explain_recommendation(classes, r.face.probabilities, r.target, r.face.unsure);
  return r;
}

}  // namespace emotune
