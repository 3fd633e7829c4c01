/* edgelr._kernels: the two passes of a fit over float32 rows, each reading a row once.
 *
 * Why C: numpy and torch run a block's forward product, the loss's functions and the
 * gradient's product as separate sweeps, each with its own dispatch; on 1M x 100 float32
 * a gradient pass took ~50 ms and the moments' pass ~75 ms where one read of the rows
 * takes ~17 ms. Here each row is read from memory once and used while it is in the CPU's
 * cache, and the loss's functions run as vector code (20-35 ms and 17-30 ms, two threads,
 * on the 2-core machine of docs/benchmarks.md). Optional: setup.py builds it where a C compiler is, and edgelr.kernels falls back
 * to the numpy/torch passes where it is not (the results agree to float rounding).
 *
 * Both functions take numpy arrays through the buffer protocol (no numpy headers needed
 * to build), accept rows at any row stride (a subsample's every k-th row is a view) and
 * release the GIL, so blocks can be summed on several threads at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Each pass is compiled twice: for the build's baseline CPU, and (GCC or clang on x86-64
 * Linux) for CPUs with AVX2 and FMA, picked at run time. INLINE puts the helpers into each copy. */
#define INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define WIDE_TARGET __attribute__((target("avx2,fma")))
static int wide_cpu(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define WIDE_TARGET
static int wide_cpu(void) { return 0; }
#endif

#define CHUNK 256 /* rows whose logits are held at once: their rows are still in cache for the gradient */
/* Rows ahead whose lines the logits' loop asks the memory for: 8 made the pass ~10% faster than the
 * hardware's own prefetch alone (18.5 against 21 ms on 1M x 100, two threads, warm medians of builds taking
 * turns in one process; 16 gained nothing, 32 less). */
#define PREFETCH_ROWS 8

typedef struct {
    const char *data;
    Py_ssize_t rows, cols, row_stride; /* row_stride in elements */
} Rows;

/* ---- argument checking --------------------------------------------------------------- */

static int kind_ok(const Py_buffer *v, char kind, Py_ssize_t itemsize) {
    const char *f = v->format ? v->format : "B";
    size_t n = strlen(f);
    if (v->itemsize != itemsize || n == 0) return 0;
    char last = f[n - 1];
    if (kind == 'f') return last == 'f';
    if (kind == 'd') return last == 'd';
    return last == 'l' || last == 'q'; /* 'i': a 64-bit signed integer */
}

/* Borrow obj's buffer as ndim-D elements of one kind; with a 2-D one the last axis must be
 * contiguous. Sets a TypeError/ValueError and returns 0 on anything else. */
static int take(PyObject *obj, Py_buffer *v, int ndim, char kind, Py_ssize_t itemsize, int writable, const char *name) {
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, v, flags) != 0) return 0;
    /* A 2-D array's rows must be contiguous, but for one of a single column, whose column stride is never used. */
    const int rows_apart = ndim == 2 && v->shape[1] > 1 && v->strides[1] != itemsize;
    if (v->ndim != ndim || !kind_ok(v, kind, itemsize) || v->strides[0] % itemsize != 0 || rows_apart) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %d-D array of kind '%c' (%zd bytes) with contiguous rows",
                     name, ndim, kind, itemsize);
        PyBuffer_Release(v);
        return 0;
    }
    return 1;
}

static Py_ssize_t stride_of(const Py_buffer *v, int axis) { return v->strides[axis] / v->itemsize; }

/* ---- the binary model's gradient pass ------------------------------------------------ */

/* Eight floats in one vector register (two on a CPU with 16-byte ones): GCC's and
 * clang's vector extension, lowered to whatever SIMD the target has. */
typedef float v8f __attribute__((vector_size(32)));

INLINE v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v); /* an unaligned load */
    return v;
}

