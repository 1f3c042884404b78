/**
 * llmc's quantization core, compatible with compressed-tensors 0.13.0 and
 * llm-compressor 0.9: quantization args and schemes, presets, target
 * matching, observers, scales and zero points, quantize / dequantize
 * references, format inference and the `quantization_config` of config.json.
 *
 * @example
 * ```ts
 * import { inferFormat, presetScheme, rtnQuantizeModule } from "./mod.ts";
 * const scheme = presetScheme("W4A16", ["Linear"]);
 * const w = new Float32Array(4 * 128).map((_, i) => Math.sin(i));
 * const qp = rtnQuantizeModule(w, [4, 128], scheme.weights!);
 * qp.qparamShape; // [4, 1]
 * inferFormat(scheme); // "pack-quantized"
 * ```
 *
 * @module
 */

export {
  type ActivationOrdering,
  canonicalActorder,
  type DynamicType,
  type ObserverName,
  parseQuantizationArgs,
  type QuantizationArgs,
  quantizationArgsEqual,
  quantizationArgsToJson,
  type QuantizationStrategy,
  type QuantizationType,
} from "./args.ts";
export {
  makeQuantizationScheme,
  parseQuantizationScheme,
  type QuantizationScheme,
  quantizationSchemesEqual,
  quantizationSchemeToJson,
  withFormat,
} from "./scheme.ts";
export { isPresetName, PRESET_NAMES, presetScheme, UnknownPresetError } from "./presets.ts";
export {
  findMatchingScheme,
  generatedIgnoreList,
  isIgnored,
  matchedTargets,
  matchesTarget,
} from "./match.ts";
export {
  COMPRESSION_FORMATS,
  type CompressionFormat,
  isCompressionFormat,
  type ModuleFormat,
} from "./compression_format.ts";
export { globalFormat, inferFormat, moduleFormat, type SparsityStructure } from "./format.ts";
export {
  calculateQParams,
  globalScaleFor,
  isMxArgs,
  type QParams,
  quantizedRange,
  roundHalfEven,
  roundToTorchDtype,
} from "./qparams.ts";
export {
  activationCalibrationView,
  attentionCalibrationView,
  type CalibrationView,
  type MinMax,
  slotAbsMax,
  slotMinMax,
  weightCalibrationView,
} from "./calibration_view.ts";
export {
  EMPTY_OBSERVER_STATE,
  movingAverageMinMax,
  mseMinMax,
  observe,
  type ObserverState,
  qparamsOf,
  staticMinMax,
  tensorAmax,
} from "./observers.ts";
export {
  dequantize,
  dequantizeValue,
  fakeQuantize,
  fakeQuantizeValue,
  fakeQuantizeView,
  quantize,
  quantizeValue,
  type WeightQParams,
} from "./quantize.ts";
export { quantizeFp4Rows, quantizeFp8Bytes, quantizeIntRows } from "./quantize_rows.ts";
export { weightQParamShape } from "./qparam_shape.ts";
export { type QParamSlotMap, qparamSlotMap } from "./slot_map.ts";
export { rtnGlobalScale, type RtnQParams, rtnQuantizeModule } from "./rtn.ts";
export { fusedGlobalScaleGroups, fuseGlobalScales } from "./fused_global_scales.ts";
export {
  buildQuantizationConfig,
  COMPRESSED_TENSORS_VERSION,
  type SchemedModule,
} from "./quantization_config.ts";
export { stableStringify } from "./stable_stringify.ts";
export { type JsonValue, parsePythonJson, PyFloat } from "./python_json.ts";
export { type ComputeDType } from "./compute_dtype.ts";
export { QuantizationConfigError, QuantizationShapeError } from "./errors.ts";
