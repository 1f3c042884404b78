/**
 * Reference quantize / dequantize / fake-quantize (§1.5) for int 1–8 bit,
 * FP8 E4M3 and FP4 E2M1 (NVFP4 with its global scale, MXFP4 with power-of-two
 * scales), per strategy with scale/zero-point broadcasting and g_idx. The
 * single-value functions are the plain TypeScript definitions the GPU
 * kernels and all tests compare against; the tensor functions run the same
 * arithmetic through the typed-array loops of `_quantize_kernels.ts`, and
 * every op is rounded to the tensor dtype as PyTorch does.
 *
 * ```
 * s_eff = global_scale ? scale / global_scale : scale
 * q     = cast(clamp(x / s_eff + zp, q_min, q_max))   int: round half even; fp8: RNE; fp4: cast_to_fp4
 * x̂     = (q − zp) · s_eff
 * ```
 *
 * @module
 */

import { roundToF8E4M3 } from "../io/floats.ts";
import type { QuantizationArgs } from "./args.ts";
import type { CalibrationView } from "./calibration_view.ts";
import { rounderFor } from "./compute_dtype.ts";
import type { ComputeDType } from "./compute_dtype.ts";
import { castToFp4 } from "./fp4.ts";
import { quantizedRange } from "./qparams.ts";
import type { QParams } from "./qparams.ts";
import { roundHalfEven } from "./round_half_even.ts";
import {
  castRow,
  clampedRow,
  clampRun,
  codeKind,
  dequantizedRow,
  dequantRun,
  fakeQuantizeFp8RunF32,
  fakeQuantizeIntRunF32,
  quantizePlan,
} from "./_quantize_kernels.ts";

/** The quantization parameters of one weight. */
export interface WeightQParams {
  /** Scales in the qparam shape's row-major order. */
  readonly scale: Float32Array;
  /** Zero points, same length; null/absent means symmetric (all zero). */
  readonly zeroPoint?: Float32Array | null;
  /** The NVFP4 global scale (tensor_group), if any. */
  readonly globalScale?: number | null;
  /** Group id per column (actorder "group"), if any. */
  readonly gIdx?: Int32Array | null;
}

/** Options shared by the quantize functions. */
export interface QuantizeOptions {
  /** The dtype the tensor and its scales are held in; F32 by default. */
  readonly dtype?: ComputeDType;
  /** The module name, for error messages. */
  readonly where?: string;
}

/** Options of the single-value helpers. */
export interface QuantizeValueOptions {
  /** The NVFP4 global scale, if any. */
  readonly globalScale?: number | null;
  /** The dtype emulated; F32 by default. */
  readonly dtype?: ComputeDType;
}

function castFor(args: QuantizationArgs): (t: number) => number {
  if (args.type === "int") return roundHalfEven;
  return args.numBits === 8 ? roundToF8E4M3 : castToFp4;
}

interface Kernel {
  readonly qMin: number;
  readonly qMax: number;
  readonly cast: (t: number) => number;
  /** Rounding of every op (F32 once a global scale is involved: type promotion). */
  readonly r: (x: number) => number;
  /** Rounding of a fake-quantized result back to the tensor dtype. */
  readonly out: (x: number) => number;
  readonly g: number | null;
}

function kernel(
  args: QuantizationArgs,
  globalScale: number | null | undefined,
  dtype: ComputeDType,
): Kernel {
  const [qMin, qMax] = quantizedRange(args);
  const hasGlobal = globalScale !== undefined && globalScale !== null;
  const r = hasGlobal ? Math.fround : rounderFor(dtype);
  return {
    qMin,
    qMax,
    cast: castFor(args),
    r,
    out: rounderFor(dtype),
    g: hasGlobal ? Math.fround(globalScale) : null,
  };
}

function effectiveScale(k: Kernel, s: number): number {
  return k.g === null ? s : Math.fround(s / k.g);
}

function quantizeWith(k: Kernel, x: number, sEff: number, zp: number | null): number {
  let t = k.r(x / sEff);
  if (zp !== null) t = k.r(t + zp);
  t = t < k.qMin ? k.qMin : t > k.qMax ? k.qMax : t;
  return k.cast(t);
}

function dequantizeWith(k: Kernel, q: number, sEff: number, zp: number | null): number {
  const v = zp === null ? q : k.r(q - zp);
  return k.r(v * sEff);
}

/**
 * Quantizes one value with one scale / zero point.
 *
 * @param x the value
 * @param scale its scale
 * @param zeroPoint its zero point (null for symmetric)
 * @param args quantization args (type and bits)
 * @param options global scale and dtype
 * @returns the code: an integer, an FP8 value or an FP4 value
 * @example
 * ```ts
 * import { quantizeValue } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * quantizeValue(7.5, 1, null, parseQuantizationArgs({ num_bits: 4 }, "w")); // 7
 * ```
 */
