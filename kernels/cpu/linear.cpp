// linear on the CPU: the reference loops (linear_ref.h) and the OpenBLAS path, one sgemm per
// product with OpenBLAS' own threading (a dense layer is one big GEMM; nothing to split around it).
#include "kernels/linear.h"

#include <cblas.h>

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/runtime.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/linear_ref.h"

namespace emotune {

void linear_forward_ref_cpu(const LinearShape& p, const float* x, const float* w, const float* b, float* y) {
  linear_forward_ref<float>(p, x, w, b, y);
}

void linear_backward_ref_cpu(const LinearShape& p, const float* x, const float* w, const float* dy,
                             float* dx, float* dw, float* db) {
  linear_backward_ref<float>(p, x, w, dy, dx, dw, db);
}

void linear_forward_cpu(const LinearShape& p, const float* x, const float* w, const float* b, float* y) {
  if (p.n == 0 || p.out == 0) return;
  float beta = 0.0f;
  if (b) {  // rows start as the bias; sgemm adds x * w^T to them
    for (int n = 0; n < p.n; ++n) std::memcpy(y + (int64_t)n * p.out, b, sizeof(float) * p.out);
    beta = 1.0f;
  }
  if (p.in == 0) {
    if (!b) std::memset(y, 0, sizeof(float) * (size_t)p.n * p.out);
    return;
  }
  if (p.n == 1) {  // one image (inference): a matrix-vector product reads w once and packs nothing
    cblas_sgemv(CblasRowMajor, CblasNoTrans, p.out, p.in, 1.0f, w, p.in, x, 1, beta, y, 1);
    return;
  }
  cpu_gemm(false, true, p.n, p.out, p.in, x, p.in, w, p.in, beta, y, p.out);
}

void linear_infer_cpu(const LinearShape& p, const float* x, const float* w, const float* b, bool relu, float* y) {
  if (p.n == 0 || p.out == 0) return;
  BlasSerialScope guard;
  // Slices of whole cache lines of outputs (16 floats), four per thread and handed out
  // dynamically (a preempted worker holds up one slice); small layers stay on one thread.
  const int threads = p.flops() >= 2e5 ? omp_get_max_threads() : 1;
  const int slices = std::max(1, std::min(4 * threads, (p.out + 15) / 16));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && slices > 1)
  for (int t = 0; t < slices; ++t) {
    const int o0 = (int)((int64_t)p.out * t / slices / 16 * 16), o1 = t + 1 == slices ? p.out : (int)((int64_t)p.out * (t + 1) / slices / 16 * 16);
    const int no = o1 - o0;
    if (no <= 0) continue;
    for (int n = 0; n < p.n; ++n) {
      float* yr = y + (int64_t)n * p.out + o0;
      if (b) std::memcpy(yr, b + o0, sizeof(float) * no);
      else std::memset(yr, 0, sizeof(float) * no);
    }
    if (p.in > 0) {
      if (p.n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, no, p.in, 1.0f, w + (int64_t)o0 * p.in, p.in, x, 1, 1.0f, y + o0, 1);
      else
        cpu_gemm(false, true, p.n, no, p.in, x, p.in, w + (int64_t)o0 * p.in, p.in, 1.0f, y + o0, p.out);
    }
    if (relu)
      for (int n = 0; n < p.n; ++n) {
        float* yr = y + (int64_t)n * p.out + o0;
        for (int i = 0; i < no; ++i) yr[i] = yr[i] > 0.0f ? yr[i] : 0.0f;
      }
  }
}

void linear_backward_cpu(const LinearShape& p, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* db) {
  // sgemm with an empty reduction (k = 0) is not guaranteed to clear C, so those cases go to the
  // reference loops, which write zeros.
  if (p.n == 0 || p.in == 0 || p.out == 0) {
    linear_backward_ref<float>(p, x, w, dy, dx, dw, db);
    return;
  }
  if (dx)  // [N, IN] = dy [N, OUT] * w [OUT, IN]
    cpu_gemm(false, false, p.n, p.in, p.out, dy, p.out, w, p.in, 0.0f, dx, p.in);
  if (dw)  // [OUT, IN] = dy^T [OUT, N] * x [N, IN]
    cpu_gemm(true, false, p.out, p.in, p.n, dy, p.out, x, p.in, 0.0f, dw, p.in);
  if (db)
    for (int o = 0; o < p.out; ++o) {
      double sum = 0;  // N terms at most a few hundred, but double costs nothing here
      for (int n = 0; n < p.n; ++n) sum += dy[(int64_t)n * p.out + o];
      db[o] = (float)sum;
    }
}

}  // namespace emotune
