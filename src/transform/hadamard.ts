/**
 * Hadamard matrices: Sylvester's for powers of two, and for other orders
 * the classical constructions llmc builds itself instead of bundling
 * Sloane's library: Paley I (order q + 1, q ≡ 3 mod 4 a prime power),
 * Paley II (order 2(q + 1), q ≡ 1 mod 4 a prime power) and Sylvester
 * doubling (H₂ ⊗ H). Matrices are ±1, row-major, unnormalized.
 *
 * Orders 4 … 256 in steps of 4 that none of these reach (e.g. 92, 116, 156,
 * 172, 184, 188, 232, 236) need Williamson-type matrices, which llmc does not
 * have: {@link hadamardMatrix} refuses them by size.
 *
 * @module
 */

import { FiniteField, primePower } from "./_finite_field.ts";
import { TransformError } from "./errors.ts";

/**
 * Whether n is a power of two (1 included).
 *
 * @param n a positive integer
 * @returns true for 1, 2, 4, 8, …
 * @example
 * ```ts
 * import { isPowerOfTwo } from "./hadamard.ts";
 * isPowerOfTwo(64); // true
 * ```
 */
export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/**
 * Sylvester's Hadamard matrix: `H₁ = [1]`, `H₂ₖ = [[Hₖ, Hₖ], [Hₖ, −Hₖ]]`, so
 * `H[i][j] = (−1)^popcount(i & j)` (the natural ordering vLLM's fast
 * Walsh–Hadamard kernel assumes).
 *
 * @param n a power of two
 * @returns the n × n ±1 matrix, row-major
 * @throws {TransformError} when n is not a power of two
 * @example
 * ```ts
 * import { sylvester } from "./hadamard.ts";
 * sylvester(2); // Int8Array [1, 1, 1, -1]
 * ```
 */
export function sylvester(n: number): Int8Array {
  if (!isPowerOfTwo(n)) {
    throw new TransformError(`Cannot construct deterministic hadamard of size != 2^n: ${n}`);
  }
  const h = new Int8Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let b = i & j;
      let parity = 0;
      while (b) {
        parity ^= 1;
        b &= b - 1;
      }
      h[i * n + j] = parity ? -1 : 1;
    }
  }
  return h;
}

/** How a Hadamard matrix of some order is built. */
export type HadamardConstruction =
  | { kind: "sylvester"; n: number }
  | { kind: "paley1"; n: number; q: number }
  | { kind: "paley2"; n: number; q: number }
  | { kind: "double"; n: number; half: HadamardConstruction };

/**
 * The construction llmc uses for a Hadamard matrix of order n, or null when
 * it has none (n not 1, 2 or a multiple of 4, or an order that needs a
 * Williamson-type or other construction llmc lacks).
 *
 * @param n the order
 * @returns the construction, or null
 * @example
 * ```ts
 * import { hadamardConstruction } from "./hadamard.ts";
 * hadamardConstruction(12)?.kind; // "paley1" (q = 11)
 * hadamardConstruction(172); // null
 * ```
 */
export function hadamardConstruction(n: number): HadamardConstruction | null {
  if (isPowerOfTwo(n)) return { kind: "sylvester", n };
  if (!Number.isInteger(n) || n < 4 || n % 4 !== 0) return null;
  if (primePower(n - 1) !== null && (n - 1) % 4 === 3) return { kind: "paley1", n, q: n - 1 };
  const q2 = n / 2 - 1;
  if (primePower(q2) !== null && q2 % 4 === 1) return { kind: "paley2", n, q: q2 };
  const half = hadamardConstruction(n / 2);
  return half === null ? null : { kind: "double", n, half };
}

function paley1(q: number): Int8Array {
  // H = I + S with S = [[0, 1ᵀ], [−1, Q]], Q the (antisymmetric) Jacobsthal matrix.
  const f = new FiniteField(q);
  const n = q + 1;
  const h = new Int8Array(n * n);
  for (let j = 1; j < n; j++) {
    h[j] = 1;
    h[j * n] = -1;
  }
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < q; j++) h[(i + 1) * n + j + 1] = f.chi(f.sub(i, j));
  }
  for (let i = 0; i < n; i++) h[i * n + i] += 1;
  return h;
}

