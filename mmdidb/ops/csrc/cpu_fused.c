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
 *
 * Threads: each exported function splits the channels (columns) over up
 * to `threads` POSIX threads (parallel.h). Every per-channel sum then runs over the
 * same rows in the same order as on one thread, so the results do not
 * depend on the thread count, bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

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
static void sign_shift_impl(const float *restrict x,
                            const float *restrict beta, float *restrict out,
                            int64_t rows, int64_t C, int64_t ld) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * ld;
        float *o = out + r * ld;
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
static int approx_sign_impl(const float *restrict x,
                            const float *restrict beta, float *restrict g,
                            float *restrict signs, double *restrict gbeta,
                            int64_t rows, int64_t C, int64_t ld) {
    float *acc = calloc((size_t)(C > 0 ? C : 1), sizeof(float));
    if (!acc)
        return -1;
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * ld;
        float *gr = g + r * ld;
        for (int64_t c = 0; c < C; ++c) {
            float u = xr[c] + beta[c];
            float s = 1.0f - fabsf(u);
            s = (s < 0.0f) ? 0.0f : s;
            float v = (s * 2.0f) * gr[c];
            gr[c] = v;
            acc[c] += v;
        }
        if (signs) {
            float *sr = signs + r * ld;
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
static void shifted_prelu_impl(const float *restrict x,
                               const float *restrict gamma,
                               const float *restrict slope,
                               const float *restrict shift,
                               float *restrict out, int64_t rows, int64_t C,
                               int64_t T, int64_t ld) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * ld;
        const float *sh = shift + (r % T) * ld;
        float *o = out + r * ld;
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
/* gshift (T rows of ld doubles, C used) += acc (T x C floats), acc = 0 */
static void flush_table(double *restrict dst, float *restrict acc, int64_t T,
                        int64_t C, int64_t ld) {
    for (int64_t t = 0; t < T; ++t)
        flush(dst + t * ld, acc + t * C, C);
}

VECTOR_CLONES
static int shifted_prelu_bwd_impl(const float *restrict x,
                                  const float *restrict gamma,
                                  const float *restrict slope,
                                  const float *restrict go,
                                  float *restrict gx, double *restrict gsum,
                                  double *restrict gslope,
                                  double *restrict gshift, int64_t rows,
                                  int64_t C, int64_t T, int64_t ld) {
    float *acc = calloc((size_t)(2 * C + T * C + 1), sizeof(float));
    if (!acc)
        return -1;
    float *acc_sum = acc, *acc_slope = acc + C, *acc_shift = acc + 2 * C;
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * ld;
        const float *gr = go + r * ld;
        float *gxr = gx + r * ld;
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
            flush_table(gshift, acc_shift, T, C, ld);
    }
    flush(gsum, acc_sum, C);
    flush(gslope, acc_slope, C);
    flush_table(gshift, acc_shift, T, C, ld);
    free(acc);
    return 0;
}

/* ------------------------------------------------------------------------
 * Threaded entry points: channels [c0, c1) per thread.
 * ------------------------------------------------------------------------ */

enum { SIGN_SHIFT, APPROX_SIGN, PRELU_FWD, PRELU_BWD };

typedef struct {
    int kind;
    const float *x, *beta, *gamma, *slope, *shift, *go;
    float *out, *g, *signs, *gx;
    double *gbeta, *gsum, *gslope, *gshift;
    int64_t rows, C, T, c0, c1;
    int status;
} fused_task;

static void *run_task(void *arg) {
    fused_task *t = (fused_task *)arg;
    int64_t c0 = t->c0, w = t->c1 - t->c0, C = t->C;
    switch (t->kind) {
    case SIGN_SHIFT:
        sign_shift_impl(t->x + c0, t->beta + c0, t->out + c0, t->rows, w, C);
        break;
    case APPROX_SIGN:
        t->status = approx_sign_impl(t->x + c0, t->beta + c0, t->g + c0,
                                     t->signs ? t->signs + c0 : NULL,
                                     t->gbeta + c0, t->rows, w, C);
        break;
    case PRELU_FWD:
        shifted_prelu_impl(t->x + c0, t->gamma + c0, t->slope + c0,
                           t->shift + c0, t->out + c0, t->rows, w, t->T, C);
        break;
    default:
        t->status = shifted_prelu_bwd_impl(
            t->x + c0, t->gamma + c0, t->slope + c0, t->go + c0, t->gx + c0,
            t->gsum + c0, t->gslope + c0, t->gshift + c0, t->rows, w, t->T,
            C);
    }
    return NULL;
}

/* Below this many elements one thread does everything. */
#define MIN_PARALLEL_ELEMENTS (1 << 15)

/* Run `base` over channel slices on up to `threads` threads (slices of a
 * multiple of 16 channels, so each stays vectorized). Returns 0 or -1. */
static int run_split(const fused_task *base, int threads) {
    int64_t n = threads < 1 ? 1 : threads;
    if (n > MMDIDB_MAX_THREADS)
        n = MMDIDB_MAX_THREADS;
    if (n > base->C / 16)
        n = base->C / 16;
    if (base->rows * base->C < MIN_PARALLEL_ELEMENTS || n < 1)
        n = 1;
    fused_task tasks[MMDIDB_MAX_THREADS];
    int64_t blocks = (base->C + 15) / 16;
    for (int64_t i = 0; i < n; ++i) {
        tasks[i] = *base;
        tasks[i].c0 = 16 * (blocks * i / n);
        tasks[i].c1 = i == n - 1 ? base->C : 16 * (blocks * (i + 1) / n);
        tasks[i].status = 0;
    }
    mmdidb_run_parallel(run_task, tasks, sizeof(fused_task), n);
    int status = 0;
    for (int64_t i = 0; i < n; ++i)
        if (tasks[i].status)
            status = tasks[i].status;
    return status;
}

void sign_shift_fwd(const float *x, const float *beta, float *out,
                    int64_t rows, int64_t C, int threads) {
    fused_task t = {.kind = SIGN_SHIFT, .x = x, .beta = beta, .out = out,
                    .rows = rows, .C = C, .T = 1};
    run_split(&t, threads);
}

int approx_sign_bwd(const float *x, const float *beta, float *g,
                    float *signs, double *gbeta, int64_t rows, int64_t C,
                    int threads) {
    fused_task t = {.kind = APPROX_SIGN, .x = x, .beta = beta, .g = g,
                    .signs = signs, .gbeta = gbeta, .rows = rows, .C = C,
                    .T = 1};
    return run_split(&t, threads);
}

void shifted_prelu_fwd(const float *x, const float *gamma,
                       const float *slope, const float *shift, float *out,
                       int64_t rows, int64_t C, int64_t T, int threads) {
    fused_task t = {.kind = PRELU_FWD, .x = x, .gamma = gamma,
                    .slope = slope, .shift = shift, .out = out, .rows = rows,
                    .C = C, .T = T};
    run_split(&t, threads);
}

int shifted_prelu_bwd(const float *x, const float *gamma, const float *slope,
                      const float *go, float *gx, double *gsum,
                      double *gslope, double *gshift, int64_t rows,
                      int64_t C, int64_t T, int threads) {
    fused_task t = {.kind = PRELU_BWD, .x = x, .gamma = gamma,
                    .slope = slope, .go = go, .gx = gx, .gsum = gsum,
                    .gslope = gslope, .gshift = gshift, .rows = rows, .C = C,
                    .T = T};
    return run_split(&t, threads);
}
