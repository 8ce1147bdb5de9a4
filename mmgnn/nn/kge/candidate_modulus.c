/* RotatE's distance of fused candidates to gathered queries, a negative-sampling training step's
 * scoring (mmgnn.nn.kge.candidates; NativE's step with its RotatE decoder), forward and backward.
 *
 * Candidate i has the row c_i = sum_m w[i, m] * table[index[i], m, :] (a weighted sum of the M
 * blocks of width 2d of one table row: ReDAF's combine of the modality embeddings) and the
 * query q_i = queries[which[i], :]; its distance is
 *     D[i] = sum_k |c_{i,k} - q_{i,k}|      (complex coordinates stored [re | im];
 *                                            Sun et al., 2019, Eq. 3)
 * Written with PyTorch operations, the step gathers (n, M, 2d) rows, weights, sums and
 * subtracts them through (n, 2d) intermediates, and its backward pass materialises as much
 * again; here each candidate's table row is read once forward and once backward (the backward
 * pass recomputes the difference), and its gradient is added straight into the table's.
 *
 * Gradients: with s_k = grad[i] / |c_k - q_k| (0 where the modulus is 0, the subgradient of
 * torch.linalg.vector_norm) and g = s * (c - q) (width 2d):
 *     d/d w[i, m]       = <g, table[index[i], m, :]>
 *     d/d table[e, m]  += w[i, m] * g   for every i with index[i] = e, in the order of i
 *     d/d queries[j]   -= g             for every i with which[i] = j, in the order of i
 * The scatter gives each thread a range of destination rows that it fills in the order of i,
 * so the results do not depend on the number of threads.
 *
 * Compiled on first use by mmgnn.utils.native (its flag sets: -O3 -march=native, fast math,
 * GCC's -mrecip square root for float, OpenMP); float and double versions. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define DEFINE_KERNELS(T, SUFFIX, SQRT)                                                             \
/* dist (n,): the distances; returns 1 when a buffer could not be allocated. */                     \
int mmgnn_candidate_modulus_forward_##SUFFIX(                                                       \
        const T *table, const int64_t *index, const T *w, const T *queries, const int64_t *which,   \
        T *dist, int64_t n, int64_t m, int64_t d, int threads) {                                    \
    int failed = 0;                                                                                 \
    (void)threads;                                                                                  \
    _Pragma("omp parallel num_threads(threads) reduction(|| : failed)")                             \
    {                                                                                               \
        T *c = malloc(sizeof(T) * (size_t)(2 * d));                                                 \
        failed = c == NULL;                                                                         \
        _Pragma("omp for schedule(static)")                                                         \
        for (int64_t i = 0; i < n; ++i) {                                                           \
            if (!c) continue;                                                                       \
            const T *row = table + index[i] * m * 2 * d, *q = queries + which[i] * 2 * d;           \
            for (int64_t k = 0; k < 2 * d; ++k) c[k] = w[i * m] * row[k];                           \
            for (int64_t j = 1; j < m; ++j)                                                         \
                for (int64_t k = 0; k < 2 * d; ++k) c[k] += w[i * m + j] * row[j * 2 * d + k];      \
            T acc = 0;                                                                              \
            for (int64_t k = 0; k < d; ++k) {                                                       \
                const T re = c[k] - q[k], im = c[d + k] - q[d + k];                                 \
                acc += SQRT(re * re + im * im);                                                     \
            }                                                                                       \
            dist[i] = acc;                                                                          \
        }                                                                                           \
        free(c);                                                                                    \
    }                                                                                               \
    return failed;                                                                                  \
}                                                                                                   \
                                                                                                    \
/* g (n, 2d): the gradient of the difference c - q; g_w (n, m), or NULL: the weights'. */           \
int mmgnn_candidate_modulus_backward_##SUFFIX(                                                      \
        const T *table, const int64_t *index, const T *w, const T *queries, const int64_t *which,   \
        const T *grad, T *g, T *g_w, int64_t n, int64_t m, int64_t d, int threads) {                \
    (void)threads;                                                                                  \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                               \
    for (int64_t i = 0; i < n; ++i) {                                                               \
        const T *row = table + index[i] * m * 2 * d, *q = queries + which[i] * 2 * d;               \
        T *gi = g + i * 2 * d;                                                                      \
        for (int64_t k = 0; k < 2 * d; ++k) gi[k] = w[i * m] * row[k];                              \
        for (int64_t j = 1; j < m; ++j)                                                             \
            for (int64_t k = 0; k < 2 * d; ++k) gi[k] += w[i * m + j] * row[j * 2 * d + k];         \
        for (int64_t k = 0; k < 2 * d; ++k) gi[k] -= q[k];                                          \
        for (int64_t k = 0; k < d; ++k) {                                                           \
            const T re = gi[k], im = gi[d + k], mod = SQRT(re * re + im * im);                      \
            const T s = mod > 0 ? grad[i] / mod : 0;                                                \
            gi[k] = s * re;                                                                         \
            gi[d + k] = s * im;                                                                     \
        }                                                                                           \
        if (g_w)                                                                                    \
            for (int64_t j = 0; j < m; ++j) {                                                       \
                T acc = 0;                                                                          \
                for (int64_t k = 0; k < 2 * d; ++k) acc += gi[k] * row[j * 2 * d + k];              \
                g_w[i * m + j] = acc;                                                               \
            }                                                                                       \
    }                                                                                               \
    return 0;                                                                                       \
}                                                                                                   \
                                                                                                    \
/* Adds w[i, m] * g[i] into g_table[index[i], m] (rows (N, m * 2d), or NULL) and -g[i] into         \
 * g_queries[which[i]] ((Q, 2d), or NULL), each destination row in the order of i. */               \
int mmgnn_candidate_modulus_scatter_##SUFFIX(                                                       \
        const int64_t *index, const T *w, const int64_t *which, const T *g, T *g_table,             \
        T *g_queries, int64_t n, int64_t m, int64_t d, int64_t num_rows, int64_t num_queries,       \
        int threads) {                                                                              \
    const int64_t parts = threads > 0 ? threads : 1;                                                \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                               \
    for (int64_t p = 0; p < parts; ++p) {                                                           \
        const int64_t r0 = num_rows * p / parts, r1 = num_rows * (p + 1) / parts;                   \
        const int64_t q0 = num_queries * p / parts, q1 = num_queries * (p + 1) / parts;             \
        for (int64_t i = 0; i < n; ++i) {                                                           \
            const T *gi = g + i * 2 * d;                                                            \
            const int64_t e = index[i], j = which[i];                                               \
            if (g_table && e >= r0 && e < r1)                                                       \
                for (int64_t b = 0; b < m; ++b) {                                                   \
                    T *out = g_table + (e * m + b) * 2 * d;                                         \
                    const T wb = w[i * m + b];                                                      \
                    for (int64_t k = 0; k < 2 * d; ++k) out[k] += wb * gi[k];                       \
                }                                                                                   \
            if (g_queries && j >= q0 && j < q1) {                                                   \
                T *out = g_queries + j * 2 * d;                                                     \
                for (int64_t k = 0; k < 2 * d; ++k) out[k] -= gi[k];                                \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    return 0;                                                                                       \
}

DEFINE_KERNELS(float, f32, sqrtf)
DEFINE_KERNELS(double, f64, sqrt)
