/**
 * The qparam tensors every format writes beside its weight tensors: scales
 * (model dtype unless `scale_dtype`; E8M0 bytes for MX), zero points
 * (zp_dtype), `g_idx` (I32), global scales (F32 `[1]`), and the static
 * activation qparams of a Linear (§1.9.0, §1.9.10).
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import type { ComputeDType } from "../quant/compute_dtype.ts";
import { e8m0Byte, e8m0Value } from "../quant/mx.ts";
import { isMxArgs } from "../quant/qparams.ts";
import { torchDtypeToDType } from "../quant/torch_dtype.ts";
import { int32Tensor, int32Values, tensorFromValues, tensorValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";

/** The float dtype of a model's weights, which scales are stored in. */
export type ModelDType = ComputeDType;

/** Qparams of a Linear's input or output activations. */
export interface ActivationQParams {
  /** Static scales (tensor strategy: one value). */
  readonly scale?: Float32Array | null;
  /** Static zero points. */
  readonly zeroPoint?: Float32Array | null;
  /** Global scale (NVFP4 inputs). */
  readonly globalScale?: number | null;
  /** Shape of scale / zero point; `[1]` by default. */
  readonly shape?: readonly number[];
}

/**
 * The dtype a scale tensor is stored in: the args' `scale_dtype` when set
 * (F8_E4M3 for NVFP4, U8 for MX), else the model dtype.
 *
 * @param args the args the scale belongs to
 * @param modelDtype the model's dtype
 * @returns the safetensors dtype
 * @example
 * ```ts
 * import { scaleStorageDType } from "./qparam_tensors.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * scaleStorageDType(presetScheme("NVFP4A16", ["Linear"]).weights!, "BF16"); // "F8_E4M3"
 * scaleStorageDType(presetScheme("W4A16", ["Linear"]).weights!, "BF16"); // "BF16"
 * ```
 */
export function scaleStorageDType(args: QuantizationArgs, modelDtype: ModelDType): DType {
  return args.scaleDtype === null ? modelDtype : torchDtypeToDType(args.scaleDtype);
}

/**
 * Encodes scales as stored: MX scales become E8M0 bytes, others are cast to
 * the storage dtype.
 *
 * @param name full tensor name
 * @param scale the scales
 * @param shape their shape
 * @param args the args they belong to
 * @param modelDtype the model's dtype
 * @returns the scale tensor
 * @example
 * ```ts
 * import { scaleTensor } from "./qparam_tensors.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const mx = presetScheme("MXFP4A16", ["Linear"]).weights!;
 * scaleTensor("p.weight_scale", new Float32Array([0.25]), [1, 1], mx, "BF16").data; // Uint8Array [125]
 * ```
 */
export function scaleTensor(
  name: string,
  scale: Float32Array,
  shape: readonly number[],
  args: QuantizationArgs,
  modelDtype: ModelDType,
): CompressedTensor {
  if (isMxArgs(args)) {
    return tensorFromValues(name, "U8", shape, scale.map(e8m0Byte));
  }
  return tensorFromValues(name, scaleStorageDType(args, modelDtype), shape, scale);
}

/**
 * Decodes a stored scale tensor back to scale values (E8M0 → 2^(e−127) for MX).
 *
 * @param t the stored scale tensor
 * @param args the args it belongs to
 * @returns the scales as float32
 * @example
 * ```ts
 * import { decodeScale, scaleTensor } from "./qparam_tensors.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const mx = presetScheme("MXFP4A16", ["Linear"]).weights!;
 * decodeScale(scaleTensor("s", new Float32Array([4]), [1], mx, "F32"), mx)[0]; // 4
 * ```
 */
export function decodeScale(t: CompressedTensor, args: QuantizationArgs): Float32Array {
  const v = tensorValues(t);
  return isMxArgs(args) ? v.map(e8m0Value) : v;
}

/**
 * A zero-point tensor in the args' zp_dtype.
 *
 * @param name full tensor name
 * @param zeroPoint the zero points
 * @param shape their shape
 * @param args the args they belong to
 * @returns the tensor (I8 for int ≤ 8 bits, F8_E4M3 for float, …)
 * @example
 * ```ts
 * import { zeroPointTensor } from "./qparam_tensors.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, symmetric: false }, "w");
 * zeroPointTensor("p.weight_zero_point", new Float32Array([-5]), [1], a).dtype; // "I8"
 * ```
 */
