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
  if (packedDim === 1) {
    const words = Math.ceil(cols / pf);
    const out = new Int32Array(rows * words);
    // Widening each row first keeps packRow's loads of one array type.
    const row = new Int32Array(cols);
    for (let r = 0; r < rows; r++) {
      row.set(values.subarray(r * cols, (r + 1) * cols));
      packRow(row, cols, bits, out, r * words);
    }
    return out;
  }
  // Along dim 0: word (w, c) holds rows w·pf … w·pf + pf − 1 of column c.
  const words = Math.ceil(rows / pf);
  const out = new Int32Array(words * cols);
  for (let w = 0; w < words; w++) {
    const r0 = w * pf;
    const n = Math.min(pf, rows - r0);
    for (let c = 0; c < cols; c++) {
      let word = 0;
      for (let j = 0; j < n; j++) word |= (values[(r0 + j) * cols + c] + offset) << (bits * j);
      out[w * cols + c] = word;
    }
  }
  return out;
}

/** Packs the first `n` codes, all in range, into the words at `out[at…]`. */
function packRow(
  codes: Int32Array,
  n: number,
  bits: number,
  out: Int32Array,
  at: number,
): void {
  const offset = 1 << (bits - 1);
  if (bits === 4) {
    // W4A16's case, unrolled: eight nibbles to a word.
    const full = n >> 3;
    for (let w = 0; w < full; w++) {
      const k = 8 * w;
      out[at + w] = (codes[k] + 8) | ((codes[k + 1] + 8) << 4) | ((codes[k + 2] + 8) << 8) |
        ((codes[k + 3] + 8) << 12) | ((codes[k + 4] + 8) << 16) | ((codes[k + 5] + 8) << 20) |
        ((codes[k + 6] + 8) << 24) | ((codes[k + 7] + 8) << 28);
    }
    if (full * 8 < n) {
      let word = 0;
      for (let j = 0; full * 8 + j < n; j++) word |= (codes[full * 8 + j] + 8) << (4 * j);
      out[at + full] = word;
    }
    return;
  }
  const pf = Math.floor(32 / bits);
  const words = Math.ceil(n / pf);
  for (let w = 0; w < words; w++) {
    const k0 = w * pf;
    const m = Math.min(pf, n - k0);
    let word = 0;
    for (let j = 0; j < m; j++) word |= (codes[k0 + j] + offset) << (bits * j);
    out[at + w] = word;
  }
}

/**
 * Packs one row of signed codes along its columns into
 * `ceil(cols / floor(32 / bits))` int32 words, as {@link packInt32} packs each
 * row with `packedDim` 1. The codes are trusted to be in range (they come
 * straight from quantization, which clamps them).
 *
 * @param codes the row's codes, at least `cols` of them
 * @param cols number of codes to pack
 * @param bits N, 1…8
 * @param out the words of the whole tensor
 * @param at index in `out` of the row's first word
 * @throws {CompressionError} for a bad bit width
 * @example
 * ```ts
 * import { packInt32Row } from "./pack_int32.ts";
 * const out = new Int32Array(2);
 * packInt32Row(new Int32Array([1, 2, 3, 4]), 4, 4, out, 1);
 * out; // Int32Array [0, 52137]
 * ```
 */
export function packInt32Row(
  codes: Int32Array,
  cols: number,
  bits: number,
  out: Int32Array,
  at: number,
): void {
  checkBits(bits);
  packRow(codes, cols, bits, out, at);
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
