/**
 * The three transform types of compressed-tensors' `transform_config`, built
 * in float64: `hadamard` (Sylvester, powers of two only), `random-hadamard`
 * (a Hadamard matrix of any order llmc can construct, times a seeded random
 * ±1 diagonal) and `random-matrix` (a seeded random orthogonal matrix, the
 * Q of a Gaussian matrix's QR factorization).
 *
 * @module
 */

import { seededRandom, shuffled } from "../model/seeded_random.ts";
import { TransformError } from "./errors.ts";
import type { BlockTransform } from "./block_apply.ts";
import type { BlockTransformFactors } from "../engine/engine.ts";
import { type HadamardFactors, hadamardFactors, hadamardMatrix, sylvester } from "./hadamard.ts";

/** A `transform_config` scheme's `type`. */
export type TransformType = "hadamard" | "random-hadamard" | "random-matrix";

/** The transform types, in upstream's spelling. */
export const TRANSFORM_TYPES: readonly TransformType[] = Object.freeze([
  "hadamard",
  "random-hadamard",
  "random-matrix",
]);

/** A transform matrix as a checkpoint stores it, plus the factor applied at use. */
export interface TransformMatrix {
  /** The type that built it. */
  readonly type: TransformType;
  /** n: the matrix is n × n. */
  readonly size: number;
  /** Stored values, row-major: ±1 for the Hadamard types, orthogonal for random-matrix. */
  readonly stored: Float64Array;
  /** The factor applied at use: 1/√n for the Hadamard types, 1 for random-matrix. */
  readonly scale: number;
  /**
   * For the Hadamard types, `stored = (S_m ⊗ H_K) · diag(signs)` (signs all 1
   * for `hadamard`), so products can run fast (see block_apply.ts); with
   * `perm` (see {@link permutedTransform}), `stored` is that matrix `[perm][:, perm]`.
   */
  readonly factors?: HadamardFactors & {
    readonly signs: Float64Array;
    readonly perm?: Int32Array;
  };
}

/**
 * Builds a transform matrix.
 *
 * @param type the scheme's type
 * @param size the order n
 * @param seed the seed of the random types (ignored by `hadamard`)
 * @returns the stored matrix and its scale
 * @throws {TransformError} for `hadamard` on a size that is not a power of two,
 *   or `random-hadamard` on a size llmc cannot construct
 * @example
 * ```ts
 * import { buildTransform, normalizedMatrix } from "./transform_matrix.ts";
 * const t = buildTransform("random-hadamard", 12, 0);
 * normalizedMatrix(t).length; // 144, orthogonal
 * ```
 */
export function buildTransform(type: TransformType, size: number, seed: number): TransformMatrix {
  switch (type) {
    case "hadamard":
      return {
        type,
        size,
        stored: Float64Array.from(sylvester(size)),
        scale: 1 / Math.sqrt(size),
        factors: { ...hadamardFactors(size), signs: new Float64Array(size).fill(1) },
      };
    case "random-hadamard": {
      const h = hadamardMatrix(size);
      const random = seededRandom(seed);
      const sign = Float64Array.from({ length: size }, () => (random() < 0.5 ? -1 : 1));
      const stored = new Float64Array(size * size);
      for (let i = 0; i < size; i++) {
        for (let j = 0; j < size; j++) stored[i * size + j] = h[i * size + j] * sign[j];
      }
      return {
        type,
        size,
        stored,
        scale: 1 / Math.sqrt(size),
        factors: { ...hadamardFactors(size), signs: sign },
      };
    }
    case "random-matrix":
      return { type, size, stored: randomOrthogonal(size, seed), scale: 1 };
    default:
      throw new TransformError(
        `transform type "${type}": expected one of ${TRANSFORM_TYPES.join(", ")}`,
      );
  }
}

/**
 * The orthogonal matrix a transform applies: `stored · scale`.
 *
 * @param t the transform
 * @returns n × n, row-major, float64
 * @example
 * ```ts
 * import { buildTransform, normalizedMatrix } from "./transform_matrix.ts";
 * normalizedMatrix(buildTransform("hadamard", 2, 0)); // ±1/√2
 * ```
 */
export function normalizedMatrix(t: TransformMatrix): Float64Array {
  return t.stored.map((v) => v * t.scale);
}

/**
 * A seeded random orthogonal matrix: Householder QR of a standard Gaussian
 * matrix in float64, with Q's columns signed so that R's diagonal is positive
 * (which makes Q Haar-distributed).
 *
 * @param n the order
 * @param seed the seed
 * @returns n × n orthogonal, row-major
 * @example
 * ```ts
 * import { randomOrthogonal } from "./transform_matrix.ts";
 * randomOrthogonal(3, 1).length; // 9
 * ```
 */
