/**
 * `nvfp4-pack-quantized` (§1.9.4): FP4 E2M1 codes two per byte
 * (`weight_packed` U8 `[out, in/2]`), FP8 E4M3 group scales
 * (`weight_scale` `[out, in/16]`) and the F32 `weight_global_scale` `[1]`.
 * The effective scale of a group is `weight_scale / weight_global_scale`.
 *
 * @module
 */

import type { QuantizationArgs } from "../quant/args.ts";
import { weightQParamShape } from "../quant/qparam_shape.ts";
import { dequantize } from "../quant/quantize.ts";
import { quantizeFp4Rows } from "../quant/quantize_rows.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import { findTensor, makeTensor, requireTensor, tensorValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";
import { packFp4Row, unpackFp4 } from "./pack_fp4.ts";
import { decodeScale, globalScaleTensor, readGIdx, scaleTensor } from "./qparam_tensors.ts";
import type { ModelDType } from "./qparam_tensors.ts";

/**
 * Checks that args are FP4 (float, 4 bits, symmetric).
 *
 * @param args weight args
 * @param prefix module name
 * @param format the format name for the message
 * @throws {CompressionError} otherwise
 * @example
 * ```ts
 * import { checkFp4Args } from "./nvfp4_pack_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * checkFp4Args(presetScheme("NVFP4A16", ["Linear"]).weights!, "m", "nvfp4-pack-quantized"); // ok
 * ```
 */
export function checkFp4Args(args: QuantizationArgs, prefix: string, format: string): void {
  if (args.type !== "float" || args.numBits !== 4 || !args.symmetric) {
    throw new CompressionError(
      `${prefix}: ${format} stores symmetric FP4 weights, got ${
        args.symmetric ? "" : "asymmetric "
      }` +
        `${args.type}${args.numBits}`,
    );
  }
}

/**
 * Compresses one Linear weight as NVFP4.
 *
 * @param prefix the module name
 * @param weight the dense weight `[out, in]`
 * @param shape `[out, in]` (in must be even)
 * @param args FP4 weight args (tensor_group, group 16, scale_dtype float8_e4m3fn)
 * @param qparams FP8-representable local scales and the global scale
 * @param modelDtype the model's dtype
 * @returns `weight_packed`, `weight_scale`, `weight_global_scale`
 * @throws {CompressionError} for odd columns or non-FP4 args
 * @example
 * ```ts
 * import { compressNvfp4PackQuantized } from "./nvfp4_pack_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const a = presetScheme("NVFP4A16", ["Linear"]).weights!;
 * const w = new Float32Array(16).fill(12);
 * const t = compressNvfp4PackQuantized("m", w, [1, 16], a, { scale: new Float32Array([448]), globalScale: 224 }, "F32");
 * t[0].data[0]; // 0x77 (6 and 6)
 * ```
 */
export function compressNvfp4PackQuantized(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
  modelDtype: ModelDType,
): CompressedTensor[] {
  checkFp4Args(args, prefix, "nvfp4-pack-quantized");
  const [rows, cols] = shape;
  if (cols % 2 !== 0) {
    throw new CompressionError(
      `${prefix}: nvfp4-pack-quantized needs an even column count, got ${cols}`,
    );
  }
  const qShape = weightQParamShape(shape, args, prefix);
  const packed = new Uint8Array((rows * cols) / 2);
  quantizeFp4Rows(weight, shape, qparams, args, (r, nibbles) => {
    packFp4Row(nibbles, cols, packed, (r * cols) / 2);
  }, { dtype: modelDtype, where: prefix });
  const out = [
    makeTensor(
      `${prefix}.weight_packed`,
      "U8",
      [rows, cols / 2],
      packed,
    ),
    scaleTensor(`${prefix}.weight_scale`, qparams.scale, qShape, args, modelDtype),
  ];
  if (qparams.globalScale !== undefined && qparams.globalScale !== null) {
    out.push(globalScaleTensor(`${prefix}.weight_global_scale`, qparams.globalScale));
  }
  return out;
}

/**
 * Decompresses an NVFP4 weight: `fp4 · (weight_scale / weight_global_scale)`.
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @param args weight args
 * @param options the dtype of the result (F32 by default; compressed-tensors returns BF16)
 * @returns the dense weight and its shape
 * @throws {CompressionError} when a tensor is missing or malformed
 * @example
 * ```ts
 * import { compressNvfp4PackQuantized, decompressNvfp4PackQuantized } from "./nvfp4_pack_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const a = presetScheme("NVFP4A16", ["Linear"]).weights!;
 * const t = compressNvfp4PackQuantized("m", new Float32Array(16).fill(12), [1, 16], a, { scale: new Float32Array([448]), globalScale: 224 }, "F32");
 * decompressNvfp4PackQuantized("m", t, a).weight[0]; // 12
 * ```
 */
export function decompressNvfp4PackQuantized(
  prefix: string,
  tensors: readonly CompressedTensor[],
  args: QuantizationArgs,
  options: { dtype?: ModelDType } = {},
): { weight: Float32Array; shape: [number, number] } {
  checkFp4Args(args, prefix, "nvfp4-pack-quantized");
  const p = requireTensor(tensors, `${prefix}.weight_packed`);
  const shape: [number, number] = [p.shape[0], p.shape[1] * 2];
  const g = findTensor(tensors, `${prefix}.weight_global_scale`);
  const weight = dequantize(
    unpackFp4(p.data, shape[0], shape[1]),
    shape,
    {
      scale: decodeScale(requireTensor(tensors, `${prefix}.weight_scale`), args),
      globalScale: g ? tensorValues(g)[0] : null,
      gIdx: readGIdx(findTensor(tensors, `${prefix}.weight_g_idx`)),
    },
    args,
    { dtype: options.dtype ?? "F32", where: prefix },
  );
  return { weight, shape };
}
