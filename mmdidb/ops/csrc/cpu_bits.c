/*
 * Binary matrix products and bit packing on the CPU (x86-64 and portable C).
 *
 * Conventions are those of mmdidb.ops (docs/method.md, "Bit conventions"):
 * 32 bits per uint32 word, element 32*w + j in bit j of word w, bit 1 <-> +1,
 * sign(0) = +1. Both operands of a product are packed along the reduction
 * axis: A is (M, W) words, B is (N, W) words, and for each pair of rows
 *
 *   xor (+-1 x +-1):   dot = k - 2 * popcount(a XOR b)
 *   and ({0,1} x +-1): dot = 2 * popcount(a AND b) - popcount(a)
 *
 * with the bits past k in the last word ignored. The result is written as
 * int32 dots or, with a scale, as float32 (float)dot * scale[n] (+ bias[n]):
 * the same two roundings torch makes for counts.float() * scale + bias (the
 * file is built with -ffp-contract=off, so no fused multiply-add).
 *
 * Layout of the fast kernels: the output channels (rows of B) of a panel sit
 * in the 32-bit lanes of one vector, so that a K-word of B for 8 (AVX2) or
 * 16 (AVX-512) channels is one load, one word of A is broadcast to every
 * lane, and each lane accumulates its own channel's count: no horizontal
 * sums, which matter here because ViT reductions are only 2 to 48 words
 * long. B is repacked into such panels per call (a few KiB per 64
 * channels; the weights of a layer stay in L2).
 *
 *   AVX2:    popcount per byte with the nibble lookup (vpshufb), bytes
 *            accumulated for up to 31 words (31 * 8 < 256), then widened to
 *            32-bit lanes with vpmaddubsw / vpmaddwd against ones.
 *   AVX-512: vpopcntd (AVX512_VPOPCNTDQ) counts each 32-bit lane directly.
 *   portable: one row pair at a time, __builtin_popcount.
 *
 * The ISA is chosen by the caller (mmdidb/ops/cpu_bits.py asks
 * best_isa() once); every path gives the same integers.
 *
 * Threads: the work is split into jobs of (batch matrix, 64 channels) and
 * the jobs over up to `threads` POSIX threads (parallel.h), the caller's
 * thread being one of them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MMDIDB_X86 1
#else
#define MMDIDB_X86 0
#endif

enum { OP_XOR = 0, OP_AND = 1 };
enum { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

/* Channels per job: a multiple of both panel widths (8 and 16). */
#define CHUNK 64
/* Below this many word pairs (M * N * W summed over the batch, about a
 * tenth of a millisecond on one core) one thread does everything: starting
 * a thread costs more than the work. */
#define MIN_PARALLEL_WORK (1 << 20)

int mmdidb_best_isa(void) {
#if MMDIDB_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vpopcntdq"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return ISA_AVX2;
#endif
    return ISA_PORTABLE;
}

