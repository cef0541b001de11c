// Binary matrix products on tensor cores (sm_80+: Ampere, Ada, Hopper).
//
// Same operands and results as bmm_popc.cu:
//   A: (batch, M, W), B: (batch, N, W), C: (batch, M, N) int32,
//   32-bit words packed LSB first along the reduction axis (W = ceil(k/32)),
//   strideA / strideB: batch strides in words (0 broadcasts), blockIdx.z:
//   batch index.
//   XOR kernel  (+-1 x +-1):  C = k - 2 * popc(a ^ b)
//   AND kernel  ({0,1} x +-1): C = 2 * popc(a & b) - popc(a)
//
// The tensor cores compute popc(a & b) with
//   mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc
// (Hopper dropped .xor.popc, so .and.popc is the one form that runs on
// sm_80 .. sm_90). The XOR count follows from
//   popc(a ^ b) = popc(a) + popc(b) - 2 * popc(a & b),
// with the row popcounts popc(a), popc(b) taken while the tiles are loaded.
//
// Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k256"), with
// g = lane / 4 and t = lane % 4, a 256-bit k-step being words 0..7:
//   A regs: a0 = A[g][word t], a1 = A[g+8][word t],
//           a2 = A[g][word t+4], a3 = A[g+8][word t+4]
//   B regs: b0 = B[n=g][word t], b1 = B[n=g][word t+4]
//   C regs: c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
//
// Tiling: a 64 x 64 output tile per 128-thread block (2 x 2 warps, 32 x 32
// per warp = 2 x 4 mma tiles), 16 words (two 256-bit k-steps) per stage; the
// next stage is loaded into registers while the current one is multiplied.
// The bits past k are masked off on load and rows / words past the matrix
// are zero, which adds nothing to popc(a & b).
//
// Fused epilogue (mmdidb_bmm_mma_xor_f32 / _f16, the deployed binary linear
// layer): instead of int32 counts, C[m][n] = float(count) * scale[n] +
// bias[n] in float32 or float16, rounded step by step as the torch
// reference rounds ``counts.to(dtype) * scale + bias`` (float32: an IEEE
// multiply then an IEEE add, never contracted into an FMA; float16: each
// step computed in float32 and rounded to half, torch's opmath rule), so the
// result equals the unfused path bit for bit and the int32 tensor, the
// conversion and the two elementwise kernels disappear.
// Self-contained on purpose: NVRTC (CuPy RawModule) and nvcc must both
// compile it without any header.

#define MB_BM 64
#define MB_BN 64
#define MB_BKW 16
// Shared-memory row stride in words: 16 + 4 makes the fragment reads of
// rows g = 0..7, words t = 0..3 hit 32 different banks.
#define MB_LD 20
#define MB_THREADS 128

namespace {

enum Epilogue { kInt32 = 0, kFloat32 = 1, kFloat16 = 2 };

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

// Writes one result: the count itself, or count * scale[n] + bias[n].
template <int EPI>
__device__ __forceinline__ void store(void* __restrict__ C, long long idx,
                                      int count, int n,
                                      const void* __restrict__ scale,
                                      const void* __restrict__ bias) {
  if (EPI == kInt32) {
    static_cast<int*>(C)[idx] = count;
  } else if (EPI == kFloat32) {
    float v = __fmul_rn(static_cast<float>(count),
                        static_cast<const float*>(scale)[n]);
    if (bias != nullptr) v = __fadd_rn(v, static_cast<const float*>(bias)[n]);
    static_cast<float*>(C)[idx] = v;
  } else {
    const float c = half_to_float(float_to_half(static_cast<float>(count)));
    const float s = half_to_float(static_cast<const unsigned short*>(scale)[n]);
    unsigned short v = float_to_half(__fmul_rn(c, s));
    if (bias != nullptr) {
      const float b =
          half_to_float(static_cast<const unsigned short*>(bias)[n]);
      v = float_to_half(__fadd_rn(half_to_float(v), b));
    }
    static_cast<unsigned short*>(C)[idx] = v;
  }
}

__device__ __forceinline__ unsigned int tail_mask(int k) {
  const int r = k & 31;
  return r ? ((1u << r) - 1u) : 0xffffffffu;
}

__device__ __forceinline__ void mma_and_popc(int (&d)[4], unsigned int a0,
                                             unsigned int a1, unsigned int a2,
                                             unsigned int a3, unsigned int b0,
                                             unsigned int b1) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 800)
  // The 1-bit mma with .and.popc needs sm_80; the host never launches this
  // module on older GPUs (it picks the __popc kernels there).
  __trap();
#else
  asm volatile(
      "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// Loads this thread's 8 words of one row of a stage: word w0 + half * 8 + j.
__device__ __forceinline__ void load_stage(const unsigned int* row_ptr,
                                           bool row_ok, int w_begin, int W,
                                           unsigned int last,
                                           unsigned int (&r)[8]) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int w = w_begin + j;
    unsigned int v = 0u;
    if (row_ok && w < W) {
      v = row_ptr[w];
      if (w == W - 1) v &= last;
    }
    r[j] = v;
  }
}

