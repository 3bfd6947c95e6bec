#include "apps/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/train/batch_upload.h"
#include "apps/train/calibration.h"
#include "apps/train/checkpoints.h"
#include "apps/train/evaluation.h"
#include "apps/train/history.h"
#include "apps/train/holdout.h"
#include "apps/train/plot.h"
#include "apps/train/progress.h"
#include "apps/train/run_folder.h"
#include "base/error.h"
#include "datasets/classes.h"
#include "datasets/ferplus.h"
#include "datasets/loader.h"
#include "datasets/mixup.h"
#include "datasets/sampler.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/runtime.h"
#include "engine/schedule.h"
#include "layers/nets/nets.h"

namespace emotune {

namespace {

// Everything a run trains with, built in place before the first epoch (the loader keeps a
// reference to `train`, so a Training never moves).
struct Training {
  TrainConfig c;
  Device dev = Device::cpu;
  RunPaths paths;
  std::string title;  // of the plots
  ReferenceCurve reference;  // config.reference_curve, drawn beside the validation accuracy
  Dataset train, val;
  Dataset test;          // val_fraction > 0: val_split, evaluated once after the last epoch
  std::string val_name;  // what validation is: val_split, or "Training holdout 10%"
  Preprocess pre;  // the paper's: pixels / 255
  std::unique_ptr<BatchLoader> loader;
  Tensor class_weight;  // per-class loss weights (balance = loss-weights), else undefined
  std::shared_ptr<Sequential> net;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<LrSchedule> schedule;  // the one owner of the learning rate
};

Split parse_split(const std::string& name) {
  Split s;
  if (!split_from_name(name, &s))
    throw Error("unknown split '" + name + "' (accepted: " + accepted_split_names() + ")");
  return s;
}

// ------------------------------------------------------------------ before the first epoch

void load_data(Training& t) {
  const TrainConfig& c = t.c;
  std::fprintf(stderr, "loading %s ...\n", c.data.c_str());
  t.train = load_labelled_split(c, c.train_split, c.limit_train);
  if (c.val_fraction > 0) {  // honest selection: validate on a slice of training, report val_split once
    const Holdout h = stratified_holdout(t.train.labels, c.val_fraction, c.seed);
    if (h.held_out.empty() || h.train.empty())
      throw Error("val_fraction " + std::to_string(c.val_fraction) + " leaves no validation or no training faces");
    t.val = t.train.subset(h.held_out);
    t.train = t.train.subset(h.train);
    t.test = load_labelled_split(c, c.val_split, c.limit_val);
    t.val_name = c.train_split + " holdout " + std::to_string((int)std::lround(100 * c.val_fraction)) + "%";
    std::fprintf(stderr,
                 "train: %zu samples (%s minus the holdout), validation: %zu samples (%s, seed %llu), "
                 "reported once at the end: %zu samples (%s)\n",
                 t.train.size(), c.train_split.c_str(), t.val.size(), t.val_name.c_str(), (unsigned long long)c.seed,
                 t.test.size(), c.val_split.c_str());
    return;
  }
  t.val = load_labelled_split(c, c.val_split, c.limit_val);
  t.val_name = c.val_split;
  std::fprintf(stderr, "train: %zu samples (%s), validation: %zu samples (%s)\n", t.train.size(),
               c.train_split.c_str(), t.val.size(), c.val_split.c_str());
}

void make_loader(Training& t) {
  const TrainConfig& c = t.c;
  const Balance balance = balance_from_name(c.balance);
  LoaderOptions lopt;
  lopt.batch_size = c.batch_size;
  lopt.shuffle = true;
  lopt.seed = c.seed;
  lopt.threads = c.threads;
  lopt.drop_last = true;  // a last batch of 1 would break batch norm's statistics
  lopt.augment = AugmentOptions::parse(c.augment);
  if (c.mixup > 0) {
    const double alpha = c.mixup;
    const uint64_t seed = c.seed;
    lopt.batch_hook = [alpha, seed](Batch& b, int64_t) { mixup_batch(b, alpha, seed); };
  }
  lopt.sampler = balance == Balance::sampler ? SamplerKind::weighted : SamplerKind::none;
  lopt.num_classes = c.classes;
  lopt.preprocess = t.pre;
  if (t.dev == Device::cuda) lopt.memory = {alloc_host_pinned, free_host_pinned};  // page-locked
  t.loader = std::make_unique<BatchLoader>(t.train, lopt);
  if (t.loader->batches_per_epoch() == 0)  // full batches only: an epoch would train nothing
    throw Error("train: " + std::to_string(t.train.size()) + " training samples make no batch of " +
                std::to_string(c.batch_size) + " (lower batch_size or limit_train)");
  if (balance == Balance::loss_weights) {
    std::vector<int64_t> counts = t.train.class_counts();
    counts.resize(c.classes, 0);
    t.class_weight = Tensor::from_vector({c.classes}, class_weights(counts), t.dev);
  }
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

void build_model(Training& t) {
  t.net = make_network(t.c.arch, t.c.classes, t.c.seed, t.c.init);
  t.net->to(t.dev);
  t.opt = make_optimizer(t.c, t.net->parameters());
  t.schedule = std::make_unique<LrSchedule>(schedule_config(t.c));
}

void print_plan(const Training& t) {
  const TrainConfig& c = t.c;
  const std::string precision = t.dev == Device::cpu ? ", " + runtime_precision() : std::string();
  std::fprintf(stderr, "%s: %lld parameters, %s, %d epochs of %lld batches of %d on %s%s\n", c.arch.c_str(),
               (long long)t.net->count_parameters(false), c.optimizer.c_str(), c.epochs,
               (long long)t.loader->batches_per_epoch(), c.batch_size, device_name(t.dev), precision.c_str());
}

// ------------------------------------------------------------------ one epoch

struct EpochTotals {
  double loss_sum = 0;  // per-sample sum of the training loss (penalty included)
  int64_t seen = 0, correct = 0, batches = 0;
};

// A loss that is not finite or above max_loss stops the run, naming where and what survives.
void check_loss(const Training& t, float value, int epoch, int64_t step) {
  if (std::isfinite(value) && value <= t.c.max_loss) return;
  std::string why = std::isfinite(value) ? "loss " + std::to_string(value) + " exceeds max_loss " +
                                               std::to_string(t.c.max_loss)
                                         : std::string("loss is ") + (std::isnan(value) ? "NaN" : "infinite");
  throw Error("training stopped at epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(step) +
              ": " + why + "; the last good checkpoint " +
              (std::filesystem::exists(t.paths.last) ? "is " + t.paths.last : std::string("does not exist yet")));
}

int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels, int classes) {
  std::vector<float> z = logits.to_vector();
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = z.data() + i * classes;
    correct += std::max_element(row, row + classes) - row == labels[i];
  }
  return correct;
}

// One optimizer step at `lr` on batch `b` (released to the loader once uploaded: batch_upload.h);
// adds the batch to `tot`.
void train_batch(Training& t, const Batch* b, int epoch, float lr, int64_t step, EpochTotals& tot) {
  const DeviceBatch d = upload_batch(*t.loader, b, t.dev);
  const std::vector<int32_t>& labels = d.labels;
  t.net->set_step((uint64_t)step);
  Tensor logits = t.net->forward(d.images);
  Tensor loss = ops::softmax_cross_entropy(logits, d.targets, t.class_weight, (float)t.c.label_smoothing);
  Tensor penalty = t.net->penalty();
  Tensor total = penalty.defined() ? ops::add(loss, penalty) : loss;
  const float value = total.item();
  check_loss(t, value, epoch, step);
  t.opt->zero_grad();
  total.backward();
  t.opt->step(lr);
  tot.correct += count_correct(logits, labels, t.c.classes);
  tot.loss_sum += value * labels.size();
  tot.seen += (int64_t)labels.size();
}

// The batch loop of one epoch (the loader already started), with a running loss/accuracy line.
EpochTotals train_one_epoch(Training& t, TrainState& st, int epoch, float lr, Progress& progress) {
  EpochTotals tot;
  while (const Batch* b = t.loader->next()) {
    train_batch(t, b, epoch, lr, st.step, tot);
    ++st.step;
    ++tot.batches;
    char extra[96];
    std::snprintf(extra, sizeof extra, "loss %.4f  acc %.1f%%", tot.loss_sum / tot.seen,
                  100.0 * tot.correct / tot.seen);
    progress.update(tot.batches, tot.seen, extra);
  }
  return tot;
}

// The validation pass. The schedule sees its accuracy (plateau sets the next epoch's lr from it).
EvalResult evaluate_epoch(Training& t) {
  EvalOptions eo;
  eo.device = t.dev;
  EvalResult ev = evaluate_network(*t.net, t.val, t.pre, t.c.classes, eo);
  t.schedule->observe((float)ev.metrics.accuracy);
  return ev;
}

EpochRecord epoch_record(int epoch, float lr, const EpochTotals& tot, const EvalResult& ev,
                         double train_seconds, double seconds) {
  EpochRecord rec;
  rec.epoch = epoch;
  rec.lr = lr;
  rec.train_loss = tot.seen ? tot.loss_sum / tot.seen : 0;
  rec.train_acc = tot.seen ? (double)tot.correct / tot.seen : 0;
  rec.val_loss = ev.loss;
  rec.val_acc = ev.metrics.accuracy;
  rec.val_macro_f1 = ev.metrics.macro_f1;
  rec.seconds = seconds;
  rec.images_per_s = train_seconds > 0 ? tot.seen / train_seconds : 0;
  return rec;
}

std::string epoch_summary(const EpochRecord& r) {
  char s[160];
  std::snprintf(s, sizeof s, "train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% macro-F1 %.4f | lr %.3g",
                r.train_loss, 100 * r.train_acc, r.val_loss, 100 * r.val_acc, r.val_macro_f1, r.lr);
  return s;
}

// The end of an epoch on disk: best.safetensors, val_metrics.json and confusion.png when the
// validation accuracy improved; then last.safetensors, metrics.csv and curves.png.
void save_epoch(Training& t, TrainState& st, const EvalResult& ev, int epoch) {
  const ModelMetadata meta = model_metadata(t.c, t.pre);
  if (ev.metrics.accuracy > st.best_val_acc) {
    st.best_val_acc = ev.metrics.accuracy;
    st.best_epoch = epoch;
    save_best_checkpoint(t.paths, *t.net, meta, ev.metrics, class_names(t.c.classes), epoch);
    plot_confusion_matrix(t.paths.confusion, ev.metrics.confusion, class_names(t.c.classes),
                          t.title + ", epoch " + std::to_string(epoch + 1) + ", " + t.val_name);
  }
  st.epochs_done = epoch + 1;
  save_last_checkpoint(t.paths, *t.net, *t.opt, *t.schedule, meta, st);
  write_metrics_csv(t.paths.metrics, st.history);
  write_curves(t.paths.curves, st.history, t.title, t.reference);
}

void run_epoch(Training& t, TrainState& st, int epoch) {
  const float lr = t.schedule->lr(epoch);  // every step of the epoch uses it, and its record shows it
  t.net->set_training(true);
  t.loader->start_epoch(epoch);
  char label[64];
  std::snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, t.c.epochs);
  Progress progress(label, t.loader->batches_per_epoch());
  const EpochTotals tot = train_one_epoch(t, st, epoch, lr, progress);
  const double train_seconds = progress.elapsed();
  const EvalResult ev = evaluate_epoch(t);
  st.history.push_back(epoch_record(epoch, lr, tot, ev, train_seconds, progress.elapsed()));
  progress.finish(epoch_summary(st.history.back()));
  save_epoch(t, st, ev, epoch);
}