INLINE float sum8(v8f v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* z[r] = x_r . w for four rows at once: four independent chains of vector sums, so the
 * adds of one row do not wait on each other. */
INLINE void dot4(const float *x0, const float *x1, const float *x2, const float *x3, const float *w,
                        Py_ssize_t d, float *z) {
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    Py_ssize_t j = 0;
    for (; j + 8 <= d; j += 8) {
        const v8f wv = load8(w + j);
        a0 += load8(x0 + j) * wv;
        a1 += load8(x1 + j) * wv;
        a2 += load8(x2 + j) * wv;
        a3 += load8(x3 + j) * wv;
    }
    float s0 = sum8(a0), s1 = sum8(a1), s2 = sum8(a2), s3 = sum8(a3);
    for (; j < d; j++) {
        s0 += x0[j] * w[j];
        s1 += x1[j] * w[j];
        s2 += x2[j] * w[j];
        s3 += x3[j] * w[j];
    }
    z[0] = s0, z[1] = s1, z[2] = s2, z[3] = s3;
}

/* The row r of a chunk, or (past its last row) the last one again: groups of four need no tail loop. */
INLINE const float *row(const float *base, Py_ssize_t r, Py_ssize_t n, Py_ssize_t stride) {
    return base + (r < n ? r : n - 1) * stride;
}

/* exp(x) for x <= 0 in float32, within 1.1e-7 relative of the exact value (10^8 points of
 * [-87, 0] against libm's double exp when written; tests/test_kernels.py checks the sums), in
 * operations a vector unit has: x = k ln 2 + r with |r| <= ln 2 / 2, exp(r) by its Taylor
 * series to r^7 (the rest < 5e-9), 2^k from the exponent's bits. Below -87 it gives exp(-87),
 * 1.6e-38, near a float32's smallest normal value; the loss adds such terms on their own. */
INLINE float exp_nonpositive(float x) {
    const float clamped = x >= -87.0f ? x : -87.0f; /* a NaN too: k stays an integer (no undefined conversion) */
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float k = (clamped * 1.44269504f + shifter) - shifter;
    const float r = (clamped - k * 0.693145752f) - k * 1.42860677e-6f; /* ln 2 split: k * hi is exact */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int bits = ((int)k + 127) << 23; /* 2^k, k in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x != x ? x : p * scale; /* a NaN logit (a diverged fit) gives a NaN loss */
}

/* out = [sum of losses, sum of g x (d values), sum of g], g = dloss/dz per row (times its
 * weight), over rows X with labels y (0/1) and logits z = x.w + b. The logits' product and
 * the gradient's run in float32 (as BLAS would), and so do each row's loss terms and g
 * (~1e-7 relative, as numpy's float32 pass); every sum over rows is taken in float64, the
 * gradient's as float32 partial sums over CHUNK rows. */
INLINE void binary_pass(Rows X, const float *w, double b, const long long *y, Py_ssize_t y_stride,
                            const double *weight, Py_ssize_t w_stride, int grad, double *restrict out,
                            float *restrict acc) {
    const Py_ssize_t d = X.cols;
    float z[CHUNK + 3], g[CHUNK + 3], t[CHUNK], sg[CHUNK], ex[CHUNK];
    double loss = 0.0, gsum = 0.0;
    memset(out, 0, (size_t)(d + 2) * sizeof(double));
    for (Py_ssize_t start = 0; start < X.rows; start += CHUNK) {
        const Py_ssize_t n = X.rows - start < CHUNK ? X.rows - start : CHUNK;
        const float *base = (const float *)X.data + start * X.row_stride;
        for (Py_ssize_t i = 0; i < n; i += 4) {
            if (i + PREFETCH_ROWS + 4 <= n) /* the group PREFETCH_ROWS rows on, a cache line at a time */
                for (int q = 0; q < 4; q++)
                    for (Py_ssize_t k = 0; k < d; k += 16)
                        __builtin_prefetch(base + (i + PREFETCH_ROWS + q) * X.row_stride + k);
            dot4(row(base, i, n, X.row_stride), row(base, i + 1, n, X.row_stride), row(base, i + 2, n, X.row_stride),
                 row(base, i + 3, n, X.row_stride), w, d, z + i);
        }
        /* t = z for class 0, -z for class 1: loss softplus(t) = max(t, 0) + log(1 + e), e = exp(-|t|),
         * and dloss/dz = sign * sigmoid(t). t, e and g in float32, as the products (~1e-7 relative a
         * row), in loops without branches that the compiler turns into vector code: a row's class and
         * the sign of t are a coin toss to a branch predictor, and libm's exp and log1p, one call a
         * row, took a third of the pass. The loss is summed in float64; unweighted, a chunk's log(1 + e)
         * terms as the log of their product (at most 2^CHUNK, far inside a double): one log a chunk. */
        for (Py_ssize_t i = 0; i < n; i++) {
            sg[i] = 1.0f - 2.0f * (float)(y[(start + i) * y_stride] != 0);
            t[i] = (float)((double)z[i] + b) * sg[i];
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            const float e = exp_nonpositive(-fabsf(t[i])), r = 1.0f / (1.0f + e);
            ex[i] = e;
            const float odds = t[i] >= 0.0f ? 1.0f : e; /* a select of two values, not of two products */
            g[i] = sg[i] * (odds * r);
        }
        double product = 1.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const double above = t[i] > 0.0f ? (double)t[i] : 0.0;
            if (weight) {
                const double wi = weight[(start + i) * w_stride];
                loss += wi * (above + log1p((double)ex[i]));
                g[i] = (float)(wi * g[i]);
            } else {
                /* log(1 + e) = e to 3e-8 relative below 2^-24, where 1 + e would round e away: summed as is */
                const int tiny = ex[i] < 0x1p-24f;
                loss += above + (tiny ? (double)ex[i] : 0.0);
                product *= tiny ? 1.0 : 1.0 + (double)ex[i];
            }
            gsum += g[i];
        }
        loss += log(product);
        if (!grad) continue;
        memset(acc, 0, (size_t)d * sizeof(float));
        for (Py_ssize_t i = n; i % 4; i++) g[i] = 0.0f; /* the group past the last row adds nothing */
        for (Py_ssize_t i = 0; i < n; i += 4) {
            const float *restrict x0 = row(base, i, n, X.row_stride), *restrict x1 = row(base, i + 1, n, X.row_stride),
                                  *restrict x2 = row(base, i + 2, n, X.row_stride),
                                  *restrict x3 = row(base, i + 3, n, X.row_stride);
            const float g0 = g[i], g1 = g[i + 1], g2 = g[i + 2], g3 = g[i + 3];
            Py_ssize_t j = 0;
            for (; j + 8 <= d; j += 8) {
                const v8f sum = load8(acc + j) + ((g0 * load8(x0 + j) + g1 * load8(x1 + j)) +
                                                  (g2 * load8(x2 + j) + g3 * load8(x3 + j)));
                memcpy(acc + j, &sum, sizeof sum);
            }
            for (; j < d; j++) acc[j] += (g0 * x0[j] + g1 * x1[j]) + (g2 * x2[j] + g3 * x3[j]);
        }
        for (Py_ssize_t j = 0; j < d; j++) out[1 + j] += acc[j];
    }
    out[0] = loss;
    out[d + 1] = gsum;
}