function paley2(q: number): Int8Array {
  // C = [[0, 1ᵀ], [1, Q]] (symmetric); 0 → [[1, −1], [−1, −1]], ±1 → ±[[1, 1], [1, −1]].
  const f = new FiniteField(q);
  const m = q + 1;
  const n = 2 * m;
  const c = (i: number, j: number) =>
    i === 0 && j === 0 ? 0 : i === 0 || j === 0 ? 1 : f.chi(f.sub(i - 1, j - 1));
  const h = new Int8Array(n * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const v = c(i, j);
      const block = v === 0 ? [1, -1, -1, -1] : [v, v, v, -v];
      h[2 * i * n + 2 * j] = block[0];
      h[2 * i * n + 2 * j + 1] = block[1];
      h[(2 * i + 1) * n + 2 * j] = block[2];
      h[(2 * i + 1) * n + 2 * j + 1] = block[3];
    }
  }
  return h;
}

function build(c: HadamardConstruction): Int8Array {
  switch (c.kind) {
    case "sylvester":
      return sylvester(c.n);
    case "paley1":
      return paley1(c.q);
    case "paley2":
      return paley2(c.q);
    case "double": {
      // H₂ ⊗ H: [[H, H], [H, −H]], the Sylvester butterfly.
      const m = c.half.n;
      const half = build(c.half);
      const n = c.n;
      const h = new Int8Array(n * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < m; j++) {
          const v = half[i * m + j];
          h[i * n + j] = v;
          h[i * n + j + m] = v;
          h[(i + m) * n + j] = v;
          h[(i + m) * n + j + m] = -v;
        }
      }
      return h;
    }
  }
}

/**
 * A Hadamard matrix of order n (`H Hᵀ = n I`), ±1 and row-major: Sylvester's
 * for powers of two, otherwise the construction {@link hadamardConstruction}
 * names.
 *
 * @param n the order
 * @returns the matrix
 * @throws {TransformError} naming n when llmc has no construction for it
 * @example
 * ```ts
 * import { hadamardMatrix } from "./hadamard.ts";
 * hadamardMatrix(768).length; // 589824 (Paley I of order 384, doubled)
 * ```
 */
export function hadamardMatrix(n: number): Int8Array {
  const c = hadamardConstruction(n);
  if (c === null) {
    const why = !Number.isInteger(n) || n < 1 || (n > 2 && n % 4 !== 0)
      ? "Hadamard matrices exist only for orders 1, 2 and multiples of 4"
      : "it needs a Williamson-type or other construction llmc does not have " +
        "(llmc builds Sylvester, Paley I, Paley II and their doublings)";
    throw new TransformError(`cannot construct a Hadamard matrix of size ${n}: ${why}`);
  }
  return build(c);
}

/** A Hadamard matrix as `S_m ⊗ H_K` (Sylvester of order m times a base of order K). */
export interface HadamardFactors {
  /** m, a power of two. */
  readonly sylvesterSize: number;
  /** The base H_K, ±1 row-major ([1] for a pure Sylvester matrix). */
  readonly base: Int8Array;
  /** K. */
  readonly baseSize: number;
}

/**
 * The Kronecker factors of {@link hadamardMatrix}(n): doubling is `S₂ ⊗ H`,
 * so the matrix equals `S_m ⊗ H_K` exactly, which lets products with it run
 * as a fast Walsh–Hadamard transform over m and dense K × K products.
 *
 * @param n the order
 * @returns m, H_K and K with m · K = n
 * @throws {TransformError} naming n when llmc has no construction for it
 * @example
 * ```ts
 * import { hadamardFactors } from "./hadamard.ts";
 * const f = hadamardFactors(768);
 * [f.sylvesterSize, f.baseSize]; // [2, 384]
 * ```
 */
export function hadamardFactors(n: number): HadamardFactors {
  let c = hadamardConstruction(n);
  if (c === null) hadamardMatrix(n); // throws the error naming n
  let m = 1;
  while (c!.kind === "double") {
    m *= 2;
    c = c!.half;
  }
  if (c!.kind === "sylvester") {
    return { sylvesterSize: m * c!.n, base: new Int8Array([1]), baseSize: 1 };
  }
  return { sylvesterSize: m, base: build(c!), baseSize: c!.n };
}
