/**
 * `sparse-24-bitmask` (§1.9.8): 2:4 sparsity. In every run of 4 consecutive
 * elements (row-major) the 2 of largest magnitude are kept: `compressed`
 * `[rows, cols/2]` in the weight's dtype, `bitmask` U8 `[rows, ceil(cols/8)]`,
 * `shape` I64 `[2, 1]`. Magnitude of F8_E4M3 elements is taken on the int8
 * view of their bytes (compressed-tensors' quirk, so 0x80 ranks lowest).
 * Ties keep the lower index (torch.topk leaves tie order unspecified).
 *
 * @module
 */

import { DTYPE_BYTES } from "../io/dtype.ts";
import { packBitmask, scatterBitmask } from "./_bitmask.ts";
import { int64Tensor, makeTensor, tensorValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";

/** Ranking keys of E4M3 bytes: the int8 view's abs, which leaves -128 (0x80, −0) at -128. */
const F8_E4M3_MAGNITUDE = (() => {
  const m = new Int16Array(256);
  for (let b = 0; b < 256; b++) m[b] = b === 0x80 ? -128 : b < 128 ? b : 256 - b;
  return m;
})();

/**
 * Which two of a group's four elements to keep, as a 4-bit mask, from their
 * magnitudes: the first two of the group ordered by magnitude, larger
 * first, ties by position. An element is kept when fewer than two others
 * precede it in that order; `i` precedes a later `j` when `mi >= mj`. Six
 * comparisons and no branch: the kept positions of a pruned weight follow
 * no pattern a branch predictor could learn.
 */
function keptOfFour(m0: number, m1: number, m2: number, m3: number): number {
  const a01 = +(m0 >= m1), a02 = +(m0 >= m2), a03 = +(m0 >= m3);
  const a12 = +(m1 >= m2), a13 = +(m1 >= m3), a23 = +(m2 >= m3);
  const before0 = 3 - a01 - a02 - a03;
  const before1 = a01 + 2 - a12 - a13;
  const before2 = a02 + a12 + 1 - a23;
  const before3 = a03 + a13 + a23;
  return +(before0 < 2) | (+(before1 < 2) << 1) | (+(before2 < 2) << 2) | (+(before3 < 2) << 3);
}

/** The kept-mask ({@link keptOfFour}) of every group of four consecutive elements. */
function keptMasks(t: CompressedTensor, n: number): Uint8Array {
  const kept = new Uint8Array(n / 4);
  if (t.dtype === "F8_E4M3") {
    const d = t.data;
    const m = F8_E4M3_MAGNITUDE;
    for (let q = 0, g = 0; q < kept.length; q++, g += 4) {
      kept[q] = keptOfFour(m[d[g]], m[d[g + 1]], m[d[g + 2]], m[d[g + 3]]);
    }
    return kept;
  }
  const mag = tensorValues(t);
  for (let i = 0; i < n; i++) mag[i] = Number.isNaN(mag[i]) ? Infinity : Math.abs(mag[i]);
  for (let q = 0, g = 0; q < kept.length; q++, g += 4) {
    kept[q] = keptOfFour(mag[g], mag[g + 1], mag[g + 2], mag[g + 3]);
  }
  return kept;
}

/** The lower and the higher of the two positions a kept-mask ({@link keptOfFour}) names. */
const FIRST_KEPT = new Uint8Array(16);
const SECOND_KEPT = new Uint8Array(16);
for (let m = 0; m < 16; m++) {
  const set = [0, 1, 2, 3].filter((j) => (m >> j) & 1);
  FIRST_KEPT[m] = set[0] ?? 0;
  SECOND_KEPT[m] = set[1] ?? 0;
}

/**
 * The bitmask of the kept elements, packed as `numpy.packbits(mask, axis=-1,
 * bitorder="little")`: a group's mask is a nibble of its row's bytes, unless
 * groups run across row ends (cols % 4 = 2), which goes element by element.
 */
function packKept(kept: Uint8Array, rows: number, cols: number): Uint8Array {
  if (cols % 4 !== 0) {
    const mask = new Uint8Array(rows * cols);
    for (let i = 0; i < mask.length; i++) mask[i] = (kept[i >> 2] >> (i & 3)) & 1;
    return packBitmask(mask, rows, cols);
  }
  const stride = Math.ceil(cols / 8);
  const bits = new Uint8Array(rows * stride);
  for (let r = 0, q = 0; r < rows; r++) {
    for (let c = 0; c < cols; c += 4, q++) bits[r * stride + (c >> 3)] |= kept[q] << (c & 4);
  }
  return bits;
}

/**
 * Compresses a module's weight tensor to 2:4 values plus a bitmask.
 *
 * @param prefix the module name
 * @param weight its `<prefix>.weight` tensor (any dtype)
 * @returns `shape`, `compressed`, `bitmask`
 * @throws {CompressionError} when the element count is not a multiple of 4 or columns are odd
 * @example
 * ```ts
 * import { compressSparse24Bitmask } from "./sparse_24_bitmask.ts";
 * import { tensorFromValues, tensorValues } from "./compressed_tensor.ts";
 * const w = tensorFromValues("m.weight", "F32", [1, 4], new Float32Array([1, -5, 3, 0.5]));
 * tensorValues(compressSparse24Bitmask("m", w)[1]); // [-5, 3]
 * ```
 */
export function compressSparse24Bitmask(
  prefix: string,
  weight: CompressedTensor,
): CompressedTensor[] {
  if (weight.shape.length !== 2) {
    throw new CompressionError(`${weight.name}: 2:4 compression needs a 2-D tensor`);
  }
  const [rows, cols] = weight.shape;
  const n = rows * cols;
  if (n % 4 !== 0 || cols % 2 !== 0) {
    throw new CompressionError(
      `${prefix}: 2:4 compression needs an even column count and a multiple of 4 elements, got [${rows}, ${cols}]`,
    );
  }
  const kept = keptMasks(weight, n);
  const size = DTYPE_BYTES[weight.dtype];
  const data = weight.data;
  const compressed = new Uint8Array((n / 2) * size);
  for (let q = 0, k = 0; q < kept.length; q++, k += 2 * size) {
    const first = (4 * q + FIRST_KEPT[kept[q]]) * size;
    const second = (4 * q + SECOND_KEPT[kept[q]]) * size;
    for (let b = 0; b < size; b++) {
      compressed[k + b] = data[first + b];
      compressed[k + size + b] = data[second + b];
    }
  }
  return [
    int64Tensor(`${prefix}.shape`, [2, 1], [rows, cols]),
    makeTensor(`${prefix}.compressed`, weight.dtype, [rows, cols / 2], compressed),
    makeTensor(`${prefix}.bitmask`, "U8", [rows, Math.ceil(cols / 8)], packKept(kept, rows, cols)),
  ];
}

/**
 * Restores the dense weight tensor from 2:4 values and the bitmask.
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @returns the `<prefix>.weight` tensor in the stored dtype
 * @throws {CompressionError} when tensors are missing or inconsistent
 * @example
 * ```ts
 * import { compressSparse24Bitmask, decompressSparse24Bitmask } from "./sparse_24_bitmask.ts";
 * import { tensorFromValues, tensorValues } from "./compressed_tensor.ts";
 * const w = tensorFromValues("m.weight", "F32", [1, 4], new Float32Array([0, -5, 3, 0]));
 * tensorValues(decompressSparse24Bitmask("m", compressSparse24Bitmask("m", w))); // [0, -5, 3, 0]
 * ```
 */
export function decompressSparse24Bitmask(
  prefix: string,
  tensors: readonly CompressedTensor[],
): CompressedTensor {
  return scatterBitmask(prefix, tensors);
}
