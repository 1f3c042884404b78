/**
 * Bit masks packed as `numpy.packbits(mask, axis=-1, bitorder="little")`:
 * column c of row r is bit c % 8 of byte [r, c // 8].
 *
 * @module
 */

import { DTYPE_BYTES } from "../io/dtype.ts";
import { int64Values, makeTensor, requireTensor } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";

/** Packs a row-major boolean mask `[rows, cols]` into `[rows, ceil(cols/8)]` bytes. */
export function packBitmask(mask: Uint8Array, rows: number, cols: number): Uint8Array {
  const stride = Math.ceil(cols / 8);
  const out = new Uint8Array(rows * stride);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (mask[r * cols + c]) out[r * stride + (c >> 3)] |= 1 << (c & 7);
    }
  }
  return out;
}

/** Unpacks `[rows, ceil(cols/8)]` bytes into a row-major 0/1 mask `[rows, cols]`. */
export function unpackBitmask(bits: Uint8Array, rows: number, cols: number): Uint8Array {
  const stride = Math.ceil(cols / 8);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = (bits[r * stride + (c >> 3)] >> (c & 7)) & 1;
  }
  return out;
}

/**
 * Scatters `P.compressed` back to the dense `[rows, cols]` layout that
 * `P.bitmask` and `P.shape` describe: the decompression shared by
 * `sparse-bitmask` and `sparse-24-bitmask` (they differ only in how they
 * compress and in the shape of `P.shape`).
 *
 * @param prefix the module name
 * @param tensors the module's stored tensors
 * @returns the dense `P.weight`
 */
export function scatterBitmask(
  prefix: string,
  tensors: readonly CompressedTensor[],
): CompressedTensor {
  const [rows, cols] = int64Values(requireTensor(tensors, `${prefix}.shape`));
  const compressed = requireTensor(tensors, `${prefix}.compressed`);
  const mask = unpackBitmask(requireTensor(tensors, `${prefix}.bitmask`).data, rows, cols);
  const size = DTYPE_BYTES[compressed.dtype];
  const out = new Uint8Array(rows * cols * size);
  let k = 0;
  for (let i = 0; i < rows * cols; i++) {
    if (mask[i]) {
      out.set(compressed.data.subarray(k * size, (k + 1) * size), size * i);
      k++;
    }
  }
  if (k * size !== compressed.data.length) {
    throw new CompressionError(
      `${prefix}: bitmask has ${k} set bits but compressed holds ${compressed.shape[0]}`,
    );
  }
  return makeTensor(`${prefix}.weight`, compressed.dtype, [rows, cols], out);
}
