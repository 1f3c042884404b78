// block_transform.c: block-diagonal orthogonal transforms of float64 matrices
// for wasm32 + 128-bit SIMD (f64x2), the kernels behind Engine.blockTransform
// (src/engine/cpu/block_transform.ts).
//
// A transform T of size b acts block-diagonally on a dimension that b
// divides: on the right, `X ← X · diag(T, …, T)` mixes each run of b
// consecutive values of a row; on the left, `X ← diag(T, …, T) · X` mixes
// each run of b consecutive rows. The host hands the left-hand kernels one
// column strip of b rows at a time (copied contiguous, `w` wide), so their
// working set stays in cache and memory holds one strip, not the weight.
//
// Two routes:
// - factored Hadamard: T = scale · (S_m ⊗ H_K) · diag(signs), S_m
//   Sylvester's matrix (the fast Walsh–Hadamard butterflies, m·log₂m adds per
//   K-chunk), H_K a dense ±1 block (K = 1 for powers of two), O(b (log m + K));
// - dense: T given as a b × b float64 matrix, O(b²) per run.
//
// Bit-for-bit the same as the float64 TypeScript reference
// (src/transform/block_apply.ts): every output is computed with the same
// operations in the same order (sums from +0 upwards in index order, no fused
// multiply-add: built without relaxed SIMD and with -ffp-contract=off). SIMD
// only computes independent outputs side by side.
//
// Like gemm.c the module has no data and never touches the C stack.

#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

// The first 32 bits of this file's SHA-256, passed in by build_wasm.ts and checked by the loader
// against _kernel_stamps.ts (see gemm.c).
#ifndef LLMC_KERNEL_STAMP
#error "LLMC_KERNEL_STAMP is not defined: build with `deno task build-wasm`"
#endif
EXPORT(block_transform_stamp) uint32_t block_transform_stamp(void) { return LLMC_KERNEL_STAMP; }

typedef v128_t f64x2;

static inline f64x2 ld(const double *p) { return wasm_v128_load(p); }
static inline void st(double *p, f64x2 v) { wasm_v128_store(p, v); }

// x[p..p+len) ± x[q..q+len): one Walsh–Hadamard butterfly stage on two runs.
static void butterfly(double *p, double *q, int len) {
  int j = 0;
  for (; j + 2 <= len; j += 2) {
    f64x2 u = ld(p + j);
    f64x2 v = ld(q + j);
    st(p + j, wasm_f64x2_add(u, v));
    st(q + j, wasm_f64x2_sub(u, v));
  }
  for (; j < len; j++) {
    double u = p[j];
    double v = q[j];
    p[j] = u + v;
    q[j] = u - v;
  }
}

// x[0..n) *= f (a scalar).
static void scale_run(double *x, int n, double f) {
  f64x2 fv = wasm_f64x2_splat(f);
  int i = 0;
  for (; i + 2 <= n; i += 2) st(x + i, wasm_f64x2_mul(ld(x + i), fv));
  for (; i < n; i++) x[i] *= f;
}

// x[i] *= s[i] · f, i < n (the product s[i]·f rounded first, as the reference does).
static void scale_signed(double *x, const double *s, int n, double f) {
  f64x2 fv = wasm_f64x2_splat(f);
  int i = 0;
  for (; i + 2 <= n; i += 2) {
    st(x + i, wasm_f64x2_mul(ld(x + i), wasm_f64x2_mul(ld(s + i), fv)));
  }
  for (; i < n; i++) x[i] *= s[i] * f;
}