typedef void (*BinaryPass)(Rows, const float *, double, const long long *, Py_ssize_t, const double *, Py_ssize_t,
                           int, double *, float *);
WIDE_TARGET static void binary_wide(Rows X, const float *w, double b, const long long *y, Py_ssize_t ys,
                                    const double *weight, Py_ssize_t ws, int grad, double *out, float *acc) {
    binary_pass(X, w, b, y, ys, weight, ws, grad, out, acc);
}
static void binary_base(Rows X, const float *w, double b, const long long *y, Py_ssize_t ys, const double *weight,
                        Py_ssize_t ws, int grad, double *out, float *acc) {
    binary_pass(X, w, b, y, ys, weight, ws, grad, out, acc);
}
static BinaryPass binary_impl = binary_base;

static PyObject *binary_sums(PyObject *self, PyObject *args) {
    PyObject *xo, *wo, *yo, *weo, *oo;
    double b;
    int grad;
    if (!PyArg_ParseTuple(args, "OOdOOOp", &xo, &wo, &b, &yo, &weo, &oo, &grad)) return NULL;
    Py_buffer xv, wv, yv, wev = {0}, ov;
    if (!take(xo, &xv, 2, 'f', 4, 0, "X")) return NULL;
    if (!take(wo, &wv, 1, 'f', 4, 0, "w")) goto fail_x;
    if (!take(yo, &yv, 1, 'i', 8, 0, "y")) goto fail_w;
    int weighted = weo != Py_None;
    if (weighted && !take(weo, &wev, 1, 'd', 8, 0, "weight")) goto fail_y;
    if (!take(oo, &ov, 1, 'd', 8, 1, "out")) goto fail_we;
    Rows X = {xv.buf, xv.shape[0], xv.shape[1], stride_of(&xv, 0)};
    if (wv.shape[0] != X.cols || stride_of(&wv, 0) != 1 || yv.shape[0] != X.rows ||
        (weighted && wev.shape[0] != X.rows) || ov.shape[0] != X.cols + 2 || stride_of(&ov, 0) != 1) {
        PyErr_SetString(PyExc_ValueError, "binary_sums: X (m, d), w (d,), y (m,), weight (m,), out (d + 2,)");
        goto fail_out;
    }
    float *acc = malloc((size_t)(X.cols > 0 ? X.cols : 1) * sizeof(float));
    if (!acc) {
        PyErr_NoMemory();
        goto fail_out;
    }
    Py_BEGIN_ALLOW_THREADS
    binary_impl(X, wv.buf, b, yv.buf, stride_of(&yv, 0), weighted ? wev.buf : NULL,
                weighted ? stride_of(&wev, 0) : 0, grad, ov.buf, acc);
    Py_END_ALLOW_THREADS
    free(acc);
    PyBuffer_Release(&ov);
    if (weighted) PyBuffer_Release(&wev);
    PyBuffer_Release(&yv);
    PyBuffer_Release(&wv);
    PyBuffer_Release(&xv);
    Py_RETURN_NONE;
fail_out:
    PyBuffer_Release(&ov);
fail_we:
    if (weighted) PyBuffer_Release(&wev);
fail_y:
    PyBuffer_Release(&yv);
fail_w:
    PyBuffer_Release(&wv);
fail_x:
    PyBuffer_Release(&xv);
    return NULL;
}