export function quantizeValue(
  x: number,
  scale: number,
  zeroPoint: number | null,
  args: QuantizationArgs,
  options: QuantizeValueOptions = {},
): number {
  const k = kernel(args, options.globalScale, options.dtype ?? "F32");
  return quantizeWith(k, x, effectiveScale(k, scale), zeroPoint);
}

/**
 * Dequantizes one code.
 *
 * @param q the code
 * @param scale its scale
 * @param zeroPoint its zero point (null for symmetric)
 * @param args quantization args
 * @param options global scale and dtype
 * @returns `(q − zp) · s_eff`
 * @example
 * ```ts
 * import { dequantizeValue } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * dequantizeValue(-3, 0.5, 2, parseQuantizationArgs({ num_bits: 4, symmetric: false }, "w")); // -2.5
 * ```
 */
export function dequantizeValue(
  q: number,
  scale: number,
  zeroPoint: number | null,
  args: QuantizationArgs,
  options: QuantizeValueOptions = {},
): number {
  const k = kernel(args, options.globalScale, options.dtype ?? "F32");
  return k.out(dequantizeWith(k, q, effectiveScale(k, scale), zeroPoint));
}

/**
 * Fake-quantizes one value (quantize then dequantize), e.g. for GPTQ's
 * column-by-column loop.
 *
 * @param x the value
 * @param scale its scale
 * @param zeroPoint its zero point (null for symmetric)
 * @param args quantization args
 * @param options global scale and dtype
 * @returns the value on the quantization grid
 * @example
 * ```ts
 * import { fakeQuantizeValue } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * fakeQuantizeValue(0.3, 0.25, null, parseQuantizationArgs({ num_bits: 4 }, "w")); // 0.25
 * ```
 */
export function fakeQuantizeValue(
  x: number,
  scale: number,
  zeroPoint: number | null,
  args: QuantizationArgs,
  options: QuantizeValueOptions = {},
): number {
  const k = kernel(args, options.globalScale, options.dtype ?? "F32");
  const sEff = effectiveScale(k, scale);
  return k.out(dequantizeWith(k, quantizeWith(k, x, sEff, zeroPoint), sEff, zeroPoint));
}

/**
 * Quantizes a 2-D tensor (a Linear weight `[out, in]`, or activations
 * `[tokens, hidden]` for tensor/token/group strategies) to codes.
 *
 * @param values the tensor, row-major
 * @param shape `[rows, cols]`
 * @param qparams scales, zero points, global scale, g_idx
 * @param args quantization args
 * @param options dtype and module name
 * @returns the codes as numbers (integers, FP8 values or FP4 values incl. −0)
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts
 * import { quantize } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, group_size: 8 }, "w");
 * const w = new Float32Array([7.5, -7.5, 2.5, -2.5, 0.5, 1.5, 3.0, -0.49]);
 * quantize(w, [1, 8], { scale: new Float32Array([1]) }, args); // [7, -8, 2, -2, 0, 2, 3, -0]
 * ```
 */
export function quantize(
  values: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  options: QuantizeOptions = {},
): Float32Array {
  const p = quantizePlan(values.length, shape, qparams, args, options);
  const { rows, cols } = p;
  const out = new Float32Array(values.length);
  const row = rowBuffers(cols);
  for (let r = 0; r < rows; r++) {
    clampedRow(p, values, r, row.t, row.bits);
    castRow(p.kind, row.t, row.bits, cols, out, r * cols, row.bytes);
  }
  return out;
}

/**
 * Dequantizes codes of a 2-D tensor.
 *
 * @param codes the codes (as {@link quantize} returns them)
 * @param shape `[rows, cols]`
 * @param qparams scales, zero points, global scale, g_idx
 * @param args quantization args
 * @param options dtype and module name
 * @returns the dequantized values, rounded to the dtype
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts
 * import { dequantize } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, strategy: "channel" }, "w");
 * dequantize(new Float32Array([2, -4]), [2, 1], { scale: new Float32Array([0.5, 0.25]) }, args); // [1, -1]
 * ```
 */
export function dequantize(
  codes: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  options: QuantizeOptions = {},
): Float32Array {
  const p = quantizePlan(codes.length, shape, qparams, args, options);
  const { rows, cols } = p;
  const out = new Float32Array(codes.length);
  const outBits = new Int32Array(out.buffer);
  for (let r = 0; r < rows; r++) dequantizedRow(p, codes, r * cols, r, out, r * cols, outBits);
  return out;
}

