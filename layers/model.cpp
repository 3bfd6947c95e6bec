#include "layers/model.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "layers/inference.h"
#include "layers/init.h"
#include "layers/nets/nets.h"

namespace emotune {

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
  const char* graph = std::getenv("EMOTUNE_GRAPH");
  if (graph && std::strcmp(graph, "training") != 0 && std::strcmp(graph, "inference") != 0)
    throw Error("EMOTUNE_GRAPH='" + std::string(graph) + "': expected 'inference' (the default) or 'training'");
  if (device == Device::cpu && !(graph && std::strcmp(graph, "training") == 0)) {
    const int s = m.info.preprocess.size;
    m.graph = InferenceGraph::compile(*net, 1, s, s);
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
      const float* z = logits.data() + (size_t)i * c;
      float mx = z[0];
      for (int k = 1; k < c; ++k) mx = std::max(mx, z[k]);
      std::vector<float> p(c);
      double sum = 0;
      for (int k = 0; k < c; ++k) sum += p[k] = std::exp(z[k] - mx);
      for (float& v : p) v = (float)(v / sum);
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace emotune
