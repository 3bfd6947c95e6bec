// Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018), as the ResNet
// recipes on FER-2013 use it: within a batch, image i becomes lam * x_i + (1 - lam) * x_p(i) and
// its target lam * t_i + (1 - lam) * t_p(i), with one lam ~ Beta(alpha, alpha) per batch and p a
// permutation of the batch. Both are pure functions of (seed, epoch, batch index) (datasets/random.h),
// so a mixed batch does not depend on threads or timing. `labels` keep the first image's class
// (the trainer's running accuracy counts against them). Runs as the loader's batch_hook.
#pragma once
#include <cstdint>

#include "datasets/loader.h"

namespace emotune {

// One draw of Beta(alpha, alpha) (alpha > 0) for batch (epoch, index): two Gamma(alpha) draws by
// Marsaglia and Tsang's method (for alpha < 1 by Gamma(alpha + 1) U^(1/alpha)), their ratio.
double mixup_lambda(double alpha, uint64_t seed, int64_t epoch, int64_t index);

// The permutation of [0, n) for batch (epoch, index): Fisher-Yates on the batch's own draws.
void mixup_permutation(int n, uint64_t seed, int64_t epoch, int64_t index, int32_t* perm);

// Mixes `b` in place (images and targets). alpha <= 0 leaves it unchanged.
void mixup_batch(Batch& b, double alpha, uint64_t seed);

}  // namespace emotune
