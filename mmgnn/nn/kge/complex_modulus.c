/* RotatE's 1-to-all distance, D[b, n] = sum_k |q[b, k] - c[n, k]| over complex coordinates
 * stored [re | im] (Sun et al., 2019, Eq. 3: d_r(h, t) = ||h o r - t||, summed moduli),
 * written as offset + sign * D (the decoder's score, gamma - D, in the same pass).
 *
 * Compiled on first use by mmgnn.utils.native with GCC's -mrecip, so that sqrtf becomes the
 * reciprocal-square-root estimate refined by one Newton step (~1.3x faster than the exact
 * square root on AVX-512; error ~2 ulp per modulus, below the float32 summation error of a
 * sum over d terms). A zero modulus gives exactly 0.
 *
 * Layout: candidates [n0, n1) are taken TILE at a time and transposed into a buffer (2d, TILE)
 * that stays in the L1/L2 cache while every query sweeps it, two queries per pass (each
 * candidate coordinate loaded once for both); within a tile the loop over TILE candidates is
 * the vectorised one, with one accumulator per candidate and the sum over k in order, so a
 * distance does not depend on the tile, the thread or the batch it was computed in. */
#include <stdlib.h>
#include <math.h>

#define TILE 64

static void tile_pair(const float *q0, const float *q1, const float *ct, long d,
                      float *acc0, float *acc1) {
    for (long j = 0; j < TILE; ++j) { acc0[j] = 0.0f; acc1[j] = 0.0f; }
    for (long k = 0; k < d; ++k) {
        const float *cr = ct + k * TILE, *ci = ct + (d + k) * TILE;
        const float r0 = q0[k], i0 = q0[d + k], r1 = q1[k], i1 = q1[d + k];
#pragma omp simd
        for (long j = 0; j < TILE; ++j) {
            const float a = r0 - cr[j], b = i0 - ci[j];
            const float e = r1 - cr[j], f = i1 - ci[j];
            acc0[j] += sqrtf(a * a + b * b);
            acc1[j] += sqrtf(e * e + f * f);
        }
    }
}

/* q: (B, 2d), c: (N, 2d), out: (B, N), all row-major float32; fills out[:, n0:n1], its tiles
 * shared among `threads` OpenMP threads (when built with -fopenmp: the process's libgomp, the
 * one torch loaded, so its threads and torch's are one pool and never spin against each other).
 * Returns 0, or 1 when a tile buffer could not be allocated. */
int mmgnn_complex_modulus(const float *q, const float *c, float *out, long B, long N, long d,
                          long n0, long n1, float offset, float sign, int threads) {
    const long tiles = (n1 - n0 + TILE - 1) / TILE;
    int failed = 0;
    (void)threads;
#pragma omp parallel num_threads(threads) reduction(|| : failed)
    {
        float *ct = malloc(sizeof(float) * (size_t)(2 * d * TILE + 2 * TILE));
        float *acc0 = ct ? ct + 2 * d * TILE : NULL, *acc1 = acc0 ? acc0 + TILE : NULL;
        failed = ct == NULL;
#pragma omp for schedule(static)
        for (long i = 0; i < tiles; ++i) {
            if (!ct) continue;
            const long t = n0 + i * TILE, n = n1 - t < TILE ? n1 - t : TILE;
            for (long k = 0; k < 2 * d; ++k)
                for (long j = 0; j < TILE; ++j)
                    ct[k * TILE + j] = j < n ? c[(t + j) * 2 * d + k] : 0.0f;
            for (long b = 0; b < B; b += 2) {
                const long b1 = b + 1 < B ? b + 1 : b;  /* an odd last query pairs with itself */
                tile_pair(q + b * 2 * d, q + b1 * 2 * d, ct, d, acc0, acc1);
                for (long j = 0; j < n; ++j) out[b * N + t + j] = offset + sign * acc0[j];
                if (b1 != b)
                    for (long j = 0; j < n; ++j) out[b1 * N + t + j] = offset + sign * acc1[j];
            }
        }
        free(ct);
    }
    return failed;
}