export function randomOrthogonal(n: number, seed: number): Float64Array {
  const random = seededRandom(seed);
  const gaussian = () => {
    const u = 1 - random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
  const a = Float64Array.from({ length: n * n }, gaussian); // becomes R
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const v = new Float64Array(n);
  for (let k = 0; k < n - 1; k++) {
    let norm = 0;
    for (let i = k; i < n; i++) norm += a[i * n + k] ** 2;
    norm = Math.sqrt(norm);
    if (norm === 0) continue;
    const alpha = a[k * n + k] > 0 ? -norm : norm;
    let vnorm = 0;
    for (let i = k; i < n; i++) {
      v[i] = a[i * n + k] - (i === k ? alpha : 0);
      vnorm += v[i] ** 2;
    }
    if (vnorm === 0) continue;
    // A ← (I − 2vvᵀ/vᵀv) A and Q ← Q (I − 2vvᵀ/vᵀv).
    for (let j = k; j < n; j++) {
      let dot = 0;
      for (let i = k; i < n; i++) dot += v[i] * a[i * n + j];
      const f = (2 * dot) / vnorm;
      for (let i = k; i < n; i++) a[i * n + j] -= f * v[i];
    }
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let j = k; j < n; j++) dot += q[i * n + j] * v[j];
      const f = (2 * dot) / vnorm;
      for (let j = k; j < n; j++) q[i * n + j] -= f * v[j];
    }
  }
  for (let j = 0; j < n; j++) {
    if (a[j * n + j] < 0) { for (let i = 0; i < n; i++) q[i * n + j] = -q[i * n + j]; }
  }
  return q;
}

/**
 * The transform as a block for `Engine.blockTransform` and `applyRight` /
 * `applyLeft` (block_apply.ts): its normalized matrix, plus its Hadamard
 * factors so products run fast. A Hadamard type's block is a
 * {@link FactoredBlockTransform}, whose dense matrix is built only if read.
 *
 * @param t the transform
 * @returns the block transform
 * @example
 * ```ts
 * import { blockTransformOf, buildTransform } from "./transform_matrix.ts";
 * blockTransformOf(buildTransform("hadamard", 64, 0)).fast?.sylvesterSize; // 64
 * ```
 */
export function blockTransformOf(t: TransformMatrix): BlockTransform {
  if (t.factors === undefined) return { matrix: normalizedMatrix(t), size: t.size };
  return new FactoredBlockTransform(t.size, { ...t.factors, scale: t.scale });
}

/**
 * A Hadamard-type block: the factored products (`Engine.blockTransform`,
 * block_apply.ts) use only its factors, so its dense n × n float64 matrix
 * (128 MiB at n = 4096) is built from them on first read, for the callers
 * that need it dense, and kept. It equals `stored · scale` bit for bit (every
 * entry is ±1 times the scale).
 *
 * @example
 * ```ts
 * import { blockTransformOf, buildTransform, FactoredBlockTransform } from "./transform_matrix.ts";
 * const t = blockTransformOf(buildTransform("random-hadamard", 12, 0)) as FactoredBlockTransform;
 * console.assert(!t.denseBuilt);
 * console.assert(t.matrix.length === 144 && t.denseBuilt);
 * ```
 */
export class FactoredBlockTransform implements BlockTransform {
  /** n. */
  readonly size: number;
  /** The factors: `matrix = scale · (S_m ⊗ H_K) · diag(signs)`, permuted by `perm` when given. */
  readonly fast: BlockTransformFactors;
  #matrix: Float64Array | null = null;

  /**
   * @param size n
   * @param fast the factors (`sylvesterSize · baseSize = size`, `size` signs)
   */
  constructor(size: number, fast: BlockTransformFactors) {
    this.size = size;
    this.fast = fast;
  }

  /** The normalized n × n matrix, row-major: built on first read. */
  get matrix(): Float64Array {
    this.#matrix ??= denseOfFactors(this.size, this.fast);
    return this.#matrix;
  }

  /** Whether the dense matrix has been built (read) yet. */
  get denseBuilt(): boolean {
    return this.#matrix !== null;
  }
}

/** `scale · (S_m ⊗ H_K) · diag(signs)`, then `[perm][:, perm]`, as n × n float64. */
function denseOfFactors(n: number, f: BlockTransformFactors): Float64Array {
  const k = f.baseSize;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const r = f.perm === undefined ? i : f.perm[i];
    const [a, p] = [Math.floor(r / k), r % k];
    for (let j = 0; j < n; j++) {
      const c = f.perm === undefined ? j : f.perm[j];
      const [b, q] = [Math.floor(c / k), c % k];
      // Sylvester's entry (a, b) is (−1)^popcount(a & b).
      let bits = a & b;
      let sign = 1;
      while (bits) {
        sign = -sign;
        bits &= bits - 1;
      }
      // A product of ±1s, exact, times the scale: the same double as stored · scale.
      out[i * n + j] = sign * f.base[p * k + q] * f.signs[c] * f.scale;
    }
  }
  return out;
}

