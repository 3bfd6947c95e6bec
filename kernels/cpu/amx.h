// The AMX tile set-up both AMX kernels share (kernels/cpu/gemm_bf16.cpp, conv2d_bf16_direct.cpp): every
// tile 16 rows x 64 bytes (palette 1). Call only where gemm_bf16_kernel() is amx (Linux has then
// granted the tile state); configure before the first tile instruction on a thread, release after.
#pragma once
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>

#define EMOTUNE_AMX_TARGET \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace emotune::amx {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

EMOTUNE_AMX_TARGET inline void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  // GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes, so without this the stores
  // above are dropped as dead and the tiles stay unconfigured (tilezero then raises SIGILL).
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

EMOTUNE_AMX_TARGET inline void release() { _tile_release(); }

}  // namespace emotune::amx
#endif
