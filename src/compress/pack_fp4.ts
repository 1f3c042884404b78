/**
 * compressed-tensors' `pack_fp4_to_uint8` / `unpack_fp4_from_uint8`: two
 * E2M1 nibbles per byte, the even element of each row pair in the low
 * nibble; the sign of zero survives (`0x8` is −0).
 *
 * @module
 */

import { fp4Nibble, fp4NibbleValue } from "../quant/fp4.ts";
import { CompressionError } from "./errors.ts";

/**
 * Packs E2M1 values `[rows, cols]` into bytes `[rows, cols/2]`.
 *
 * @param values E2M1 values (as `quantize` returns them), row-major
 * @param rows number of rows
 * @param cols number of columns (must be even)
 * @param where the tensor or module name, for errors
 * @returns the packed bytes
 * @throws {CompressionError} for an odd column count
 * @example
 * ```ts
 * import { packFp4 } from "./pack_fp4.ts";
 * packFp4(new Float32Array([-0.5, -6, -0.5, -1.5, -1, 6, 0, -0]), 1, 8); // Uint8Array [0xf9, 0xb9, 0x7a, 0x80]
 * ```
 */
export function packFp4(
  values: Float32Array,
  rows: number,
  cols: number,
  where = "weight",
): Uint8Array {
  if (cols % 2 !== 0) {
    throw new CompressionError(
      `${where}: FP4 packing needs an even number of columns, got ${cols}; ignore this module`,
    );
  }
  if (values.length !== rows * cols) {
    throw new CompressionError(`${where}: ${values.length} values for shape [${rows}, ${cols}]`);
  }
  const out = new Uint8Array(values.length / 2);
  for (let k = 0; k < out.length; k++) {
    out[k] = fp4Nibble(values[2 * k]) | (fp4Nibble(values[2 * k + 1]) << 4);
  }
  return out;
}

/**
 * Packs one row of E2M1 nibbles (as `quantizeFp4Rows` hands them over) into
 * `cols / 2` bytes, the even column in the low nibble.
 *
 * @param nibbles the row's nibbles, one per byte, at least `cols` of them
 * @param cols number of columns (even)
 * @param out the bytes of the whole tensor
 * @param at index in `out` of the row's first byte
 * @example
 * ```ts
 * import { packFp4Row } from "./pack_fp4.ts";
 * const out = new Uint8Array(2);
 * packFp4Row(new Uint8Array([9, 15, 0, 8]), 4, out, 0);
 * out; // Uint8Array [0xf9, 0x80]
 * ```
 */
export function packFp4Row(nibbles: Uint8Array, cols: number, out: Uint8Array, at: number): void {
  const n = cols >> 1;
  for (let k = 0; k < n; k++) out[at + k] = nibbles[2 * k] | (nibbles[2 * k + 1] << 4);
}

/**
 * Unpacks bytes `[rows, cols/2]` into E2M1 values `[rows, cols]`.
 *
 * @param packed the bytes
 * @param rows number of rows
 * @param cols number of columns of the unpacked tensor
 * @returns the values (−0 where the nibble is 0x8)
 * @throws {CompressionError} when the byte count does not match
 * @example
 * ```ts
 * import { unpackFp4 } from "./pack_fp4.ts";
 * unpackFp4(new Uint8Array([0xf9]), 1, 2); // Float32Array [-0.5, -6]
 * ```
 */
export function unpackFp4(packed: Uint8Array, rows: number, cols: number): Float32Array {
  if (packed.length * 2 !== rows * cols) {
    throw new CompressionError(
      `unpackFp4: ${packed.length} bytes cannot hold [${rows}, ${cols}] FP4 values`,
    );
  }
  const out = new Float32Array(rows * cols);
  for (let k = 0; k < packed.length; k++) {
    out[2 * k] = fp4NibbleValue(packed[k] & 0xf);
    out[2 * k + 1] = fp4NibbleValue(packed[k] >> 4);
  }
  return out;
}
