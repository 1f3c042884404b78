/**
 * The monomorphic loops behind quantize / dequantize / fake-quantize and the
 * row encoders (§1.5). They compute exactly what the scalar definitions in
 * quantize.ts compute (`quantizeValue`, `dequantizeValue`), op for op and
 * rounding for rounding; they only avoid what made those slow on whole
 * weights: a closure call per op, a slot lookup per element, and a
 * full-size intermediate array per stage.
 *
 * A weight is processed row by row in two stages:
 *
 * 1. `clampedRow`: `t = clamp(r(r(x / s_eff) + zp), q_min, q_max)` into a
 *    reused Float32Array row (every t is a float32 value, so the row holds it
 *    exactly, NaN included);
 * 2. an encoder: t → integer code (round half to even), E4M3 byte, E2M1
 *    nibble, or the code's value, as `quantize` returns it.
 *
 * @module
 */

import { f8E4M3BitsToF32 } from "../io/floats.ts";
import type { QuantizationArgs } from "./args.ts";
import { rounderFor } from "./compute_dtype.ts";
import type { ComputeDType } from "./compute_dtype.ts";
import { QuantizationShapeError } from "./errors.ts";
import { castToFp4 } from "./fp4.ts";
import { quantizedRange } from "./qparams.ts";
import { roundHalfEven } from "./round_half_even.ts";
import { qparamSlotMap } from "./slot_map.ts";

/** What a code is, by args: `int` N-bit, FP8 E4M3, FP4 E2M1. */
export type CodeKind = "int" | "fp8" | "fp4";

/** The parts of `WeightQParams` a plan needs (structural, to avoid an import cycle). */
export interface PlanQParams {
  readonly scale: Float32Array;
  readonly zeroPoint?: Float32Array | null;
  readonly globalScale?: number | null;
  readonly gIdx?: Int32Array | null;
}

/** Everything the row loops need for one 2-D tensor, resolved once. */
export interface QuantizePlan {
  readonly rows: number;
  readonly cols: number;
  /** Slot of row r's first column group. */
  readonly rowPart: Int32Array;
  /** Slot offset of each column (used when `run` is 0). */
  readonly colPart: Int32Array;
  /** > 0 when `colPart[c] === floor(c / run)` for every column: slots come in runs. */
  readonly run: number;
  /** Effective scale per slot (`scale / global_scale` when there is one). */
  readonly sEff: Float32Array;
  /** Zero point per slot, or null (then no `+ zp` op at all, which keeps −0). */
  readonly zp: Float32Array | null;
  readonly qMin: number;
  readonly qMax: number;
  /** The dtype every op rounds to: F32 once a global scale is involved (type promotion). */
  readonly opDtype: ComputeDType;
  /** The dtype a dequantized value is finally rounded to. */
  readonly outDtype: ComputeDType;
  readonly kind: CodeKind;
}

/** The kind of code args produce (float args other than 8 bits cast to FP4). */
export function codeKind(args: QuantizationArgs): CodeKind {
  if (args.type === "int") return "int";
  return args.numBits === 8 ? "fp8" : "fp4";
}

function checkLengths(
  length: number,
  shape: readonly [number, number],
  qp: PlanQParams,
  slots: number,
  args: QuantizationArgs,
  where: string,
): void {
  const [rows, cols] = shape;
  if (length !== rows * cols) {
    throw new QuantizationShapeError(
      `${where}: ${length} values for shape [${rows}, ${cols}]`,
    );
  }
  if (qp.scale.length !== slots) {
    throw new QuantizationShapeError(
      `${where}: ${args.strategy} quantization of [${rows}, ${cols}] needs ${slots} scales, ` +
        `got ${qp.scale.length}`,
    );
  }
  if (qp.zeroPoint && qp.zeroPoint.length !== slots) {
    throw new QuantizationShapeError(
      `${where}: ${slots} zero points expected, got ${qp.zeroPoint.length}`,
    );
  }
  if (
    (args.strategy === "tensor_group") !== (qp.globalScale !== undefined && qp.globalScale !== null)
  ) {
    throw new QuantizationShapeError(
      args.strategy === "tensor_group"
        ? `${where}: tensor_group quantization needs a global scale`
        : `${where}: a global scale is only used with tensor_group quantization`,
    );
  }
}

