#include "layers/model.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/softmax.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/runtime.h"
#include "layers/inference.h"
#include "layers/init.h"
#include "layers/nets/nets.h"

namespace emotune {

namespace {

// The whole field must be one finite number > 0: "1.5x", "nan", "0" or "-2" name the file.
double parse_temperature(const std::string& path, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double t = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(t) || t <= 0)
    throw Error(path + ": metadata field 'temperature' must be a finite number > 0, got '" + text + "'");
  return t;
}

}  // namespace

LoadedModel load_model(const std::string& path, Device device) {
  Checkpoint ck = load_safetensors(path);
  LoadedModel m;
  m.info.arch = ck.meta("arch");
  try {
    auto classes = nlohmann::json::parse(ck.meta("classes"));
    m.info.classes = classes.get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": metadata field 'classes' is not a JSON list of names: " + e.what());
  }
  if (m.info.classes.size() < 2) throw Error(path + ": metadata 'classes' lists fewer than 2 classes");
  try {
    m.info.preprocess = Preprocess::from_json(ck.meta("preprocess"));
  } catch (const Error& e) {
    throw Error(path + ": metadata 'preprocess': " + e.what());
  }
  if (auto it = ck.metadata.find("temperature"); it != ck.metadata.end())
    m.info.temperature = parse_temperature(path, it->second);
  if (auto it = ck.metadata.find("calibration"); it != ck.metadata.end()) m.info.calibration = it->second;
  std::shared_ptr<Sequential> net;
  {
    SkipInitGuard no_init;  // every weight comes from the checkpoint just below
    net = make_network(m.info.arch, (int)m.info.classes.size(), 0);
  }
  try {
    net->load_state_dict(ck);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (is this a checkpoint for another network than '" +
                m.info.arch + "'?)");
  }
  net->set_training(false);
  net->to(device);
  m.net = net;
  m.device = device;
  // EMOTUNE_GRAPH, checked at start-up (engine/runtime.h).
  if (device == Device::cpu && runtime_settings().graph != "training") {
    const int s = m.info.preprocess.size;
    m.graph = InferenceGraph::compile_or_fallback(*net, 1, s, s);  // null: the modules run
  }
  return m;
}

std::vector<std::vector<float>> predict_probabilities(const LoadedModel& model, const float* inputs, int n) {
  NoGradGuard no_grad;
  model.net->set_training(false);
  const int s = model.info.preprocess.size;
  const int c = (int)model.info.classes.size();
  std::vector<std::vector<float>> out;
  constexpr int kChunk = 256;
  for (int start = 0; start < n; start += kChunk) {
    int m = std::min(kChunk, n - start);
    std::vector<float> logits;
    if (model.graph) {
      logits = model.graph->forward(inputs + (size_t)start * s * s, m);
    } else {
      Tensor x = Tensor::from_host({m, 1, s, s}, inputs + (size_t)start * s * s, model.device);
      logits = model.net->forward(x).to_vector();
    }
    for (int i = 0; i < m; ++i) {
      std::vector<float> p(c);
      softmax_row(logits.data() + (size_t)i * c, c, model.info.temperature, p.data());
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace emotune
