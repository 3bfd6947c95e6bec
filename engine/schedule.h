// Learning-rate schedules, evaluated once per epoch:
//   constant: base
//   step:     base * gamma^floor(epoch / step_size)
//   cosine:   linear warm-up over warmup_epochs, then min + (base - min) (1 + cos(pi t)) / 2,
//             t = (epoch - warmup) / (epochs - warmup)
//   plateau:  starts at base; when the watched metric has not improved by more than `threshold`
//             for `patience` epochs, lr *= factor (not below min_lr)
// The plateau state is saved in checkpoints (state_json) so a resumed run continues it.
// The schedule is the one owner of the learning rate during a run: the config's lr only sets
// base_lr, and optimizers hold no lr of their own but take lr(epoch) on every step (engine/optim.h).
#pragma once
#include <string>

namespace emotune {

struct ScheduleConfig {
  std::string kind = "constant";  // constant | step | cosine | plateau
  float base_lr = 1e-3f;
  float min_lr = 0.0f;
  int epochs = 1;
  int warmup_epochs = 0;
  int step_size = 10;     // step
  float gamma = 0.1f;     // step
  float factor = 0.5f;    // plateau
  int patience = 3;       // plateau
  float threshold = 1e-4f;
  bool maximize = true;   // plateau watches accuracy (true) or loss (false)
};

class LrSchedule {
 public:
  explicit LrSchedule(const ScheduleConfig& c);  // throws Error on an unknown kind or bad value
  float lr(int epoch) const;                     // epoch counts from 0
  void observe(float metric);                    // end of an epoch (plateau only)
  std::string state_json() const;
  void load_state_json(const std::string& json);

 private:
  ScheduleConfig c_;
  float current_;
  float best_;
  int bad_epochs_ = 0;
  bool has_best_ = false;
};

}  // namespace emotune
