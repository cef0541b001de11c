// Packing of activations into sign bits, 32 per 32-bit word, LSB first.
//
// Layout: the input is a contiguous (rows, K) array, the output a contiguous
// (rows, W) array of 32-bit words with W = ceil(K / 32). Bit j of word w of a
// row holds element 32 * w + j; the bits past K in the last word are 0.
//
// One warp builds one word: lane j reads element 32 * w + j (a coalesced
// read) and __ballot_sync puts lane j's bit at bit j, which is exactly the
// LSB-first layout of the torch reference.
//
// The predicates work on the raw IEEE bit patterns instead of float compares,
// so flush-to-zero or fast-math options can never change a bit:
//   sign mode: bit = (x >= 0), so +0 and -0 give 1 (sign(0) = +1), NaN gives 0
//   mask mode: bit = (x != 0), so +0 and -0 give 0, NaN gives 1
//
// Fused sign-shift + pack (mmdidb_pack_shift_*): bit = (x + beta[col] >= 0)
// with the sum rounded exactly as torch rounds ``x + beta`` in the tensor's
// dtype (float32: one IEEE add; float16: the float32 sum of the two halves
// rounded to half, torch's "opmath" rule on CPU and CUDA), then the sign
// test above on the rounded bit pattern. So it packs exactly what RSign
// followed by pack_signs packs, in one pass and without the +-1 tensor.
// Self-contained on purpose: NVRTC (CuPy RawModule) and nvcc must both
// compile it without any header.