// Right, factored: `runs` runs of n = m·k values at x, each v ← v·T (or v·Tᵀ).
// base: H_K row-major as doubles (unused when k = 1); tmp: k doubles.
EXPORT(fwht_right) void fwht_right(double *x, int runs, int m, int k, const double *base, const double *signs,
                double scale, int transpose, double *tmp) {
  const int n = m * k;
  for (int r = 0; r < runs; r++) {
    double *v = x + (int64_t)r * n;
    if (transpose) scale_signed(v, signs, n, 1.0);
    if (k > 1) {
      // Each K-chunk times H_K (or H_Kᵀ): tmp[j] = Σ_i v[i]·H(i, j), i ascending.
      // Eight outputs at a time in four independent sums (one sum would wait
      // on each add's latency), then pairs, then single outputs.
      for (int c = 0; c < n; c += k) {
        double *chunk = v + c;
        int j = 0;
        for (; j + 8 <= k; j += 8) {
          f64x2 s0 = wasm_f64x2_splat(0.0), s1 = s0, s2 = s0, s3 = s0;
          for (int i = 0; i < k; i++) {
            const f64x2 x = wasm_f64x2_splat(chunk[i]);
            f64x2 h0, h1, h2, h3;
            if (transpose) {
              const double *col = base + j * k + i;
              h0 = wasm_f64x2_make(col[0], col[k]);
              h1 = wasm_f64x2_make(col[2 * k], col[3 * k]);
              h2 = wasm_f64x2_make(col[4 * k], col[5 * k]);
              h3 = wasm_f64x2_make(col[6 * k], col[7 * k]);
            } else {
              const double *row = base + i * k + j;
              h0 = ld(row), h1 = ld(row + 2), h2 = ld(row + 4), h3 = ld(row + 6);
            }
            s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(x, h0));
            s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(x, h1));
            s2 = wasm_f64x2_add(s2, wasm_f64x2_mul(x, h2));
            s3 = wasm_f64x2_add(s3, wasm_f64x2_mul(x, h3));
          }
          st(tmp + j, s0), st(tmp + j + 2, s1), st(tmp + j + 4, s2), st(tmp + j + 6, s3);
        }
        for (; j + 2 <= k; j += 2) {
          f64x2 s = wasm_f64x2_splat(0.0);
          for (int i = 0; i < k; i++) {
            f64x2 h = transpose
              ? wasm_f64x2_make(base[j * k + i], base[(j + 1) * k + i])
              : ld(base + i * k + j);
            s = wasm_f64x2_add(s, wasm_f64x2_mul(wasm_f64x2_splat(chunk[i]), h));
          }
          st(tmp + j, s);
        }
        for (; j < k; j++) {
          double s = 0.0;
          for (int i = 0; i < k; i++) s += chunk[i] * (transpose ? base[j * k + i] : base[i * k + j]);
          tmp[j] = s;
        }
        for (int i = 0; i < k; i++) chunk[i] = tmp[i];
      }
    }
    // S_m (symmetric) across the chunks: stage h adds and subtracts runs of h·k.
    for (int h = 1; h < m; h *= 2) {
      const int len = h * k;
      for (int i = 0; i < m; i += 2 * h) butterfly(v + i * k, v + (i + h) * k, len);
    }
    if (transpose) scale_run(v, n, scale);
    else scale_signed(v, signs, n, scale);
  }
}

