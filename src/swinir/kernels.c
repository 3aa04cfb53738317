/* Element-wise kernels of SwinIR's CPU inference (swinir.kernels loads this file's library with ctypes).
 *
 * Two kernels on contiguous rows, fp32 arithmetic inside, bf16 written rounded to nearest, ties to even:
 *   swinir_softmax_bf16: in-place softmax over each row of bf16 (the attention weights);
 *   swinir_layer_norm: LayerNorm of fp32 or bf16 rows with fp32 weight and bias, written as bf16 (the norm
 *   before the qkv and fc1 linear layers, and the cast to their dtype, in one pass).
 * Each has AVX-512 forms (with and without AVX512-BF16's conversion) and an AVX2 form, chosen once at run
 * time from the CPU's flags, and a portable scalar form that every compiler and CPU takes otherwise. Rows
 * are shared among torch's own OpenMP threads where the caller names that runtime, else among POSIX
 * threads (see "Threads" below); nothing here links an OpenMP runtime.
 * No Python or torch headers: plain C functions on raw pointers.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SWINIR_X86 1
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Scalar forms (any CPU): the reference arithmetic of the vector forms.                          */
/* ---------------------------------------------------------------------------------------------- */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* NaN stays NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(bits >> 16);
}

static void softmax_bf16_scalar(uint16_t *x, int64_t rows, int64_t n, float *tmp) {
    for (int64_t r = 0; r < rows; r++, x += n) {
        float max = -INFINITY, sum = 0.0f;
        for (int64_t j = 0; j < n; j++) max = fmaxf(max, bf16_to_f32(x[j]));
        for (int64_t j = 0; j < n; j++) sum += tmp[j] = expf(bf16_to_f32(x[j]) - max);
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < n; j++) x[j] = f32_to_bf16(tmp[j] * inv);
    }
}

/* Element j of a row of fp32, or of bf16 where `bf16_in`. */
static inline float load_x(const void *x, int bf16_in, int64_t j) {
    return bf16_in ? bf16_to_f32(((const uint16_t *)x)[j]) : ((const float *)x)[j];
}

static inline void layer_norm_scalar(const void *x, int bf16_in, uint16_t *out, int64_t rows, int64_t c,
                                     const float *w, const float *b, float eps) {
    size_t row_bytes = (size_t)c * (bf16_in ? sizeof(uint16_t) : sizeof(float));
    for (int64_t r = 0; r < rows; r++, x = (const char *)x + row_bytes, out += c) {
        float sum = 0.0f, sq = 0.0f;
        for (int64_t j = 0; j < c; j++) sum += load_x(x, bf16_in, j);
        float mean = sum / (float)c;
        for (int64_t j = 0; j < c; j++) sq += (load_x(x, bf16_in, j) - mean) * (load_x(x, bf16_in, j) - mean);
        float rstd = 1.0f / sqrtf(sq / (float)c + eps);
        for (int64_t j = 0; j < c; j++) out[j] = f32_to_bf16((load_x(x, bf16_in, j) - mean) * rstd * w[j] + b[j]);
    }
}

static void layer_norm_f32_scalar(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                                  const float *b, float eps) {
    layer_norm_scalar(x, 0, out, rows, c, w, b, eps);
}

static void layer_norm_bf16_scalar(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                                   const float *b, float eps) {
    layer_norm_scalar(x, 1, out, rows, c, w, b, eps);
}

#ifdef SWINIR_X86
/* exp in the vector forms: 2^(x log2 e) split into 2^n (exponent arithmetic) and 2^f, f in [-1/2, 1/2], by a
 * degree-5 polynomial fitted to 2^f's relative error: at most 1.9e-7 in fp32 arithmetic, 2e4 times finer
 * than bf16's resolution (2^-8) and near fp32's own (6e-8). */
#define LOG2E 1.44269504088896341f
#define EXP2_C1 6.9314700365e-01f
#define EXP2_C2 2.4022242427e-01f
#define EXP2_C3 5.5507335812e-02f
#define EXP2_C4 9.6715129912e-03f
#define EXP2_C5 1.3264727313e-03f

/* ------------------------------------------ AVX-512 ------------------------------------------ */
#if (defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && __GNUC__ >= 10)
#define HAVE_AVX512BF16 1 /* the compiler knows AVX512-BF16's intrinsics */
#define AVX512_BF16 1
#include "kernels_avx512.h"
#undef AVX512_BF16
#endif
#define AVX512_BF16 0
#include "kernels_avx512.h"
#undef AVX512_BF16

/* -------------------------------------------- AVX2 -------------------------------------------- */
#define AVX2 __attribute__((target("avx2,fma")))
#define EXP_LO -87.33654f /* exp(EXP_LO) is fp32's smallest normal: 2^n is built in the exponent field */