static uint32_t tail_mask(int64_t k) {
    int64_t rest = k % 32;
    return rest ? (((uint32_t)1 << rest) - 1u) : 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------------
 * The product
 * ------------------------------------------------------------------------ */

typedef struct {
    const uint32_t *a;     /* (batch_a, M, W), tail bits already cleared */
    const int32_t *a_ones; /* (batch_a, M) popcount of each A row (and) */
    const uint32_t *b;     /* (batch_b, N, W) as given */
    int64_t a_stride, b_stride, ones_stride; /* per batch matrix; 0 = shared */
    int64_t batch, M, N, W, k;
    int op, isa;
    int32_t *out_i;        /* (batch, M, N) int32 dots, or NULL */
    float *out_f;          /* (batch, M, N) float32, or NULL */
    const float *scale;    /* (N,) with out_f */
    const float *bias;     /* (N,) or NULL */
    /* Two-band form (bands = 2): a second pair a1 (like a), b1 (like b),
     * and out_f = ((w0 * dot0) + (w1 * dot1)) * post. With bands = 1 and
     * weighted set: out_f = dot0 * post. */
    const uint32_t *a1, *b1;
    int bands, weighted;
    float w0, w1, post;
    int64_t job_begin, job_end;
    int status;            /* 0, or -1 when out of memory */
} gemm_task;

/* Write one output row segment from counts: dots, then the epilogue. */
static void store_row(const gemm_task *t, int64_t bi, int64_t m, int64_t n0,
                      int64_t count, const int32_t *counts,
                      const int32_t *counts1, int32_t ones) {
    int64_t base = (bi * t->M + m) * t->N + n0;
    for (int64_t j = 0; j < count; ++j) {
        int32_t dot = t->op == OP_XOR ? (int32_t)t->k - 2 * counts[j]
                                      : 2 * counts[j] - ones;
        if (t->weighted) {
            /* torch: (w0 * float(dot0) + w1 * float(dot1)) * post */
            float v = (float)dot;
            if (t->bands == 2)
                v = t->w0 * v + t->w1 * (float)((int32_t)t->k - 2 * counts1[j]);
            t->out_f[base + j] = v * t->post;
        } else if (t->out_f) {
            float v = (float)dot * t->scale[n0 + j];
            if (t->bias)
                v = v + t->bias[n0 + j];
            t->out_f[base + j] = v;
        } else {
            t->out_i[base + j] = dot;
        }
    }
}

static void repack(const uint32_t *b, int64_t W, int64_t k, int64_t n0,
                   int64_t nc, int64_t lanes, uint32_t *dst);

/* Portable: each (row, channel) pair on its own, B's rows tail-cleared in
 * `rows_b` (the repack with one lane). Built for the hardware popcount too
 * where the CPU has it (every x86-64 CPU since 2008). */
#if MMDIDB_X86 && !defined(__clang__)
__attribute__((target_clones("popcnt", "default")))
#endif
static void count_rows_portable(const uint32_t *ar, const uint32_t *rows_b,
                                int64_t nc, int64_t W, int op,
                                int32_t *counts) {
    for (int64_t j = 0; j < nc; ++j) {
        const uint32_t *br = rows_b + j * W;
        int32_t c = 0;
        if (op == OP_XOR)
            for (int64_t w = 0; w < W; ++w)
                c += __builtin_popcount(ar[w] ^ br[w]);
        else
            for (int64_t w = 0; w < W; ++w)
                c += __builtin_popcount(ar[w] & br[w]);
        counts[j] = c;
    }
}

static void job_portable(const gemm_task *t, int64_t bi, int64_t n0,
                         int64_t nc, const uint32_t *rows_b,
                         const uint32_t *rows_b1) {
    const uint32_t *a = t->a + bi * t->a_stride;
    const uint32_t *a1 = t->bands == 2 ? t->a1 + bi * t->a_stride : NULL;
    const int32_t *ones = t->a_ones + bi * t->ones_stride;
    const int64_t W = t->W;
    int32_t counts[CHUNK], counts1[CHUNK];
    for (int64_t m = 0; m < t->M; ++m) {
        count_rows_portable(a + m * W, rows_b, nc, W, t->op, counts);
        if (a1)
            count_rows_portable(a1 + m * W, rows_b1, nc, W, t->op, counts1);
        store_row(t, bi, m, n0, nc, counts, counts1,
                  t->op == OP_AND ? ones[m] : 0);
    }
}

/* Repack nc rows of B (from n0) into panels of `lanes` channels:
 * panel p, word w, lane l <- B[n0 + p*lanes + l][w], tail bits cleared,
 * missing channels zero. */
static void repack(const uint32_t *b, int64_t W, int64_t k, int64_t n0,
                   int64_t nc, int64_t lanes, uint32_t *dst) {
    uint32_t tail = tail_mask(k);
    int64_t panels = (nc + lanes - 1) / lanes;
    memset(dst, 0, (size_t)(panels * lanes * W) * sizeof(uint32_t));
    for (int64_t j = 0; j < nc; ++j) {
        const uint32_t *br = b + (n0 + j) * W;
        uint32_t *d = dst + (j / lanes) * lanes * W + (j % lanes);
        for (int64_t w = 0; w < W; ++w)
            d[w * lanes] = br[w];
        d[(W - 1) * lanes] &= tail;
    }
}

#if MMDIDB_X86

/* AVX2: R rows x 16 channels (two 8-lane panels). */
#define AVX2_ROWS 4

__attribute__((target("avx2"))) static inline __m256i
count_bytes_avx2(__m256i x, __m256i lut, __m256i low) {
    __m256i lo = _mm256_and_si256(x, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
                           _mm256_shuffle_epi8(lut, hi));
}

/* counts[r][0..15] for rows ar[0..rows-1] against panels p (two panels of
 * 8 lanes each, 8*W words apart). `op` and `rows` are constants after
 * inlining. */
__attribute__((target("avx2"))) static inline void
tile_avx2(const uint32_t *const *ar, int rows, const uint32_t *p, int64_t W,
          int op, int32_t counts[][16]) {
    const __m256i lut = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    /* byte counters hold up to 31 words (31 * 8 < 256); each block of
     * words is widened to 32-bit lanes and added to the counts in memory,
     * which keeps the registers for the counters */
    for (int r = 0; r < rows; ++r)
        for (int j = 0; j < 16; ++j)
            counts[r][j] = 0;
    for (int64_t w0 = 0; w0 < W; w0 += 31) {
        int64_t w1 = W < w0 + 31 ? W : w0 + 31;
        __m256i acc[AVX2_ROWS][2];
        for (int r = 0; r < rows; ++r)
            acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (int64_t w = w0; w < w1; ++w) {
            __m256i b0 = _mm256_loadu_si256((const __m256i *)(p + w * 8));
            __m256i b1 =
                _mm256_loadu_si256((const __m256i *)(p + (W + w) * 8));
            for (int r = 0; r < rows; ++r) {
                __m256i av = _mm256_set1_epi32((int)ar[r][w]);
                __m256i x0 = op == OP_XOR ? _mm256_xor_si256(av, b0)
                                          : _mm256_and_si256(av, b0);
                __m256i x1 = op == OP_XOR ? _mm256_xor_si256(av, b1)
                                          : _mm256_and_si256(av, b1);
                acc[r][0] = _mm256_add_epi8(acc[r][0],
                                            count_bytes_avx2(x0, lut, low));
                acc[r][1] = _mm256_add_epi8(acc[r][1],
                                            count_bytes_avx2(x1, lut, low));
            }
        }
        for (int r = 0; r < rows; ++r)
            for (int h = 0; h < 2; ++h) {
                __m256i *dst = (__m256i *)(counts[r] + 8 * h);
                __m256i wide = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(acc[r][h], ones8), ones16);
                _mm256_storeu_si256(
                    dst, _mm256_add_epi32(_mm256_loadu_si256(dst), wide));
            }
    }
}

