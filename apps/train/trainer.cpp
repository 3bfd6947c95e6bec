#include "apps/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/train/evaluation.h"
#include "apps/train/plot.h"
#include "apps/train/progress.h"
#include "datasets/classes.h"
#include "datasets/ferplus.h"
#include "datasets/loader.h"
#include "datasets/sampler.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "layers/nets/nets.h"

namespace emotune {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct EpochRecord {
  int epoch = 0;
  double lr = 0, train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, val_macro_f1 = 0;
  double seconds = 0, images_per_s = 0;
};

json record_json(const EpochRecord& r) {
  return {{"epoch", r.epoch}, {"lr", r.lr}, {"train_loss", r.train_loss}, {"train_acc", r.train_acc},
          {"val_loss", r.val_loss}, {"val_acc", r.val_acc}, {"val_macro_f1", r.val_macro_f1},
          {"seconds", r.seconds}, {"images_per_s", r.images_per_s}};
}

EpochRecord record_from_json(const json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.lr = j.at("lr");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.val_loss = j.at("val_loss");
  r.val_acc = j.at("val_acc");
  r.val_macro_f1 = j.at("val_macro_f1");
  r.seconds = j.at("seconds");
  r.images_per_s = j.at("images_per_s");
  return r;
}

void write_metrics_csv(const fs::path& path, const std::vector<EpochRecord>& history) {
  std::ostringstream os;
  os << "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,seconds,images_per_s\n";
  char buf[256];
  for (const auto& r : history) {
    std::snprintf(buf, sizeof buf, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f,%.1f\n", r.epoch + 1, r.lr,
                  r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.val_macro_f1, r.seconds,
                  r.images_per_s);
    os << buf;
  }
  write_file_atomic(path.string(), os.str());
}

void write_curves(const fs::path& path, const std::vector<EpochRecord>& h, const std::string& title) {
  CurveSeries tl{"train", {}}, vl{"validation", {}}, ta{"train", {}}, va{"validation", {}};
  for (const auto& r : h) {
    tl.values.push_back(r.train_loss);
    vl.values.push_back(r.val_loss);
    ta.values.push_back(100 * r.train_acc);
    va.values.push_back(100 * r.val_acc);
  }
  plot_training_curves(path.string(), {tl, vl}, {ta, va}, title);
}

Split parse_split(const std::string& name) {
  Split s;
  if (!split_from_name(name, &s))
    throw Error("unknown split '" + name + "' (accepted: " + accepted_split_names() + ")");
  return s;
}

// The optimizer's fixed hyper-parameters; the learning rate comes from the schedule each step.
std::unique_ptr<Optimizer> make_optimizer(const TrainConfig& c, std::vector<ParamRef> params) {
  if (c.optimizer == "sgd") {
    SgdOptions o;
    o.momentum = (float)c.momentum;
    o.nesterov = c.nesterov;
    o.weight_decay = (float)c.weight_decay;
    return std::make_unique<Sgd>(std::move(params), o);
  }
  AdamOptions o;
  o.beta1 = (float)c.beta1;
  o.beta2 = (float)c.beta2;
  o.eps = (float)c.eps;
  o.weight_decay = (float)c.weight_decay;
  o.decoupled = c.optimizer == "adamw";
  return std::make_unique<Adam>(std::move(params), o);
}

// TrainConfig.lr enters the run here, and only here: as the schedule's base.
ScheduleConfig schedule_config(const TrainConfig& c) {
  ScheduleConfig s;
  s.kind = c.schedule;
  s.base_lr = (float)c.lr;
  s.min_lr = (float)c.min_lr;
  s.epochs = c.epochs;
  s.warmup_epochs = c.warmup_epochs;
  s.step_size = c.step_size;
  s.gamma = (float)c.gamma;
  s.factor = (float)c.plateau_factor;
  s.patience = c.plateau_patience;
  s.maximize = true;  // watches validation accuracy
  return s;
}

std::map<std::string, std::string> model_metadata(const TrainConfig& c, const Preprocess& pre) {
  return {{"format", "emotune-checkpoint-1"},
          {"arch", c.arch},
          {"classes", json(class_names(c.classes)).dump()},
          {"preprocess", pre.to_json()},
          {"config", c.to_json().dump()}};
}

}  // namespace

Dataset load_labelled_split(const TrainConfig& c, const std::string& split_name, int64_t limit) {
  Split split = parse_split(split_name);
  LoadOptions lo;
  lo.format = data_format_from_name(c.format);
  lo.splits = {split};
  lo.skip_bad = c.skip_bad;
  Dataset d = load_dataset(c.data, lo);
  if (c.labels != "fer2013") {
    FerPlusOptions fo;
    fo.mode = ferplus_mode_from_name(c.labels == "ferplus-majority" ? "majority" : "distribution");
    fo.num_classes = c.classes;
    d = apply_ferplus(d, load_ferplus(c.ferplus), fo);
  }
  if (d.size() == 0) throw Error(c.data + ": no samples in split '" + split_name + "'");
  if (limit > 0 && (size_t)limit < d.size()) {
    // A seeded subset, kept in file order: the same limit and seed always pick the same faces.
    std::vector<uint32_t> order = epoch_order(d.size(), true, c.seed, 0xfeed);
    std::vector<size_t> pick(order.begin(), order.begin() + limit);
    std::sort(pick.begin(), pick.end());
    d = d.subset(pick);
  }
  return d;
}

