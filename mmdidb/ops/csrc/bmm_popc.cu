// Binary matrix products on CUDA cores with __popc (any sm_50+ GPU).
//
// Operands (contiguous, 32-bit words, bits packed LSB first along the
// reduction axis, W = ceil(k / 32) words per row):
//   A: (batch, M, W)   rows of the left factor
//   B: (batch, N, W)   rows of the right factor (the right factor transposed)
//   C: (batch, M, N)   int32 result
// strideA / strideB are the batch strides in words; 0 broadcasts one matrix
// over the whole batch. blockIdx.z is the batch index.
//
//   XOR kernel  (+-1 x +-1):  C = k - 2 * popc(a ^ b)
//   AND kernel  ({0,1} x +-1): C = 2 * popc(a & b) - popc(a)
//
// The bits past k in the last word are masked off on load, so garbage in the
// padding can never change a result.
//
// Tiling: a 64 x 64 output tile per 256-thread block, 4 x 4 outputs per
// thread, 16 words (512 bits) of the reduction axis per shared-memory stage.
// Self-contained on purpose: NVRTC (CuPy RawModule) and nvcc must both
// compile it without any header.

#define PB_BM 64
#define PB_BN 64
#define PB_BK 16
#define PB_THREADS 256

namespace {

__device__ __forceinline__ unsigned int tail_mask(int k) {
  const int r = k & 31;
  return r ? ((1u << r) - 1u) : 0xffffffffu;
}

template <bool XOR>
__device__ __forceinline__ void bmm_popc_tile(
    const unsigned int* __restrict__ A, const unsigned int* __restrict__ B,
    int* __restrict__ C, int M, int N, int W, int k, long long strideA,
    long long strideB) {
  // Transposed tiles ([word][row]) so that the inner loop reads a row of
  // As as a broadcast and 16 consecutive words of Bs: no bank conflicts.
  // The +1 column breaks the power-of-two stride of the stores.
  __shared__ unsigned int As[PB_BK][PB_BM + 1];
  __shared__ unsigned int Bs[PB_BK][PB_BN + 1];
  __shared__ int rowPop[PB_BM];

  const int tid = threadIdx.x;
  const int tx = tid & 15;
  const int ty = tid >> 4;
  const int m0 = blockIdx.y * PB_BM;
  const int n0 = blockIdx.x * PB_BN;
  const long long bz = blockIdx.z;
  A += bz * strideA;
  B += bz * strideB;
  C += bz * static_cast<long long>(M) * N;

  const unsigned int last = tail_mask(k);
  // Loader: 4 threads per row, each 4 consecutive words of a 16-word stage.
  const int lr = tid >> 2;
  const int lw = (tid & 3) * 4;
  const bool rowA = (m0 + lr) < M;
  const bool rowB = (n0 + lr) < N;
  const unsigned int* a_row = A + static_cast<long long>(m0 + lr) * W;
  const unsigned int* b_row = B + static_cast<long long>(n0 + lr) * W;

  int popPart = 0;  // popcount of this thread's share of row lr of A
  int acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0;

  for (int w0 = 0; w0 < W; w0 += PB_BK) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int w = w0 + lw + j;
      unsigned int va = 0u, vb = 0u;
      if (w < W) {
        const unsigned int msk = (w == W - 1) ? last : 0xffffffffu;
        if (rowA) va = a_row[w] & msk;
        if (rowB) vb = b_row[w] & msk;
      }
      popPart += __popc(va);
      As[lw + j][lr] = va;
      Bs[lw + j][lr] = vb;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < PB_BK; ++kk) {
      unsigned int a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          acc[i][j] += __popc(XOR ? (a[i] ^ b[j]) : (a[i] & b[j]));
    }
    __syncthreads();
  }

  // The 4 loaders of a row are 4 adjacent lanes of one warp.
  popPart += __shfl_xor_sync(0xffffffffu, popPart, 1);
  popPart += __shfl_xor_sync(0xffffffffu, popPart, 2);
  if ((tid & 3) == 0) rowPop[lr] = popPart;
  __syncthreads();

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
    const int m = m0 + r;
    // k for XOR; for AND the popcount of the {0,1} row.
    const int base = XOR ? k : rowPop[r];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (m < M && n < N) {
        C[static_cast<long long>(m) * N + n] =
            XOR ? (base - 2 * acc[i][j]) : (2 * acc[i][j] - base);
      }
    }
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(PB_THREADS)
mmdidb_bmm_popc_xor(const unsigned int* __restrict__ A,
                    const unsigned int* __restrict__ B, int* __restrict__ C,
                    int M, int N, int W, int k, long long strideA,
                    long long strideB) {
  bmm_popc_tile<true>(A, B, C, M, N, W, k, strideA, strideB);
}

extern "C" __global__ void __launch_bounds__(PB_THREADS)
mmdidb_bmm_popc_and(const unsigned int* __restrict__ A,
                    const unsigned int* __restrict__ B, int* __restrict__ C,
                    int M, int N, int W, int k, long long strideA,
                    long long strideB) {
  bmm_popc_tile<false>(A, B, C, M, N, W, k, strideA, strideB);
}
