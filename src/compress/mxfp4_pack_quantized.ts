/**
 * `mxfp4-pack-quantized` (§1.9.5): FP4 E2M1 codes two per byte
 * (`weight_packed` U8 `[out, in/2]`) and E8M0 group scales
 * (`weight_scale` U8 `[out, in/32]`, value 2^(e − 127)); no global scale.
 *
 * The stored exponent is the one used for quantization. compressed-tensors
 * 0.13.0 wrote it minus 2 (so its checkpoints dequantize 4× too small, and it
 * cannot decompress MXFP4 at all); later releases write the consistent value,
 * which is what llmc writes and reads.
 *
 * @module
 */

import type { QuantizationArgs } from "../quant/args.ts";
import { weightQParamShape } from "../quant/qparam_shape.ts";
import { dequantize, quantize } from "../quant/quantize.ts";
import { quantizeFp4Rows } from "../quant/quantize_rows.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import { findTensor, makeTensor, requireTensor } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";
import { checkFp4Args } from "./nvfp4_pack_quantized.ts";
import { packFp4, packFp4Row, unpackFp4 } from "./pack_fp4.ts";
import { decodeScale, readGIdx, scaleTensor } from "./qparam_tensors.ts";
import type { ModelDType } from "./qparam_tensors.ts";

/**
 * Compresses one Linear weight as MXFP4.
 *
 * @param prefix the module name
 * @param weight the dense weight `[out, in]`
 * @param shape `[out, in]` (in must be even and a multiple of 32)
 * @param args MXFP4 weight args (float 4-bit, group 32, scale_dtype uint8)
 * @param qparams power-of-two scales
 * @param modelDtype the model's dtype
 * @returns `weight_packed` and `weight_scale` (E8M0 bytes)
 * @throws {CompressionError} for non-FP4 args, odd columns or a global scale
 * @example
 * ```ts
 * import { compressMxfp4PackQuantized } from "./mxfp4_pack_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const a = presetScheme("MXFP4A16", ["Linear"]).weights!;
 * const t = compressMxfp4PackQuantized("m", new Float32Array(32).fill(1), [1, 32], a, { scale: new Float32Array([0.25]) }, "F32");
 * t[1].data[0]; // 125
 * ```
 */
export function compressMxfp4PackQuantized(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
  modelDtype: ModelDType,
): CompressedTensor[] {
  checkFp4Args(args, prefix, "mxfp4-pack-quantized");
  if (qparams.globalScale !== undefined && qparams.globalScale !== null) {
    throw new CompressionError(`${prefix}: mxfp4-pack-quantized has no global scale`);
  }
  const [rows, cols] = shape;
  const qShape = weightQParamShape(shape, args, prefix);
  if (cols % 2 !== 0) {
    // Quantizing first keeps the error a shape problem raises ahead of the packing one.
    packFp4(
      quantize(weight, shape, qparams, args, { dtype: modelDtype, where: prefix }),
      rows,
      cols,
      prefix,
    );
  }
  const packed = new Uint8Array((rows * cols) / 2);
  quantizeFp4Rows(weight, shape, qparams, args, (r, nibbles) => {
    packFp4Row(nibbles, cols, packed, (r * cols) / 2);
  }, { dtype: modelDtype, where: prefix });
  return [
    makeTensor(
      `${prefix}.weight_packed`,
      "U8",
      [rows, cols / 2],
      packed,
    ),
    scaleTensor(`${prefix}.weight_scale`, qparams.scale, qShape, args, modelDtype),
  ];
}

/**
 * Decompresses an MXFP4 weight: `fp4 · 2^(e − 127)`.
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @param args weight args
 * @param options the dtype of the result (F32 by default)
 * @returns the dense weight and its shape
 * @throws {CompressionError} when a tensor is missing or malformed
 * @example
 * ```ts
 * import { compressMxfp4PackQuantized, decompressMxfp4PackQuantized } from "./mxfp4_pack_quantized.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * const a = presetScheme("MXFP4A16", ["Linear"]).weights!;
 * const t = compressMxfp4PackQuantized("m", new Float32Array(32).fill(1), [1, 32], a, { scale: new Float32Array([0.25]) }, "F32");
 * decompressMxfp4PackQuantized("m", t, a).weight[0]; // 1
 * ```
 */
export function decompressMxfp4PackQuantized(
  prefix: string,
  tensors: readonly CompressedTensor[],
  args: QuantizationArgs,
  options: { dtype?: ModelDType } = {},
): { weight: Float32Array; shape: [number, number] } {
  checkFp4Args(args, prefix, "mxfp4-pack-quantized");
  const p = requireTensor(tensors, `${prefix}.weight_packed`);
  const shape: [number, number] = [p.shape[0], p.shape[1] * 2];
  const weight = dequantize(
    unpackFp4(p.data, shape[0], shape[1]),
    shape,
    {
      scale: decodeScale(requireTensor(tensors, `${prefix}.weight_scale`), args),
      gIdx: readGIdx(findTensor(tensors, `${prefix}.weight_g_idx`)),
    },
    args,
    { dtype: options.dtype ?? "F32", where: prefix },
  );
  return { weight, shape };
}