#define DEFINE_TILE_AVX2(NAME, ROWS, OP)                                       \
    __attribute__((target("avx2"))) static void NAME(                          \
        const uint32_t *const *ar, const uint32_t *p, int64_t W,               \
        int32_t counts[][16]) {                                                \
        tile_avx2(ar, ROWS, p, W, OP, counts);                                 \
    }
DEFINE_TILE_AVX2(tile_avx2_4_xor, 4, OP_XOR)
DEFINE_TILE_AVX2(tile_avx2_1_xor, 1, OP_XOR)
DEFINE_TILE_AVX2(tile_avx2_4_and, 4, OP_AND)
DEFINE_TILE_AVX2(tile_avx2_1_and, 1, OP_AND)

/* AVX-512: R rows x 32 channels (two 16-lane panels), vpopcntd. */
#define AVX512_ROWS 6

__attribute__((target("avx512f,avx512vl,avx512bw,avx512vpopcntdq")))
static inline void
tile_avx512(const uint32_t *const *ar, int rows, const uint32_t *p, int64_t W,
            int op, int32_t counts[][32]) {
    __m512i acc[AVX512_ROWS][2];
    for (int r = 0; r < rows; ++r)
        acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int64_t w = 0; w < W; ++w) {
        __m512i b0 = _mm512_loadu_si512((const void *)(p + w * 16));
        __m512i b1 = _mm512_loadu_si512((const void *)(p + (W + w) * 16));
        for (int r = 0; r < rows; ++r) {
            __m512i av = _mm512_set1_epi32((int)ar[r][w]);
            __m512i x0 = op == OP_XOR ? _mm512_xor_si512(av, b0)
                                      : _mm512_and_si512(av, b0);
            __m512i x1 = op == OP_XOR ? _mm512_xor_si512(av, b1)
                                      : _mm512_and_si512(av, b1);
            acc[r][0] = _mm512_add_epi32(acc[r][0], _mm512_popcnt_epi32(x0));
            acc[r][1] = _mm512_add_epi32(acc[r][1], _mm512_popcnt_epi32(x1));
        }
    }
    for (int r = 0; r < rows; ++r) {
        _mm512_storeu_si512((void *)counts[r], acc[r][0]);
        _mm512_storeu_si512((void *)(counts[r] + 16), acc[r][1]);
    }
}

#define DEFINE_TILE_AVX512(NAME, ROWS, OP)                                     \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512vpopcntdq")))     \
    static void NAME(const uint32_t *const *ar, const uint32_t *p, int64_t W, \
                     int32_t counts[][32]) {                                   \
        tile_avx512(ar, ROWS, p, W, OP, counts);                               \
    }
DEFINE_TILE_AVX512(tile_avx512_6_xor, 6, OP_XOR)
DEFINE_TILE_AVX512(tile_avx512_1_xor, 1, OP_XOR)
DEFINE_TILE_AVX512(tile_avx512_6_and, 6, OP_AND)
DEFINE_TILE_AVX512(tile_avx512_1_and, 1, OP_AND)

