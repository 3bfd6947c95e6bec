// linear CPU kernels: the OpenBLAS path against the reference loops on the linear table, and a
// finite-difference gradient check of the reference backward in double.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/linear_ref.h"
#include "kernels/linear.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

TEST_CASE("linear OpenBLAS path matches the reference loops on the linear table") {
  for (const auto& lc : testing::linear_cases()) {
    for (int batch : {1, 16}) {
      LinearShape p = lc.shape;
      p.n = batch;
      CAPTURE(lc.name);
      CAPTURE(batch);
      auto x = random_vector((size_t)p.n * p.in, 91), w = random_vector((size_t)p.out * p.in, 92);
      auto b = random_vector(p.out, 93), dy = random_vector((size_t)p.n * p.out, 94);
      std::vector<float> y(p.n * p.out, NAN), y_ref(p.n * p.out);
      linear_forward_cpu(p, x.data(), w.data(), b.data(), y.data());
      linear_forward_ref_cpu(p, x.data(), w.data(), b.data(), y_ref.data());
      // Sums of IN products of values in [-1, 1] in two orders: 4 float eps per term (the conv2d
      // test's bound, same reasoning), plus 1e-5 relative.
      const double eps4 = 4.0 * 1.1920929e-7;
      EMOTUNE_CHECK_CLOSE(allclose(y, y_ref, eps4 * (p.in + 1), 1e-5));
      linear_forward_cpu(p, x.data(), w.data(), nullptr, y.data());
      linear_forward_ref_cpu(p, x.data(), w.data(), nullptr, y_ref.data());
      EMOTUNE_CHECK_CLOSE(allclose(y, y_ref, eps4 * p.in, 1e-5));  // same, without the bias

      std::vector<float> dx(p.n * p.in, NAN), dw(p.out * p.in, NAN), db(p.out, NAN);
      std::vector<float> dx_ref(p.n * p.in), dw_ref(p.out * p.in), db_ref(p.out);
      linear_backward_cpu(p, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
      linear_backward_ref_cpu(p, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(), db_ref.data());
      EMOTUNE_CHECK_CLOSE(allclose(dx, dx_ref, eps4 * p.out, 1e-5));  // sums of OUT products
      EMOTUNE_CHECK_CLOSE(allclose(dw, dw_ref, eps4 * p.n, 1e-5));    // sums of N products
      EMOTUNE_CHECK_CLOSE(allclose(db, db_ref, eps4 * p.n, 1e-5));    // sums of N values

      // Null outputs are skipped and the others still written.
      std::vector<float> only_dw(p.out * p.in, NAN);
      linear_backward_cpu(p, x.data(), w.data(), dy.data(), nullptr, only_dw.data(), nullptr);
      EMOTUNE_CHECK_CLOSE(allclose(only_dw, dw, 0, 0));  // the same sgemm call: bit-identical
    }
  }
}

// L = sum(y .* r) is linear in x, w and b: central differences are exact up to rounding
// (~1e-16 * |L| / h ~ 1e-9 here); 1e-6 keeps a wide margin against any indexing error (~0.1).
TEST_CASE("linear reference backward matches finite differences in double") {
  LinearShape p;
  p.n = 3;
  p.in = 5;
  p.out = 4;
  auto x = random_vector_double(p.n * p.in, 101), w = random_vector_double(p.out * p.in, 102);
  auto b = random_vector_double(p.out, 103), r = random_vector_double(p.n * p.out, 104);
  std::vector<double> y(p.n * p.out);
  auto loss = [&]() {
    linear_forward_ref<double>(p, x.data(), w.data(), b.data(), y.data());
    return testing::dot(y, r);
  };
  std::vector<double> dx(p.n * p.in), dw(p.out * p.in), db(p.out);
  linear_backward_ref<double>(p, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  bool ok;
  std::string msg =
      testing::close_double(dx, testing::numeric_grad(x, loss, 1, 1e-6), 1e-6, 1e-6, &ok);  // see above
  CHECK_MESSAGE(ok, "dx: " << msg);
  msg =
      testing::close_double(dw, testing::numeric_grad(w, loss, 1, 1e-6), 1e-6, 1e-6, &ok);  // same bound
  CHECK_MESSAGE(ok, "dw: " << msg);
  msg =
      testing::close_double(db, testing::numeric_grad(b, loss, 1, 1e-6), 1e-6, 1e-6, &ok);  // same bound
  CHECK_MESSAGE(ok, "db: " << msg);
}