/* ---- the columns' moments and ranges ------------------------------------------------- */

#define MOMENT_ROWS 64 /* rows summed in float32 before their sums are added in float64 */

INLINE float min2(float a, float b) { return a < b ? a : b; }
INLINE float max2(float a, float b) { return a > b ? a : b; }

/* out = [sum of x - shift, sum of (x - shift)^2, min of x, max of x] (4 rows of d) over
 * the rows; a NaN reaches all four of its column's, as numpy's reductions give. Four rows
 * at a time: each partial sum is loaded and stored once per four rows. The extremes skip
 * NaNs (a vector min or max); a column's sum of squares is NaN exactly when it holds one
 * (squares of infinities and of overflowing values are +inf), and sets them at the end. */
INLINE void moments_pass(Rows X, const float *restrict shift, double *restrict out, float *restrict scratch) {
    const Py_ssize_t d = X.cols;
    double *s1 = out, *s2 = out + d, *low = out + 2 * d, *high = out + 3 * d;
    float *restrict p1 = scratch, *restrict p2 = scratch + d, *restrict lo = scratch + 2 * d,
                    *restrict hi = scratch + 3 * d;
    for (Py_ssize_t j = 0; j < d; j++) {
        s1[j] = s2[j] = 0.0;
        lo[j] = INFINITY;
        hi[j] = -INFINITY;
    }
    for (Py_ssize_t start = 0; start < X.rows; start += MOMENT_ROWS) {
        const Py_ssize_t n = X.rows - start < MOMENT_ROWS ? X.rows - start : MOMENT_ROWS;
        const float *base = (const float *)X.data + start * X.row_stride;
        memset(p1, 0, 2 * (size_t)d * sizeof(float));
        Py_ssize_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const float *restrict x0 = base + i * X.row_stride, *restrict x1 = x0 + X.row_stride,
                                  *restrict x2 = x1 + X.row_stride, *restrict x3 = x2 + X.row_stride;
            for (Py_ssize_t j = 0; j < d; j++) {
                const float e0 = x0[j] - shift[j], e1 = x1[j] - shift[j], e2 = x2[j] - shift[j],
                            e3 = x3[j] - shift[j];
                p1[j] += (e0 + e1) + (e2 + e3);
                p2[j] += (e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3);
                lo[j] = min2(min2(min2(x0[j], x1[j]), min2(x2[j], x3[j])), lo[j]);
                hi[j] = max2(max2(max2(x0[j], x1[j]), max2(x2[j], x3[j])), hi[j]);
            }
        }
        for (; i < n; i++) {
            const float *restrict x = base + i * X.row_stride;
            for (Py_ssize_t j = 0; j < d; j++) {
                const float e = x[j] - shift[j];
                p1[j] += e;
                p2[j] += e * e;
                lo[j] = min2(x[j], lo[j]);
                hi[j] = max2(x[j], hi[j]);
            }
        }
        for (Py_ssize_t j = 0; j < d; j++) {
            s1[j] += p1[j];
            s2[j] += p2[j];
        }
    }
    for (Py_ssize_t j = 0; j < d; j++) {
        low[j] = isnan(s2[j]) ? NAN : lo[j];
        high[j] = isnan(s2[j]) ? NAN : hi[j];
    }
}

