/**
 * Which Linear modules of a decoder get which quantization scheme, decided
 * and validated for the whole model before anything is read or written.
 *
 * @module
 */

import type { DType } from "../../io/dtype.ts";
import type { ModelConfig } from "../../io/model_config.ts";
import type { TensorInfo } from "../../io/safetensors_read.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { layerLinearModules } from "../../model/moe_names.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import type { ModuleFormat } from "../../quant/compression_format.ts";
import { QuantizationConfigError } from "../../quant/errors.ts";
import { moduleFormat } from "../../quant/format.ts";
import { findMatchingScheme, matchesTarget } from "../../quant/match.ts";
import type { JsonValue } from "../../quant/python_json.ts";
import { buildQuantizationConfig } from "../../quant/quantization_config.ts";
import { type QuantizationScheme, withFormat } from "../../quant/scheme.ts";
import { checkWeightQuantizable } from "./check_weight.ts";

/** The class name every Linear module matches (vLLM's LinearBase counts as it too). */
export const LINEAR_CLASS = "Linear";

/** What the plan needs to know about the model. */
export interface PlanSource {
  /** The parsed config. */
  readonly config: ModelConfig;
  /** Whether a tensor exists. */
  has(name: string): boolean;
  /** A tensor's dtype and shape. */
  info(name: string): Pick<TensorInfo, "dtype" | "shape">;
}

/** The resolved config groups of one quantization modifier. */
export interface PlanConfig {
  /** Config groups in config order. */
  readonly configGroups: Readonly<Record<string, QuantizationScheme>>;
  /** Names / `re:` patterns / class names never quantized. */
  readonly ignore: readonly string[];
}

/**
 * The config with one format forced on every group, as upstream's
 * `quantization_format` (and `save_compressed=False`, which forces
 * `"dense"`) does; null leaves the config as it is.
 *
 * @param config resolved config groups (and whatever else the config carries)
 * @param format the format to force, or null
 * @returns the config, its groups carrying `format`
 * @example
 * ```ts
 * import { withFormatOverride } from "./linear_plan.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * const c = withFormatOverride({ configGroups: { group_0: presetScheme("W8A16", ["Linear"]) }, ignore: [] }, "dense");
 * c.configGroups.group_0.format; // "dense"
 * ```
 */
export function withFormatOverride<C extends PlanConfig>(
  config: C,
  format: ModuleFormat | null,
): C {
  if (format === null) return config;
  const groups = Object.entries(config.configGroups).map(([k, s]) => [k, withFormat(s, format)]);
  return { ...config, configGroups: Object.fromEntries(groups) };
}

/** One Linear module and how it is quantized. */
export interface PlannedLinear {
  /** Module name, e.g. `model.layers.0.self_attn.q_proj` or `lm_head`. */
  readonly name: string;
  /** The tensor its weight is read from (the embedding table for a tied lm_head). */
  readonly weightTensor: string;
  /** Decoder layer index, or null for lm_head. */
  readonly layer: number | null;
  /** `[out, in]`. */
  readonly shape: readonly [number, number];
  /** The stored dtype of the weight. */
  readonly dtype: DType;
  /** The scheme quantizing it, or null when it stays dense. */
  readonly scheme: QuantizationScheme | null;
  /** Its compression format (null when not quantized). */
  readonly format: ModuleFormat | null;
}

/** The whole model's plan. */
export interface LinearPlan {
  /** Every Linear in `named_modules()` order (layers' q, k, v, o, gate, up, down; then lm_head). */
  readonly linears: readonly PlannedLinear[];
  /** lm_head is quantized while tied to the embeddings: it must be written untied. */
  readonly untieLmHead: boolean;
  /** The `quantization_config` of config.json. */
  readonly quantizationConfig: { [key: string]: JsonValue };
  /** Targets and ignore entries that matched no Linear (upstream warns about these). */
  readonly unmatched: readonly string[];
}

/**
 * The compute dtype of a weight's stored dtype.
 *
 * @param dtype the stored dtype
 * @param where the tensor, for the message
 * @returns F32, BF16 or F16
 * @throws {QuantizationConfigError} for a weight that is not F32/BF16/F16 (e.g. already FP8)
 * @example
 * ```ts
 * import { computeDTypeOf } from "./linear_plan.ts";
 * computeDTypeOf("BF16", "w"); // "BF16"
 * ```
 */
export function computeDTypeOf(dtype: DType, where: string): ComputeDType {
  if (dtype === "F32" || dtype === "BF16" || dtype === "F16") return dtype;
  throw new QuantizationConfigError(
    `${where}: weights stored as ${dtype} cannot be quantized; llmc expects F32, BF16 or F16 ` +
      `weights (dequantize the checkpoint first)`,
  );
}

/**
 * Plans the quantization of every Linear of a llama-family decoder: matches
 * each module against the config groups (ignore first, then the most
 * specific target), checks that its weight fits the scheme, picks its
 * compression format, and builds the `quantization_config` (groups named
 * `group_0…` in order of first use, the generated ignore list).
 *
 * @param source the model (config and tensor headers only; nothing is read)
 * @param config the resolved config groups and ignore list
 * @returns the plan
 * @throws {QuantizationShapeError} (from quant) naming the first module whose shape does not fit
 * @throws {QuantizationConfigError} for weights that cannot be quantized
 * @example
 * ```ts ignore
 * import { planLinearQuantization } from "./linear_plan.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * const plan = planLinearQuantization(model, {
 *   configGroups: { group_0: presetScheme("W8A16", ["Linear"]) }, ignore: ["lm_head"],
 * });
 * plan.quantizationConfig.format; // "pack-quantized"
 * ```
 */
export function planLinearQuantization(source: PlanSource, config: PlanConfig): LinearPlan {
  const groups = Object.values(config.configGroups);
  const linears: PlannedLinear[] = [];
  const add = (name: string, weightTensor: string, layer: number | null) => {
    const info = source.info(weightTensor);
    const scheme = findMatchingScheme(name, LINEAR_CLASS, groups, config.ignore);
    const quantized = scheme !== null && scheme.weights !== null;
    if (quantized) {
      checkWeightQuantizable(name, info.shape, scheme.weights!);
      computeDTypeOf(info.dtype, weightTensor);
    }
    linears.push({
      name,
      weightTensor,
      layer,
      shape: [info.shape[0], info.shape[1]],
      dtype: info.dtype,
      scheme,
      format: scheme === null ? null : moduleFormat(scheme),
    });
  };
  for (let k = 0; k < source.config.numHiddenLayers; k++) {
    for (const linear of layerLinearModules(source.config, k)) {
      const name = `${layerPrefix(k)}.${linear}`;
      add(name, `${name}.weight`, k);
    }
  }
  const tied = !source.has("lm_head.weight");
  add("lm_head", tied ? "model.embed_tokens.weight" : "lm_head.weight", null);
  const lmHead = linears[linears.length - 1];
  const untieLmHead = tied && lmHead.scheme !== null;

  const names = linears.map((l) => l.name);
  const unmatched: string[] = [];
  for (const t of [...groups.flatMap((g) => g.targets), ...config.ignore]) {
    if (!names.some((n) => matchesTarget(t, n, LINEAR_CLASS)) && !unmatched.includes(t)) {
      unmatched.push(t);
    }
  }
  const quantizationConfig = buildQuantizationConfig({
    modules: linears.map((l) => ({ name: l.name, className: LINEAR_CLASS, scheme: l.scheme })),
  });
  return Object.freeze({
    linears: Object.freeze(linears),
    untieLmHead,
    quantizationConfig,
    unmatched: Object.freeze(unmatched),
  });
}
