#include "engine/schedule.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace emotune {

LrSchedule::LrSchedule(const ScheduleConfig& c) : c_(c), current_(c.base_lr), best_(0) {
  if (c.kind != "constant" && c.kind != "step" && c.kind != "cosine" && c.kind != "plateau")
    throw Error("schedule: unknown kind '" + c.kind + "' (constant, step, cosine, plateau)");
  if (!(c.base_lr > 0)) throw Error("schedule: learning rate must be > 0");
  if (c.kind == "step" && c.step_size < 1) throw Error("schedule: step_size must be >= 1");
  if (c.kind == "plateau" && !(c.factor > 0 && c.factor < 1))
    throw Error("schedule: plateau factor must be in (0, 1)");
}

float LrSchedule::lr(int epoch) const {
  if (c_.kind == "step") return c_.base_lr * std::pow(c_.gamma, (float)(epoch / c_.step_size));
  if (c_.kind == "plateau") return current_;
  if (c_.kind == "cosine") {
    if (epoch < c_.warmup_epochs) return c_.base_lr * (float)(epoch + 1) / (float)(c_.warmup_epochs + 1);
    int span = std::max(1, c_.epochs - c_.warmup_epochs);
    double t = std::min(1.0, (double)(epoch - c_.warmup_epochs) / span);
    return (float)(c_.min_lr + (c_.base_lr - c_.min_lr) * 0.5 * (1.0 + std::cos(M_PI * t)));
  }
  return c_.base_lr;
}

void LrSchedule::observe(float metric) {
  if (c_.kind != "plateau") return;
  bool better = !has_best_ || (c_.maximize ? metric > best_ + c_.threshold : metric < best_ - c_.threshold);
  if (better) {
    best_ = metric;
    has_best_ = true;
    bad_epochs_ = 0;
  } else if (++bad_epochs_ >= c_.patience) {
    current_ = std::max(c_.min_lr, current_ * c_.factor);
    bad_epochs_ = 0;
  }
}

std::string LrSchedule::state_json() const {
  return nlohmann::json{{"current", current_}, {"best", best_}, {"bad_epochs", bad_epochs_},
                        {"has_best", has_best_}}
      .dump();
}

void LrSchedule::load_state_json(const std::string& json) {
  try {
    auto j = nlohmann::json::parse(json);
    current_ = j.at("current").get<float>();
    best_ = j.at("best").get<float>();
    bad_epochs_ = j.at("bad_epochs").get<int>();
    has_best_ = j.at("has_best").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("schedule state: ") + e.what());
  }
}

}  // namespace emotune