typedef void (*MomentsPass)(Rows, const float *, double *, float *);
WIDE_TARGET static void moments_wide(Rows X, const float *shift, double *out, float *scratch) {
    moments_pass(X, shift, out, scratch);
}
static void moments_base(Rows X, const float *shift, double *out, float *scratch) {
    moments_pass(X, shift, out, scratch);
}
static MomentsPass moments_impl = moments_base;

static PyObject *moment_sums(PyObject *self, PyObject *args) {
    PyObject *xo, *so, *oo;
    if (!PyArg_ParseTuple(args, "OOO", &xo, &so, &oo)) return NULL;
    Py_buffer xv, sv, ov;
    if (!take(xo, &xv, 2, 'f', 4, 0, "X")) return NULL;
    if (!take(so, &sv, 1, 'f', 4, 0, "shift")) goto fail_x;
    if (!take(oo, &ov, 2, 'd', 8, 1, "out")) goto fail_s;
    Rows X = {xv.buf, xv.shape[0], xv.shape[1], stride_of(&xv, 0)};
    if (sv.shape[0] != X.cols || stride_of(&sv, 0) != 1 || ov.shape[0] != 4 || ov.shape[1] != X.cols ||
        stride_of(&ov, 0) != X.cols) {
        PyErr_SetString(PyExc_ValueError, "moment_sums: X (m, d), shift (d,), out (4, d) C-ordered");
        goto fail_o;
    }
    size_t d = (size_t)(X.cols > 0 ? X.cols : 1);
    float *scratch = malloc(4 * d * sizeof(float));
    if (!scratch) {
        PyErr_NoMemory();
        goto fail_o;
    }
    Py_BEGIN_ALLOW_THREADS
    moments_impl(X, sv.buf, ov.buf, scratch);
    Py_END_ALLOW_THREADS
    free(scratch);
    PyBuffer_Release(&ov);
    PyBuffer_Release(&sv);
    PyBuffer_Release(&xv);
    Py_RETURN_NONE;
fail_o:
    PyBuffer_Release(&ov);
fail_s:
    PyBuffer_Release(&sv);
fail_x:
    PyBuffer_Release(&xv);
    return NULL;
}

static PyMethodDef methods[] = {
    {"binary_sums", binary_sums, METH_VARARGS,
     "binary_sums(X, w, b, y, weight, out, grad): a binary model's loss and gradient sums over rows X, into out."},
    {"moment_sums", moment_sums, METH_VARARGS,
     "moment_sums(X, shift, out): per column sum of X - shift, of its square, min and max of X, into out (4, d)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "edgelr's compiled passes over rows.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (wide_cpu()) {
        binary_impl = binary_wide;
        moments_impl = moments_wide;
    }
    return PyModule_Create(&module);
}
