/**
 * The CPU engine's matrix kernels: every CPU matmul and Gram (Hessian)
 * accumulation in llmc goes through these four functions, so swapping their
 * implementation is one file.
 *
 * PLACEHOLDER: these are plain TypeScript loops, correct but slow (float32
 * storage, float64 accumulation per output). The `cpukernels` branch
 * replaces this file with WebAssembly SIMD kernels (relaxed-SIMD FMA, worker
 * threads over shared memory) with exactly these signatures; when the two
 * branches merge, that file wins.
 *
 * @module
 */

/**
 * `y[m, n] = x[m, k] · w[n, k]ᵀ` (nn.Linear's product; w is stored row-major [out, in]).
 *
 * @param x [m, k] row-major
 * @param w [n, k] row-major
 * @param m rows of x
 * @param n rows of w
 * @param k the shared dimension
 * @param out optional [m, n] destination
 * @returns y, [m, n] (`out` when given)
 * @example
 * ```ts
 * import { matmulTransposed } from "./gemm.ts";
 * const y = matmulTransposed(new Float32Array([1, 2]), new Float32Array([3, 4, 5, 6]), 1, 2, 2);
 * console.assert(y.join() === "11,17");
 * ```
 */
export function matmulTransposed(
  x: Float32Array,
  w: Float32Array,
  m: number,
  n: number,
  k: number,
  out: Float32Array = new Float32Array(m * n),
): Float32Array {
  checkSizes("matmulTransposed", [["x", x, m * k], ["w", w, n * k], ["out", out, m * n]]);
  for (let i = 0; i < m; i++) {
    const xi = i * k;
    for (let j = 0; j < n; j++) {
      const wj = j * k;
      let acc = 0;
      for (let p = 0; p < k; p++) acc += x[xi + p] * w[wj + p];
      out[i * n + j] = acc;
    }
  }
  return out;
}

/**
 * `y[m, n] = a[m, k] · b[k, n]`.
 *
 * @param a [m, k] row-major
 * @param b [k, n] row-major
 * @param m rows of a
 * @param n columns of b
 * @param k the shared dimension
 * @param out optional [m, n] destination
 * @returns y, [m, n] (`out` when given)
 * @example
 * ```ts
 * import { matmul } from "./gemm.ts";
 * const y = matmul(new Float32Array([1, 2]), new Float32Array([3, 4, 5, 6]), 1, 2, 2);
 * console.assert(y.join() === "13,16");
 * ```
 */
export function matmul(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out: Float32Array = new Float32Array(m * n),
): Float32Array {
  checkSizes("matmul", [["a", a, m * k], ["b", b, k * n], ["out", out, m * n]]);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) row[j] += aip * b[bp + j];
    }
    out.set(row, i * n);
  }
  return out;
}

/**
 * `h[k, k] += xᵀ · x` for x [rows, k]: the Gram matrix GPTQ's Hessian is
 * made of (the caller scales it).
 *
 * @param h [k, k], updated in place
 * @param x [rows, k] row-major
 * @param rows rows of x
 * @param k columns of x
 * @example
 * ```ts
 * import { accumulateGram } from "./gemm.ts";
 * const h = new Float32Array(4);
 * accumulateGram(h, new Float32Array([1, 2]), 1, 2);
 * console.assert(h.join() === "1,2,2,4");
 * ```
 */
export function accumulateGram(h: Float32Array, x: Float32Array, rows: number, k: number): void {
  checkSizes("accumulateGram", [["h", h, k * k], ["x", x, rows * k]]);
  const acc = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    acc.fill(0);
    for (let r = 0; r < rows; r++) {
      const xi = x[r * k + i];
      if (xi === 0) continue;
      const base = r * k;
      for (let j = 0; j <= i; j++) acc[j] += xi * x[base + j];
    }
    for (let j = 0; j <= i; j++) {
      h[i * k + j] += acc[j];
      if (j !== i) h[j * k + i] = h[i * k + j];
    }
  }
}

/**
 * What the kernels run with on this machine.
 *
 * @returns worker threads, and whether (relaxed) SIMD is used
 * @example
 * ```ts
 * import { cpuKernelInfo } from "./gemm.ts";
 * console.assert(cpuKernelInfo().threads >= 1);
 * ```
 */
export function cpuKernelInfo(): { threads: number; relaxedSimd: boolean; simd: boolean } {
  return { threads: 1, relaxedSimd: false, simd: false };
}

function checkSizes(op: string, arrays: Array<[string, Float32Array, number]>): void {
  for (const [name, a, n] of arrays) {
    if (a.length < n) {
      throw new RangeError(`${op}: ${name} holds ${a.length} floats, needs ${n}`);
    }
  }
}