/* The epilogue of one row of a tile, `width` <= 16 (AVX2: 8) lanes at a
 * time: the same integer and float operations as store_row, vectorized
 * (separate multiply and add: two roundings, as torch). */
__attribute__((target("avx512f,avx512vl,avx512bw,avx512vpopcntdq")))
static void store_row_avx512(const gemm_task *t, int64_t bi, int64_t m,
                             int64_t n0, int64_t width, const int32_t *counts,
                             const int32_t *counts1, int32_t ones) {
    int64_t base = (bi * t->M + m) * t->N + n0;
    const __m512i kvec = _mm512_set1_epi32((int)t->k);
    const __m512i onesv = _mm512_set1_epi32(ones);
    for (int64_t j = 0; j < width; j += 16) {
        __mmask16 lanes = width - j >= 16 ? (__mmask16)0xFFFF
                                          : (__mmask16)((1u << (width - j)) - 1);
        __m512i c = _mm512_maskz_loadu_epi32(lanes, counts + j);
        __m512i twice = _mm512_add_epi32(c, c);
        __m512i dot = t->op == OP_XOR ? _mm512_sub_epi32(kvec, twice)
                                      : _mm512_sub_epi32(twice, onesv);
        if (t->weighted) {
            __m512 v = _mm512_cvtepi32_ps(dot);
            if (t->bands == 2) {
                __m512i c1 = _mm512_maskz_loadu_epi32(lanes, counts1 + j);
                __m512 v1 = _mm512_cvtepi32_ps(
                    _mm512_sub_epi32(kvec, _mm512_add_epi32(c1, c1)));
                v = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(t->w0), v),
                                  _mm512_mul_ps(_mm512_set1_ps(t->w1), v1));
            }
            v = _mm512_mul_ps(v, _mm512_set1_ps(t->post));
            _mm512_mask_storeu_ps(t->out_f + base + j, lanes, v);
        } else if (t->out_f) {
            __m512 v = _mm512_mul_ps(
                _mm512_cvtepi32_ps(dot),
                _mm512_maskz_loadu_ps(lanes, t->scale + n0 + j));
            if (t->bias)
                v = _mm512_add_ps(
                    v, _mm512_maskz_loadu_ps(lanes, t->bias + n0 + j));
            _mm512_mask_storeu_ps(t->out_f + base + j, lanes, v);
        } else {
            _mm512_mask_storeu_epi32(t->out_i + base + j, lanes, dot);
        }
    }
}

__attribute__((target("avx2"))) static void
store_row_avx2(const gemm_task *t, int64_t bi, int64_t m, int64_t n0,
               int64_t width, const int32_t *counts, const int32_t *counts1,
               int32_t ones) {
    int64_t base = (bi * t->M + m) * t->N + n0;
    const __m256i kvec = _mm256_set1_epi32((int)t->k);
    const __m256i onesv = _mm256_set1_epi32(ones);
    int64_t j = 0;
    for (; j + 8 <= width; j += 8) {
        __m256i c = _mm256_loadu_si256((const __m256i *)(counts + j));
        __m256i twice = _mm256_add_epi32(c, c);
        __m256i dot = t->op == OP_XOR ? _mm256_sub_epi32(kvec, twice)
                                      : _mm256_sub_epi32(twice, onesv);
        if (t->weighted) {
            __m256 v = _mm256_cvtepi32_ps(dot);
            if (t->bands == 2) {
                __m256i c1 =
                    _mm256_loadu_si256((const __m256i *)(counts1 + j));
                __m256 v1 = _mm256_cvtepi32_ps(
                    _mm256_sub_epi32(kvec, _mm256_add_epi32(c1, c1)));
                v = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(t->w0), v),
                                  _mm256_mul_ps(_mm256_set1_ps(t->w1), v1));
            }
            v = _mm256_mul_ps(v, _mm256_set1_ps(t->post));
            _mm256_storeu_ps(t->out_f + base + j, v);
        } else if (t->out_f) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(dot),
                                     _mm256_loadu_ps(t->scale + n0 + j));
            if (t->bias)
                v = _mm256_add_ps(v, _mm256_loadu_ps(t->bias + n0 + j));
            _mm256_storeu_ps(t->out_f + base + j, v);
        } else {
            _mm256_storeu_si256((__m256i *)(t->out_i + base + j), dot);
        }
    }
    if (j < width)
        store_row(t, bi, m, n0 + j, width - j, counts + j,
                  counts1 ? counts1 + j : NULL, ones);
}

