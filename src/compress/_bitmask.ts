/**
 * Bit masks packed as `numpy.packbits(mask, axis=-1, bitorder="little")`:
 * column c of row r is bit c % 8 of byte [r, c // 8].
 *
 * @module
 */

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
