// The documents `emotune predict` prints (table, CSV, JSON), separate from the command so the
// tests can check them on hand-made results without a model, and so every command that answers
// with the same schema (the web API) uses the same code. The results come from apps/pipeline.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/pipeline/pipeline.h"

namespace emotune {

// The JSON document `predict --json` prints (schema in docs/music.md):
// {"model": {"path", "arch", "classes"}, "images": [{"file", "width", "height", "status":
//  "ok"|"no_face"|"error", "error"?, "faces": [{"box": {x,y,w,h}, "crop": {x,y,w,h},
//  "angle", "rotation", "eyes": {"left": [x, y], "right": [x, y]}, "landmarks": [[x, y] x 68],
//  "top": {"class", "probability"}, "unsure": bool, "probabilities": {class: p, ...}}]}]}
// angle/eyes/landmarks are null without alignment (--align none, --no-detect); rotation is 0 then.
// Explained faces (EmotionPipeline::explain) also get "explanation": {"class", "probability",
// "layer", "file" (the picture predict --explain wrote, or null), and with `explain_map` "map":
// {"height", "width", "values": [row-major, >= 0]}} (docs/explain.md).
nlohmann::ordered_json predict_json(const std::vector<ImageResult>& results,
                                    const std::string& model_path, const ModelInfo& info,
                                    bool explain_map = false);
// The words drawn on an explanation picture: "happy 96%" ("(chosen class)" added when it is not the
// predicted one), and "Grad-CAM, layer relu7".
std::string explanation_caption(const FaceResult& f, const ModelInfo& info);
std::string explanation_note(const FaceResult& f);
// The "explanation" object of one explained face (also the web API's).
nlohmann::ordered_json explanation_json(const FaceResult& f, const ModelInfo& info, bool with_map);
// One header row, then one row per face: file,face,x,y,w,h,top,<class...>,unsure (0 or 1)
std::string predict_csv(const std::vector<ImageResult>& results, const ModelInfo& info);
std::string predict_table(const std::vector<ImageResult>& results, const ModelInfo& info);

nlohmann::ordered_json box_json(const FaceBox& b);
// Adds "angle", "rotation", "eyes", "landmarks" of one face to `face` (nulls without alignment).
void add_alignment_json(nlohmann::ordered_json& face, const FaceResult& f);

}  // namespace emotune