/* One job on the vector kernels: rows in tiles of R, channels in tiles of
 * 2 panels. `panels` holds the repacked channels [n0, n0 + nc). */
/* Counts of `rows` rows of A (from ar) against one tile of panels p. */
static void tile_counts(const gemm_task *t, const uint32_t *const *ar,
                        int rows, const uint32_t *p,
                        int32_t counts[][32]) {
    if (t->isa == ISA_AVX512) {
        if (t->op == OP_XOR)
            (rows == 1 ? tile_avx512_1_xor : tile_avx512_6_xor)(ar, p, t->W,
                                                                counts);
        else
            (rows == 1 ? tile_avx512_1_and : tile_avx512_6_and)(ar, p, t->W,
                                                                counts);
        return;
    }
    int32_t (*c16)[16] = (int32_t (*)[16])counts;
    if (t->op == OP_XOR)
        (rows == 1 ? tile_avx2_1_xor : tile_avx2_4_xor)(ar, p, t->W, c16);
    else
        (rows == 1 ? tile_avx2_1_and : tile_avx2_4_and)(ar, p, t->W, c16);
}

/* One job on the vector kernels: rows in tiles of R, channels in tiles of
 * 2 panels. `panels` (and `panels1`, second band) hold the repacked
 * channels [n0, n0 + nc). */
static void job_vector(const gemm_task *t, int64_t bi, int64_t n0, int64_t nc,
                       const uint32_t *panels, const uint32_t *panels1) {
    const uint32_t *a = t->a + bi * t->a_stride;
    const uint32_t *a1 = t->bands == 2 ? t->a1 + bi * t->a_stride : NULL;
    const int32_t *ones = t->a_ones + bi * t->ones_stride;
    const int avx512 = t->isa == ISA_AVX512;
    const int64_t lanes = avx512 ? 16 : 8;
    const int64_t tile_ch = 2 * lanes;
    const int rows_full = avx512 ? AVX512_ROWS : AVX2_ROWS;
    int32_t counts[AVX512_ROWS][32], counts1[AVX512_ROWS][32];
    for (int64_t c0 = 0; c0 < nc; c0 += tile_ch) {
        int64_t offset = (c0 / lanes) * lanes * t->W;
        int64_t width = nc - c0 < tile_ch ? nc - c0 : tile_ch;
        for (int64_t m = 0; m < t->M;) {
            int rows = t->M - m >= rows_full ? rows_full : 1;
            const uint32_t *ar[AVX512_ROWS], *ar1[AVX512_ROWS];
            for (int r = 0; r < rows; ++r) {
                ar[r] = a + (m + r) * t->W;
                ar1[r] = a1 ? a1 + (m + r) * t->W : NULL;
            }
            tile_counts(t, ar, rows, panels + offset, counts);
            if (a1)
                tile_counts(t, ar1, rows, panels1 + offset, counts1);
            for (int r = 0; r < rows; ++r) {
                int32_t own = t->op == OP_AND ? ones[m + r] : 0;
                if (avx512)
                    store_row_avx512(t, bi, m + r, n0 + c0, width, counts[r],
                                     a1 ? counts1[r] : NULL, own);
                else
                    store_row_avx2(t, bi, m + r, n0 + c0, width,
                                   ((int32_t (*)[16])counts)[r],
                                   a1 ? ((int32_t (*)[16])counts1)[r] : NULL,
                                   own);
            }
            m += rows;
        }
    }
}

#endif /* MMDIDB_X86 */

static void *run_jobs(void *arg) {
    gemm_task *t = (gemm_task *)arg;
    int64_t chunks = (t->N + CHUNK - 1) / CHUNK;
    size_t words = (size_t)(CHUNK * (t->W > 0 ? t->W : 1));
    uint32_t *panels = (uint32_t *)malloc(2 * words * sizeof(uint32_t));
    if (!panels) {
        t->status = -1;
        return NULL;
    }
    uint32_t *panels1 = panels + words;
    for (int64_t job = t->job_begin; job < t->job_end; ++job) {
        int64_t bi = job / chunks, n0 = (job % chunks) * CHUNK;
        int64_t nc = t->N - n0 < CHUNK ? t->N - n0 : CHUNK;
        const uint32_t *b = t->b + bi * t->b_stride;
        const uint32_t *b1 = t->bands == 2 ? t->b1 + bi * t->b_stride : NULL;
        int64_t lanes = 1;
#if MMDIDB_X86
        if (t->isa != ISA_PORTABLE)
            lanes = t->isa == ISA_AVX512 ? 16 : 8;
#endif
        repack(b, t->W, t->k, n0, nc, lanes, panels);
        if (b1)
            repack(b1, t->W, t->k, n0, nc, lanes, panels1);
#if MMDIDB_X86
        if (t->isa != ISA_PORTABLE) {
            job_vector(t, bi, n0, nc, panels, panels1);
            continue;
        }
#endif
        job_portable(t, bi, n0, nc, panels, panels1);
    }
    free(panels);
    return NULL;
}

