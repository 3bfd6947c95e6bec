#include "apps/serve/inference_pool.h"

namespace emotune {

InferencePool::Outcome InferencePool::Job::wait_until(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!cv_.wait_until(lock, deadline, [&] { return state_ == State::done; })) {
    if (state_ == State::queued) {
      // Cancelled before a worker saw it: it will be skipped, and its bytes are freed now.
      state_ = State::cancelled;
      Work drop = std::move(work_);
      lock.unlock();
      pool_->left_queue();
      return Outcome::expired_queued;
    }
    if (state_ == State::running) return Outcome::expired_running;
    if (state_ == State::cancelled) return Outcome::expired_queued;  // the pool stopped
  }
  if (error_) std::rethrow_exception(error_);
  return Outcome::done;
}

InferencePool::InferencePool(int workers, int capacity,
                             const std::function<std::unique_ptr<EmotionPipeline>()>& make_pipeline)
    : capacity_(capacity) {
  for (int i = 0; i < workers; ++i) pipelines_.push_back(make_pipeline());
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
}

InferencePool::~InferencePool() {
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  cv_.notify_all();
  for (auto& job : left) {
    std::lock_guard<std::mutex> lock(job->mutex_);
    if (job->state_ == Job::State::queued) job->state_ = Job::State::cancelled;
    job->cv_.notify_all();
  }
  for (auto& t : threads_) t.join();
}

std::shared_ptr<InferencePool::Job> InferencePool::submit(Work work) {
  auto job = std::make_shared<Job>();
  job->work_ = std::move(work);
  job->pool_ = this;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || waiting_ >= capacity_) return nullptr;
    ++waiting_;
    queue_.push_back(job);
  }
  cv_.notify_one();
  return job;
}

void InferencePool::left_queue() {
  std::lock_guard<std::mutex> lock(mutex_);
  --waiting_;
}

int InferencePool::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

int InferencePool::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_;
}

void InferencePool::worker_loop(int index) {
  // The workers run requests side by side: serve's thread rule (engine/runtime.h), applied on each
  // worker thread because OpenMP's thread count is per thread.
  enter_serve_worker_thread();
  const EmotionPipeline& pipeline = *pipelines_[index];
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    Work work;
    {
      // Lock order: a job's mutex, then the pool's (left_queue); never the other way round.
      std::lock_guard<std::mutex> lock(job->mutex_);
      if (job->state_ != Job::State::queued) continue;  // its deadline cancelled it
      job->state_ = Job::State::running;
      work = std::move(job->work_);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --waiting_;
      ++running_;
    }
    std::exception_ptr error;
    try {
      work(pipeline);
    } catch (...) {
      error = std::current_exception();
    }
    work = nullptr;  // free the upload before the next job
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
    }
    {
      std::lock_guard<std::mutex> lock(job->mutex_);
      job->state_ = Job::State::done;
      job->error_ = error;
    }
    job->cv_.notify_all();
  }
}

}  // namespace emotune
