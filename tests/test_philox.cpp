// kernels/philox.h: the counter-based generator behind dropout's masks on both devices,
// checked against the Random123 known-answer vectors.
#include <doctest/doctest.h>

#include <vector>

#include "kernels/philox.h"

using namespace emotune;

TEST_CASE("philox4x32-10 reproduces the Random123 known-answer vectors") {
  // tests/kat_vectors of github.com/DEShawResearch/random123: counter words, key words, output.
  auto check = [](uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key, std::vector<uint32_t> want) {
    Philox4 r = philox4x32(ctr_lo, ctr_hi, key);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == want[i]);
  };
  check(0, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  check(~0ull, ~0ull, ~0ull, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  check(0x85a308d3243f6a88ull, 0x0370734413198a2eull, 0x299f31d0a4093822ull,
        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}