template <bool XOR, int EPI>
__device__ __forceinline__ void bmm_mma_tile(
    const unsigned int* __restrict__ A, const unsigned int* __restrict__ B,
    void* __restrict__ C, int M, int N, int W, int k, long long strideA,
    long long strideB, const void* __restrict__ scale = nullptr,
    const void* __restrict__ bias = nullptr) {
  __shared__ __align__(16) unsigned int As[MB_BM * MB_LD];
  __shared__ __align__(16) unsigned int Bs[MB_BN * MB_LD];
  __shared__ int popA[MB_BM];
  __shared__ int popB[MB_BN];

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int wm = (warp >> 1) * 32;  // warp's first row in the block tile
  const int wn = (warp & 1) * 32;   // warp's first column in the block tile

  const int m0 = blockIdx.y * MB_BM;
  const int n0 = blockIdx.x * MB_BN;
  const long long bz = blockIdx.z;
  A += bz * strideA;
  B += bz * strideB;
  const long long c_base = bz * static_cast<long long>(M) * N;

  const unsigned int last = tail_mask(k);
  // Loader: 2 threads per row (adjacent lanes), 8 consecutive words each.
  const int lr = tid >> 1;
  const int lw = (tid & 1) * 8;
  const bool rowA = (m0 + lr) < M;
  const bool rowB = (n0 + lr) < N;
  const unsigned int* a_row = A + static_cast<long long>(m0 + lr) * W;
  const unsigned int* b_row = B + static_cast<long long>(n0 + lr) * W;

  int acc[2][4][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mi][ni][c] = 0;

  int popPartA = 0, popPartB = 0;
  unsigned int ra[8], rb[8];
  load_stage(a_row, rowA, lw, W, last, ra);
  load_stage(b_row, rowB, lw, W, last, rb);

  for (int w0 = 0; w0 < W; w0 += MB_BKW) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      popPartA += __popc(ra[j]);
      popPartB += __popc(rb[j]);
      As[lr * MB_LD + lw + j] = ra[j];
      Bs[lr * MB_LD + lw + j] = rb[j];
    }
    __syncthreads();
    // Prefetch the next stage while the tensor cores work on this one.
    if (w0 + MB_BKW < W) {
      load_stage(a_row, rowA, w0 + MB_BKW + lw, W, last, ra);
      load_stage(b_row, rowB, w0 + MB_BKW + lw, W, last, rb);
    }
#pragma unroll
    for (int s = 0; s < MB_BKW / 8; ++s) {
      const int kw = s * 8 + t;
      unsigned int af[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const int r = wm + mi * 16 + g;
        af[mi][0] = As[r * MB_LD + kw];
        af[mi][1] = As[(r + 8) * MB_LD + kw];
        af[mi][2] = As[r * MB_LD + kw + 4];
        af[mi][3] = As[(r + 8) * MB_LD + kw + 4];
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int n = wn + ni * 8 + g;
        const unsigned int b0 = Bs[n * MB_LD + kw];
        const unsigned int b1 = Bs[n * MB_LD + kw + 4];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
          mma_and_popc(acc[mi][ni], af[mi][0], af[mi][1], af[mi][2],
                       af[mi][3], b0, b1);
        }
      }
    }
    __syncthreads();
  }

  // The 2 loaders of a row are adjacent lanes of one warp.
  popPartA += __shfl_xor_sync(0xffffffffu, popPartA, 1);
  popPartB += __shfl_xor_sync(0xffffffffu, popPartB, 1);
  if ((tid & 1) == 0) {
    popA[lr] = popPartA;
    popB[lr] = popPartB;
  }
  __syncthreads();

#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = wm + mi * 16 + g + half * 8;
      const int m = m0 + r;
      const int pa = popA[r];
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int cl = wn + ni * 8 + 2 * t + c;
          const int n = n0 + cl;
          const int both = acc[mi][ni][half * 2 + c];  // popc(a & b)
          if (m < M && n < N) {
            int out;
            if (XOR) {
              // k - 2 * popc(a ^ b), popc(a ^ b) = pa + pb - 2 * both
              out = k - 2 * (pa + popB[cl] - 2 * both);
            } else {
              out = 2 * both - pa;
            }
            store<EPI>(C, c_base + static_cast<long long>(m) * N + n, out,
                       n, scale, bias);
          }
        }
      }
    }
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(MB_THREADS)
mmdidb_bmm_mma_xor(const unsigned int* __restrict__ A,
                   const unsigned int* __restrict__ B, int* __restrict__ C,
                   int M, int N, int W, int k, long long strideA,
                   long long strideB) {
  bmm_mma_tile<true, kInt32>(A, B, C, M, N, W, k, strideA, strideB);
}

extern "C" __global__ void __launch_bounds__(MB_THREADS)
mmdidb_bmm_mma_and(const unsigned int* __restrict__ A,
                   const unsigned int* __restrict__ B, int* __restrict__ C,
                   int M, int N, int W, int k, long long strideA,
                   long long strideB) {
  bmm_mma_tile<false, kInt32>(A, B, C, M, N, W, k, strideA, strideB);
}

// The fused epilogues; bias may be null (no bias).
extern "C" __global__ void __launch_bounds__(MB_THREADS)
mmdidb_bmm_mma_xor_f32(const unsigned int* __restrict__ A,
                       const unsigned int* __restrict__ B,
                       float* __restrict__ C, int M, int N, int W, int k,
                       long long strideA, long long strideB,
                       const float* __restrict__ scale,
                       const float* __restrict__ bias) {
  bmm_mma_tile<true, kFloat32>(A, B, C, M, N, W, k, strideA, strideB, scale,
                               bias);
}

extern "C" __global__ void __launch_bounds__(MB_THREADS)
mmdidb_bmm_mma_xor_f16(const unsigned int* __restrict__ A,
                       const unsigned int* __restrict__ B,
                       unsigned short* __restrict__ C, int M, int N, int W,
                       int k, long long strideA, long long strideB,
                       const unsigned short* __restrict__ scale,
                       const unsigned short* __restrict__ bias) {
  bmm_mma_tile<true, kFloat16>(A, B, C, M, N, W, k, strideA, strideB, scale,
                               bias);
}
