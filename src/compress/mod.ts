/**
 * compressed-tensors checkpoint formats: from a quantized module's dense
 * weight and qparams to the exact tensors written (and back).
 *
 * @example
 * ```ts
 * import { compressModule, decompressModule } from "./mod.ts";
 * import { presetScheme, rtnQuantizeModule } from "../quant/mod.ts";
 * const scheme = presetScheme("FP8_DYNAMIC", ["Linear"]);
 * const w = new Float32Array(8 * 16).map((_, i) => Math.cos(i));
 * const qp = rtnQuantizeModule(w, [8, 16], scheme.weights!);
 * const tensors = compressModule("m", w, [8, 16], scheme, { weight: qp }, "BF16", "float-quantized");
 * tensors.map((t) => t.name); // ["m.weight", "m.weight_scale"]
 * decompressModule("m", tensors, scheme, "float-quantized").shape; // [8, 16]
 * ```
 *
 * @module
 */

export {
  type CompressedTensor,
  makeTensor,
  tensorFromValues,
  tensorValues,
} from "./compressed_tensor.ts";
export {
  applySparsityCompression,
  compressModule,
  decompressModule,
  type ModuleQParams,
  type SparsityFormat,
} from "./compress_module.ts";
export { type ActivationQParams, type ModelDType, scaleStorageDType } from "./qparam_tensors.ts";
export { kvCacheScaleTensors } from "./kv_cache_scales.ts";
export { packFactor, packInt32, packInt32Row, unpackInt32 } from "./pack_int32.ts";
export { packFp4, packFp4Row, unpackFp4 } from "./pack_fp4.ts";
export { compressNaiveQuantized, decompressNaiveQuantized } from "./naive_quantized.ts";
export { compressPackQuantized, decompressPackQuantized } from "./pack_quantized.ts";
export {
  compressNvfp4PackQuantized,
  decompressNvfp4PackQuantized,
} from "./nvfp4_pack_quantized.ts";
export {
  compressMxfp4PackQuantized,
  decompressMxfp4PackQuantized,
} from "./mxfp4_pack_quantized.ts";
export { compressSparseBitmask, decompressSparseBitmask } from "./sparse_bitmask.ts";
export { compressSparse24Bitmask, decompressSparse24Bitmask } from "./sparse_24_bitmask.ts";
export { compressMarlin24 } from "./marlin_24.ts";
export { compressDense, decompressDense } from "./dense.ts";
export { CompressionError } from "./errors.ts";
