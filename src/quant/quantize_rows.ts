/**
 * Quantization straight to stored codes: integer codes (row by row) for
 * int args, E4M3 bytes for FP8, E2M1 nibbles (row by row) for FP4. A
 * compressor packs each row as it comes, so a weight is read once and no
 * tensor-sized array of code values (as `quantize` returns) is ever built.
 * The codes are exactly those of `quantize` in their stored encoding.
 *
 * @module
 */

import type { QuantizationArgs } from "./args.ts";
import { QuantizationConfigError } from "./errors.ts";
import {
  clampedRow,
  codeKind,
  encodeFp4Row,
  encodeFp8Row,
  intCodesRow,
  quantizePlan,
} from "./_quantize_kernels.ts";
import type { CodeKind, QuantizePlan } from "./_quantize_kernels.ts";
import type { QuantizeOptions, WeightQParams } from "./quantize.ts";

function plan(
  values: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  options: QuantizeOptions,
  kind: CodeKind,
): QuantizePlan {
  const where = options.where ?? "weight";
  if (codeKind(args) !== kind) {
    throw new QuantizationConfigError(
      `${where}: ${args.type}${args.numBits} args do not produce ${kind} codes`,
    );
  }
  return quantizePlan(values.length, shape, qparams, args, options);
}

/**
 * Quantizes a 2-D tensor with int args and hands over each row's integer
 * codes (round half to even; a NaN input gives code 0).
 *
 * @param values the tensor `[rows, cols]`, row-major
 * @param shape `[rows, cols]`
 * @param qparams scales, zero points, g_idx
 * @param args int quantization args
 * @param onRow called once per row, in order, with the row index and its
 *   `cols` codes; the array is reused for the next row, so copy what you keep
 * @param options dtype and module name
 * @throws {QuantizationConfigError} for float args
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts
 * import { quantizeIntRows } from "./quantize_rows.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const w = new Float32Array([7.5, -7.5, 2.5, -0.49]);
 * const rows: number[][] = [];
 * quantizeIntRows(w, [2, 2], { scale: new Float32Array([1, 1]) }, args, (_, c) => rows.push([...c]));
 * rows; // [[7, -8], [2, 0]]
 * ```
 */
export function quantizeIntRows(
  values: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  onRow: (row: number, codes: Int32Array) => void,
  options: QuantizeOptions = {},
): void {
  const p = plan(values, shape, qparams, args, options, "int");
  const t = new Float32Array(p.cols);
  const tBits = new Int32Array(t.buffer);
  const codes = new Int32Array(p.cols);
  for (let r = 0; r < p.rows; r++) {
    intCodesRow(p, values, r, t, tBits, codes);
    onRow(r, codes);
  }
}

/**
 * Quantizes a 2-D tensor with FP8 args straight to its float8_e4m3fn bytes
 * (RNE; −0 is 0x80; a NaN input gives 0x7F), as they are stored.
 *
 * @param values the tensor `[rows, cols]`, row-major
 * @param shape `[rows, cols]`
 * @param qparams scales, zero points, g_idx
 * @param args 8-bit float quantization args
 * @param options dtype and module name
 * @returns one byte per value, row-major
 * @throws {QuantizationConfigError} for args that are not 8-bit float
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts
 * import { quantizeFp8Bytes } from "./quantize_rows.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "w");
 * quantizeFp8Bytes(new Float32Array([1, -500]), [1, 2], { scale: new Float32Array([1]) }, args);
 * // Uint8Array [0x38, 0xfe] (1 and −448)
 * ```
 */
export function quantizeFp8Bytes(
  values: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  options: QuantizeOptions = {},
): Uint8Array {
  const p = plan(values, shape, qparams, args, options, "fp8");
  const t = new Float32Array(p.cols);
  const bits = new Int32Array(t.buffer);
  const bytes = new Uint8Array(p.rows * p.cols);
  for (let r = 0; r < p.rows; r++) {
    clampedRow(p, values, r, t, bits);
    encodeFp8Row(bits, t, p.cols, bytes, r * p.cols);
  }
  return bytes;
}

/**
 * Quantizes a 2-D tensor with FP4 args (NVFP4 with its global scale, MXFP4)
 * and hands over each row's E2M1 nibbles, as `pack_fp4_to_uint8` codes
 * them: magnitude index in bits 0–2, sign in bit 3 (a negative value that
 * rounds to zero is 0x8).
 *
 * @param values the tensor `[rows, cols]`, row-major
 * @param shape `[rows, cols]`
 * @param qparams scales, global scale, g_idx
 * @param args 4-bit float quantization args
 * @param onRow called once per row, in order, with the row index and its
 *   `cols` nibbles (one per byte); the array is reused for the next row
 * @param options dtype and module name
 * @throws {QuantizationConfigError} for args that are not 4-bit float
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts
 * import { quantizeFp4Rows } from "./quantize_rows.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, type: "float", group_size: 4 }, "w");
 * const out = new Uint8Array(4);
 * quantizeFp4Rows(new Float32Array([12, -6, 3, -0.2]), [1, 4], { scale: new Float32Array([2]) }, args, (_, n) => out.set(n));
 * out; // Uint8Array [7, 13, 3, 8] (6, −3, 1.5, −0)
 * ```
 */
export function quantizeFp4Rows(
  values: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  onRow: (row: number, nibbles: Uint8Array) => void,
  options: QuantizeOptions = {},
): void {
  const p = plan(values, shape, qparams, args, options, "fp4");
  const t = new Float32Array(p.cols);
  const tBits = new Int32Array(t.buffer);
  const nibbles = new Uint8Array(p.cols);
  for (let r = 0; r < p.rows; r++) {
    clampedRow(p, values, r, t, tBits);
    encodeFp4Row(t, p.cols, nibbles);
    onRow(r, nibbles);
  }
}
