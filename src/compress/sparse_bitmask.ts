/**
 * `sparse-bitmask` (§1.9.7): unstructured sparsity. A module's `weight`
 * (any dtype, e.g. BF16 or the F8 codes of a quantized weight) becomes
 * `shape` (I64 `[2]`), `compressed` (the nonzero elements in row-major
 * order, raw bytes kept), `bitmask` (U8 `[rows, ceil(cols/8)]`) and
 * `row_offsets` (I64 `[rows]`). Nonzero means `!= 0`, so −0.0 counts as zero.
 *
 * @module
 */

import { DTYPE_BYTES } from "../io/dtype.ts";
import { packBitmask, scatterBitmask } from "./_bitmask.ts";
import { int64Tensor, makeTensor, tensorValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";

function check2d(t: CompressedTensor): [number, number] {
  if (t.shape.length !== 2) {
    throw new CompressionError(`${t.name}: sparse compression needs a 2-D tensor`);
  }
  return [t.shape[0], t.shape[1]];
}

/**
 * Compresses a module's weight tensor with a bitmask.
 *
 * @param prefix the module name
 * @param weight its `<prefix>.weight` tensor (any dtype)
 * @returns `shape`, `compressed`, `bitmask`, `row_offsets` (the `weight` key disappears)
 * @throws {CompressionError} for a tensor that is not 2-D
 * @example
 * ```ts
 * import { compressSparseBitmask } from "./sparse_bitmask.ts";
 * import { tensorFromValues } from "./compressed_tensor.ts";
 * const w = tensorFromValues("m.weight", "F32", [1, 4], new Float32Array([0, 2, 0, 3]));
 * compressSparseBitmask("m", w).map((t) => t.shape); // [[2], [2], [1, 1], [1]]
 * ```
 */
export function compressSparseBitmask(
  prefix: string,
  weight: CompressedTensor,
): CompressedTensor[] {
  const [rows, cols] = check2d(weight);
  const values = tensorValues(weight);
  const size = DTYPE_BYTES[weight.dtype];
  const mask = new Uint8Array(rows * cols);
  let nnz = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] !== 0) {
      mask[i] = 1;
      nnz++;
    }
  }
  const compressed = new Uint8Array(nnz * size);
  const offsets: number[] = [];
  let k = 0;
  for (let r = 0; r < rows; r++) {
    offsets.push(k);
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if (mask[i]) compressed.set(weight.data.subarray(i * size, (i + 1) * size), size * k++);
    }
  }
  return [
    int64Tensor(`${prefix}.shape`, [2], [rows, cols]),
    makeTensor(`${prefix}.compressed`, weight.dtype, [nnz], compressed),
    makeTensor(
      `${prefix}.bitmask`,
      "U8",
      [rows, Math.ceil(cols / 8)],
      packBitmask(mask, rows, cols),
    ),
    int64Tensor(`${prefix}.row_offsets`, [rows], offsets),
  ];
}

/**
 * Restores the dense weight tensor (original dtype; −0.0 comes back as +0).
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @returns the `<prefix>.weight` tensor
 * @throws {CompressionError} when tensors are missing or inconsistent
 * @example
 * ```ts
 * import { compressSparseBitmask, decompressSparseBitmask } from "./sparse_bitmask.ts";
 * import { tensorFromValues, tensorValues } from "./compressed_tensor.ts";
 * const w = tensorFromValues("m.weight", "F32", [1, 4], new Float32Array([0, 2, 0, 3]));
 * tensorValues(decompressSparseBitmask("m", compressSparseBitmask("m", w))); // [0, 2, 0, 3]
 * ```
 */
export function decompressSparseBitmask(
  prefix: string,
  tensors: readonly CompressedTensor[],
): CompressedTensor {
  return scatterBitmask(prefix, tensors);
}
