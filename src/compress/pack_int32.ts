/**
 * compressed-tensors' `pack_to_int32` / `unpack_from_int32` (§1.9.3): signed
 * N-bit integers (1 ≤ N ≤ 8) offset by 2^(N−1) to unsigned and packed
 * `floor(32/N)` to an int32 word, element j of a word at bits [N·j, N·j+N),
 * rows padded with raw zeros. Packing along dim 0 (zero points) transposes
 * first and last.
 *
 * @module
 */

import { CompressionError } from "./errors.ts";

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) {
    throw new CompressionError(`int32 packing supports 1 to 8 bits, got ${bits}`);
  }
}

/**
 * The number of values one int32 word holds.
 *
 * @param bits bits per value
 * @returns `floor(32 / bits)`
 * @example
 * ```ts
 * import { packFactor } from "./pack_int32.ts";
 * packFactor(4); // 8
 * packFactor(3); // 10
 * ```
 */
export function packFactor(bits: number): number {
  checkBits(bits);
  return Math.floor(32 / bits);
}

/**
 * Packs a signed integer matrix into int32 words.
 *
 * @param values `rows × cols` signed integers in [−2^(N−1), 2^(N−1)−1], row-major
 * @param rows number of rows
 * @param cols number of columns
 * @param bits N, 1…8
 * @param packedDim 1 packs along columns → `[rows, ceil(cols/pf)]`; 0 along rows → `[ceil(rows/pf), cols]`
 * @returns the packed words, row-major in the packed shape
 * @throws {CompressionError} for a value out of range or a bad bit width
 * @example
 * ```ts
 * import { packInt32 } from "./pack_int32.ts";
 * packInt32(new Int8Array([1, 2, 3, 4]), 1, 4, 4, 1); // Int32Array [52137]
 * ```
 */
export function packInt32(
  values: Int8Array,
  rows: number,
  cols: number,
  bits: number,
  packedDim: 0 | 1,
): Int32Array {
  const pf = packFactor(bits);
  if (values.length !== rows * cols) {
    throw new CompressionError(`packInt32: ${values.length} values for shape [${rows}, ${cols}]`);
  }
  const offset = 1 << (bits - 1);
  const lo = -offset;
  const hi = offset - 1;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < lo || values[i] > hi) {
      throw new CompressionError(
        `packInt32: value ${values[i]} at index ${i} does not fit ${bits} bits [${lo}, ${hi}]`,
      );
    }
  }
  // Pack along the "inner" dimension of length n for each of m outer lines.
  const m = packedDim === 1 ? rows : cols;
  const n = packedDim === 1 ? cols : rows;
  const words = Math.ceil(n / pf);
  const at = packedDim === 1
    ? (o: number, k: number) => o * cols + k
    : (o: number, k: number) => k * cols + o;
  const out = new Int32Array(m * words);
  for (let o = 0; o < m; o++) {
    for (let w = 0; w < words; w++) {
      let word = 0;
      for (let j = 0; j < pf; j++) {
        const k = w * pf + j;
        if (k >= n) break;
        word += (values[at(o, k)] + offset) * 2 ** (bits * j);
      }
      // Word (o, w) lands at [o, w] for dim 1 and at [w, o] for dim 0.
      out[packedDim === 1 ? o * words + w : w * cols + o] = word | 0;
    }
  }
  return out;
}

/**
 * Unpacks int32 words back to signed integers, dropping the padding.
 *
 * @param packed the words, row-major in the packed shape
 * @param rows original rows (for dim 0 the padding rows are dropped)
 * @param cols original columns (for dim 1 the padding columns are dropped)
 * @param bits N, 1…8
 * @param packedDim the dimension that was packed
 * @returns `rows × cols` signed integers
 * @throws {CompressionError} when `packed` has the wrong length
 * @example
 * ```ts
 * import { unpackInt32 } from "./pack_int32.ts";
 * unpackInt32(new Int32Array([1985229328]), 1, 8, 4, 1); // Int8Array [-8, -7, -6, -5, -4, -3, -2, -1]
 * ```
 */
export function unpackInt32(
  packed: Int32Array,
  rows: number,
  cols: number,
  bits: number,
  packedDim: 0 | 1,
): Int8Array {
  const pf = packFactor(bits);
  const m = packedDim === 1 ? rows : cols;
  const n = packedDim === 1 ? cols : rows;
  const words = Math.ceil(n / pf);
  if (packed.length !== m * words) {
    throw new CompressionError(
      `unpackInt32: ${packed.length} words, expected ${
        m * words
      } for [${rows}, ${cols}] packed along dim ${packedDim}`,
    );
  }
  const offset = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  const out = new Int8Array(rows * cols);
  for (let o = 0; o < m; o++) {
    for (let w = 0; w < words; w++) {
      const word = packed[packedDim === 1 ? o * words + w : w * cols + o];
      for (let j = 0; j < pf; j++) {
        const k = w * pf + j;
        if (k >= n) break;
        const v = ((word >>> (bits * j)) & mask) - offset;
        out[packedDim === 1 ? o * cols + k : k * cols + o] = v;
      }
    }
  }
  return out;
}