/* As the AVX-512 exp; arguments below EXP_LO give 0, NaN stays NaN. */
AVX2 static inline __m256 exp256(__m256 x) {
    __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_NLT_UQ);
    x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_fmsub_ps(x, _mm256_set1_ps(LOG2E), n);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(EXP2_C5), f, _mm256_set1_ps(EXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(scale)), keep);
}

AVX2 static inline __m256 load_bf16_256(const uint16_t *p) {
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

AVX2 static inline __m256i round_bf16_256(__m256 v) { /* the bf16 in each 32-bit lane's low half */
    __m256i bits = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    rounded = _mm256_blendv_epi8(rounded, _mm256_or_si256(bits, _mm256_set1_epi32(0x400000)), nan);
    return _mm256_srli_epi32(rounded, 16);
}

AVX2 static inline void store_bf16_256(uint16_t *p, __m256 v) {
    __m256i h = round_bf16_256(v);
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

AVX2 static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* Rows whose length is not a multiple of 8 finish each pass with a scalar tail. */
AVX2 static void softmax_bf16_avx2(uint16_t *x, int64_t rows, int64_t n, float *tmp) {
    int64_t body = n & ~(int64_t)7;
    for (int64_t r = 0; r < rows; r++, x += n) {
        __m256 vmax = _mm256_set1_ps(-INFINITY), vsum = _mm256_setzero_ps();
        for (int64_t j = 0; j < body; j += 8) vmax = _mm256_max_ps(vmax, load_bf16_256(x + j));
        float max_s = hmax256(vmax);
        for (int64_t j = body; j < n; j++) max_s = fmaxf(max_s, bf16_to_f32(x[j]));
        __m256 max = _mm256_set1_ps(max_s);
        for (int64_t j = 0; j < body; j += 8) {
            __m256 e = exp256(_mm256_sub_ps(load_bf16_256(x + j), max));
            vsum = _mm256_add_ps(vsum, e);
            _mm256_storeu_ps(tmp + j, e);
        }
        float sum = hsum256(vsum);
        for (int64_t j = body; j < n; j++) sum += tmp[j] = expf(bf16_to_f32(x[j]) - max_s);
        float inv_s = 1.0f / sum;
        __m256 inv = _mm256_set1_ps(inv_s);
        for (int64_t j = 0; j < body; j += 8) store_bf16_256(x + j, _mm256_mul_ps(_mm256_loadu_ps(tmp + j), inv));
        for (int64_t j = body; j < n; j++) x[j] = f32_to_bf16(tmp[j] * inv_s);
    }
}

AVX2 static inline __m256 load_row_avx2(const void *x, int64_t j, int bf16_in) {
    return bf16_in ? load_bf16_256((const uint16_t *)x + j) : _mm256_loadu_ps((const float *)x + j);
}

/* Sum of a row's deviations from `mean` (squared when `squares`), two accumulators wide, scalar tail. */
AVX2 static inline float row_sum_avx2(const void *x, int bf16_in, int64_t c, float mean_s, int squares) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, mean = _mm256_set1_ps(mean_s);
    int64_t j = 0;
    for (; j + 16 <= c; j += 16) {
        __m256 d0 = _mm256_sub_ps(load_row_avx2(x, j, bf16_in), mean);
        __m256 d1 = _mm256_sub_ps(load_row_avx2(x, j + 8, bf16_in), mean);
        a0 = squares ? _mm256_fmadd_ps(d0, d0, a0) : _mm256_add_ps(a0, d0);
        a1 = squares ? _mm256_fmadd_ps(d1, d1, a1) : _mm256_add_ps(a1, d1);
    }
    for (; j + 8 <= c; j += 8) {
        __m256 d = _mm256_sub_ps(load_row_avx2(x, j, bf16_in), mean);
        a0 = squares ? _mm256_fmadd_ps(d, d, a0) : _mm256_add_ps(a0, d);
    }
    float sum = hsum256(_mm256_add_ps(a0, a1));
    for (; j < c; j++) {
        float d = load_x(x, bf16_in, j) - mean_s;
        sum += squares ? d * d : d;
    }
    return sum;
}

AVX2 static inline void layer_norm_avx2(const void *x, int bf16_in, uint16_t *out, int64_t rows, int64_t c,
                                        const float *w, const float *b, float eps) {
    int64_t body = c & ~(int64_t)7;
    size_t row_bytes = (size_t)c * (bf16_in ? sizeof(uint16_t) : sizeof(float));
    for (int64_t r = 0; r < rows; r++, x = (const char *)x + row_bytes, out += c) {
        float mean_s = row_sum_avx2(x, bf16_in, c, 0.0f, 0) / (float)c;
        float rstd_s = 1.0f / sqrtf(row_sum_avx2(x, bf16_in, c, mean_s, 1) / (float)c + eps);
        __m256 mean = _mm256_set1_ps(mean_s), rstd = _mm256_set1_ps(rstd_s);
        for (int64_t j = 0; j < body; j += 8) {
            __m256 y = _mm256_mul_ps(_mm256_sub_ps(load_row_avx2(x, j, bf16_in), mean), rstd);
            store_bf16_256(out + j, _mm256_fmadd_ps(y, _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
        }
        for (int64_t j = body; j < c; j++) out[j] = f32_to_bf16((load_x(x, bf16_in, j) - mean_s) * rstd_s * w[j] + b[j]);
    }
}

AVX2 static void layer_norm_f32_avx2(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                                     const float *b, float eps) {
    layer_norm_avx2(x, 0, out, rows, c, w, b, eps);
}

AVX2 static void layer_norm_bf16_avx2(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                                      const float *b, float eps) {
    layer_norm_avx2(x, 1, out, rows, c, w, b, eps);
}
#endif /* SWINIR_X86 */

/* ---------------------------------------------------------------------------------------------- */
/* Dispatch: the widest form this CPU runs, or a narrower one a caller asks for (tests).           */
/* ---------------------------------------------------------------------------------------------- */

typedef struct {
    void (*softmax_bf16)(uint16_t *x, int64_t rows, int64_t n, float *tmp);
    void (*layer_norm_f32)(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                           const float *b, float eps);
    void (*layer_norm_bf16)(const void *x, uint16_t *out, int64_t rows, int64_t c, const float *w,
                            const float *b, float eps);
} Forms;

/* By number, as swinir_kernels_isa reports it: 0 scalar, 1 AVX2, 2 AVX-512, 3 AVX-512 with AVX512-BF16. */
static const Forms FORMS[] = {
    {softmax_bf16_scalar, layer_norm_f32_scalar, layer_norm_bf16_scalar},
#ifdef SWINIR_X86
    {softmax_bf16_avx2, layer_norm_f32_avx2, layer_norm_bf16_avx2},
    {softmax_bf16_avx512, layer_norm_f32_avx512, layer_norm_bf16_avx512},
#ifdef HAVE_AVX512BF16
    {softmax_bf16_avx512bf16, layer_norm_f32_avx512bf16, layer_norm_bf16_avx512bf16},
#endif
#endif
};
enum { FORM_COUNT = sizeof FORMS / sizeof FORMS[0] };

static int supported_form(void) {
    int best = 0;
#ifdef SWINIR_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = 1;
    if (best && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        best = 2;
#ifdef HAVE_AVX512BF16
    if (best == 2 && __builtin_cpu_supports("avx512bf16")) best = 3;
#endif
#endif
    return best < FORM_COUNT ? best : FORM_COUNT - 1;
}

static int active_form = -1;

/* The form in use (see FORMS). A request (>= 0) selects a narrower one, capped at what the CPU runs. */
int swinir_kernels_isa(int request) {
    int best = supported_form();
    if (request >= 0) active_form = request < best ? request : best;
    else if (active_form < 0) active_form = best;
    return active_form;
}

enum { OP_SOFTMAX_BF16, OP_LAYER_NORM_F32, OP_LAYER_NORM_BF16 }; /* by input type */

typedef struct {
    int op, status;
    const Forms *forms;
    void *x;
    uint16_t *out;
    int64_t rows, n;
    const float *w, *b;
    float eps;
} Job;

enum { STACK_ROW = 4096 }; /* softmax rows up to this length keep their exponentials on the stack */

/* One share of the rows, in one thread; status -1 when a long row's buffer could not be allocated. */
static void run_job(Job *job) {
    float stack_tmp[STACK_ROW], *tmp = stack_tmp;
    switch (job->op) {
    case OP_SOFTMAX_BF16:
        if (job->n > STACK_ROW && !(tmp = malloc((size_t)job->n * sizeof *tmp))) {
            job->status = -1;
            return;
        }
        job->forms->softmax_bf16(job->x, job->rows, job->n, tmp);
        if (tmp != stack_tmp) free(tmp);
        break;
    case OP_LAYER_NORM_F32:
        job->forms->layer_norm_f32(job->x, job->out, job->rows, job->n, job->w, job->b, job->eps);
        break;
    default: job->forms->layer_norm_bf16(job->x, job->out, job->rows, job->n, job->w, job->b, job->eps); break;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Threads. Right after one of torch's ops its OpenMP threads still spin, waiting for the next one:   */
/* threads of our own would share the cores with them. So where the caller names torch's OpenMP      */
/* runtime (already loaded: opened with RTLD_NOLOAD, never a second copy), the rows are shared among  */
/* that runtime's threads (GOMP_parallel, the entry point GCC's `#pragma omp parallel` calls, which   */
/* libgomp and LLVM's and Intel's runtimes all export); otherwise among POSIX threads started here.   */
/* ---------------------------------------------------------------------------------------------- */

typedef void (*GompParallel)(void (*fn)(void *), void *data, unsigned threads, unsigned flags);
typedef int (*OmpInt)(void);

static struct {
    GompParallel parallel;
    OmpInt thread_num, num_threads;
} openmp;

/* Use the OpenMP runtime loaded from `path` (NULL: POSIX threads). Returns 1 when its threads are used. */
int swinir_kernels_use_openmp(const char *path) {
    void *lib = path ? dlopen(path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
    void *parallel = lib ? dlsym(lib, "GOMP_parallel") : NULL;
    void *thread_num = lib ? dlsym(lib, "omp_get_thread_num") : NULL;
    void *num_threads = lib ? dlsym(lib, "omp_get_num_threads") : NULL;
    if (!parallel || !thread_num || !num_threads) parallel = thread_num = num_threads = NULL;
    memcpy(&openmp.parallel, &parallel, sizeof parallel); /* object to function pointer, as POSIX allows */
    memcpy(&openmp.thread_num, &thread_num, sizeof thread_num);
    memcpy(&openmp.num_threads, &num_threads, sizeof num_threads);
    return openmp.parallel != NULL;
}

/* Share `t` of `count` of the job's rows. */
static Job share(const Job *job, int t, int count) {
    int bf16_in = job->op == OP_SOFTMAX_BF16 || job->op == OP_LAYER_NORM_BF16;
    size_t elem = bf16_in ? sizeof(uint16_t) : sizeof(float);
    int64_t first = job->rows * t / count, last = job->rows * (t + 1) / count;
    Job part = *job;
    part.x = (char *)job->x + (size_t)(first * job->n) * elem;
    part.out = job->out ? job->out + first * job->n : NULL;
    part.rows = last - first;
    return part;
}

static void openmp_body(void *arg) {
    Job *job = arg, part = share(job, openmp.thread_num(), openmp.num_threads());
    run_job(&part);
    if (part.status) __atomic_store_n(&job->status, part.status, __ATOMIC_RELAXED);
}

static void *run_thread(void *job) {
    run_job(job);
    return NULL;
}

enum { MAX_THREADS = 64 };

/* POSIX threads: this one takes the first share, started ones the rest (one that cannot be started
 * leaves its share to this one). */
static int run_pthreads(Job *job, int threads) {
    Job parts[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0}, status = 0;
    for (int t = 0; t < threads; t++) {
        parts[t] = share(job, t, threads);
        if (t > 0) started[t] = pthread_create(&ids[t], NULL, run_thread, &parts[t]) == 0;
    }
    run_job(&parts[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else run_job(&parts[t]);
    }
    for (int t = 0; t < threads; t++) status |= parts[t].status;
    return status;
}

/* A share below MIN_SHARE elements (some 25 us of work) is not worth a thread: starting and joining a
 * POSIX thread costs about 20 us (measured, 2026-12-06). */
enum { MIN_SHARE = 65536 };

/* The rows shared evenly among up to `threads` threads. Returns 0, or -1 on failure. */
static int run_parallel(Job job, int threads) {
    if (job.rows < 0 || job.n < 1) return -1;
    int64_t most = job.rows * job.n / MIN_SHARE;
    if (threads > most) threads = (int)most;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    job.forms = &FORMS[swinir_kernels_isa(-1)];
    if (threads == 1) {
        run_job(&job);
        return job.status;
    }
    if (!openmp.parallel) return run_pthreads(&job, threads);
    openmp.parallel(openmp_body, &job, (unsigned)threads, 0);
    return job.status;
}

/* The exported functions: 0 when done, -1 when not (bad sizes, no memory); `threads` at most. */
int swinir_softmax_bf16(uint16_t *x, int64_t rows, int64_t n, int threads) {
    Job job = {OP_SOFTMAX_BF16, 0, NULL, x, NULL, rows, n, NULL, NULL, 0.0f};
    return run_parallel(job, threads);
}

/* LayerNorm of rows of fp32 (bf16 where `x_bf16`), weight and bias fp32, written as bf16 to `out`. */
int swinir_layer_norm(const void *x, int x_bf16, uint16_t *out, int64_t rows, int64_t c, const float *w,
                      const float *b, float eps, int threads) {
    Job job = {x_bf16 ? OP_LAYER_NORM_BF16 : OP_LAYER_NORM_F32, 0, NULL, (void *)x, out, rows, c, w, b, eps};
    return run_parallel(job, threads);
}
