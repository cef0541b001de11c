// Binary GEMM on Hopper's warpgroup tensor cores (sm_90a only):
//   wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc
//
// Same operands and results as bmm_mma.cu (A: (batch, M, W), B: (batch, N,
// W), C: (batch, M, N) int32, words packed LSB first along k, strideA /
// strideB the batch strides in words, blockIdx.z the batch index), plus
// ksteps = ceil(W / 8), the k256 steps that hold words (from the host,
// mmdidb.ops.wgmma.k_steps):
//   XOR kernel  (+-1 x +-1):  C = k - 2 * popc(a ^ b)
//   AND kernel  ({0,1} x +-1): C = 2 * popc(a & b) - popc(a)
// wgmma has AND only; popc(a ^ b) = popc(a) + popc(b) - 2 popc(a & b), with
// the row popcounts taken while the tiles are loaded (as in bmm_mma.cu).
//
// Tiling: one warpgroup (128 threads) per 64 x 128 output tile; a stage
// holds 32 words (1024 bits, four k256 steps) of 64 A rows and 128 B rows in
// shared memory (the last stage only its steps up to ksteps: when W is not a
// multiple of 32 the others would be zero padding, loaded and multiplied),
// in the no-swizzle K-major "core matrix" layout the wgmma descriptors
// describe: a core matrix is 8 rows x 16 bytes (128 bits), the
// two core matrices of a k256 step sit side by side (leading byte offset,
// LBO = 128 bytes) and the 8-row groups follow each other (stride byte
// offset, SBO = 256 bytes). LBO and SBO are kernel arguments so the GPU
// check can confirm the layout (tools/benchmark/bgemm.py --wgmma-probe).
// Both operands use the same bit order along k, so popc(a & b) is right
// whatever order the tensor core reads the bits of a 128-bit row in.
//
// This is a first, unpipelined kernel (load, fence, <= 4 wgmma, wait): enough
// to check exactness and compare the instruction's throughput against
// mma.sync; a TMA/multistage version is the next step if it wins.
//
// Built with nvcc for sm_90a (compute_90a) into a cubin that CuPy loads
// (RawModule(path=...)); for any other target (sm_80, sm_90, NVRTC) the
// kernels compile to a trap, so the file passes every compile check.

#define WG_BM 64
#define WG_BN 128
#define WG_STAGE_WORDS 32
#define WG_STEP_WORDS 8
#define WG_STAGE_STEPS (WG_STAGE_WORDS / WG_STEP_WORDS)
#define WG_THREADS 128

namespace {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ unsigned int tail_mask(int k) {
  const int r = k & 31;
  return r ? ((1u << r) - 1u) : 0xffffffffu;
}

__device__ __forceinline__ unsigned int smem_addr(const void* p) {
  unsigned int a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }"
      : "=r"(a)
      : "l"(p));
  return a;
}

// sm_90 wgmma shared-memory descriptor: start address, LBO and SBO in
// 16-byte units (bits 0-13, 16-29, 32-45), base offset 0, no swizzle.
__device__ __forceinline__ unsigned long long make_desc(unsigned int addr,
                                                        unsigned int lbo,
                                                        unsigned int sbo) {
  return static_cast<unsigned long long>((addr & 0x3FFFF) >> 4) |
         (static_cast<unsigned long long>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<unsigned long long>((sbo & 0x3FFFF) >> 4) << 32);
}

__device__ __forceinline__ void wgmma_and_popc(int (&d)[64],
                                               unsigned long long da,
                                               unsigned long long db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(da), "l"(db));
}