// ------------------------------------------------------------------ after the last epoch

// The exported model's temperature (calibration.h), fitted on one seeded half of the validation
// split and measured on the other, written into model.safetensors: every trained model ships
// calibrated. Only the exported file changes; the run's checkpoints and numbers do not.
void calibrate_export(const Training& t) {
  CalibrationSetup s;
  s.split = t.c.val_fraction > 0 ? t.c.train_split : t.c.val_split;
  s.holdout = t.c.val_fraction;
  s.labels = t.c.labels;
  s.data = t.c.data;
  s.seed = t.c.seed;
  s.limit = t.c.val_fraction > 0 ? t.c.limit_train : t.c.limit_val;  // t.val is this seeded subset, so evaluate can find the same halves
  s.eval.device = t.dev;
  if (t.val.size() < 2) {
    std::fprintf(stderr, "calibration skipped: %zu validation face(s), too few for two halves\n", t.val.size());
    return;
  }
  const CalibrationRecord r = calibrate_model(load_model(t.paths.model, t.dev), t.val, s);
  write_calibrated_model(t.paths.model, t.paths.model, r);
  std::fprintf(stderr, "calibration: %s\n", calibration_summary(r).c_str());
}

// With val_fraction > 0: val_split's figures of the exported model, measured once, here, after
// everything was chosen on the holdout (test_metrics.json, and one line). Returns the accuracy.
double report_test_split(const Training& t) {
  if (t.test.size() == 0) return -1;
  const LoadedModel m = load_model(t.paths.model, t.dev);
  EvalOptions eo;
  eo.device = t.dev;
  const EvalResult r = evaluate_network(*m.net, t.test, m.info.preprocess, t.c.classes, eo);
  auto js = nlohmann::ordered_json::parse(metrics_json(r.metrics, m.info.classes));
  js["split"] = t.c.val_split;
  js["calibration"] = nlohmann::ordered_json::parse(
      comparison_json(compare_calibration(r, t.c.classes, m.info.temperature, !m.info.calibration.empty())));
  js["selected_on"] = t.val_name;
  write_file_atomic(t.paths.test_metrics, js.dump(2) + "\n");
  std::fprintf(stderr, "%s (reported once, chose nothing): accuracy %.2f%%, macro-F1 %.4f (%zu faces; %s)\n",
               t.c.val_split.c_str(), 100 * r.metrics.accuracy, r.metrics.macro_f1, t.test.size(),
               t.paths.test_metrics.c_str());
  return r.metrics.accuracy;
}

