/**
 * The single entry point from a quantized module to the tensors written for
 * it, dispatching on the module's compression format, and its inverse.
 *
 * @module
 */

import type { ModuleFormat } from "../quant/compression_format.ts";
import { weightQParamShape } from "../quant/qparam_shape.ts";
import { fakeQuantize, type WeightQParams } from "../quant/quantize.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import { findTensor } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { compressDense, decompressDense } from "./dense.ts";
import { CompressionError } from "./errors.ts";
import { compressMarlin24 } from "./marlin_24.ts";
import {
  compressMxfp4PackQuantized,
  decompressMxfp4PackQuantized,
} from "./mxfp4_pack_quantized.ts";
import { compressNaiveQuantized, decompressNaiveQuantized } from "./naive_quantized.ts";
import {
  compressNvfp4PackQuantized,
  decompressNvfp4PackQuantized,
} from "./nvfp4_pack_quantized.ts";
import { compressPackQuantized, decompressPackQuantized } from "./pack_quantized.ts";
import {
  activationQParamTensors,
  gIdxTensor,
  globalScaleTensor,
  scaleTensor,
  zeroPointTensor,
} from "./qparam_tensors.ts";
import type { ActivationQParams, ModelDType } from "./qparam_tensors.ts";
import { compressSparse24Bitmask, decompressSparse24Bitmask } from "./sparse_24_bitmask.ts";
import { compressSparseBitmask, decompressSparseBitmask } from "./sparse_bitmask.ts";

/** Everything observed for one Linear: weight qparams and static activation qparams. */
export interface ModuleQParams {
  /** Weight scale, zero point, global scale, g_idx (required when the scheme has weights). */
  readonly weight?: WeightQParams | null;
  /** Input activation qparams (static scales, NVFP4 global scale). */
  readonly input?: ActivationQParams | null;
  /** Output activation qparams. */
  readonly output?: ActivationQParams | null;
}

/** A sparsity compression applied after quantization compression (§1.9.9). */
export type SparsityFormat = "dense" | "sparse-bitmask" | "sparse-24-bitmask";

function weightQParamTensorsDense(
  prefix: string,
  shape: readonly [number, number],
  scheme: QuantizationScheme,
  qp: WeightQParams,
  modelDtype: ModelDType,
): CompressedTensor[] {
  const args = scheme.weights!;
  const qShape = weightQParamShape(shape, args, prefix);
  const out = [
    scaleTensor(`${prefix}.weight_scale`, qp.scale, qShape, args, modelDtype),
    zeroPointTensor(
      `${prefix}.weight_zero_point`,
      qp.zeroPoint ?? new Float32Array(qp.scale.length),
      qShape,
      args,
    ),
  ];
  if (qp.gIdx) out.push(gIdxTensor(`${prefix}.weight_g_idx`, qp.gIdx));
  if (qp.globalScale !== undefined && qp.globalScale !== null) {
    out.push(globalScaleTensor(`${prefix}.weight_global_scale`, qp.globalScale));
  }
  return out;
}

/**
 * The tensors written for one quantized Linear in a compression format: its
 * weight tensors per format (§1.9.2–1.9.8), its weight qparams, and its
 * static activation qparams (`input_scale`, `input_zero_point`,
 * `input_global_scale`, `output_*`). Zero points of symmetric args are
 * dropped except in `dense`. A scheme without weight args (or a null format)
 * keeps the weight dense.
 *
 * The sparse formats here compress the dense model-dtype weight; to combine
 * quantization with sparsity, compress with the quantization format and then
 * call {@link applySparsityCompression}.
 *
 * @param prefix the module name, e.g. `model.layers.0.self_attn.q_proj`
 * @param weight the dense weight `[out, in]` as float32 values of the model dtype
 * @param shape `[out, in]`
 * @param scheme the module's scheme (weights / input / output args)
 * @param qparams the observed qparams
 * @param modelDtype the model's dtype (F32, BF16, F16): scales and dense weights are stored in it
 * @param format the module's compression format
 * @returns the tensors to write, named `<prefix>.<param>`
 * @throws {CompressionError} when a format's precondition fails or qparams are missing
 * @example
 * ```ts
 * import { compressModule } from "./compress_module.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const scheme = presetScheme("W8A16", ["Linear"]);
 * const t = compressModule("m", new Float32Array([1, -1]), [2, 1], scheme,
 *   { weight: { scale: new Float32Array([1 / 127.5, 1 / 127.5]) } }, "BF16", "pack-quantized");
 * t.map((x) => x.name); // ["m.weight_packed", "m.weight_shape", "m.weight_scale"]
 * ```
 */