/* Run the jobs of `base` (A already clean) over up to `threads` threads. */
static int run_gemm(gemm_task *base, int threads) {
    int64_t jobs = base->batch * ((base->N + CHUNK - 1) / CHUNK);
    int64_t work = base->batch * base->M * base->N *
                   (base->W > 0 ? base->W : 1);
    int64_t nthreads = threads < 1 ? 1 : threads;
    if (nthreads > jobs)
        nthreads = jobs;
    if (work < MIN_PARALLEL_WORK)
        nthreads = 1;
    if (nthreads > MMDIDB_MAX_THREADS)
        nthreads = MMDIDB_MAX_THREADS;
    gemm_task tasks[MMDIDB_MAX_THREADS];
    for (int64_t i = 0; i < nthreads; ++i) {
        tasks[i] = *base;
        tasks[i].job_begin = jobs * i / nthreads;
        tasks[i].job_end = jobs * (i + 1) / nthreads;
    }
    mmdidb_run_parallel(run_jobs, tasks, sizeof(gemm_task), nthreads);
    int status = 0;
    for (int64_t i = 0; i < nthreads; ++i)
        if (tasks[i].status)
            status = tasks[i].status;
    return status;
}

static int bad_shape(int64_t W, int64_t k) {
    return W < 0 || k < 0 || k > 32 * W || (W > 0 && k <= 32 * (W - 1));
}

/*
 * out = the dots of every row of A with every row of B, per batch matrix.
 *
 * a, b:        packed words, (batch or 1, M, W) and (batch or 1, N, W);
 *              a_batched / b_batched say which (0: one matrix shared by
 *              the whole batch).
 * op:          OP_XOR or OP_AND.
 * out_i/out_f: exactly one non-NULL; out_f needs scale (N,), bias optional.
 * Returns 0, -1 when out of memory, -2 on a bad argument.
 */
/* A copy of `rows` rows of W words with the padding bits past k cleared,
 * and (ones != NULL) each row's popcount. NULL when out of memory. */
static uint32_t *clean_rows(const uint32_t *a, int64_t rows, int64_t W,
                            int64_t k, int32_t *ones) {
    uint32_t *clean = (uint32_t *)malloc((size_t)(rows * (W > 0 ? W : 1)) *
                                         sizeof(uint32_t));
    if (!clean)
        return NULL;
    uint32_t tail = tail_mask(k);
    for (int64_t r = 0; r < rows; ++r) {
        int32_t c = 0;
        for (int64_t w = 0; w < W; ++w) {
            uint32_t v = w == W - 1 ? a[r * W + w] & tail : a[r * W + w];
            clean[r * W + w] = v;
            c += __builtin_popcount(v);
        }
        if (ones)
            ones[r] = c;
    }
    return clean;
}

int mmdidb_bgemm(const uint32_t *a, const uint32_t *b, int64_t batch,
                 int a_batched, int b_batched, int64_t M, int64_t N,
                 int64_t W, int64_t k, int op, int32_t *out_i, float *out_f,
                 const float *scale, const float *bias, int isa,
                 int threads) {
    if (batch < 0 || M < 0 || N < 0 || bad_shape(W, k) ||
        (op != OP_XOR && op != OP_AND) ||
        (out_i == NULL) == (out_f == NULL) || (out_f && !scale))
        return -2;
#if !MMDIDB_X86
    isa = ISA_PORTABLE;
#endif
    if (batch == 0 || M == 0 || N == 0)
        return 0;
    int64_t rows = (a_batched ? batch : 1) * M;
    int32_t *ones = (int32_t *)calloc((size_t)rows, sizeof(int32_t));
    uint32_t *a_clean = ones ? clean_rows(a, rows, W, k, ones) : NULL;
    if (!a_clean) {
        free(ones);
        return -1;
    }
    gemm_task base = {
        .a = a_clean, .a_ones = ones, .b = b,
        .a_stride = a_batched ? M * W : 0, .b_stride = b_batched ? N * W : 0,
        .ones_stride = a_batched ? M : 0, .batch = batch, .M = M, .N = N,
        .W = W, .k = k, .op = op, .isa = isa, .out_i = out_i, .out_f = out_f,
        .scale = scale, .bias = bias, .bands = 1, .status = 0};
    int status = run_gemm(&base, threads);
    free(ones);
    free(a_clean);
    return status;
}