/** The run length of a column map, or 0 when its slots are not in `floor(c / run)` runs. */
function runLength(colPart: Int32Array): number {
  const cols = colPart.length;
  let run = 1;
  while (run < cols && colPart[run] === 0) run++;
  if (colPart[0] !== 0) return 0;
  for (let c = 0; c < cols; c++) if (colPart[c] !== Math.floor(c / run)) return 0;
  return run;
}

/**
 * Resolves and validates everything about quantizing one `[rows, cols]`
 * tensor, as `quantize` does before its loop (dtype F32 and module name
 * "weight" unless given).
 *
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 */
export function quantizePlan(
  length: number,
  shape: readonly [number, number],
  qparams: PlanQParams,
  args: QuantizationArgs,
  options: { readonly dtype?: ComputeDType; readonly where?: string } = {},
): QuantizePlan {
  const dtype = options.dtype ?? "F32";
  const where = options.where ?? "weight";
  const map = qparamSlotMap(shape, args, qparams.gIdx, where);
  checkLengths(length, shape, qparams, map.slots, args, where);
  const [qMin, qMax] = quantizedRange(args);
  const g = qparams.globalScale;
  const hasGlobal = g !== undefined && g !== null;
  let sEff = qparams.scale;
  if (hasGlobal) {
    const gf = Math.fround(g);
    sEff = new Float32Array(qparams.scale.length);
    for (let i = 0; i < sEff.length; i++) sEff[i] = Math.fround(qparams.scale[i] / gf);
  }
  return {
    rows: shape[0],
    cols: shape[1],
    rowPart: map.rowPart,
    colPart: map.colPart,
    run: runLength(map.colPart),
    sEff,
    zp: qparams.zeroPoint ?? null,
    qMin,
    qMax,
    opDtype: hasGlobal ? "F32" : dtype,
    outDtype: dtype,
    kind: codeKind(args),
  };
}

// ------------------------------------------------------------- roundings

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** `roundToBf16(Math.fround(x))` of io/floats.ts, without the calls in between. */
function roundBf16(x: number): number {
  scratchF32[0] = x;
  const u = scratchU32[0];
  // c10 turns every NaN into the quiet NaN 0x7FC0.
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  scratchU32[0] = (u + (((u >>> 16) & 1) + 0x7fff)) & 0xffff0000;
  return scratchF32[0];
}

const roundF16 = rounderFor("F16");

function rounding(dtype: ComputeDType): (x: number) => number {
  return dtype === "BF16" ? roundBf16 : roundF16;
}

/**
 * `roundBf16` over float32 values in place, by their bits: bfloat16 is the
 * top half of a float32, so this is integer arithmetic on the array itself,
 * with no round trip through a scratch value per element.
 */
function roundBf16Bits(bits: Int32Array, from: number, n: number): void {
  for (let i = from; i < from + n; i++) {
    const u = bits[i];
    bits[i] = (u & 0x7fffffff) > 0x7f800000
      ? 0x7fc00000
      : (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000;
  }
}

function int32View(a: Float32Array): Int32Array {
  return new Int32Array(a.buffer, a.byteOffset, a.length);
}

// ------------------------------------------------ stage 1: t = clamp(x / s + zp)
//
// The clamp is Math.min/Math.max, not `t < q_min ? q_min : …`: V8 compiles
// them without branches, which makes the whole loop about twice as fast. The
// result is the same: a NaN passes through both, and q_min < 0 < q_max, so
// no signed zero is ever replaced by a bound.

function clampRunF32(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  dst: Float32Array,
  to: number,
  qMin: number,
  qMax: number,
): void {
  for (let i = 0; i < n; i++) {
    dst[to + i] = Math.min(Math.max(Math.fround(src[from + i] / s), qMin), qMax);
  }
}

function clampRunF32Zp(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number,
  dst: Float32Array,
  to: number,
  qMin: number,
  qMax: number,
): void {
  for (let i = 0; i < n; i++) {
    dst[to + i] = Math.min(Math.max(Math.fround(Math.fround(src[from + i] / s) + z), qMin), qMax);
  }
}

function clampRunR(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  dst: Float32Array,
  to: number,
  qMin: number,
  qMax: number,
  r: (x: number) => number,
): void {
  for (let i = 0; i < n; i++) {
    dst[to + i] = Math.min(Math.max(r(src[from + i] / s), qMin), qMax);
  }
}

function clampRunRZp(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number,
  dst: Float32Array,
  to: number,
  qMin: number,
  qMax: number,
  r: (x: number) => number,
): void {
  for (let i = 0; i < n; i++) {
    dst[to + i] = Math.min(Math.max(r(r(src[from + i] / s) + z), qMin), qMax);
  }
}

/**
 * The bfloat16 run in passes over `dst`: each op's float32 rounding is the
 * store into the Float32Array, its bfloat16 rounding a pass over the bits.
 */
function clampRunBf16(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  dst: Float32Array,
  bits: Int32Array,
  to: number,
  qMin: number,
  qMax: number,
): void {
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i] / s;
  roundBf16Bits(bits, to, n);
  if (z !== null) {
    for (let i = 0; i < n; i++) dst[to + i] = dst[to + i] + z;
    // A bfloat16 value plus 0 is that value (with −0 made +0): nothing to round.
    if (z !== 0) roundBf16Bits(bits, to, n);
  }
  for (let i = 0; i < n; i++) dst[to + i] = Math.min(Math.max(dst[to + i], qMin), qMax);
}

