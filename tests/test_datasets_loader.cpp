// The batch loader: every sample once per epoch, identical batches for 0, 1 and 2 threads,
// targets, the weighted sampler, errors from workers, and clean restarts and shutdowns.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "base/error.h"
#include "datasets/loader.h"
#include "kernels/philox.h"

using namespace emotune;

namespace {

// A synthetic data set: n random faces, labels with a 10:1 imbalance between classes.
Dataset synthetic(size_t n, uint64_t seed = 1) {
  Dataset d;
  d.source = "synthetic";
  std::vector<uint8_t> px(kFacePixels);
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < kFacePixels; ++k) px[k] = (uint8_t)(philox_uniform(seed, i * kFacePixels + k) * 256);
    int label = i % 11 == 0 ? 1 : (int)(i % 7 == 1 ? 0 : i % 7);
    d.push(px.data(), label, Split::training, (int32_t)i, (int32_t)i + 2);
  }
  return d;
}

struct Copy {
  int64_t index;
  std::vector<float> images, targets;
  std::vector<int32_t> labels, samples;
  bool operator==(const Copy&) const = default;
};

std::vector<Copy> run_epoch(BatchLoader& loader, int64_t epoch) {
  std::vector<Copy> out;
  loader.start_epoch(epoch);
  while (const Batch* b = loader.next()) {
    Copy c;
    c.index = b->index;
    c.images.assign(b->images, b->images + (size_t)b->size * b->side * b->side);
    c.targets.assign(b->targets, b->targets + (size_t)b->size * b->num_classes);
    c.labels.assign(b->labels, b->labels + b->size);
    c.samples.assign(b->samples, b->samples + b->size);
    out.push_back(std::move(c));
    loader.release(b);
  }
  return out;
}

LoaderOptions options(int threads, int batch = 16) {
  LoaderOptions o;
  o.batch_size = batch;
  o.threads = threads;
  o.seed = 99;
  o.augment = AugmentOptions::full();
  return o;
}

}  // namespace