TrainResult finish(const Training& t, const TrainState& st) {
  // Drawn again here so that resuming a finished run with another reference curve redraws it.
  write_curves(t.paths.curves, st.history, t.title, t.reference);
  export_model(t.paths, t.c.save_dtype, t.c.export_epoch);
  calibrate_export(t);
  const double test_accuracy = report_test_split(t);
  TrainResult r;
  r.run_dir = t.paths.dir;
  r.best_val_accuracy = st.best_val_acc;
  r.best_epoch = st.best_epoch;
  r.epochs_done = (int)st.history.size();
  r.test_accuracy = test_accuracy;
  const EpochRecord* last = st.history.empty() ? nullptr : &st.history.back();
  std::fprintf(stderr, "best %s accuracy %.2f%% at epoch %d, last %.2f%% at epoch %d; model: %s (%s epoch)\n",
               t.val_name.c_str(), 100 * st.best_val_acc, st.best_epoch + 1, last ? 100 * last->val_acc : 0.0,
               last ? last->epoch + 1 : 0, t.paths.model.c_str(), t.c.export_epoch.c_str());
  return r;
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
  Training t;
  t.c = config;
  t.c.validate();
  t.dev = parse_device(t.c.device);
  runtime_set_precision(t.c.precision);  // the CPU's products; a CUDA run's are fp32 (cuBLAS / its kernels)
  t.paths = open_run_folder(t.c, resume_dir);
  t.title = t.c.name + " (" + t.c.arch + ")";
  if (!t.c.reference_curve.empty()) t.reference = read_reference_curve(t.c.reference_curve);
  load_data(t);
  make_loader(t);
  build_model(t);
  TrainState st;
  if (!resume_dir.empty()) st = resume_from_last(t.paths, t.c.arch, *t.net, *t.opt, *t.schedule);
  print_plan(t);
  for (int epoch = st.epochs_done; epoch < t.c.epochs; ++epoch) run_epoch(t, st, epoch);
  return finish(t, st);
}

}  // namespace emotune
