/**
 * `naive-quantized` / `int-quantized` / `float-quantized` (§1.9.2): one
 * compressor under three names. The weight is stored as its codes in the
 * smallest fitting torch dtype (I8 for int ≤ 8 bits, I16/I32 beyond, F8_E4M3
 * for FP8), next to `weight_scale`, `weight_zero_point` (asymmetric only)
 * and `weight_g_idx` (actorder group only).
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import { weightQParamShape } from "../quant/qparam_shape.ts";
import { f32ToBytes } from "../io/tensor_bytes.ts";
import { dequantize, quantize } from "../quant/quantize.ts";
import { quantizeFp8Bytes, quantizeIntRows } from "../quant/quantize_rows.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import { decompressDType } from "./_decompress_dtype.ts";
import { findTensor, makeTensor, requireTensor, tensorValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";
import {
  decodeScale,
  gIdxTensor,
  readGIdx,
  scaleTensor,
  zeroPointTensor,
} from "./qparam_tensors.ts";
import type { ModelDType } from "./qparam_tensors.ts";

/**
 * The dtype naive quantization stores codes in (`QuantizationArgs.pytorch_dtype`).
 *
 * @param args weight args
 * @param where module name for errors
 * @returns I8/I16/I32 for int, F8_E4M3 for 8-bit float
 * @throws {CompressionError} for FP4 (it has no naive storage dtype)
 * @example
 * ```ts
 * import { naiveCodeDType } from "./naive_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * naiveCodeDType(presetScheme("FP8", ["Linear"]).weights!); // "F8_E4M3"
 * ```
 */
export function naiveCodeDType(args: QuantizationArgs, where = "weight"): DType {
  if (args.type === "float") {
    if (args.numBits === 8) return "F8_E4M3";
    throw new CompressionError(
      `${where}: naive-quantized stores 8-bit floats only, got float${args.numBits}; ` +
        `use nvfp4-pack-quantized or mxfp4-pack-quantized for FP4`,
    );
  }
  return args.numBits <= 8 ? "I8" : args.numBits <= 16 ? "I16" : "I32";
}

/**
 * Whether no int code can be NaN: finite weights, finite non-zero scales and
 * finite zero points. Otherwise the codes go through the checked conversion,
 * which names the first NaN.
 */
function finiteCodes(weight: Float32Array, qparams: WeightQParams): boolean {
  for (const s of qparams.scale) if (!Number.isFinite(s) || s === 0) return false;
  for (const z of qparams.zeroPoint ?? []) if (!Number.isFinite(z)) return false;
  for (let i = 0; i < weight.length; i++) if (weight[i] - weight[i] !== 0) return false;
  return true;
}

/** The stored bytes of the codes: FP8 bytes and int8 codes straight from quantization. */
function naiveCodes(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
  modelDtype: ModelDType,
  codeDtype: DType,
): Uint8Array {
  const options = { dtype: modelDtype, where: prefix };
  const cols = shape[1];
  if (codeDtype === "F8_E4M3") {
    // FP8 keeps −0 (0x80) as PyTorch's cast does.
    return quantizeFp8Bytes(weight, shape, qparams, args, options);
  }
  if (codeDtype === "I8" && finiteCodes(weight, qparams)) {
    const codes = new Int8Array(weight.length);
    quantizeIntRows(weight, shape, qparams, args, (r, c) => codes.set(c, r * cols), options);
    return new Uint8Array(codes.buffer);
  }
  // Integer codes have no −0; a NaN code fails the integer check with the index it is at.
  const codes = quantize(weight, shape, qparams, args, options).map((v) => v + 0);
  return f32ToBytes(codeDtype, codes);
}

/**
 * Compresses one Linear weight in the naive format.
 *
 * @param prefix the module name (e.g. `model.layers.0.self_attn.q_proj`)
 * @param weight the dense weight `[out, in]` (float32 values of the model dtype)
 * @param shape `[out, in]`
 * @param args weight args
 * @param qparams the weight's scale, zero point, g_idx
 * @param modelDtype the model's dtype (scales are stored in it)
 * @returns `weight`, `weight_scale`, and `weight_zero_point` / `weight_g_idx` when applicable
 * @throws {CompressionError} for a global scale (not supported by this compressor)
 * @example
 * ```ts
 * import { compressNaiveQuantized } from "./naive_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const a = presetScheme("FP8_DYNAMIC", ["Linear"]).weights!;
 * const t = compressNaiveQuantized("m", new Float32Array([1, -2]), [2, 1], a, { scale: new Float32Array([1, 1]) }, "F32");
 * t.map((x) => `${x.name} ${x.dtype}`); // ["m.weight F8_E4M3", "m.weight_scale F32"]
 * ```
 */
export function compressNaiveQuantized(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
  modelDtype: ModelDType,
): CompressedTensor[] {
  if (qparams.globalScale !== undefined && qparams.globalScale !== null) {
    throw new CompressionError(`${prefix}: naive-quantized does not support a global scale`);
  }
  const codeDtype = naiveCodeDType(args, prefix);
  const qShape = weightQParamShape(shape, args, prefix);
  const out = [
    makeTensor(
      `${prefix}.weight`,
      codeDtype,
      shape,
      naiveCodes(prefix, weight, shape, args, qparams, modelDtype, codeDtype),
    ),
    scaleTensor(`${prefix}.weight_scale`, qparams.scale, qShape, args, modelDtype),
  ];
  if (!args.symmetric) {
    const zp = qparams.zeroPoint ?? new Float32Array(qparams.scale.length);
    out.push(zeroPointTensor(`${prefix}.weight_zero_point`, zp, qShape, args));
  }
  if (qparams.gIdx) out.push(gIdxTensor(`${prefix}.weight_g_idx`, qparams.gIdx));
  return out;
}

/**
 * Decompresses a naive-format weight: `(code − zp) · scale`.
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @param args weight args
 * @param options the dtype to compute in (default: the scale tensor's float dtype, else F32)
 * @returns the dense weight and its shape
 * @throws {CompressionError} when a tensor is missing or malformed
 * @example
 * ```ts
 * import { compressNaiveQuantized, decompressNaiveQuantized } from "./naive_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const a = presetScheme("W8A8", ["Linear"]).weights!;
 * const t = compressNaiveQuantized("m", new Float32Array([1, -2]), [2, 1], a, { scale: new Float32Array([0.5, 0.5]) }, "F32");
 * decompressNaiveQuantized("m", t, a).weight; // Float32Array [1, -2]
 * ```
 */
export function decompressNaiveQuantized(
  prefix: string,
  tensors: readonly CompressedTensor[],
  args: QuantizationArgs,
  options: { dtype?: ModelDType } = {},
): { weight: Float32Array; shape: [number, number] } {
  const w = requireTensor(tensors, `${prefix}.weight`);
  if (w.shape.length !== 2) {
    throw new CompressionError(`${w.name}: expected a 2-D weight, got [${w.shape}]`);
  }
  const shape: [number, number] = [w.shape[0], w.shape[1]];
  const s = requireTensor(tensors, `${prefix}.weight_scale`);
  const zp = findTensor(tensors, `${prefix}.weight_zero_point`);
  const weight = dequantize(
    tensorValues(w),
    shape,
    {
      scale: decodeScale(s, args),
      zeroPoint: zp ? tensorValues(zp) : null,
      gIdx: readGIdx(findTensor(tensors, `${prefix}.weight_g_idx`)),
    },
    args,
    { dtype: decompressDType(s, options.dtype), where: prefix },
  );
  return { weight, shape };
}