/**
 * Quantizes one run of values that share a scale (and zero point) up to the
 * cast: `dst[to + i] = clamp(r(r(src[from + i] / s) + z))`. `dstBits`, an
 * Int32Array view of `dst`, saves making one per call.
 */
export function clampRun(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  dst: Float32Array,
  to: number,
  qMin: number,
  qMax: number,
  opDtype: ComputeDType,
  dstBits?: Int32Array,
): void {
  if (opDtype === "F32") {
    if (z === null) clampRunF32(src, from, n, s, dst, to, qMin, qMax);
    else clampRunF32Zp(src, from, n, s, z, dst, to, qMin, qMax);
  } else if (opDtype === "BF16") {
    clampRunBf16(src, from, n, s, z, dst, dstBits ?? int32View(dst), to, qMin, qMax);
  } else if (z === null) {
    clampRunR(src, from, n, s, dst, to, qMin, qMax, rounding(opDtype));
  } else {
    clampRunRZp(src, from, n, s, z, dst, to, qMin, qMax, rounding(opDtype));
  }
}

/** Row r of stage 1 when the slots are not in runs (a permuting g_idx). */
function clampGathered(p: QuantizePlan, values: Float32Array, r: number, dst: Float32Array): void {
  const { cols, colPart, sEff, zp, qMin, qMax } = p;
  const base = r * cols;
  const rp = p.rowPart[r];
  if (p.opDtype === "F32") {
    for (let c = 0; c < cols; c++) {
      const slot = rp + colPart[c];
      let t = Math.fround(values[base + c] / sEff[slot]);
      if (zp !== null) t = Math.fround(t + zp[slot]);
      dst[c] = Math.min(Math.max(t, qMin), qMax);
    }
    return;
  }
  const round = rounding(p.opDtype);
  for (let c = 0; c < cols; c++) {
    const slot = rp + colPart[c];
    let t = round(values[base + c] / sEff[slot]);
    if (zp !== null) t = round(t + zp[slot]);
    dst[c] = Math.min(Math.max(t, qMin), qMax);
  }
}

/**
 * Stage 1 of row r: every element divided by its effective scale, shifted by
 * its zero point and clamped, each op rounded as `quantizeValue` rounds it.
 */
export function clampedRow(
  p: QuantizePlan,
  values: Float32Array,
  r: number,
  dst: Float32Array,
  dstBits?: Int32Array,
): void {
  const { cols, run, sEff, zp, qMin, qMax, opDtype } = p;
  if (run === 0) {
    clampGathered(p, values, r, dst);
    return;
  }
  const bits = opDtype === "BF16" ? dstBits ?? int32View(dst) : undefined;
  const base = r * cols;
  let slot = p.rowPart[r];
  for (let c0 = 0; c0 < cols; c0 += run, slot++) {
    const n = Math.min(run, cols - c0);
    clampRun(
      values,
      base + c0,
      n,
      sEff[slot],
      zp === null ? null : zp[slot],
      dst,
      c0,
      qMin,
      qMax,
      opDtype,
      bits,
    );
  }
}

// ---------------------------------------------------- stage 2: the encoders

/** 2^52 + 2^51: adding and subtracting it rounds a double below 2^51 to an integer, ties to even. */
const RNE_MAGIC = 6755399441055744;