export function zeroPointTensor(
  name: string,
  zeroPoint: Float32Array,
  shape: readonly number[],
  args: QuantizationArgs,
): CompressedTensor {
  return tensorFromValues(name, torchDtypeToDType(args.zpDtype), shape, zeroPoint);
}

/**
 * A `weight_g_idx` tensor (I32 `[in]`).
 *
 * @param name full tensor name
 * @param gIdx group id per column
 * @returns the tensor
 * @example
 * ```ts
 * import { gIdxTensor } from "./qparam_tensors.ts";
 * gIdxTensor("p.weight_g_idx", new Int32Array([0, 0, 1, 1])).shape; // [4]
 * ```
 */
export function gIdxTensor(name: string, gIdx: Int32Array): CompressedTensor {
  return int32Tensor(name, [gIdx.length], gIdx);
}

/**
 * A global-scale tensor (F32 `[1]`).
 *
 * @param name full tensor name
 * @param value the global scale
 * @returns the tensor
 * @example
 * ```ts
 * import { globalScaleTensor } from "./qparam_tensors.ts";
 * globalScaleTensor("p.weight_global_scale", 224).dtype; // "F32"
 * ```
 */
export function globalScaleTensor(name: string, value: number): CompressedTensor {
  return tensorFromValues(name, "F32", [1], new Float32Array([value]));
}

/**
 * Reads `weight_g_idx` if present.
 *
 * @param t the tensor or undefined
 * @returns the group ids or null
 * @example
 * ```ts
 * import { readGIdx } from "./qparam_tensors.ts";
 * readGIdx(undefined); // null
 * ```
 */
export function readGIdx(t: CompressedTensor | undefined): Int32Array | null {
  return t === undefined ? null : int32Values(t).slice();
}

/**
 * The qparam tensors of a Linear's input or output activations: static args
 * write `<base>_scale` (and `<base>_zero_point` when asymmetric, or always
 * with `keepSymmetricZeroPoint`); tensor_group args write
 * `<base>_global_scale`; fully dynamic args write nothing.
 *
 * @param prefix the module name
 * @param base `"input"` or `"output"`
 * @param args the activation args
 * @param qparams the observed qparams
 * @param modelDtype the model's dtype
 * @param keepSymmetricZeroPoint write zero points of symmetric args too (dense format)
 * @returns the tensors (possibly none)
 * @throws {CompressionError} when static args come without observed qparams
 * @example
 * ```ts
 * import { activationQParamTensors } from "./qparam_tensors.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const fp8 = presetScheme("FP8", ["Linear"]).inputActivations!;
 * activationQParamTensors("p", "input", fp8, { scale: new Float32Array([0.01]) }, "BF16").map((t) => t.name);
 * // ["p.input_scale"]
 * ```
 */
export function activationQParamTensors(
  prefix: string,
  base: "input" | "output",
  args: QuantizationArgs,
  qparams: ActivationQParams | null | undefined,
  modelDtype: ModelDType,
  keepSymmetricZeroPoint = false,
): CompressedTensor[] {
  const out: CompressedTensor[] = [];
  const shape = qparams?.shape ?? [1];
  if (args.strategy === "tensor_group") {
    const g = qparams?.globalScale;
    if (g === undefined || g === null) {
      throw new CompressionError(
        `${prefix}: ${base} activations (tensor_group) need an observed ${base}_global_scale`,
      );
    }
    out.push(globalScaleTensor(`${prefix}.${base}_global_scale`, g));
  }
  if (args.dynamic !== false) return out;
  if (!qparams?.scale) {
    throw new CompressionError(
      `${prefix}: static ${base} activations need an observed ${base}_scale (run calibration)`,
    );
  }
  out.push(scaleTensor(`${prefix}.${base}_scale`, qparams.scale, shape, args, modelDtype));
  if (!args.symmetric || keepSymmetricZeroPoint) {
    const zp = qparams.zeroPoint ?? new Float32Array(qparams.scale.length);
    out.push(zeroPointTensor(`${prefix}.${base}_zero_point`, zp, shape, args));
  }
  return out;
}