/*
 * The similarity of binary attention from one or two bands of packed +-1
 * queries and keys (XOR products), written as float32:
 *   one band:  out = float(dot0) * post
 *   two bands: out = ((w0 * float(dot0)) + (w1 * float(dot1))) * post
 * the roundings torch makes for a * s0 + (1 - a) * s1, then * scale.
 * a1/b1 NULL for one band; otherwise shaped like a0/b0.
 */
int mmdidb_bgemm_bands(const uint32_t *a0, const uint32_t *b0,
                       const uint32_t *a1, const uint32_t *b1, int64_t batch,
                       int a_batched, int b_batched, int64_t M, int64_t N,
                       int64_t W, int64_t k, float w0, float w1, float post,
                       float *out, int isa, int threads) {
    if (batch < 0 || M < 0 || N < 0 || bad_shape(W, k) || !out ||
        (a1 == NULL) != (b1 == NULL))
        return -2;
#if !MMDIDB_X86
    isa = ISA_PORTABLE;
#endif
    if (batch == 0 || M == 0 || N == 0)
        return 0;
    int64_t rows = (a_batched ? batch : 1) * M;
    int32_t zero = 0;
    uint32_t *clean0 = clean_rows(a0, rows, W, k, NULL);
    uint32_t *clean1 = a1 && clean0 ? clean_rows(a1, rows, W, k, NULL) : NULL;
    if (!clean0 || (a1 && !clean1)) {
        free(clean0);
        free(clean1);
        return -1;
    }
    gemm_task base = {
        .a = clean0, .a_ones = &zero, .b = b0, .a1 = clean1, .b1 = b1,
        .a_stride = a_batched ? M * W : 0, .b_stride = b_batched ? N * W : 0,
        .ones_stride = 0, .batch = batch, .M = M, .N = N, .W = W, .k = k,
        .op = OP_XOR, .isa = isa, .out_f = out, .bands = a1 ? 2 : 1,
        .weighted = 1, .w0 = w0, .w1 = w1, .post = post, .status = 0};
    int status = run_gemm(&base, threads);
    free(clean0);
    free(clean1);
    return status;
}

static void pack_rows_any(const float *x, const float *shift, uint32_t *out,
                          int64_t rows, int64_t K, int mask_mode, int isa);

/*
 * The deployed binary linear layer in one call:
 *   out (M, N) = (float)(sign(x + shift) . sign(w)) * scale + bias
 * x is (M, K) float32, shift (K,), w (N, ceil(K/32)) packed weight signs.
 * The signs of x + shift are packed straight into the GEMM's A buffer: the
 * +-1 input never exists as floats. Returns 0, -1 or -2 as mmdidb_bgemm.
 */
int mmdidb_sign_linear(const float *x, const float *shift, int64_t M,
                       int64_t K, const uint32_t *w, int64_t N, float *out,
                       const float *scale, const float *bias, int isa,
                       int threads) {
    int64_t W = (K + 31) / 32;
    if (M < 0 || N < 0 || K < 0 || !out || !scale)
        return -2;
#if !MMDIDB_X86
    isa = ISA_PORTABLE;
#endif
    if (M == 0 || N == 0)
        return 0;
    uint32_t *a = (uint32_t *)malloc((size_t)(M * (W > 0 ? W : 1)) *
                                     sizeof(uint32_t));
    int32_t zero = 0;
    if (!a)
        return -1;
    pack_rows_any(x, shift, a, M, K, 0, isa);
    gemm_task base = {
        .a = a, .a_ones = &zero, .b = w, .a_stride = 0, .b_stride = 0,
        .ones_stride = 0, .batch = 1, .M = M, .N = N, .W = W, .k = K,
        .op = OP_XOR, .isa = isa, .out_i = NULL, .out_f = out,
        .scale = scale, .bias = bias, .bands = 1, .status = 0};
    int status = run_gemm(&base, threads);
    free(a);
    return status;
}

/* ------------------------------------------------------------------------
 * Packing
 * ------------------------------------------------------------------------ */

/* Bit of one float: sign mode (x (+ shift) >= 0; NaN -> 0, as torch.ge) or
 * mask mode (x != 0; NaN -> 1, as torch.ne). */
static inline uint32_t bit_of(float v, int mask_mode) {
    return mask_mode ? (uint32_t)(v != 0.0f) : (uint32_t)(v >= 0.0f);
}