TrainResult run_training(const TrainConfig& config, const std::string& resume_dir) {
  TrainConfig c = config;
  c.validate();
  const Device dev = parse_device(c.device);
  const bool resume = !resume_dir.empty();
  const fs::path run = resume ? fs::path(resume_dir) : fs::path(c.out) / c.name;
  const fs::path last_path = run / "last.safetensors", best_path = run / "best.safetensors";
  if (!resume && fs::exists(last_path))
    throw Error(run.string() + " already holds a run (last.safetensors); continue it with --resume " +
                run.string() + " or choose another --name");
  std::error_code ec;
  fs::create_directories(run, ec);
  if (ec) throw Error("cannot create run folder " + run.string() + ": " + ec.message());
  if (int n = remove_stale_temp_files(run.string()))
    std::fprintf(stderr, "removed %d temporary file(s) left by a killed run in %s\n", n, run.string().c_str());
  write_file_atomic((run / "config.json").string(), c.to_json().dump(2) + "\n");

  // Data.
  std::fprintf(stderr, "loading %s ...\n", c.data.c_str());
  Dataset train = load_labelled_split(c, c.train_split, c.limit_train);
  Dataset val = load_labelled_split(c, c.val_split, c.limit_val);
  std::fprintf(stderr, "train: %zu samples (%s), validation: %zu samples (%s)\n", train.size(),
               c.train_split.c_str(), val.size(), c.val_split.c_str());
  Preprocess pre;  // the paper's: pixels / 255
  Balance balance = balance_from_name(c.balance);
  LoaderOptions lopt;
  lopt.batch_size = c.batch_size;
  lopt.shuffle = true;
  lopt.seed = c.seed;
  lopt.threads = c.threads;
  lopt.drop_last = true;  // a last batch of 1 would break batch norm's statistics
  lopt.augment = AugmentOptions::parse(c.augment);
  lopt.sampler = balance == Balance::sampler ? SamplerKind::weighted : SamplerKind::none;
  lopt.num_classes = c.classes;
  lopt.preprocess = pre;
  BatchLoader loader(train, lopt);
  Tensor class_weight;
  if (balance == Balance::loss_weights) {
    std::vector<int64_t> counts = train.class_counts();
    counts.resize(c.classes, 0);
    class_weight = Tensor::from_vector({c.classes}, class_weights(counts), dev);
  }

  // Model, optimizer, schedule.
  auto net = make_network(c.arch, c.classes, c.seed, c.init);
  net->to(dev);
  auto opt = make_optimizer(c, net->parameters());
  LrSchedule schedule(schedule_config(c));

  int start_epoch = 0;
  int64_t step = 0;
  double best_acc = -1;
  int best_epoch = -1;
  std::vector<EpochRecord> history;
  if (resume) {
    if (!fs::exists(last_path))
      throw Error(run.string() + ": nothing to resume (no last.safetensors; the run died before its first epoch ended)");
    Checkpoint ck = load_safetensors(last_path.string());
    if (ck.meta("arch") != c.arch)
      throw Error(last_path.string() + ": checkpoint is for network '" + ck.meta("arch") + "', config says '" + c.arch + "'");
    net->load_state_dict(ck);
    opt->load_state(ck);
    json st = json::parse(ck.meta("train_state"));
    start_epoch = st.at("epochs_done");
    step = st.at("step");
    best_acc = st.at("best_val_acc");
    best_epoch = st.at("best_epoch");
    opt->set_steps(st.at("optimizer_steps"));
    schedule.load_state_json(st.at("schedule").get<std::string>());
    for (const auto& r : st.at("history")) history.push_back(record_from_json(r));
    std::fprintf(stderr, "resuming %s after epoch %d (step %lld)\n", run.string().c_str(), start_epoch,
                 (long long)step);
  }
  std::fprintf(stderr, "%s: %lld parameters, %s, %d epochs of %lld batches of %d on %s\n", c.arch.c_str(),
               (long long)net->count_parameters(false), c.optimizer.c_str(), c.epochs,
               (long long)loader.batches_per_epoch(), c.batch_size, device_name(dev));

  const std::string title = c.name + " (" + c.arch + ")";
  for (int epoch = start_epoch; epoch < c.epochs; ++epoch) {
    const float lr = schedule.lr(epoch);  // every step of the epoch uses it, and its record shows it
    net->set_training(true);
    loader.start_epoch(epoch);
    char label[64];
    std::snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, c.epochs);
    Progress progress(label, loader.batches_per_epoch());
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, batches = 0;
    while (const Batch* b = loader.next()) {
      Tensor x = Tensor::from_host({b->size, 1, b->side, b->side}, b->images, dev);
      Tensor t = Tensor::from_host({b->size, b->num_classes}, b->targets, dev);
      std::vector<int32_t> labels(b->labels, b->labels + b->size);
      loader.release(b);
      net->set_step((uint64_t)step);
      Tensor logits = net->forward(x);
      Tensor loss = ops::softmax_cross_entropy(logits, t, class_weight, (float)c.label_smoothing);
      Tensor penalty = net->penalty();
      Tensor total = penalty.defined() ? ops::add(loss, penalty) : loss;
      const float value = total.item();
      if (!std::isfinite(value) || value > c.max_loss) {
        std::string why = std::isfinite(value) ? "loss " + std::to_string(value) + " exceeds max_loss " +
                                                     std::to_string(c.max_loss)
                                               : std::string("loss is ") + (std::isnan(value) ? "NaN" : "infinite");
        throw Error("training stopped at epoch " + std::to_string(epoch + 1) + ", step " +
                    std::to_string(step) + ": " + why + "; the last good checkpoint " +
                    (fs::exists(last_path) ? "is " + last_path.string() : std::string("does not exist yet")));
      }
      opt->zero_grad();
      total.backward();
      opt->step(lr);
      std::vector<float> z = logits.to_vector();
      for (size_t i = 0; i < labels.size(); ++i) {
        const float* row = z.data() + i * c.classes;
        correct += std::max_element(row, row + c.classes) - row == labels[i];
      }
      loss_sum += value * labels.size();
      seen += (int64_t)labels.size();
      ++step;
      ++batches;
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.4f  acc %.1f%%", loss_sum / seen, 100.0 * correct / seen);
      progress.update(batches, seen, extra);
    }
    const double train_seconds = progress.elapsed();

    EvalOptions eo;
    eo.device = dev;
    EvalResult ev = evaluate_network(*net, val, pre, c.classes, eo);
    schedule.observe((float)ev.metrics.accuracy);
    EpochRecord rec;
    rec.epoch = epoch;
    rec.lr = lr;
    rec.train_loss = seen ? loss_sum / seen : 0;
    rec.train_acc = seen ? (double)correct / seen : 0;
    rec.val_loss = ev.loss;
    rec.val_acc = ev.metrics.accuracy;
    rec.val_macro_f1 = ev.metrics.macro_f1;
    rec.seconds = progress.elapsed();
    rec.images_per_s = train_seconds > 0 ? seen / train_seconds : 0;
    history.push_back(rec);
    char extra[160];
    std::snprintf(extra, sizeof extra, "train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% macro-F1 %.4f | lr %.3g",
                  rec.train_loss, 100 * rec.train_acc, rec.val_loss, 100 * rec.val_acc, rec.val_macro_f1, lr);
    progress.finish(extra);

    auto meta = model_metadata(c, pre);
    if (ev.metrics.accuracy > best_acc) {
      best_acc = ev.metrics.accuracy;
      best_epoch = epoch;
      auto best_meta = meta;
      best_meta["val_metrics"] = metrics_json(ev.metrics, class_names(c.classes));
      best_meta["epoch"] = std::to_string(epoch + 1);
      save_safetensors(best_path.string(), net->state_dict(), best_meta, DType::f32);
      write_file_atomic((run / "val_metrics.json").string(), best_meta["val_metrics"] + "\n");
      plot_confusion_matrix((run / "confusion.png").string(), ev.metrics.confusion, class_names(c.classes),
                            title + ", epoch " + std::to_string(epoch + 1) + ", " + c.val_split);
    }
    // Everything needed to continue: weights, buffers, optimizer state, schedule, history.
    json hist = json::array();
    for (const auto& r : history) hist.push_back(record_json(r));
    meta["train_state"] = json{{"epochs_done", epoch + 1}, {"step", step}, {"best_val_acc", best_acc},
                               {"best_epoch", best_epoch}, {"optimizer_steps", opt->steps()},
                               {"schedule", schedule.state_json()}, {"history", hist}}
                              .dump();
    std::vector<NamedTensor> tensors = net->state_dict();
    for (auto& s : opt->state()) tensors.push_back(s);
    save_safetensors(last_path.string(), tensors, meta, DType::f32);
    write_metrics_csv(run / "metrics.csv", history);
    write_curves(run / "curves.png", history, title);
  }

  // The shipped form: the best epoch's weights in save_dtype (fp16 by default).
  Checkpoint best = load_safetensors(best_path.string());
  save_safetensors((run / "model.safetensors").string(), best.tensors, best.metadata, parse_dtype(c.save_dtype));
  TrainResult r;
  r.run_dir = run.string();
  r.best_val_accuracy = best_acc;
  r.best_epoch = best_epoch;
  r.epochs_done = (int)history.size();
  std::fprintf(stderr, "best %s accuracy %.2f%% at epoch %d; model: %s\n", c.val_split.c_str(), 100 * best_acc,
               best_epoch + 1, (run / "model.safetensors").string().c_str());
  return r;
}

}  // namespace emotune