/**
 * Fake-quantizes a 2-D tensor: `dequantize(quantize(x))`.
 *
 * @param values the tensor, row-major
 * @param shape `[rows, cols]`
 * @param qparams scales, zero points, global scale, g_idx
 * @param args quantization args
 * @param options dtype and module name
 * @returns the values on the quantization grid
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts
 * import { fakeQuantize } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 4 }, "w");
 * fakeQuantize(new Float32Array([0.3, -1]), [1, 2], { scale: new Float32Array([0.25]) }, args); // [0.25, -1]
 * ```
 */
export function fakeQuantize(
  values: Float32Array,
  shape: readonly [number, number],
  qparams: WeightQParams,
  args: QuantizationArgs,
  options: QuantizeOptions = {},
): Float32Array {
  const p = quantizePlan(values.length, shape, qparams, args, options);
  const { rows, cols } = p;
  const out = new Float32Array(values.length);
  const fp8 = p.kind === "fp8" && p.zp === null;
  if ((fp8 || p.kind === "int") && p.opDtype === "F32" && p.outDtype === "F32" && p.run > 0) {
    // Float32 ops on an integer grid, or FP8 without a zero point (static FP8
    // activations): one fused pass per run.
    for (let r = 0; r < rows; r++) {
      let slot = p.rowPart[r];
      for (let c0 = 0; c0 < cols; c0 += p.run, slot++) {
        const at = r * cols + c0;
        const n = Math.min(p.run, cols - c0);
        if (fp8) fakeQuantizeFp8RunF32(values, at, n, p.sEff[slot], p.qMin, p.qMax, out, at);
        else {
          const z = p.zp === null ? null : p.zp[slot];
          fakeQuantizeIntRunF32(values, at, n, p.sEff[slot], z, p.qMin, p.qMax, out, at);
        }
      }
    }
    return out;
  }
  const outBits = new Int32Array(out.buffer);
  const row = rowBuffers(cols);
  // Row by row, so the codes never need a tensor-sized array of their own.
  for (let r = 0; r < rows; r++) {
    clampedRow(p, values, r, row.t, row.bits);
    castRow(p.kind, row.t, row.bits, cols, row.codes, 0, row.bytes);
    dequantizedRow(p, row.codes, 0, r, out, r * cols, outBits);
  }
  return out;
}

/**
 * Fake-quantizes a calibration view slot by slot (each element with its
 * slot's scale), as the MSE observer does ("equivalent to token quant").
 *
 * @param view the calibration view
 * @param qparams one scale / zero point per slot
 * @param args quantization args
 * @param options global scale and dtype
 * @returns fake-quantized values in the view's layout
 * @example
 * ```ts
 * import { fakeQuantizeView } from "./quantize.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const view = { data: new Float32Array([0.3, 1]), numObservations: 1, numSlots: 1, slotLength: 2, qparamShape: [1] };
 * const q = { scale: new Float32Array([0.25]), zeroPoint: new Float32Array([0]) };
 * fakeQuantizeView(view, q, parseQuantizationArgs({ num_bits: 4 }, "w")); // [0.25, 1]
 * ```
 */
export function fakeQuantizeView(
  view: CalibrationView,
  qparams: QParams,
  args: QuantizationArgs,
  options: QuantizeValueOptions = {},
): Float32Array {
  const dtype = options.dtype ?? "F32";
  const k = kernel(args, options.globalScale, dtype);
  const opDtype = k.g === null ? dtype : "F32";
  const kind = codeKind(args);
  const { data, numObservations, numSlots, slotLength } = view;
  const out = new Float32Array(data.length);
  const outBits = new Int32Array(out.buffer);
  const row = rowBuffers(slotLength);
  for (let s = 0; s < numSlots; s++) {
    const sEff = effectiveScale(k, qparams.scale[s]);
    const zp = qparams.zeroPoint[s];
    for (let o = 0; o < numObservations; o++) {
      const base = (o * numSlots + s) * slotLength;
      clampRun(data, base, slotLength, sEff, zp, row.t, 0, k.qMin, k.qMax, opDtype, row.bits);
      castRow(kind, row.t, row.bits, slotLength, row.codes, 0, row.bytes);
      dequantRun(row.codes, 0, slotLength, sEff, zp, out, base, opDtype, dtype, outBits);
    }
  }
  return out;
}

/** Reused per-row scratch: clamped values, their float32 bits, code values, code bytes. */
function rowBuffers(n: number) {
  const t = new Float32Array(n);
  return {
    t,
    bits: new Int32Array(t.buffer),
    codes: new Float32Array(n),
    bytes: new Uint8Array(n),
  };
}
