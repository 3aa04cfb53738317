/* The AVX-512 kernels of kernels.c, which includes this file twice: with AVX512_BF16 1 (CPUs with
 * AVX512-BF16 round fp32 to bf16 in one instruction, vcvtneps2bf16) and with AVX512_BF16 0 (the same
 * rounding, to nearest even, in integer arithmetic). Everything else is the same code. */

#if AVX512_BF16
#define K(name) name##_avx512bf16
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#else
#define K(name) name##_avx512
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#endif

/* exp(x) = 2^n * 2^f, n = round(x log2 e), f = x log2 e - n in [-1/2, 1/2] by one fma; 2^f by EXP2_POLY.
 * Arguments below -104 give 0 (as expf does from -103.97 on); NaN stays NaN (max returns its second operand). */
TARGET static inline __m512 K(exp)(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT);
    __m512 f = _mm512_fmsub_ps(x, _mm512_set1_ps(LOG2E), n);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(EXP2_C5), f, _mm512_set1_ps(EXP2_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

TARGET static inline __mmask16 K(mask)(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u);
}

TARGET static inline __m512 K(load_bf16)(const uint16_t *p, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

TARGET static inline void K(store_bf16)(uint16_t *p, __m512 v, __mmask16 m) {
#if AVX512_BF16
    _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(v));
#else
    __m512i bits = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(bits, _mm512_set1_epi32(0x400000)));
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16)));
#endif
}

/* Rows of at most 64 (a window of 8 or less): each row in four registers, lanes past its end -inf. */
TARGET static void K(softmax_bf16_short)(uint16_t *x, int64_t rows, int64_t n) {
    const __mmask16 m0 = K(mask)(n), m1 = K(mask)(n - 16), m2 = K(mask)(n - 32), m3 = K(mask)(n - 48);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t r = 0; r < rows; r++, x += n) {
        __m512 v0 = _mm512_mask_blend_ps(m0, ninf, K(load_bf16)(x, m0));
        __m512 v1 = _mm512_mask_blend_ps(m1, ninf, K(load_bf16)(x + 16, m1));
        __m512 v2 = _mm512_mask_blend_ps(m2, ninf, K(load_bf16)(x + 32, m2));
        __m512 v3 = _mm512_mask_blend_ps(m3, ninf, K(load_bf16)(x + 48, m3));
        __m512 max = _mm512_max_ps(_mm512_max_ps(v0, v1), _mm512_max_ps(v2, v3));
        max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        v0 = K(exp)(_mm512_sub_ps(v0, max));
        v1 = K(exp)(_mm512_sub_ps(v1, max));
        v2 = K(exp)(_mm512_sub_ps(v2, max));
        v3 = K(exp)(_mm512_sub_ps(v3, max));
        __m512 sum = _mm512_add_ps(_mm512_add_ps(v0, v1), _mm512_add_ps(v2, v3));
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
        K(store_bf16)(x, _mm512_mul_ps(v0, inv), m0);
        K(store_bf16)(x + 16, _mm512_mul_ps(v1, inv), m1);
        K(store_bf16)(x + 32, _mm512_mul_ps(v2, inv), m2);
        K(store_bf16)(x + 48, _mm512_mul_ps(v3, inv), m3);
    }
}

/* Longer rows: max, then the exponentials into `tmp` (n floats) with their sum, then scaled and rounded. */
TARGET static void K(softmax_bf16)(uint16_t *x, int64_t rows, int64_t n, float *tmp) {
    if (n <= 64) {
        K(softmax_bf16_short)(x, rows, n);
        return;
    }
    for (int64_t r = 0; r < rows; r++, x += n) {
        __m512 vmax = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
        for (int64_t j = 0; j < n; j += 16)
            vmax = _mm512_mask_max_ps(vmax, K(mask)(n - j), vmax, K(load_bf16)(x + j, K(mask)(n - j)));
        __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
        for (int64_t j = 0; j < n; j += 16) {
            __mmask16 m = K(mask)(n - j);
            __m512 e = K(exp)(_mm512_sub_ps(K(load_bf16)(x + j, m), max));
            vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
            _mm512_mask_storeu_ps(tmp + j, m, e);
        }
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
        for (int64_t j = 0; j < n; j += 16) {
            __mmask16 m = K(mask)(n - j);
            K(store_bf16)(x + j, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, tmp + j), inv), m);
        }
    }
}

/* Elements j.. of a row of fp32, or of bf16 where `bf16_in` (a constant in each caller below). */
TARGET static inline __m512 K(load_row)(const void *x, int64_t j, __mmask16 m, int bf16_in) {
    return bf16_in ? K(load_bf16)((const uint16_t *)x + j, m) : _mm512_maskz_loadu_ps(m, (const float *)x + j);
}

/* One term of a row's sum: x - mean, squared when `squares`, added to `acc` (lanes outside `m` add 0). */
TARGET static inline __m512 K(add_term)(__m512 acc, __m512 x, __mmask16 m, __m512 mean, int squares) {
    __m512 v = _mm512_maskz_sub_ps(m, x, mean);
    return squares ? _mm512_fmadd_ps(v, v, acc) : _mm512_add_ps(acc, v);
}

/* Sum of a row's deviations from `mean` (squared when `squares`), four accumulators wide. */
TARGET static inline float K(row_sum)(const void *x, int bf16_in, int64_t c, __m512 mean, int squares) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j + 64 <= c; j += 64) {
        a0 = K(add_term)(a0, K(load_row)(x, j, 0xffff, bf16_in), 0xffff, mean, squares);
        a1 = K(add_term)(a1, K(load_row)(x, j + 16, 0xffff, bf16_in), 0xffff, mean, squares);
        a2 = K(add_term)(a2, K(load_row)(x, j + 32, 0xffff, bf16_in), 0xffff, mean, squares);
        a3 = K(add_term)(a3, K(load_row)(x, j + 48, 0xffff, bf16_in), 0xffff, mean, squares);
    }
    for (; j < c; j += 16) a0 = K(add_term)(a0, K(load_row)(x, j, K(mask)(c - j), bf16_in), K(mask)(c - j), mean, squares);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* Two passes for the statistics (mean, then the mean squared deviation: no cancellation), one to write. */
TARGET static inline void K(layer_norm)(const void *x, int bf16_in, uint16_t *out, int64_t rows, int64_t c,
                                        const float *w, const float *b, float eps) {
    size_t row_bytes = (size_t)c * (bf16_in ? sizeof(uint16_t) : sizeof(float));
    for (int64_t r = 0; r < rows; r++, x = (const char *)x + row_bytes, out += c) {
        __m512 mean = _mm512_set1_ps(K(row_sum)(x, bf16_in, c, _mm512_setzero_ps(), 0) / (float)c);
        __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(K(row_sum)(x, bf16_in, c, mean, 1) / (float)c + eps));
        for (int64_t j = 0; j < c; j += 16) {
            __mmask16 m = K(mask)(c - j);
            __m512 y = _mm512_mul_ps(_mm512_sub_ps(K(load_row)(x, j, m, bf16_in), mean), rstd);
            y = _mm512_fmadd_ps(y, _mm512_maskz_loadu_ps(m, w + j), _mm512_maskz_loadu_ps(m, b + j));
            K(store_bf16)(out + j, y, m);
        }
    }
}

TARGET static void K(layer_norm_f32)(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                                     const float *b, float eps) {
    K(layer_norm)(x, 0, out, rows, c, w, b, eps);
}

TARGET static void K(layer_norm_bf16)(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                                      const float *b, float eps) {
    K(layer_norm)(x, 1, out, rows, c, w, b, eps);
}

#undef K
#undef TARGET