export function compressModule(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  scheme: QuantizationScheme,
  qparams: ModuleQParams,
  modelDtype: ModelDType,
  format: ModuleFormat | null,
): CompressedTensor[] {
  if (weight.length !== shape[0] * shape[1]) {
    throw new CompressionError(
      `${prefix}: weight has ${weight.length} values, shape [${shape}] needs ${
        shape[0] * shape[1]
      }`,
    );
  }
  const dense = format === null || format === "dense" || format === "sparse-bitmask" ||
    format === "sparse-24-bitmask" || scheme.weights === null;
  const out: CompressedTensor[] = [];
  if (scheme.weights === null || format === null) {
    out.push(...compressDense(prefix, weight, shape, modelDtype));
  } else {
    const args = scheme.weights;
    const qp = qparams.weight;
    if (!qp) {
      throw new CompressionError(
        `${prefix}: weight qparams are missing (the scheme quantizes weights)`,
      );
    }
    switch (format) {
      case "dense":
        // A dense save of a quantized module holds the weight as it computes: fake-quantized
        // with its qparams (SPEC §1.9.1; upstream's save_compressed=False). Idempotent for
        // weights that are already on the grid (GPTQ's).
        out.push(...compressDense(
          prefix,
          fakeQuantize(weight, shape, qp, args, { dtype: modelDtype, where: prefix }),
          shape,
          modelDtype,
        ));
        out.push(...weightQParamTensorsDense(prefix, shape, scheme, qp, modelDtype));
        break;
      case "sparse-bitmask":
      case "sparse-24-bitmask":
        out.push(...compressDense(prefix, weight, shape, modelDtype));
        out.push(...weightQParamTensorsDense(prefix, shape, scheme, qp, modelDtype));
        break;
      case "naive-quantized":
      case "int-quantized":
      case "float-quantized":
        out.push(...compressNaiveQuantized(prefix, weight, shape, args, qp, modelDtype));
        break;
      case "pack-quantized":
        out.push(...compressPackQuantized(prefix, weight, shape, args, qp, modelDtype));
        break;
      case "nvfp4-pack-quantized":
        out.push(...compressNvfp4PackQuantized(prefix, weight, shape, args, qp, modelDtype));
        break;
      case "mxfp4-pack-quantized":
        out.push(...compressMxfp4PackQuantized(prefix, weight, shape, args, qp, modelDtype));
        break;
      case "marlin-24":
        if (scheme.inputActivations !== null || scheme.outputActivations !== null) {
          throw new CompressionError(
            `${prefix}: marlin-24 is weight-only; the scheme quantizes activations`,
          );
        }
        out.push(...compressMarlin24(prefix, weight, shape, args, qp));
        break;
      default: {
        const never: never = format;
        throw new CompressionError(`${prefix}: unknown format ${never}`);
      }
    }
  }
  if (scheme.inputActivations !== null) {
    out.push(
      ...activationQParamTensors(
        prefix,
        "input",
        scheme.inputActivations,
        qparams.input,
        modelDtype,
        dense,
      ),
    );
  }
  if (scheme.outputActivations !== null) {
    out.push(
      ...activationQParamTensors(
        prefix,
        "output",
        scheme.outputActivations,
        qparams.output,
        modelDtype,
        dense,
      ),
    );
  }
  if (format === "sparse-bitmask" || format === "sparse-24-bitmask") {
    return applySparsityCompression(prefix, out, format);
  }
  return out;
}