// Left, factored: a strip of b = m·k rows of w values (row-major, contiguous),
// X ← T·X (or Tᵀ·X): signs scale rows, H_K mixes the rows of each run of K,
// the butterflies add and subtract whole rows. tmp: k·w doubles.
EXPORT(fwht_left) void fwht_left(double *x, int m, int k, int w, const double *base, const double *signs,
               double scale, int transpose, double *tmp) {
  const int b = m * k;
  // T·X = scale·(S ⊗ H_K)·D·X; Tᵀ·X = D·(S ⊗ H_Kᵀ)·X·scale.
  if (!transpose) {
    for (int i = 0; i < b; i++) scale_run(x + (int64_t)i * w, w, signs[i]);
  }
  if (k > 1) {
    // Output row i of a chunk: t = Σ_j H(i, j)·x_j, j ascending from +0. Blocks
    // of eight columns of two output rows stay in registers (sixteen sums,
    // each x_j load serving both rows); the columns past them and a last odd
    // row accumulate through tmp as the whole-row loop does.
    const int w8 = w / 8 * 8;
    for (int chunk = 0; chunk < b; chunk += k) {
      const double *xc = x + (int64_t)chunk * w;
      for (int i = 0; i < k * w; i++) tmp[i] = 0.0;
      int i = 0;
      for (; i + 2 <= k; i += 2) {
        double *t0 = tmp + i * w;
        double *t1 = t0 + w;
        for (int c = 0; c < w8; c += 8) {
          f64x2 a0 = wasm_f64x2_splat(0.0), a1 = a0, a2 = a0, a3 = a0;
          f64x2 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
          for (int j = 0; j < k; j++) {
            const f64x2 h0 = wasm_f64x2_splat(transpose ? base[j * k + i] : base[i * k + j]);
            const f64x2 h1 =
                wasm_f64x2_splat(transpose ? base[j * k + i + 1] : base[(i + 1) * k + j]);
            const double *src = xc + (int64_t)j * w + c;
            const f64x2 x0 = ld(src), x1 = ld(src + 2), x2 = ld(src + 4), x3 = ld(src + 6);
            a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(h0, x0));
            a1 = wasm_f64x2_add(a1, wasm_f64x2_mul(h0, x1));
            a2 = wasm_f64x2_add(a2, wasm_f64x2_mul(h0, x2));
            a3 = wasm_f64x2_add(a3, wasm_f64x2_mul(h0, x3));
            b0 = wasm_f64x2_add(b0, wasm_f64x2_mul(h1, x0));
            b1 = wasm_f64x2_add(b1, wasm_f64x2_mul(h1, x1));
            b2 = wasm_f64x2_add(b2, wasm_f64x2_mul(h1, x2));
            b3 = wasm_f64x2_add(b3, wasm_f64x2_mul(h1, x3));
          }
          st(t0 + c, a0), st(t0 + c + 2, a1), st(t0 + c + 4, a2), st(t0 + c + 6, a3);
          st(t1 + c, b0), st(t1 + c + 2, b1), st(t1 + c + 4, b2), st(t1 + c + 6, b3);
        }
      }
      for (int r = 0; r < k; r++) {
        // Row r's columns from `from` on: w8 for the row pairs above, 0 for a last odd row.
        const int from = r < i ? w8 : 0;
        if (from == w) continue;
        double *t = tmp + r * w;
        for (int j = 0; j < k; j++) {
          const double h = transpose ? base[j * k + r] : base[r * k + j];
          const double *src = xc + (int64_t)j * w;
          f64x2 hv = wasm_f64x2_splat(h);
          int c = from;
          for (; c + 2 <= w; c += 2) st(t + c, wasm_f64x2_add(ld(t + c), wasm_f64x2_mul(hv, ld(src + c))));
          for (; c < w; c++) t[c] += h * src[c];
        }
      }
      double *dst = x + (int64_t)chunk * w;
      for (int i = 0; i < k * w; i++) dst[i] = tmp[i];
    }
  }
  for (int h = 1; h < m; h *= 2) {
    for (int i = 0; i < m; i += 2 * h) {
      for (int a = i; a < i + h; a++) {
        for (int j = 0; j < k; j++) {
          butterfly(x + (int64_t)(a * k + j) * w, x + (int64_t)((a + h) * k + j) * w, w);
        }
      }
    }
  }
  for (int i = 0; i < b; i++) {
    scale_run(x + (int64_t)i * w, w, transpose ? signs[i] * scale : scale);
  }
}

