#include "apps/train/checkpoints.h"

#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "datasets/classes.h"
#include "engine/checkpoint.h"

namespace emotune {

using json = nlohmann::json;

ModelMetadata model_metadata(const TrainConfig& c, const Preprocess& pre) {
  return {{"format", "emotune-checkpoint-1"},
          {"arch", c.arch},
          {"classes", json(class_names(c.classes)).dump()},
          {"preprocess", pre.to_json()},
          {"config", c.to_json().dump()}};
}

void save_best_checkpoint(const RunPaths& p, Module& net, ModelMetadata meta, const Metrics& val,
                          const std::vector<std::string>& class_names, int epoch) {
  meta["val_metrics"] = metrics_json(val, class_names);
  meta["epoch"] = std::to_string(epoch + 1);
  save_safetensors(p.best, net.state_dict(), meta, DType::f32);
  write_file_atomic(p.val_metrics, meta["val_metrics"] + "\n");
}

void save_last_checkpoint(const RunPaths& p, Module& net, const Optimizer& opt, const LrSchedule& schedule,
                          ModelMetadata meta, const TrainState& st) {
  meta["train_state"] = json{{"epochs_done", st.epochs_done}, {"step", st.step},
                             {"best_val_acc", st.best_val_acc}, {"best_epoch", st.best_epoch},
                             {"optimizer_steps", opt.steps()}, {"schedule", schedule.state_json()},
                             {"history", history_json(st.history)}}
                            .dump();
  std::vector<NamedTensor> tensors = net.state_dict();
  for (auto& s : opt.state()) tensors.push_back(s);
  save_safetensors(p.last, tensors, meta, DType::f32);
}

TrainState resume_from_last(const RunPaths& p, const std::string& arch, Module& net, Optimizer& opt,
                            LrSchedule& schedule) {
  if (!std::filesystem::exists(p.last))
    throw Error(p.dir + ": nothing to resume (no last.safetensors; the run died before its first epoch ended)");
  Checkpoint ck = load_safetensors(p.last);
  if (ck.meta("arch") != arch)
    throw Error(p.last + ": checkpoint is for network '" + ck.meta("arch") + "', config says '" + arch + "'");
  net.load_state_dict(ck);
  opt.load_state(ck);
  json j = json::parse(ck.meta("train_state"));
  TrainState st;
  st.epochs_done = j.at("epochs_done");
  st.step = j.at("step");
  st.best_val_acc = j.at("best_val_acc");
  st.best_epoch = j.at("best_epoch");
  opt.set_steps(j.at("optimizer_steps"));
  schedule.load_state_json(j.at("schedule").get<std::string>());
  st.history = history_from_json(j.at("history"));
  std::fprintf(stderr, "resuming %s after epoch %d (step %lld)\n", p.dir.c_str(), st.epochs_done,
               (long long)st.step);
  return st;
}

void export_model(const RunPaths& p, const std::string& save_dtype, const std::string& which) {
  if (which == "best") {
    Checkpoint best = load_safetensors(p.best);
    save_safetensors(p.model, best.tensors, best.metadata, parse_dtype(save_dtype));
    return;
  }
  Checkpoint last = load_safetensors(p.last);
  std::vector<NamedTensor> weights;
  for (auto& nt : last.tensors)
    if (nt.name.rfind("optim.", 0) != 0) weights.push_back(nt);
  ModelMetadata meta = last.metadata;
  meta["epoch"] = std::to_string(json::parse(meta.at("train_state")).at("epochs_done").get<int>());
  meta.erase("train_state");
  save_safetensors(p.model, weights, meta, parse_dtype(save_dtype));
}

}  // namespace emotune
