// The bounded worker pool behind the API: a fixed number of inference threads, a queue of at
// most `capacity` waiting jobs, and a deadline per job.
//
// Why one EmotionPipeline per worker and not one shared pipeline: the pipeline is const after
// construction, but what it calls is not free of shared state. dlib's HOG detector keeps scratch
// buffers in operator() (apps/vision/detectors.cpp serialises it with a mutex, so workers sharing
// one detector would take turns on the ~15-50 ms detection, the most expensive stage), and
// predict_probabilities calls Module::set_training(false) on the shared network for every call (a
// write, so a data race between threads, even if a benign one). A pipeline per worker costs
// ~17 MB of fp32 weights each (the vgg model; ~100 MB more with --align landmarks), loaded once
// at start, and lets the workers run fully in parallel with no lock on the request path.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "apps/pipeline/pipeline.h"

namespace emotune {

class InferencePool {
 public:
  using Clock = std::chrono::steady_clock;
  using Work = std::function<void(const EmotionPipeline&)>;

  // What happened to a submitted job by its deadline.
  enum class Outcome { done, expired_queued, expired_running };

  class Job {
   public:
    // Blocks until the job ran (done; an exception it threw is rethrown here) or the deadline
    // passed. A job still queued at its deadline is cancelled and never runs (expired_queued); a
    // running one finishes on its worker and its result is dropped (expired_running).
    Outcome wait_until(Clock::time_point deadline);

   private:
    friend class InferencePool;
    enum class State { queued, running, done, cancelled };
    std::mutex mutex_;
    std::condition_variable cv_;
    State state_ = State::queued;
    Work work_;
    std::exception_ptr error_;
    InferencePool* pool_ = nullptr;
  };

  // make_pipeline is called `workers` times, here, before any thread starts (a bad model throws
  // from the constructor, not from a worker).
  InferencePool(int workers, int capacity,
                const std::function<std::unique_ptr<EmotionPipeline>()>& make_pipeline);
  ~InferencePool();  // cancels what is queued, joins the workers
  InferencePool(const InferencePool&) = delete;
  InferencePool& operator=(const InferencePool&) = delete;

  // nullptr when `capacity` jobs are already waiting (the caller answers 503) or the pool stops.
  std::shared_ptr<Job> submit(Work work);

  int workers() const { return (int)threads_.size(); }
  int capacity() const { return capacity_; }
  int queued() const;   // jobs waiting for a worker (cancelled ones not counted)
  int running() const;  // jobs on a worker now
  const EmotionPipeline& pipeline(int worker) const { return *pipelines_[worker]; }

 private:
  void worker_loop(int index);
  void left_queue();  // a job stopped waiting (a worker took it, or its deadline cancelled it)

  std::vector<std::unique_ptr<EmotionPipeline>> pipelines_;
  std::vector<std::thread> threads_;
  int capacity_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  int waiting_ = 0, running_ = 0;
  bool stopping_ = false;
};

}  // namespace emotune