/**
 * Integer codes of clamped values: round half to even, NaN → 0 (what the
 * Int8Array conversion of a NaN code gives).
 */
export function encodeIntRow(t: Float32Array, n: number, out: Int32Array): void {
  for (let i = 0; i < n; i++) out[i] = ((t[i] + RNE_MAGIC) - RNE_MAGIC) | 0;
}

function intRunF32(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  out: Int32Array,
  to: number,
  qMin: number,
  qMax: number,
): void {
  for (let i = 0; i < n; i++) {
    const t = Math.min(Math.max(Math.fround(src[from + i] / s), qMin), qMax);
    out[to + i] = ((t + RNE_MAGIC) - RNE_MAGIC) | 0;
  }
}

function intRunF32Zp(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number,
  out: Int32Array,
  to: number,
  qMin: number,
  qMax: number,
): void {
  for (let i = 0; i < n; i++) {
    const t = Math.min(Math.max(Math.fround(Math.fround(src[from + i] / s) + z), qMin), qMax);
    out[to + i] = ((t + RNE_MAGIC) - RNE_MAGIC) | 0;
  }
}

/**
 * The integer codes of row r (int args): stage 1 and the rounding in one
 * loop when every op is float32 and the slots come in runs (the common
 * case), else through `t`.
 */
export function intCodesRow(
  p: QuantizePlan,
  values: Float32Array,
  r: number,
  t: Float32Array,
  tBits: Int32Array,
  out: Int32Array,
): void {
  const { cols, run, sEff, zp, qMin, qMax } = p;
  if (p.opDtype !== "F32" || run === 0) {
    clampedRow(p, values, r, t, tBits);
    encodeIntRow(t, cols, out);
    return;
  }
  const base = r * cols;
  let slot = p.rowPart[r];
  for (let c0 = 0; c0 < cols; c0 += run, slot++) {
    const n = Math.min(run, cols - c0);
    // Adding a zero point of 0 only turns −0 into +0, which no integer code tells apart.
    const z = zp === null ? 0 : zp[slot];
    if (z === 0) intRunF32(values, base + c0, n, sEff[slot], out, c0, qMin, qMax);
    else intRunF32Zp(values, base + c0, n, sEff[slot], z, out, c0, qMin, qMax);
  }
}

const E4M3_MAX_BITS = 1087 << 20;
const E4M3_MIN_NORMAL_BITS = 121 << 23;
const E4M3_DENORM_ADD = 16384; // 2^14: its float32 ulp is e4m3's subnormal step 2^-9

/**
 * E4M3 bytes of clamped values from their float32 bits (an Int32Array view
 * of `t`): c10's `fp8e4m3fn_from_fp32_value` as in io/floats.ts. A NaN
 * becomes 0x7F whatever its sign, as it does when the decoded NaN code is
 * re-encoded.
 */
export function encodeFp8Row(
  bits: Int32Array,
  t: Float32Array,
  n: number,
  out: Uint8Array,
  to: number,
): void {
  // One branch, nearly always taken the same way, and no call: what the
  // loop costs is then mostly its loads and stores. Zeros (half of a 2:4
  // pruned weight, at random places) take the normal branch, masked to
  // their sign: `(f - 1) >>> 0` wraps a zero past every normal number.
  for (let i = 0; i < n; i++) {
    const w = bits[i];
    const f = w & 0x7fffffff;
    const sign = (w >> 24) & 0x80;
    let b: number;
    if ((f - 1) >>> 0 >= E4M3_MIN_NORMAL_BITS - 1) {
      b = f < E4M3_MAX_BITS
        ? (((f - (120 << 23) + 0x7ffff + ((f >> 20) & 1)) >> 20) & -(f !== 0)) | sign
        : f > 0x7f800000
        ? 0x7f
        : 0x7f | sign;
    } else {
      // The float32 addition rounds the subnormal with RNE; the difference counts its steps.
      b = ((Math.fround(Math.abs(t[i]) + E4M3_DENORM_ADD) - E4M3_DENORM_ADD) * 512) | sign;
    }
    out[to + i] = b;
  }
}

/**
 * E2M1 nibbles of clamped values: `cast_to_fp4`'s thresholds give the
 * magnitude index; a negative value sets the sign bit (so a small negative
 * value is −0, 0x8), while −0 and NaN give 0 as `pack_fp4_to_uint8` does.
 */
