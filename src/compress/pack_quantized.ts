/**
 * `pack-quantized` (§1.9.3): int weights packed into int32 words
 * (`weight_packed` I32 `[out, ceil(in/pf)]`), the original shape as I64
 * `weight_shape`, `weight_scale`, and for asymmetric group/channel args the
 * zero points packed along dim 0 (I32 `[ceil(out/pf), groups]`).
 *
 * @module
 */

import type { QuantizationArgs } from "../quant/args.ts";
import { weightQParamShape } from "../quant/qparam_shape.ts";
import { dequantize } from "../quant/quantize.ts";
import { quantizeIntRows } from "../quant/quantize_rows.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import { decompressDType } from "./_decompress_dtype.ts";
import {
  findTensor,
  int32Tensor,
  int32Values,
  int64Tensor,
  int64Values,
  requireTensor,
  tensorValues,
} from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";
import { packFactor, packInt32, packInt32Row, unpackInt32 } from "./pack_int32.ts";
import {
  decodeScale,
  gIdxTensor,
  readGIdx,
  scaleTensor,
  zeroPointTensor,
} from "./qparam_tensors.ts";
import type { ModelDType } from "./qparam_tensors.ts";

function checkPackable(args: QuantizationArgs, prefix: string): void {
  if (args.type !== "int" || args.numBits > 8) {
    throw new CompressionError(
      `${prefix}: pack-quantized packs int weights of 1 to 8 bits, got ${args.type}${args.numBits}`,
    );
  }
}

function packsZeroPoint(args: QuantizationArgs): boolean {
  return !args.symmetric && (args.strategy === "group" || args.strategy === "channel");
}

/**
 * Compresses one Linear weight in the pack-quantized format.
 *
 * @param prefix the module name
 * @param weight the dense weight `[out, in]`
 * @param shape `[out, in]`
 * @param args weight args (int, ≤ 8 bits)
 * @param qparams scale, zero point, g_idx
 * @param modelDtype the model's dtype (scales are stored in it)
 * @returns `weight_packed`, `weight_shape`, `weight_scale`, and the zero point / g_idx when applicable
 * @throws {CompressionError} for float or > 8-bit args
 * @example
 * ```ts
 * import { compressPackQuantized } from "./pack_quantized.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, group_size: 8 }, "w");
 * const w = new Float32Array([7.5, -7.5, 2.5, -2.5, 0.5, 1.5, 3.0, -0.49]);
 * const t = compressPackQuantized("m", w, [1, 8], a, { scale: new Float32Array([1]) }, "F32");
 * t[0].data; // Uint8Array [0x0f, 0x6a, 0xa8, 0x8b]
 * ```
 */
export function compressPackQuantized(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
  modelDtype: ModelDType,
): CompressedTensor[] {
  checkPackable(args, prefix);
  const [rows, cols] = shape;
  const pf = packFactor(args.numBits);
  const qShape = weightQParamShape(shape, args, prefix);
  const words = Math.ceil(cols / pf);
  const packed = new Int32Array(rows * words);
  // Each row is packed as it is quantized: no tensor-sized array of codes.
  quantizeIntRows(weight, shape, qparams, args, (r, codes) => {
    packInt32Row(codes, cols, args.numBits, packed, r * words);
  }, { dtype: modelDtype, where: prefix });
  const out = [
    int32Tensor(`${prefix}.weight_packed`, [rows, words], packed),
    int64Tensor(`${prefix}.weight_shape`, [2], [rows, cols]),
    scaleTensor(`${prefix}.weight_scale`, qparams.scale, qShape, args, modelDtype),
  ];
  if (!args.symmetric) {
    const zp = qparams.zeroPoint ?? new Float32Array(qparams.scale.length);
    if (packsZeroPoint(args)) {
      const [zr, zc] = qShape;
      const pz = packInt32(Int8Array.from(zp), zr, zc, args.numBits, 0);
      out.push(int32Tensor(`${prefix}.weight_zero_point`, [Math.ceil(zr / pf), zc], pz));
    } else {
      out.push(zeroPointTensor(`${prefix}.weight_zero_point`, zp, qShape, args));
    }
  }
  if (qparams.gIdx) out.push(gIdxTensor(`${prefix}.weight_g_idx`, qparams.gIdx));
  return out;
}

/**
 * Decompresses a pack-quantized weight.
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @param args weight args
 * @param options the dtype to compute in (default: the scale tensor's float dtype, else F32)
 * @returns the dense weight and its shape (from `weight_shape`)
 * @throws {CompressionError} when a tensor is missing or malformed
 * @example
 * ```ts
 * import { compressPackQuantized, decompressPackQuantized } from "./pack_quantized.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const t = compressPackQuantized("m", new Float32Array([1, -1]), [1, 2], a, { scale: new Float32Array([0.25]) }, "F32");
 * decompressPackQuantized("m", t, a).weight; // Float32Array [1, -1]
 * ```
 */
export function decompressPackQuantized(
  prefix: string,
  tensors: readonly CompressedTensor[],
  args: QuantizationArgs,
  options: { dtype?: ModelDType } = {},
): { weight: Float32Array; shape: [number, number] } {
  checkPackable(args, prefix);
  const dims = int64Values(requireTensor(tensors, `${prefix}.weight_shape`));
  if (dims.length !== 2) {
    throw new CompressionError(`${prefix}.weight_shape: expected [out, in], got [${dims}]`);
  }
  const shape: [number, number] = [dims[0], dims[1]];
  const packed = int32Values(requireTensor(tensors, `${prefix}.weight_packed`));
  const codes = Float32Array.from(unpackInt32(packed, shape[0], shape[1], args.numBits, 1));
  const s = requireTensor(tensors, `${prefix}.weight_scale`);
  const qShape = weightQParamShape(shape, args, prefix);
  const zpT = findTensor(tensors, `${prefix}.weight_zero_point`);
  let zeroPoint: Float32Array | null = null;
  if (zpT !== undefined) {
    zeroPoint = packsZeroPoint(args)
      ? Float32Array.from(unpackInt32(int32Values(zpT), qShape[0], qShape[1], args.numBits, 0))
      : tensorValues(zpT);
  }
  const weight = dequantize(
    codes,
    shape,
    {
      scale: decodeScale(s, args),
      zeroPoint,
      gIdx: readGIdx(findTensor(tensors, `${prefix}.weight_g_idx`)),
    },
    args,
    { dtype: decompressDType(s, options.dtype), where: prefix },
  );
  return { weight, shape };
}
