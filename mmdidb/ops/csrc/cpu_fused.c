/*
 * Fused element-wise passes of the float training graph on CPU.
 *
 * Each function does in one pass over a (rows, C) channel-last float32
 * array what the torch formulation does in four to nine passes. The values
 * written are the same as torch's, bit for bit: the same float operations
 * in the same order (built with -ffp-contract=off, so no fused
 * multiply-adds). Column sums (parameter gradients) are summed in float
 * over blocks of FLUSH rows and the blocks in double, so they equal torch's
 * float sums to float rounding only.
 *
 * The loops are branch-free (both sides computed, then selected) so that
 * the compiler vectorizes them; target_clones adds an AVX2 build chosen at
 * load time where the CPU has it. Loaded with ctypes by
 * mmdidb/ops/cpu_fused.py; plain C, no Python API.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH 64

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* dst[i] += src[i] (double += float), then src[i] = 0 */
static void flush(double *restrict dst, float *restrict src, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        dst[i] += (double)src[i];
        src[i] = 0.0f;
    }
}

/* out = sign(x + beta) in {-1, +1}, sign(0) = +1 (NaN -> -1, as torch.ge) */
VECTOR_CLONES
void sign_shift_fwd(const float *restrict x, const float *restrict beta,
                    float *restrict out, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * C;
        float *o = out + r * C;
        for (int64_t c = 0; c < C; ++c)
            o[c] = (xr[c] + beta[c] >= 0.0f) ? 1.0f : -1.0f;
    }
}

/*
 * ApproxSign backward of sign(x + beta):
 *   g <- g * (2 * max(1 - |x + beta|, 0))   (in place; NaN propagates)
 *   signs <- sign(x + beta)                 (when signs is not NULL)
 *   gbeta[c] += sum over rows of the new g
 * Returns 0, or -1 when out of memory.
 */
VECTOR_CLONES
int approx_sign_bwd(const float *restrict x, const float *restrict beta,
                    float *restrict g, float *restrict signs,
                    double *restrict gbeta, int64_t rows, int64_t C) {
    float *acc = calloc((size_t)C, sizeof(float));
    if (!acc)
        return -1;
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * C;
        float *gr = g + r * C;
        for (int64_t c = 0; c < C; ++c) {
            float u = xr[c] + beta[c];
            float s = 1.0f - fabsf(u);
            s = (s < 0.0f) ? 0.0f : s;
            float v = (s * 2.0f) * gr[c];
            gr[c] = v;
            acc[c] += v;
        }
        if (signs) {
            float *sr = signs + r * C;
            for (int64_t c = 0; c < C; ++c)
                sr[c] = (xr[c] + beta[c] >= 0.0f) ? 1.0f : -1.0f;
        }
        if ((r + 1) % FLUSH == 0)
            flush(gbeta, acc, C);
    }
    flush(gbeta, acc, C);
    free(acc);
    return 0;
}

/* out = PReLU_slope(x - gamma) + shift[r % T]; torch's PReLU: v > 0 ? v : w v */
VECTOR_CLONES
void shifted_prelu_fwd(const float *restrict x, const float *restrict gamma,
                       const float *restrict slope,
                       const float *restrict shift, float *restrict out,
                       int64_t rows, int64_t C, int64_t T) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * C;
        const float *sh = shift + (r % T) * C;
        float *o = out + r * C;
        for (int64_t c = 0; c < C; ++c) {
            float v = xr[c] - gamma[c];
            float w = slope[c] * v;
            o[c] = (v > 0.0f ? v : w) + sh[c];
        }
    }
}

/*
 * Backward of shifted_prelu_fwd, torch's convention at 0 (the slope side):
 *   gx = x - gamma <= 0 ? go * slope : go
 *   gsum[c] += gx   (grad gamma = -gsum)
 *   gslope[c] += go * (x - gamma) where x - gamma <= 0
 *   gshift[r % T][c] += go
 * Returns 0, or -1 when out of memory.
 */
VECTOR_CLONES
int shifted_prelu_bwd(const float *restrict x, const float *restrict gamma,
                      const float *restrict slope, const float *restrict go,
                      float *restrict gx, double *restrict gsum,
                      double *restrict gslope, double *restrict gshift,
                      int64_t rows, int64_t C, int64_t T) {
    float *acc = calloc((size_t)(2 * C + T * C), sizeof(float));
    if (!acc)
        return -1;
    float *acc_sum = acc, *acc_slope = acc + C, *acc_shift = acc + 2 * C;
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * C;
        const float *gr = go + r * C;
        float *gxr = gx + r * C;
        float *ash = acc_shift + (r % T) * C;
        for (int64_t c = 0; c < C; ++c) {
            float v = xr[c] - gamma[c];
            float g = gr[c];
            float gs = g * slope[c];
            float gv = g * v;
            int neg = v <= 0.0f;
            float out = neg ? gs : g;
            gxr[c] = out;
            acc_sum[c] += out;
            acc_slope[c] += neg ? gv : 0.0f;
            ash[c] += g;
        }
        if ((r + 1) % FLUSH == 0) {
            flush(gsum, acc_sum, C);
            flush(gslope, acc_slope, C);
        }
        if ((r + 1) % (FLUSH * T) == 0)
            flush(gshift, acc_shift, T * C);
    }
    flush(gsum, acc_sum, C);
    flush(gslope, acc_slope, C);
    flush(gshift, acc_shift, T * C);
    free(acc);
    return 0;
}