export function encodeFp4Row(t: Float32Array, n: number, out: Uint8Array): void {
  for (let i = 0; i < n; i++) {
    const x = t[i];
    const a = Math.abs(x);
    // Counting the thresholds passed (each comparison as 0 or 1) needs no
    // branch; a chain of ifs mispredicts on nearly every element. A NaN
    // passes none of them.
    const m = +(a > 0.25) + +(a >= 0.75) + +(a > 1.25) + +(a >= 1.75) + +(a > 2.5) +
      +(a >= 3.5) + +(a > 5);
    out[i] = m | (+(x < 0) << 3);
  }
}

const E4M3_VALUES = (() => {
  const v = new Float32Array(256);
  for (let b = 0; b < 256; b++) v[b] = f8E4M3BitsToF32(b);
  return v;
})();

/**
 * Integer-grid fake quantization of one run sharing a scale (and zero
 * point), with float32 ops, in one pass: `out[to + i] = r(r(q − z) · s)`
 * for `q = round_half_even(clamp(r(r(x / s) + z)))`. The ops of clampRun,
 * castRow and dequantRun in that order, value by value, so the bits are
 * theirs (a code is an integer, exact in the float32 scratch they pass
 * it through); what it saves is their three passes over row-sized arrays
 * (GPTQ's round-to-nearest comparison and every calibrated
 * round-to-nearest weight go through here).
 */
export function fakeQuantizeIntRunF32(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  qMin: number,
  qMax: number,
  out: Float32Array,
  to: number,
): void {
  if (z === null) {
    for (let i = 0; i < n; i++) {
      const t = Math.min(Math.max(Math.fround(src[from + i] / s), qMin), qMax);
      out[to + i] = Math.fround(roundHalfEven(t) * s);
    }
  } else {
    for (let i = 0; i < n; i++) {
      const t = Math.min(Math.max(Math.fround(Math.fround(src[from + i] / s) + z), qMin), qMax);
      out[to + i] = Math.fround(Math.fround(roundHalfEven(t) - z) * s);
    }
  }
}

/** One float32 and its bits, for the fused loop's encoding of one value at a time. */
const fusedF32 = new Float32Array(1);
const fusedBits = new Int32Array(fusedF32.buffer);

/**
 * FP8 E4M3 fake quantization of one run sharing a scale, with float32 ops
 * and no zero point, in one pass: `out[to + i] = r(e4m3(clamp(r(x / s))) ·
 * s)`. The ops of clampRun, encodeFp8Row, castRow and dequantRun in that
 * order, value by value, so the bits are theirs; what it saves is three
 * passes over row-sized scratch arrays (an activation's fake quantization
 * in every calibration forward of a static FP8 recipe ran through them).
 */
export function fakeQuantizeFp8RunF32(
  src: Float32Array,
  from: number,
  n: number,
  s: number,
  qMin: number,
  qMax: number,
  out: Float32Array,
  to: number,
): void {
  for (let i = 0; i < n; i++) {
    const t = Math.min(Math.max(Math.fround(src[from + i] / s), qMin), qMax);
    fusedF32[0] = t;
    const w = fusedBits[0];
    // encodeFp8Row's encoding, written out again: as a shared function it ran
    // about 1.5× slower here (5.4 → 8–9 ms per 4096 × 256).
    const f = w & 0x7fffffff;
    const sign = (w >> 24) & 0x80;
    let b: number;
    if (f >= E4M3_MIN_NORMAL_BITS) {
      b = f < E4M3_MAX_BITS
        ? ((f - (120 << 23) + 0x7ffff + ((f >> 20) & 1)) >> 20) | sign
        : f > 0x7f800000
        ? 0x7f
        : 0x7f | sign;
    } else {
      b = ((Math.fround(Math.abs(fusedF32[0]) + E4M3_DENORM_ADD) - E4M3_DENORM_ADD) * 512) | sign;
    }
    out[to + i] = E4M3_VALUES[b] * s;
  }
}

/**
 * The code values `quantize` returns, from clamped values: integers (−0
 * kept, as `roundHalfEven` gives it), E4M3 values, E2M1 values.
 */
