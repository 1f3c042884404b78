/**
 * Block-diagonal application of a transform to a row-major matrix in
 * float64, and the fast Walsh–Hadamard transform for online application.
 *
 * These TypeScript loops are the reference that the engines' float64
 * kernels (`Engine.blockTransform`, src/engine/cpu/block_transform.ts)
 * reproduce bit for bit; the fused rotations run through the engine.
 *
 * A transform T of size b acts on a dimension d (a multiple of b) as the
 * block-diagonal `diag(T, …, T)`, i.e. on each run of b consecutive
 * columns (right multiplication) or rows (left multiplication).
 *
 * @module
 */

import { TransformError } from "./errors.ts";
import { isPowerOfTwo } from "./hadamard.ts";
import { FactoredBlockTransform } from "./transform_matrix.ts";
import type { BlockTransform } from "../engine/engine.ts";

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
 * With a `stride` K, `H_n` becomes `S_{n/K} ⊗ I_K` (the butterflies join
 * values K·2ˢ apart): the Sylvester factor of a random-hadamard matrix
 * `S_m ⊗ H_K`, whose K × K factor is applied separately.
 *
 * @param x rows of n values (x.length a multiple of n)
 * @param n the run length: a power of two times `stride`
 * @param scale the factor applied afterwards (1/√n normalizes)
 * @param stride K (default 1)
 * @throws {TransformError} when n / stride is not a power of two or n does not divide x.length
 * @example
 * ```ts
 * import { fastWalshHadamard } from "./block_apply.ts";
 * const x = new Float64Array([1, 0, 0, 0]);
 * fastWalshHadamard(x, 4, 1); // [1, 1, 1, 1]
 * ```
 */