/**
 * Runs sparsity compression on a module's `weight` tensor after quantization
 * compression (§1.9.9): the `weight` (e.g. F8 codes) is replaced by
 * `compressed`/`bitmask`/`shape` (+`row_offsets`); qparams are untouched.
 *
 * @param prefix the module name
 * @param tensors the module's tensors from {@link compressModule}
 * @param format the sparsity format (`dense` returns the tensors unchanged)
 * @returns the tensors with the weight sparse-compressed
 * @throws {CompressionError} when there is no plain `weight` (packed formats cannot be bit-masked)
 * @example
 * ```ts
 * import { applySparsityCompression } from "./compress_module.ts";
 * import { tensorFromValues } from "./compressed_tensor.ts";
 * const w = tensorFromValues("m.weight", "F32", [1, 4], new Float32Array([0, 1, 2, 0]));
 * applySparsityCompression("m", [w], "sparse-24-bitmask").map((t) => t.name); // ["m.shape", "m.compressed", "m.bitmask"]
 * ```
 */
export function applySparsityCompression(
  prefix: string,
  tensors: readonly CompressedTensor[],
  format: SparsityFormat,
): CompressedTensor[] {
  if (format === "dense") return [...tensors];
  const w = findTensor(tensors, `${prefix}.weight`);
  if (w === undefined) {
    throw new CompressionError(
      `${prefix}: ${format} needs a plain weight tensor; packed formats cannot be bit-masked ` +
        `(use marlin-24 for 2:4 weight-only int4/int8)`,
    );
  }
  const rest = tensors.filter((t) => t !== w);
  const sparse = format === "sparse-bitmask"
    ? compressSparseBitmask(prefix, w)
    : compressSparse24Bitmask(prefix, w);
  return [...sparse, ...rest];
}

/**
 * Reads a module's dense weight back from its tensors (the inverse of
 * {@link compressModule}): sparsity is undone first when `bitmask` tensors
 * are present, then the quantization format is dequantized in the given
 * dtype (by default the scale's float dtype, else F32).
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @param scheme the module's scheme
 * @param format the module's format
 * @param options the dtype to compute in
 * @returns the dense weight and its shape
 * @throws {CompressionError} for marlin-24 (write-only) or missing tensors
 * @example
 * ```ts
 * import { compressModule, decompressModule } from "./compress_module.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const scheme = presetScheme("W8A16", ["Linear"]);
 * const qp = { weight: { scale: new Float32Array([0.5, 0.5]) } };
 * const t = compressModule("m", new Float32Array([1, -1]), [2, 1], scheme, qp, "F32", "pack-quantized");
 * decompressModule("m", t, scheme, "pack-quantized").weight; // Float32Array [1, -1]
 * ```
 */
export function decompressModule(
  prefix: string,
  tensors: readonly CompressedTensor[],
  scheme: QuantizationScheme,
  format: ModuleFormat | null,
  options: { dtype?: ModelDType } = {},
): { weight: Float32Array; shape: [number, number] } {
  let ts = tensors;
  const shapeT = findTensor(ts, `${prefix}.shape`);
  if (findTensor(ts, `${prefix}.bitmask`) !== undefined && shapeT !== undefined) {
    const dense = shapeT.shape.length === 2
      ? decompressSparse24Bitmask(prefix, ts)
      : decompressSparseBitmask(prefix, ts);
    ts = [dense, ...ts.filter((t) => !/\.(shape|compressed|bitmask|row_offsets)$/.test(t.name))];
  }
  const args = scheme.weights;
  if (args === null || format === null) return decompressDense(prefix, ts);
  switch (format) {
    case "dense":
    case "sparse-bitmask":
    case "sparse-24-bitmask":
      return decompressDense(prefix, ts);
    case "naive-quantized":
    case "int-quantized":
    case "float-quantized":
      return decompressNaiveQuantized(prefix, ts, args, options);
    case "pack-quantized":
      return decompressPackQuantized(prefix, ts, args, options);
    case "nvfp4-pack-quantized":
      return decompressNvfp4PackQuantized(prefix, ts, args, options);
    case "mxfp4-pack-quantized":
      return decompressMxfp4PackQuantized(prefix, ts, args, options);
    case "marlin-24":
      throw new CompressionError(
        `${prefix}: marlin-24 is write-only (no decompression exists upstream either)`,
      );
    default: {
      const never: never = format;
      throw new CompressionError(`${prefix}: unknown format ${never}`);
    }
  }
}