// Right, dense: y[r, c0 + j] = Σ_i x[r, c0 + i]·M(i, j) for `rows` rows of
// `cols` values (b divides cols), i ascending. mp: M packed in panels of 8
// columns, panel p at mp + p·b·8 holding M(i, 8p + t) at [i·8 + t] (zero past
// b). Two rows share each panel load; eight f64x2 accumulators.
EXPORT(dense_right) void dense_right(const double *x, double *y, int rows, int cols, int b, const double *mp) {
  const int panels = (b + 7) / 8;
  for (int c0 = 0; c0 < cols; c0 += b) {
    for (int p = 0; p < panels; p++) {
      const double *panel = mp + (int64_t)p * b * 8;
      const int width = b - p * 8 < 8 ? b - p * 8 : 8;
      int r = 0;
      for (; r + 2 <= rows; r += 2) {
        const double *x0 = x + (int64_t)r * cols + c0;
        const double *x1 = x0 + cols;
        f64x2 a0 = wasm_f64x2_splat(0.0), a1 = a0, a2 = a0, a3 = a0;
        f64x2 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int i = 0; i < b; i++) {
          const double *q = panel + i * 8;
          f64x2 m0 = ld(q), m1 = ld(q + 2), m2 = ld(q + 4), m3 = ld(q + 6);
          f64x2 u = wasm_f64x2_splat(x0[i]);
          f64x2 v = wasm_f64x2_splat(x1[i]);
          a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(u, m0));
          a1 = wasm_f64x2_add(a1, wasm_f64x2_mul(u, m1));
          a2 = wasm_f64x2_add(a2, wasm_f64x2_mul(u, m2));
          a3 = wasm_f64x2_add(a3, wasm_f64x2_mul(u, m3));
          b0 = wasm_f64x2_add(b0, wasm_f64x2_mul(v, m0));
          b1 = wasm_f64x2_add(b1, wasm_f64x2_mul(v, m1));
          b2 = wasm_f64x2_add(b2, wasm_f64x2_mul(v, m2));
          b3 = wasm_f64x2_add(b3, wasm_f64x2_mul(v, m3));
        }
        double *y0 = y + (int64_t)r * cols + c0 + p * 8;
        double *y1 = y0 + cols;
        if (width == 8) {
          st(y0, a0), st(y0 + 2, a1), st(y0 + 4, a2), st(y0 + 6, a3);
          st(y1, b0), st(y1 + 2, b1), st(y1 + 4, b2), st(y1 + 6, b3);
        } else {
          // The last panel of a b that 8 does not divide: store its first `width`.
          for (int t = 0; t < width; t++) {
            f64x2 ra = t < 2 ? a0 : t < 4 ? a1 : t < 6 ? a2 : a3;
            f64x2 rb = t < 2 ? b0 : t < 4 ? b1 : t < 6 ? b2 : b3;
            y0[t] = (t & 1) ? wasm_f64x2_extract_lane(ra, 1) : wasm_f64x2_extract_lane(ra, 0);
            y1[t] = (t & 1) ? wasm_f64x2_extract_lane(rb, 1) : wasm_f64x2_extract_lane(rb, 0);
          }
        }
      }
      for (; r < rows; r++) {
        const double *x0 = x + (int64_t)r * cols + c0;
        double *y0 = y + (int64_t)r * cols + c0 + p * 8;
        for (int t = 0; t < width; t++) {
          double s = 0.0;
          for (int i = 0; i < b; i++) s += x0[i] * panel[i * 8 + t];
          y0[t] = s;
        }
      }
    }
  }
}

// Left, dense: y[i, :] = Σ_k M(i, k)·x[k, :] over a strip of b rows of w
// values, k ascending, skipping zero entries of M as the reference does.
EXPORT(dense_left) void dense_left(const double *x, double *y, int b, int w, const double *m) {
  for (int i = 0; i < b; i++) {
    const double *mi = m + (int64_t)i * b;
    double *yi = y + (int64_t)i * w;
    int c = 0;
    for (; c + 8 <= w; c += 8) {
      f64x2 a0 = wasm_f64x2_splat(0.0), a1 = a0, a2 = a0, a3 = a0;
      for (int k = 0; k < b; k++) {
        const double mik = mi[k];
        if (mik == 0.0) continue;
        const double *xk = x + (int64_t)k * w + c;
        f64x2 u = wasm_f64x2_splat(mik);
        a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(u, ld(xk)));
        a1 = wasm_f64x2_add(a1, wasm_f64x2_mul(u, ld(xk + 2)));
        a2 = wasm_f64x2_add(a2, wasm_f64x2_mul(u, ld(xk + 4)));
        a3 = wasm_f64x2_add(a3, wasm_f64x2_mul(u, ld(xk + 6)));
      }
      st(yi + c, a0), st(yi + c + 2, a1), st(yi + c + 4, a2), st(yi + c + 6, a3);
    }
    for (; c < w; c++) {
      double s = 0.0;
      for (int k = 0; k < b; k++) {
        if (mi[k] != 0.0) s += mi[k] * x[(int64_t)k * w + c];
      }
      yi[c] = s;
    }
  }
}