static void pack_rows_portable(const float *x, const float *shift,
                               uint32_t *out, int64_t r0, int64_t r1,
                               int64_t K, int mask_mode) {
    int64_t W = (K + 31) / 32;
    for (int64_t r = r0; r < r1; ++r) {
        const float *xr = x + r * K;
        for (int64_t w = 0; w < W; ++w) {
            uint32_t word = 0;
            int64_t end = K - w * 32 < 32 ? K - w * 32 : 32;
            for (int64_t j = 0; j < end; ++j) {
                float v = xr[w * 32 + j];
                if (shift)
                    v = v + shift[w * 32 + j];
                word |= bit_of(v, mask_mode) << j;
            }
            out[r * W + w] = word;
        }
    }
}

#if MMDIDB_X86
__attribute__((target("avx2"))) static void
pack_rows_avx2(const float *x, const float *shift, uint32_t *out, int64_t r0,
               int64_t r1, int64_t K, int mask_mode) {
    int64_t W = (K + 31) / 32, full = K / 32;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t r = r0; r < r1; ++r) {
        const float *xr = x + r * K;
        for (int64_t w = 0; w < full; ++w) {
            uint32_t word = 0;
            for (int g = 0; g < 4; ++g) {
                int64_t i = w * 32 + g * 8;
                __m256 v = _mm256_loadu_ps(xr + i);
                if (shift)
                    v = _mm256_add_ps(v, _mm256_loadu_ps(shift + i));
                /* compare, not the sign bit: -0.0 packs as +1, NaN as the
                 * scalar rule says */
                __m256 m = mask_mode ? _mm256_cmp_ps(v, zero, _CMP_NEQ_UQ)
                                     : _mm256_cmp_ps(v, zero, _CMP_GE_OQ);
                word |= (uint32_t)_mm256_movemask_ps(m) << (g * 8);
            }
            out[r * W + w] = word;
        }
        if (full < W) {
            uint32_t word = 0;
            for (int64_t i = full * 32; i < K; ++i) {
                float v = xr[i];
                if (shift)
                    v = v + shift[i];
                word |= bit_of(v, mask_mode) << (i - full * 32);
            }
            out[r * W + full] = word;
        }
    }
}
#endif

static void pack_rows_any(const float *x, const float *shift, uint32_t *out,
                          int64_t rows, int64_t K, int mask_mode, int isa) {
#if MMDIDB_X86
    if (isa != ISA_PORTABLE) {
        pack_rows_avx2(x, shift, out, 0, rows, K, mask_mode);
        return;
    }
#endif
    (void)isa;
    pack_rows_portable(x, shift, out, 0, rows, K, mask_mode);
}

/* out (rows, ceil(K/32)) <- bits of x (rows, K), optionally x + shift (K,). */
int mmdidb_pack_rows(const float *x, const float *shift, uint32_t *out,
                     int64_t rows, int64_t K, int mask_mode, int isa) {
    if (rows < 0 || K < 0)
        return -2;
    pack_rows_any(x, shift, out, rows, K, mask_mode, isa);
    return 0;
}

/*
 * Pack along the middle axis: x (batch, N, C) -> out (batch, C, ceil(N/32)),
 * bit j of word w of (b, c) from x[b][32w + j][c] (+ shift[c]). This is the
 * layout of the values in the attention product (packed along the tokens).
 * The loop over channels is the inner one, so it vectorizes.
 */
#if MMDIDB_X86 && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
int mmdidb_pack_cols(const float *x, const float *shift, uint32_t *out,
                 int64_t batch, int64_t N, int64_t C, int mask_mode) {
    if (batch < 0 || N < 0 || C < 0)
        return -2;
    int64_t W = (N + 31) / 32;
    uint32_t *words = (uint32_t *)malloc((size_t)(C > 0 ? C : 1) *
                                         sizeof(uint32_t));
    if (!words)
        return -1;
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t w = 0; w < W; ++w) {
            memset(words, 0, (size_t)C * sizeof(uint32_t));
            int64_t end = N - w * 32 < 32 ? N - w * 32 : 32;
            for (int64_t j = 0; j < end; ++j) {
                const float *xr = x + (b * N + w * 32 + j) * C;
                if (shift) {
                    for (int64_t c = 0; c < C; ++c)
                        words[c] |= bit_of(xr[c] + shift[c], mask_mode) << j;
                } else {
                    for (int64_t c = 0; c < C; ++c)
                        words[c] |= bit_of(xr[c], mask_mode) << j;
                }
            }
            for (int64_t c = 0; c < C; ++c)
                out[(b * C + c) * W + w] = words[c];
        }
    }
    free(words);
    return 0;
}
