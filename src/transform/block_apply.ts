/**
 * Block-diagonal application of a transform to a row-major matrix in
 * float64, and the fast Walsh–Hadamard transform for online application.
 *
 * A transform T of size b acts on a dimension d (a multiple of b) as the
 * block-diagonal `diag(T, …, T)`, i.e. on each run of b consecutive
 * columns (right multiplication) or rows (left multiplication).
 *
 * @module
 */

import { TransformError } from "./errors.ts";
import { isPowerOfTwo } from "./hadamard.ts";

/**
 * `X ← X · diag(M, …, M)` (or with Mᵀ), X [rows, cols] row-major, M [b, b].
 *
 * @param x the matrix, as float64 (modified in place)
 * @param rows its rows
 * @param cols its columns (a multiple of b)
 * @param m the block, row-major
 * @param b the block size
 * @param transpose use Mᵀ
 * @param what the tensor's name, for errors
 * @example
 * ```ts
 * import { multiplyRight } from "./block_apply.ts";
 * const x = new Float64Array([1, 2]);
 * multiplyRight(x, 1, 2, new Float64Array([0, 1, 1, 0]), 2, false, "x"); // x = [2, 1]
 * ```
 */
export function multiplyRight(
  x: Float64Array,
  rows: number,
  cols: number,
  m: Float64Array,
  b: number,
  transpose: boolean,
  what: string,
): void {
  if (cols % b !== 0) {
    throw new TransformError(
      `${what}: ${cols} columns are not a multiple of the transform size ${b}`,
    );
  }
  const tmp = new Float64Array(b);
  for (let r = 0; r < rows; r++) {
    for (let c0 = r * cols; c0 < (r + 1) * cols; c0 += b) {
      for (let j = 0; j < b; j++) {
        let s = 0;
        if (transpose) { for (let i = 0; i < b; i++) s += x[c0 + i] * m[j * b + i]; }
        else for (let i = 0; i < b; i++) s += x[c0 + i] * m[i * b + j];
        tmp[j] = s;
      }
      x.set(tmp, c0);
    }
  }
}

/**
 * `X ← diag(M, …, M) · X` (or with Mᵀ), X [rows, cols] row-major, M [b, b].
 *
 * @param x the matrix, as float64 (modified in place)
 * @param rows its rows (a multiple of b)
 * @param cols its columns
 * @param m the block, row-major
 * @param b the block size
 * @param transpose use Mᵀ
 * @param what the tensor's name, for errors
 * @example
 * ```ts
 * import { multiplyLeft } from "./block_apply.ts";
 * const x = new Float64Array([1, 2]); // 2 × 1
 * multiplyLeft(x, 2, 1, new Float64Array([0, 1, 1, 0]), 2, false, "x"); // x = [2, 1]
 * ```
 */
export function multiplyLeft(
  x: Float64Array,
  rows: number,
  cols: number,
  m: Float64Array,
  b: number,
  transpose: boolean,
  what: string,
): void {
  if (rows % b !== 0) {
    throw new TransformError(`${what}: ${rows} rows are not a multiple of the transform size ${b}`);
  }
  const tmp = new Float64Array(b * cols);
  for (let r0 = 0; r0 < rows; r0 += b) {
    tmp.fill(0);
    for (let i = 0; i < b; i++) {
      for (let k = 0; k < b; k++) {
        const mik = transpose ? m[k * b + i] : m[i * b + k];
        if (mik === 0) continue;
        const src = (r0 + k) * cols;
        for (let c = 0; c < cols; c++) tmp[i * cols + c] += mik * x[src + c];
      }
    }
    x.set(tmp, r0 * cols);
  }
}

/**
 * The fast Walsh–Hadamard transform of each length-n run of x, in place:
 * `x ← x · H_n · scale` with H_n Sylvester's matrix (symmetric, so also
 * `H_n · x`), in n·log₂n additions per run instead of a dense n² product.
 *
 * @param x rows of n values (x.length a multiple of n)
 * @param n a power of two
 * @param scale the factor applied afterwards (1/√n normalizes)
 * @throws {TransformError} when n is not a power of two or does not divide x.length
 * @example
 * ```ts
 * import { fastWalshHadamard } from "./block_apply.ts";
 * const x = new Float64Array([1, 0, 0, 0]);
 * fastWalshHadamard(x, 4, 1); // [1, 1, 1, 1]
 * ```
 */
export function fastWalshHadamard(x: Float32Array | Float64Array, n: number, scale = 1): void {
  if (!isPowerOfTwo(n) || x.length % n !== 0) {
    throw new TransformError(
      `fast Walsh–Hadamard transform of size ${n}: expected a power of two dividing ${x.length}`,
    );
  }
  for (let base = 0; base < x.length; base += n) {
    for (let h = 1; h < n; h *= 2) {
      for (let i = base; i < base + n; i += 2 * h) {
        for (let j = i; j < i + h; j++) {
          const a = x[j];
          const b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
    if (scale !== 1) { for (let i = base; i < base + n; i++) x[i] *= scale; }
  }
}