// Issues the first STEPS k256 steps of the stage in shared memory as one
// wgmma group (fence, wgmma, commit).
template <int STEPS>
__device__ __forceinline__ void mma_steps(int (&d)[64], unsigned int a_base,
                                          unsigned int b_base,
                                          unsigned int lbo, unsigned int sbo) {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
  for (int s = 0; s < STEPS; ++s) {
    wgmma_and_popc(d, make_desc(a_base + s * WG_BM * 32, lbo, sbo),
                   make_desc(b_base + s * WG_BN * 32, lbo, sbo));
  }
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void fence_operands(int (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// Loads the first `steps` k256 steps of one stage of ROWS rows into the
// core-matrix layout (the later steps hold no word of the row). Lane l of a
// warp takes row (group * 8 + l / 4) and word l % 4 of each 128-bit half, so
// the 32 lanes of a store hit 32 different banks; its popcount goes to
// pop[g].
template <int ROWS, int GROUPS_PER_WARP>
__device__ __forceinline__ void load_stage(
    const unsigned int* __restrict__ X, unsigned int* __restrict__ xs,
    int row0, int rows, int W, int w0, int steps, unsigned int last,
    int (&pop)[GROUPS_PER_WARP]) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int g = 0; g < GROUPS_PER_WARP; ++g) {
    const int group = warp * GROUPS_PER_WARP + g;
    const int r = group * 8 + (lane >> 2);
    const bool ok = row0 + r < rows;
    const unsigned int* row = X + static_cast<long long>(row0 + r) * W;
#pragma unroll
    for (int s = 0; s < WG_STAGE_STEPS; ++s) {
      if (s >= steps) break;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int w = w0 + s * WG_STEP_WORDS + half * 4 + (lane & 3);
        unsigned int v = 0u;
        if (ok && w < W) {
          v = row[w];
          if (w == W - 1) v &= last;
        }
        pop[g] += __popc(v);
        // step s: ROWS * 32 bytes; core (group, half): 128 bytes; row in
        // core: 16 bytes; word: 4 bytes (all in words below)
        xs[s * ROWS * 8 + (group * 2 + half) * 32 + (lane >> 2) * 4 +
           (lane & 3)] = v;
      }
    }
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

template <bool XOR>
__device__ __forceinline__ void bmm_wgmma_tile(
    const unsigned int* __restrict__ A, const unsigned int* __restrict__ B,
    int* __restrict__ C, int M, int N, int W, int k, int ksteps,
    long long strideA, long long strideB, unsigned int lbo,
    unsigned int sbo) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __shared__ __align__(128) unsigned int As[WG_BM * WG_STAGE_WORDS];
  __shared__ __align__(128) unsigned int Bs[WG_BN * WG_STAGE_WORDS];
  __shared__ int popA[WG_BM];
  __shared__ int popB[WG_BN];

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int m0 = blockIdx.y * WG_BM;
  const int n0 = blockIdx.x * WG_BN;
  const long long bz = blockIdx.z;
  A += bz * strideA;
  B += bz * strideB;
  C += bz * static_cast<long long>(M) * N;
  const unsigned int last = tail_mask(k);

  int d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) d[i] = 0;
  int pa[2] = {0, 0};
  int pb[4] = {0, 0, 0, 0};
  const unsigned int a_base = smem_addr(As);
  const unsigned int b_base = smem_addr(Bs);

  for (int w0 = 0; w0 < W; w0 += WG_STAGE_WORDS) {
    // The same for every thread, so the wgmma below stay warpgroup-uniform.
    const int left = ksteps - w0 / WG_STEP_WORDS;
    const int steps = left < WG_STAGE_STEPS ? left : WG_STAGE_STEPS;
    load_stage<WG_BM, 2>(A, As, m0, M, W, w0, steps, last, pa);
    load_stage<WG_BN, 4>(B, Bs, n0, N, W, w0, steps, last, pb);
    // make the generic-proxy stores visible to the tensor core's async proxy
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    // One branch per stage into a straight run of wgmma: a branch between
    // two wgmma makes ptxas fence the accumulators before the second.
    switch (steps) {
      case 1: mma_steps<1>(d, a_base, b_base, lbo, sbo); break;
      case 2: mma_steps<2>(d, a_base, b_base, lbo, sbo); break;
      case 3: mma_steps<3>(d, a_base, b_base, lbo, sbo); break;
      default: mma_steps<WG_STAGE_STEPS>(d, a_base, b_base, lbo, sbo);
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    fence_operands(d);
    __syncthreads();
  }

  // Row popcounts: the 4 lanes of a row are lanes 4q .. 4q + 3.
#pragma unroll
  for (int g = 0; g < 2; ++g) {
    pa[g] += __shfl_xor_sync(0xffffffffu, pa[g], 1);
    pa[g] += __shfl_xor_sync(0xffffffffu, pa[g], 2);
    if ((lane & 3) == 0) popA[(warp * 2 + g) * 8 + (lane >> 2)] = pa[g];
  }
#pragma unroll
  for (int g = 0; g < 4; ++g) {
    pb[g] += __shfl_xor_sync(0xffffffffu, pb[g], 1);
    pb[g] += __shfl_xor_sync(0xffffffffu, pb[g], 2);
    if ((lane & 3) == 0) popB[(warp * 4 + g) * 8 + (lane >> 2)] = pb[g];
  }
  __syncthreads();

  // Accumulator layout of m64nNk*: warp w holds rows 16w + lane / 4 (+8);
  // register 4j + c covers columns 8j + 2 (lane % 4) + (c & 1), row +8 when
  // c >= 2.
  const int g = lane >> 2;
  const int t = lane & 3;
#pragma unroll
  for (int j = 0; j < WG_BN / 8; ++j) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int r = warp * 16 + g + (c >> 1) * 8;
      const int cl = j * 8 + 2 * t + (c & 1);
      const int m = m0 + r;
      const int n = n0 + cl;
      if (m < M && n < N) {
        const int both = d[4 * j + c];
        C[static_cast<long long>(m) * N + n] =
            XOR ? k - 2 * (popA[r] + popB[cl] - 2 * both)
                : 2 * both - popA[r];
      }
    }
  }
#else
  // Only the sm_90a cubin has wgmma; the host never launches this elsewhere.
  __trap();
#endif
}

}  // namespace

extern "C" __global__ void __launch_bounds__(WG_THREADS)
mmdidb_bmm_wgmma_xor(const unsigned int* __restrict__ A,
                     const unsigned int* __restrict__ B, int* __restrict__ C,
                     int M, int N, int W, int k, int ksteps,
                     long long strideA, long long strideB, unsigned int lbo,
                     unsigned int sbo) {
  bmm_wgmma_tile<true>(A, B, C, M, N, W, k, ksteps, strideA, strideB, lbo,
                       sbo);
}

extern "C" __global__ void __launch_bounds__(WG_THREADS)
mmdidb_bmm_wgmma_and(const unsigned int* __restrict__ A,
                     const unsigned int* __restrict__ B, int* __restrict__ C,
                     int M, int N, int W, int k, int ksteps,
                     long long strideA, long long strideB, unsigned int lbo,
                     unsigned int sbo) {
  bmm_wgmma_tile<false>(A, B, C, M, N, W, k, ksteps, strideA, strideB, lbo,
                        sbo);
}