export function castRow(
  kind: CodeKind,
  t: Float32Array,
  bits: Int32Array,
  n: number,
  out: Float32Array,
  to: number,
  bytes: Uint8Array,
): void {
  if (kind === "int") {
    for (let i = 0; i < n; i++) out[to + i] = roundHalfEven(t[i]);
  } else if (kind === "fp8") {
    encodeFp8Row(bits, t, n, bytes, 0);
    for (let i = 0; i < n; i++) out[to + i] = E4M3_VALUES[bytes[i]];
  } else {
    for (let i = 0; i < n; i++) out[to + i] = castToFp4(t[i]);
  }
}

// ------------------------------------------------------------ dequantize

function dequantRunF32(
  q: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  out: Float32Array,
  to: number,
): void {
  if (z === null) {
    for (let i = 0; i < n; i++) out[to + i] = Math.fround(q[from + i] * s);
  } else {
    for (let i = 0; i < n; i++) out[to + i] = Math.fround(Math.fround(q[from + i] - z) * s);
  }
}

function dequantRunR(
  q: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  out: Float32Array,
  to: number,
  r: (x: number) => number,
): void {
  if (z === null) {
    for (let i = 0; i < n; i++) out[to + i] = r(q[from + i] * s);
  } else {
    for (let i = 0; i < n; i++) out[to + i] = r(r(q[from + i] - z) * s);
  }
}

function dequantRunBf16(
  q: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  out: Float32Array,
  bits: Int32Array,
  to: number,
): void {
  if (z === null) {
    for (let i = 0; i < n; i++) out[to + i] = q[from + i] * s;
  } else {
    for (let i = 0; i < n; i++) out[to + i] = q[from + i] - z;
    roundBf16Bits(bits, to, n);
    for (let i = 0; i < n; i++) out[to + i] = out[to + i] * s;
  }
  roundBf16Bits(bits, to, n);
}

/**
 * Dequantizes one run of codes that share a scale (and zero point):
 * `out[to + i] = outR(r(r(q[from + i] − z) · s))`, as `dequantizeValue`.
 * `outBits`, an Int32Array view of `out`, saves making one per call.
 */
export function dequantRun(
  q: Float32Array,
  from: number,
  n: number,
  s: number,
  z: number | null,
  out: Float32Array,
  to: number,
  opDtype: ComputeDType,
  outDtype: ComputeDType,
  outBits?: Int32Array,
): void {
  if (opDtype === "F32") dequantRunF32(q, from, n, s, z, out, to);
  else if (opDtype === "BF16") dequantRunBf16(q, from, n, s, z, out, outBits ?? int32View(out), to);
  else dequantRunR(q, from, n, s, z, out, to, rounding(opDtype));
  if (outDtype !== opDtype) {
    // Only after a global scale: the F32 result is rounded back to the tensor dtype.
    const round = rounding(outDtype);
    for (let i = 0; i < n; i++) out[to + i] = round(out[to + i]);
  }
}

/**
 * Dequantizes row r of codes `q` (read from `q[from…]`) into `out[to…]`:
 * `out(r(r(q − zp) · s_eff))` as `dequantizeValue` computes it.
 */
export function dequantizedRow(
  p: QuantizePlan,
  q: Float32Array,
  from: number,
  r: number,
  out: Float32Array,
  to: number,
  outBits?: Int32Array,
): void {
  const { cols, run, sEff, zp, opDtype, outDtype } = p;
  const rp = p.rowPart[r];
  if (run > 0) {
    const bits = opDtype === "BF16" ? outBits ?? int32View(out) : undefined;
    let slot = rp;
    for (let c0 = 0; c0 < cols; c0 += run, slot++) {
      const n = Math.min(run, cols - c0);
      const z = zp === null ? null : zp[slot];
      dequantRun(q, from + c0, n, sEff[slot], z, out, to + c0, opDtype, outDtype, bits);
    }
    return;
  }
  const round = opDtype === "F32" ? Math.fround : rounding(opDtype);
  for (let c = 0; c < cols; c++) {
    const slot = rp + p.colPart[c];
    const v = zp === null ? q[from + c] : round(q[from + c] - zp[slot]);
    out[to + c] = round(v * sEff[slot]);
  }
  if (outDtype !== opDtype) {
    const outRound = rounding(outDtype);
    for (let c = 0; c < cols; c++) out[to + c] = outRound(out[to + c]);
  }
}
