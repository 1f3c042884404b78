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

function magnitudes(t: CompressedTensor): Float64Array {
  if (t.dtype === "F8_E4M3") {
    const mag = new Float64Array(t.data.length);
    for (let i = 0; i < mag.length; i++) {
      const b = t.data[i];
      const v = b >= 128 ? b - 256 : b;
      mag[i] = v === -128 ? -128 : Math.abs(v); // int8 abs wraps at -128
    }
    return mag;
  }
  const values = tensorValues(t);
  const mag = new Float64Array(values.length);
  for (let i = 0; i < mag.length; i++) {
    const v = values[i];
    mag[i] = Number.isNaN(v) ? Infinity : Math.abs(v);
  }
  return mag;
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
  const mag = magnitudes(weight);
  const mask = new Uint8Array(n);
  for (let g = 0; g < n; g += 4) {
    // The first two of the group ordered by magnitude, larger first, ties
    // by position (a sort of [0, 1, 2, 3] by that order, without the sort):
    // a later value displaces one only when strictly larger.
    let first = g;
    let second = -1;
    for (let j = g + 1; j < g + 4; j++) {
      if (mag[j] > mag[first]) {
        second = first;
        first = j;
      } else if (second < 0 || mag[j] > mag[second]) second = j;
    }
    mask[first] = 1;
    mask[second] = 1;
  }
  const size = DTYPE_BYTES[weight.dtype];
  const compressed = new Uint8Array((n / 2) * size);
  const data = weight.data;
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (!mask[i]) continue;
    for (let b = 0; b < size; b++) compressed[k++] = data[i * size + b];
  }
  return [
    int64Tensor(`${prefix}.shape`, [2, 1], [rows, cols]),
    makeTensor(`${prefix}.compressed`, weight.dtype, [rows, cols / 2], compressed),
    makeTensor(
      `${prefix}.bitmask`,
      "U8",
      [rows, Math.ceil(cols / 8)],
      packBitmask(mask, rows, cols),
    ),
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