namespace {

enum PackMode { kSign = 0, kMask = 1, kNonzero = 2 };

// U: the unsigned integer type of the element's bit pattern.
// SIGN: the sign bit; INF: the bit pattern of +infinity.
template <typename U, unsigned long long SIGN, unsigned long long INF, int MODE>
__device__ __forceinline__ bool element_bit(U v) {
  if (MODE == kSign) {
    // Non-negative finite values, +inf and +0 have patterns <= +inf; -0 is
    // the sign bit alone. Everything else is negative or NaN.
    return v <= static_cast<U>(INF) || v == static_cast<U>(SIGN);
  }
  if (MODE == kMask) {
    return (v & static_cast<U>(SIGN - 1ull)) != 0;
  }
  return v != 0;
}

template <typename U, unsigned long long SIGN, unsigned long long INF, int MODE>
__device__ __forceinline__ void pack_rows(const U* __restrict__ x,
                                          unsigned int* __restrict__ out,
                                          long long rows, int K, int W) {
  const int lane = threadIdx.x & 31;
  const long long warps_per_block = blockDim.x >> 5;
  const long long first = blockIdx.x * warps_per_block + (threadIdx.x >> 5);
  const long long stride = gridDim.x * warps_per_block;
  const long long total = rows * W;
  // The loop bound is the same for all lanes of a warp, so every lane
  // reaches __ballot_sync.
  for (long long word = first; word < total; word += stride) {
    const long long row = word / W;
    const int col = static_cast<int>(word - row * W) * 32 + lane;
    bool bit = false;
    if (col < K) {
      bit = element_bit<U, SIGN, INF, MODE>(x[row * K + col]);
    }
    const unsigned int packed = __ballot_sync(0xffffffffu, bit);
    if (lane == 0) {
      out[word] = packed;
    }
  }
}

// Round-to-nearest conversions through PTX (no cuda_fp16.h under NVRTC).
__device__ __forceinline__ float half_to_float(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ unsigned short float_to_half(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

// (x + beta) rounded in the element's type, as its raw bit pattern.
__device__ __forceinline__ unsigned int shifted(unsigned int x,
                                                unsigned int b) {
  // __fadd_rn: never contracted into an FMA, never flushed differently
  return __float_as_uint(__fadd_rn(__uint_as_float(x), __uint_as_float(b)));
}

__device__ __forceinline__ unsigned short shifted(unsigned short x,
                                                  unsigned short b) {
  return float_to_half(__fadd_rn(half_to_float(x), half_to_float(b)));
}

template <typename U, unsigned long long SIGN, unsigned long long INF>
__device__ __forceinline__ void pack_shift_rows(const U* __restrict__ x,
                                                const U* __restrict__ beta,
                                                unsigned int* __restrict__ out,
                                                long long rows, int K, int W) {
  const int lane = threadIdx.x & 31;
  const long long warps_per_block = blockDim.x >> 5;
  const long long first = blockIdx.x * warps_per_block + (threadIdx.x >> 5);
  const long long stride = gridDim.x * warps_per_block;
  const long long total = rows * W;
  for (long long word = first; word < total; word += stride) {
    const long long row = word / W;
    const int col = static_cast<int>(word - row * W) * 32 + lane;
    bool bit = false;
    if (col < K) {
      bit = element_bit<U, SIGN, INF, kSign>(shifted(x[row * K + col],
                                                     beta[col]));
    }
    const unsigned int packed = __ballot_sync(0xffffffffu, bit);
    if (lane == 0) {
      out[word] = packed;
    }
  }
}

}  // namespace

extern "C" __global__ void mmdidb_pack_shift_f32(
    const unsigned int* __restrict__ x, const unsigned int* __restrict__ beta,
    unsigned int* __restrict__ out, long long rows, int K, int W) {
  pack_shift_rows<unsigned int, 0x80000000ull, 0x7f800000ull>(x, beta, out,
                                                              rows, K, W);
}

extern "C" __global__ void mmdidb_pack_shift_f16(
    const unsigned short* __restrict__ x,
    const unsigned short* __restrict__ beta, unsigned int* __restrict__ out,
    long long rows, int K, int W) {
  pack_shift_rows<unsigned short, 0x8000ull, 0x7c00ull>(x, beta, out, rows,
                                                        K, W);
}

#define MMDIDB_PACK_KERNEL(NAME, U, SIGN, INF, MODE)                        \
  extern "C" __global__ void NAME(const U* __restrict__ x,                 \
                                  unsigned int* __restrict__ out,          \
                                  long long rows, int K, int W) {          \
    pack_rows<U, SIGN, INF, MODE>(x, out, rows, K, W);                     \
  }

// float32 / float64 / float16 / bfloat16 are read as raw bit patterns.
MMDIDB_PACK_KERNEL(mmdidb_pack_f32_sign, unsigned int, 0x80000000ull, 0x7f800000ull, kSign)
MMDIDB_PACK_KERNEL(mmdidb_pack_f32_mask, unsigned int, 0x80000000ull, 0x7f800000ull, kMask)
MMDIDB_PACK_KERNEL(mmdidb_pack_f64_sign, unsigned long long, 0x8000000000000000ull, 0x7ff0000000000000ull, kSign)
MMDIDB_PACK_KERNEL(mmdidb_pack_f64_mask, unsigned long long, 0x8000000000000000ull, 0x7ff0000000000000ull, kMask)
MMDIDB_PACK_KERNEL(mmdidb_pack_f16_sign, unsigned short, 0x8000ull, 0x7c00ull, kSign)
MMDIDB_PACK_KERNEL(mmdidb_pack_f16_mask, unsigned short, 0x8000ull, 0x7c00ull, kMask)
MMDIDB_PACK_KERNEL(mmdidb_pack_bf16_sign, unsigned short, 0x8000ull, 0x7f80ull, kSign)
MMDIDB_PACK_KERNEL(mmdidb_pack_bf16_mask, unsigned short, 0x8000ull, 0x7f80ull, kMask)
// bool (one byte): True -> bit 1 for both pack_signs (True = +1) and pack_mask.
MMDIDB_PACK_KERNEL(mmdidb_pack_u8_nonzero, unsigned char, 0x80ull, 0x80ull, kNonzero)

#undef MMDIDB_PACK_KERNEL