/**
 * The seeded random permutation of `randomize: true` (compressed-tensors'
 * Hadamard factories draw one `torch.randperm(n)` per transform weight, i.e.
 * per group and size): a Fisher–Yates shuffle of 0…n−1. The seed is mixed
 * first, so a permutation never reuses the stream of the matrix it permutes.
 *
 * @param n the order
 * @param seed the seed of the matrix it permutes
 * @returns a permutation of 0…n−1
 * @example
 * ```ts
 * import { randomPermutation } from "./transform_matrix.ts";
 * [...randomPermutation(4, 1)].sort(); // [0, 1, 2, 3]
 * ```
 */
export function randomPermutation(n: number, seed: number): Int32Array {
  const mixed = (Math.imul(seed ^ 0x5eed9e37, 0x9e3779b1) ^ n) >>> 0;
  const ids = Array.from({ length: n }, (_, i) => i);
  return Int32Array.from(shuffled(ids, seededRandom(mixed)));
}

/**
 * The transform compressed-tensors applies with a permutation
 * (`weight[perm][:, perm]`, i.e. `P · W · Pᵀ`, still orthogonal after
 * scaling): stored values permuted, and the Hadamard factors kept with the
 * permutation, so products still run fast (a scatter, the fast product and
 * a gather per run; block_apply.ts).
 *
 * @param t the transform
 * @param perm a permutation of 0…n−1 (see {@link randomPermutation})
 * @returns the permuted transform
 * @throws {TransformError} when `perm` is not a permutation of 0…n−1
 * @example
 * ```ts
 * import { buildTransform, permutedTransform } from "./transform_matrix.ts";
 * const t = permutedTransform(buildTransform("hadamard", 2, 0), Int32Array.of(1, 0));
 * [...t.stored]; // [-1, 1, 1, 1]
 * ```
 */
export function permutedTransform(t: TransformMatrix, perm: ArrayLike<number>): TransformMatrix {
  checkPermutation(perm, t.size, "perm");
  if (t.factors?.perm !== undefined) {
    throw new TransformError("permutedTransform: the transform is already permuted");
  }
  const stored = permuted(t.stored, t.size, perm);
  if (t.factors === undefined) return { type: t.type, size: t.size, stored, scale: t.scale };
  const factors = { ...t.factors, perm: Int32Array.from(perm) };
  return { type: t.type, size: t.size, stored, scale: t.scale, factors };
}

/**
 * `W[perm][:, perm]` of an n × n row-major matrix.
 *
 * @param w the matrix
 * @param n its order
 * @param perm a permutation of 0…n−1 (not checked; see {@link checkPermutation})
 * @returns a new matrix
 * @example
 * ```ts
 * import { permuted } from "./transform_matrix.ts";
 * permuted(Float64Array.of(1, 2, 3, 4), 2, [1, 0]); // [4, 3, 2, 1]
 * ```
 */
export function permuted<A extends Float64Array | Float32Array>(
  w: A,
  n: number,
  perm: ArrayLike<number>,
): A {
  const out = new (w.constructor as { new (n: number): A })(n * n);
  for (let i = 0; i < n; i++) {
    const row = perm[i] * n;
    for (let j = 0; j < n; j++) out[i * n + j] = w[row + perm[j]];
  }
  return out;
}

/**
 * Checks that values are a permutation of 0…n−1.
 *
 * @param perm the values (e.g. a stored `.perm` tensor read as floats)
 * @param n the order
 * @param what the tensor's name, for errors
 * @throws {TransformError} naming `what` and the first bad value
 * @example
 * ```ts
 * import { checkPermutation } from "./transform_matrix.ts";
 * checkPermutation([2, 0, 1], 3, "x.perm"); // ok
 * ```
 */
export function checkPermutation(perm: ArrayLike<number>, n: number, what: string): void {
  if (perm.length !== n) {
    throw new TransformError(`${what}: expected a permutation of ${n} indices, got ${perm.length}`);
  }
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = perm[i];
    if (!Number.isInteger(v) || v < 0 || v >= n || seen[v]) {
      throw new TransformError(
        `${what}: value ${v} at ${i} makes it no permutation of 0…${n - 1}`,
      );
    }
    seen[v] = 1;
  }
}