TEST_CASE("loader: every sample exactly once per epoch, in order, with a short last batch") {
  Dataset d = synthetic(100);
  BatchLoader loader(d, options(2));
  CHECK(loader.batches_per_epoch() == 7);
  std::vector<Copy> e = run_epoch(loader, 0);
  REQUIRE(e.size() == 7);
  std::vector<int> seen(100, 0);
  for (size_t b = 0; b < e.size(); ++b) {
    CHECK(e[b].index == (int64_t)b);
    CHECK(e[b].samples.size() == (b < 6 ? 16u : 4u));
    for (size_t i = 0; i < e[b].samples.size(); ++i) {
      int32_t s = e[b].samples[i];
      ++seen[s];
      CHECK(e[b].labels[i] == d.labels[s]);
      for (int c = 0; c < 7; ++c) CHECK(e[b].targets[i * 7 + c] == (c == d.labels[s] ? 1.0f : 0.0f));
    }
  }
  CHECK(std::count(seen.begin(), seen.end(), 1) == 100);
  // Shuffled: not the identity order; another epoch, another order.
  CHECK(e[0].samples != std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  CHECK(run_epoch(loader, 1)[0].samples != e[0].samples);

  LoaderOptions drop = options(1);
  drop.drop_last = true;
  BatchLoader dl(d, drop);
  CHECK(run_epoch(dl, 0).size() == 6);
}

TEST_CASE("loader: 0, 1 and 2 threads give bit-identical batches") {
  Dataset d = synthetic(150);
  BatchLoader l0(d, options(0)), l1(d, options(1)), l2(d, options(2));
  for (int64_t epoch : {0, 3}) {
    std::vector<Copy> a = run_epoch(l1, epoch), b = run_epoch(l2, epoch), c = run_epoch(l0, epoch);
    REQUIRE(a.size() == 10);
    CHECK(a == b);
    CHECK(a == c);
  }
  // The same with a tiny ring (workers wait on free slots) and a weighted sampler.
  LoaderOptions w1 = options(1), w2 = options(2);
  w1.prefetch = w2.prefetch = 2;
  w1.sampler = w2.sampler = SamplerKind::weighted;
  BatchLoader s1(d, w1), s2(d, w2);
  CHECK(run_epoch(s1, 5) == run_epoch(s2, 5));
}

TEST_CASE("loader: images are the preprocessed pixels when nothing is augmented") {
  Dataset d = synthetic(20);
  LoaderOptions o = options(2, 8);
  o.augment = AugmentOptions{};
  o.shuffle = false;
  o.preprocess.mean = 0.5f;
  o.preprocess.std = 0.25f;
  BatchLoader loader(d, o);
  std::vector<Copy> e = run_epoch(loader, 0);
  std::vector<float> want(kFacePixels);
  o.preprocess.apply(d.image(9), want.data());
  CHECK(e[1].samples[1] == 9);
  CHECK(std::equal(want.begin(), want.end(), e[1].images.begin() + kFacePixels));
}

TEST_CASE("loader: soft targets and the weighted sampler") {
  Dataset d = synthetic(70);
  d.soft.assign(70 * 7, 0.0f);
  for (size_t i = 0; i < 70; ++i) d.soft[i * 7 + d.labels[i]] = 0.75f, d.soft[i * 7 + 6] += 0.25f;
  LoaderOptions o = options(2, 10);
  BatchLoader loader(d, o);
  std::vector<Copy> e = run_epoch(loader, 0);
  int32_t s = e[2].samples[3];
  CHECK(std::equal(d.soft.begin() + s * 7, d.soft.begin() + s * 7 + 7, e[2].targets.begin() + 3 * 7));
  o.use_soft = false;
  BatchLoader hard(d, o);
  e = run_epoch(hard, 0);
  s = e[0].samples[0];
  CHECK(e[0].targets[d.labels[s]] == 1.0f);

  // Weighted: a longer epoch, classes balanced (synthetic: class 1 is 1 in 11 of the data).
  Dataset big = synthetic(770);
  LoaderOptions w = options(2, 100);
  w.sampler = SamplerKind::weighted;
  w.epoch_samples = 7000;
  w.augment = AugmentOptions{};
  BatchLoader wl(big, w);
  CHECK(wl.samples_per_epoch() == 7000);
  std::vector<int> per_class(7, 0);
  for (const Copy& c : run_epoch(wl, 0))
    for (int32_t l : c.labels) ++per_class[l];
  // Binomial(7000, 1/7): sd ~ 29.3; 5 sd.
  for (int c = 0; c < 7; ++c) CHECK(std::abs(per_class[c] - 1000) < 5 * 29.3);
}

TEST_CASE("loader: a worker's exception reaches next() for that batch, in order") {
  Dataset d = synthetic(80);
  for (int threads : {0, 1, 2}) {
    CAPTURE(threads);
    LoaderOptions o = options(threads, 10);
    o.batch_hook = [](Batch& b, int64_t) {
      if (b.index == 3) throw Error("hook failed on batch 3");
    };
    BatchLoader loader(d, o);
    loader.start_epoch(0);
    for (int b = 0; b < 3; ++b) {
      const Batch* batch = loader.next();
      REQUIRE(batch);
      CHECK(batch->index == b);
      loader.release(batch);
    }
    CHECK_THROWS_WITH_AS(loader.next(), "hook failed on batch 3", Error);
    // A new epoch starts cleanly after the failure (the hook fails again at batch 3).
    loader.start_epoch(1);
    const Batch* first = loader.next();
    REQUIRE(first);
    CHECK(first->epoch == 1);
    loader.release(first);
  }
}

TEST_CASE("loader: misuse and early shutdown") {
  Dataset d = synthetic(64);
  LoaderOptions o = options(2, 8);
  o.prefetch = 2;
  {
    BatchLoader loader(d, o);
    CHECK(loader.next() == nullptr);  // no epoch started
    loader.start_epoch(0);
    const Batch* a = loader.next();
    const Batch* b = loader.next();
    REQUIRE(a);
    REQUIRE(b);
    CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains("all 2 batch buffers are held"), Error);
    loader.release(a);
    CHECK_THROWS_WITH_AS(loader.release(a), doctest::Contains("not held"), Error);
    loader.release(b);
    // Restart in the middle of an epoch: the new epoch begins at batch 0.
    loader.start_epoch(1);
    const Batch* c = loader.next();
    CHECK(c->index == 0);
    CHECK(c->epoch == 1);
    // Destroyed while workers are filling and a batch is held: must join cleanly.
  }
  LoaderOptions bad = o;
  bad.batch_size = 0;
  CHECK_THROWS_AS(BatchLoader(d, bad), Error);
  bad = o;
  bad.num_classes = 3;
  CHECK_THROWS_WITH_AS(BatchLoader(d, bad), doctest::Contains("does not fit 3 classes"), Error);
  bad = o;
  bad.preprocess.size = 64;
  CHECK_THROWS_AS(BatchLoader(d, bad), Error);
  Dataset empty;
  CHECK_THROWS_AS(BatchLoader(empty, o), Error);
}