export function fastWalshHadamard(
  x: Float32Array | Float64Array,
  n: number,
  scale = 1,
  stride = 1,
): void {
  if (
    !Number.isInteger(stride) || stride < 1 || n % stride !== 0 || !isPowerOfTwo(n / stride) ||
    x.length % n !== 0
  ) {
    throw new TransformError(
      `fast Walsh–Hadamard transform of size ${n}` + (stride === 1 ? "" : ` (stride ${stride})`) +
        `: expected a power of two${stride === 1 ? "" : " times the stride"} dividing ${x.length}`,
    );
  }
  for (let base = 0; base < x.length; base += n) {
    for (let h = stride; h < n; h *= 2) {
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

/** An orthogonal block applied block-diagonally (the engine's type, see `Engine.blockTransform`). */
export type { BlockTransform } from "../engine/engine.ts";

/**
 * With F[perm][:, perm] = Q·F·Qᵀ (Q the permutation, `(Q·v)[i] = v[perm[i]]`):
 * `x·Q` scatters (`z[perm[i]] = x[i]`), `·Qᵀ` gathers (`y[j] = w[perm[j]]`),
 * and the same for rows on the left; so a permuted product is one scatter,
 * the fast product and one gather, per run of n.
 */
function permutedFast(
  t: BlockTransform,
  run: (buf: Float64Array, fast: BlockTransform) => void,
  x: Float64Array,
  at: number,
  width: number,
): void {
  const perm = t.fast!.perm!;
  const n = t.size;
  // The unpermuted factors alone: the fast product never reads a dense matrix.
  const plain = new FactoredBlockTransform(n, { ...t.fast!, perm: undefined });
  const buf = new Float64Array(n * width);
  for (let i = 0; i < n; i++) {
    buf.set(x.subarray(at + i * width, at + (i + 1) * width), perm[i] * width);
  }
  run(buf, plain);
  for (let j = 0; j < n; j++) {
    x.set(buf.subarray(perm[j] * width, (perm[j] + 1) * width), at + j * width);
  }
}

/** v ← v·T (or v·Tᵀ) for one length-n run of x at `at`, through T's factors. */
function fastRun(
  x: Float64Array,
  at: number,
  f: NonNullable<BlockTransform["fast"]>,
  transpose: boolean,
  tmp: Float64Array,
): void {
  const m = f.sylvesterSize;
  const k = f.baseSize;
  const n = m * k;
  if (transpose) { for (let i = 0; i < n; i++) x[at + i] *= f.signs[i]; }
  if (k > 1) {
    // Each K-chunk times H_K (or H_Kᵀ).
    for (let c = at; c < at + n; c += k) {
      for (let j = 0; j < k; j++) {
        let s = 0;
        if (transpose) { for (let i = 0; i < k; i++) s += x[c + i] * f.base[j * k + i]; }
        else for (let i = 0; i < k; i++) s += x[c + i] * f.base[i * k + j];
        tmp[j] = s;
      }
      x.set(tmp.subarray(0, k), c);
    }
  }
  // S_m (symmetric) across the chunks: butterflies with stride K.
  for (let h = 1; h < m; h *= 2) {
    for (let i = 0; i < m; i += 2 * h) {
      for (let a = i; a < i + h; a++) {
        const p = at + a * k;
        const q = at + (a + h) * k;
        for (let j = 0; j < k; j++) {
          const u = x[p + j];
          const v = x[q + j];
          x[p + j] = u + v;
          x[q + j] = u - v;
        }
      }
    }
  }
  if (transpose) { for (let i = 0; i < n; i++) x[at + i] *= f.scale; }
  else for (let i = 0; i < n; i++) x[at + i] *= f.signs[i] * f.scale;
}

/**
 * `X ← X · diag(T, …, T)` (or with Tᵀ), fast for Hadamard-type transforms.
 *
 * @param x the matrix, float64 (modified in place)
 * @param rows its rows
 * @param cols its columns (a multiple of the block size)
 * @param t the block transform
 * @param transpose use Tᵀ
 * @param what the tensor's name, for errors
 * @example
 * ```ts
 * import { applyRight } from "./block_apply.ts";
 * const t = { matrix: new Float64Array([0, 1, 1, 0]), size: 2 };
 * const x = new Float64Array([1, 2]);
 * applyRight(x, 1, 2, t, false, "x"); // x = [2, 1]
 * ```
 */
export function applyRight(
  x: Float64Array,
  rows: number,
  cols: number,
  t: BlockTransform,
  transpose: boolean,
  what: string,
): void {
  if (t.fast === undefined) return multiplyRight(x, rows, cols, t.matrix, t.size, transpose, what);
  if (cols % t.size !== 0) {
    throw new TransformError(
      `${what}: ${cols} columns are not a multiple of the transform size ${t.size}`,
    );
  }
  const tmp = new Float64Array(t.fast.baseSize);
  if (t.fast.perm !== undefined) {
    // One run of n at a time: scatter, fast product, gather (see permutedFast).
    const run = (buf: Float64Array, p: BlockTransform) => fastRun(buf, 0, p.fast!, transpose, tmp);
    for (let at = 0; at < rows * cols; at += t.size) permutedFast(t, run, x, at, 1);
    return;
  }
  for (let at = 0; at < rows * cols; at += t.size) fastRun(x, at, t.fast, transpose, tmp);
}

/**
 * `X ← diag(T, …, T) · X` (or with Tᵀ), fast for Hadamard-type transforms:
 * with `T = scale · (S_m ⊗ H_K) · diag(signs)`, the product combines whole
 * rows (contiguous memory): signs scale rows, H_K mixes the rows of each run
 * of K, and the Walsh–Hadamard butterflies add and subtract whole rows.
 *
 * @param x the matrix, float64 (modified in place)
 * @param rows its rows (a multiple of the block size)
 * @param cols its columns
 * @param t the block transform
 * @param transpose use Tᵀ
 * @param what the tensor's name, for errors
 * @example
 * ```ts
 * import { applyLeft } from "./block_apply.ts";
 * const t = { matrix: new Float64Array([0, 1, 1, 0]), size: 2 };
 * const x = new Float64Array([1, 2]); // 2 × 1
 * applyLeft(x, 2, 1, t, false, "x"); // x = [2, 1]
 * ```
 */
export function applyLeft(
  x: Float64Array,
  rows: number,
  cols: number,
  t: BlockTransform,
  transpose: boolean,
  what: string,
): void {
  if (t.fast === undefined) return multiplyLeft(x, rows, cols, t.matrix, t.size, transpose, what);
  const b = t.size;
  if (rows % b !== 0) {
    throw new TransformError(`${what}: ${rows} rows are not a multiple of the transform size ${b}`);
  }
  if (t.fast.perm !== undefined) {
    // One block of b rows at a time: scatter rows, fast product, gather rows.
    const run = (buf: Float64Array, p: BlockTransform) =>
      applyLeft(buf, b, cols, p, transpose, what);
    for (let r0 = 0; r0 < rows; r0 += b) permutedFast(t, run, x, r0 * cols, cols);
    return;
  }
  const { sylvesterSize: m, base, baseSize: k, signs, scale } = t.fast;
  const scaleRows = (r0: number, factor: (i: number) => number) => {
    for (let i = 0; i < b; i++) {
      const f = factor(i);
      const row = x.subarray((r0 + i) * cols, (r0 + i + 1) * cols);
      for (let c = 0; c < cols; c++) row[c] *= f;
    }
  };
  const tmp = new Float64Array(k * cols);
  for (let r0 = 0; r0 < rows; r0 += b) {
    // T·X = scale·(S ⊗ H_K)·D·X; Tᵀ·X = D·(S ⊗ H_Kᵀ)·X·scale.
    if (!transpose) scaleRows(r0, (i) => signs[i]);
    if (k > 1) {
      for (let chunk = r0; chunk < r0 + b; chunk += k) {
        tmp.fill(0);
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) {
            const h = transpose ? base[j * k + i] : base[i * k + j];
            const src = (chunk + j) * cols;
            for (let c = 0; c < cols; c++) tmp[i * cols + c] += h * x[src + c];
          }
        }
        x.set(tmp, chunk * cols);
      }
    }
    for (let h = 1; h < m; h *= 2) {
      for (let i = 0; i < m; i += 2 * h) {
        for (let a = i; a < i + h; a++) {
          for (let j = 0; j < k; j++) {
            const p = (r0 + a * k + j) * cols;
            const q = (r0 + (a + h) * k + j) * cols;
            for (let c = 0; c < cols; c++) {
              const u = x[p + c];
              const v = x[q + c];
              x[p + c] = u + v;
              x[q + c] = u - v;
            }
          }
        }
      }
    }
    scaleRows(r0, (i) => (transpose ? signs[i] * scale : scale));
  }
}
