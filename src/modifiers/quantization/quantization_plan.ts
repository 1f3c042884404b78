/**
 * The plan of one QuantizationModifier or GPTQModifier over a whole model,
 * made before anything is read or written: which Linear gets which scheme
 * (the data-free planner's `planLinearQuantization`), which attention
 * modules get K/V (and query) scales, the `quantization_config` to write,
 * and every check that would otherwise fail halfway through a run.
 *
 * @module
 */

import { LlmcError } from "../../errors.ts";
import type { ModelConfig } from "../../io/model_config.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { planLinearQuantization, withFormatOverride } from "./linear_plan.ts";
import type { ModuleFormat } from "../../quant/compression_format.ts";
import type { LinearPlan, PlannedLinear, PlanSource } from "./linear_plan.ts";
import { decoderLayerModules } from "./layer_fused_sets.ts";
import { checkGptqArgs } from "../gptq/gptq_qparams.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import { findMatchingScheme, matchesTarget } from "../../quant/match.ts";
import type { JsonValue } from "../../quant/python_json.ts";
import { buildQuantizationConfig } from "../../quant/quantization_config.ts";
import type { SchemedModule } from "../../quant/quantization_config.ts";
import type { QuantizationScheme } from "../../quant/scheme.ts";
import type {
  AWQModifierSpec,
  GPTQModifierSpec,
  QuantizationModifierSpec,
} from "../../recipe/modifiers.ts";
import { resolveQuantizationConfig } from "../../recipe/resolve.ts";
import type { ResolvedQuantizationConfig } from "../../recipe/resolve.ts";
import { ACTIVATION_OBSERVERS } from "../../graph/observer_operators.ts";

/** A recipe asks for calibration llmc cannot perform (say what and why). */
export class CalibrationUnsupportedError extends LlmcError {}

/** The quantization modifiers the graph runs. */
export type QuantizationModifierLike =
  | QuantizationModifierSpec
  | GPTQModifierSpec
  | AWQModifierSpec;

/** K/V (and query) quantization of one attention module. */
export interface AttentionPlan {
  /** e.g. `model.layers.0.self_attn`. */
  readonly module: string;
  readonly layer: number;
  /** Args for K and V (the kv_cache_scheme, else an attention group's inputs). */
  readonly kv: QuantizationArgs | null;
  /** Args for the query states (an attention group's inputs), or null. */
  readonly query: QuantizationArgs | null;
}

/** One quantization modifier's plan. */
export interface QuantizationPlan {
  readonly modifier: QuantizationModifierLike;
  readonly resolved: ResolvedQuantizationConfig;
  /** Every Linear and its scheme / format. */
  readonly linears: LinearPlan;
  /** Attention modules with K/V or query quantization, by layer order. */
  readonly attention: readonly AttentionPlan[];
  /** Every module of the model in `named_modules()` order with the scheme this plan gives it. */
  readonly modules: readonly SchemedModule[];
  /** The `quantization_config` (with `kv_cache_scheme`). */
  readonly quantizationConfig: { [key: string]: JsonValue };
  /** Whether any module needs calibration data (static inputs, NVFP4 input scales, K/V, GPTQ). */
  readonly needsData: boolean;
  /** Targets and ignore entries that match neither a Linear nor an attention module. */
  readonly unmatched: readonly string[];
}

/**
 * Whether a planned Linear is quantized (weights or inputs) in some format.
 *
 * @param l the planned Linear
 * @returns true when the graph must produce a result for it
 * @example
 * ```ts ignore
 * plan.linears.linears.filter(isQuantizedLinear).length; // 35 on stories260K with ignore lm_head
 * ```
 */
export function isQuantizedLinear(l: PlannedLinear): boolean {
  return l.scheme !== null && l.format !== null &&
    (l.scheme.weights !== null || l.scheme.inputActivations !== null);
}

/**
 * Whether input args need observed statistics (a static scale, or NVFP4's
 * calibrated global scale).
 *
 * @param args a Linear's input args, or null
 * @returns true for static and `dynamic: "local"` args
 * @example
 * ```ts
 * import { inputNeedsCalibration } from "./quantization_plan.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * inputNeedsCalibration(presetScheme("FP8", ["Linear"]).inputActivations); // true
 * inputNeedsCalibration(presetScheme("FP8_DYNAMIC", ["Linear"]).inputActivations); // false
 * ```
 */
export function inputNeedsCalibration(args: QuantizationArgs | null): boolean {
  return args !== null && (args.dynamic === false || args.dynamic === "local");
}

function attentionClass(config: ModelConfig): string {
  return decoderLayerModules(0, config.modelType)[1].className;
}

function checkObserved(args: QuantizationArgs, where: string): void {
  if (args.observer === null || !ACTIVATION_OBSERVERS.includes(args.observer)) {
    throw new CalibrationUnsupportedError(
      `${where}: observer ${JSON.stringify(args.observer)} cannot calibrate activations in llmc ` +
        `(supported: ${ACTIVATION_OBSERVERS.join(", ")}); set observer: minmax`,
    );
  }
}

function checkInputArgs(args: QuantizationArgs, where: string): void {
  if (args.dynamic === false && args.strategy !== "tensor") {
    throw new CalibrationUnsupportedError(
      `${where}: static input activations need strategy tensor (vLLM serves no other static ` +
        `activation scales), got ${args.strategy}`,
    );
  }
  if (args.dynamic === "local" && args.strategy !== "tensor_group") {
    throw new CalibrationUnsupportedError(`${where}: dynamic local inputs need tensor_group`);
  }
  if (inputNeedsCalibration(args)) checkObserved(args, where);
}

function checkAttentionArgs(args: QuantizationArgs, where: string): void {
  if (args.dynamic !== false) {
    throw new CalibrationUnsupportedError(
      `${where}: K/V and query quantization needs static scales (dynamic: false)`,
    );
  }
  if (args.strategy !== "tensor" && args.strategy !== "attn_head") {
    throw new CalibrationUnsupportedError(
      `${where}: K/V and query scales need strategy tensor or attn_head, got ${args.strategy}`,
    );
  }
  checkObserved(args, where);
}

/**
 * Plans a QuantizationModifier or GPTQModifier over a model and checks
 * everything the graph will do with it.
 *
 * @param source the model (config and tensor headers)
 * @param modifier the modifier
 * @param formatOverride a format forced on every quantized module (`"dense"` for an
 *   uncompressed save), or null
 * @returns the plan
 * @throws {CalibrationUnsupportedError} for activation args llmc cannot calibrate
 *   (static non-tensor inputs, static outputs, MSE activation observers, dynamic K/V)
 * @throws {QuantizationShapeError} (from quant) for a weight its scheme cannot quantize
 * @throws {GptqConfigError} (from modifiers/gptq) for weight args GPTQ cannot run
 * @example
 * ```ts ignore
 * const plan = planQuantization(model, QuantizationModifier({ scheme: "FP8", ignore: ["lm_head"] }));
 * plan.needsData; // true
 * ```
 */
export function planQuantization(
  source: PlanSource,
  modifier: QuantizationModifierLike,
  formatOverride: ModuleFormat | null = null,
): QuantizationPlan {
  const where = `${modifier.stage}_stage.${modifier.group}_modifiers.${modifier.type}`;
  const resolved = withFormatOverride(resolveQuantizationConfig(modifier), formatOverride);
  if (modifier.type === "GPTQModifier" && !resolved.hasConfig) {
    throw new CalibrationUnsupportedError(
      `${where}: a GPTQModifier without scheme or config_groups (quantizing with a preceding ` +
        `modifier's schemes) is not supported yet; give it a scheme`,
    );
  }
  const linears = planLinearQuantization(source, resolved);
  const config = source.config;
  let needsData = modifier.type === "GPTQModifier";
  for (const l of linears.linears) {
    const s = l.scheme;
    if (s === null) continue;
    if (s.inputActivations !== null) {
      checkInputArgs(s.inputActivations, `${where} ${l.name} inputs`);
    }
    if (s.outputActivations !== null && s.outputActivations.dynamic !== true) {
      throw new CalibrationUnsupportedError(
        `${where} ${l.name}: static output activations are not supported (vLLM ignores them)`,
      );
    }
    if (modifier.type === "GPTQModifier" && s.weights !== null) {
      checkGptqArgs(s.weights, l.name);
    }
    needsData ||= inputNeedsCalibration(s.inputActivations);
  }

  const groups = Object.values(resolved.configGroups);
  const cls = attentionClass(config);
  const attention: AttentionPlan[] = [];
  const schemed: SchemedModule[] = [];
  for (let k = 0; k < config.numHiddenLayers; k++) {
    const module = `${layerPrefix(k)}.self_attn`;
    const group: QuantizationScheme | null = findMatchingScheme(
      module,
      cls,
      groups,
      resolved.ignore,
    );
    const query = group?.inputActivations ?? null;
    const kv = resolved.kvCacheScheme ?? query;
    if (kv !== null) checkAttentionArgs(kv, `${where} ${module} K/V`);
    if (query !== null) checkAttentionArgs(query, `${where} ${module} query`);
    if (kv !== null || query !== null) attention.push({ module, layer: k, kv, query });
    for (const m of decoderLayerModules(k, config)) {
      const planned = linears.linears.find((l) => l.name === m.name);
      schemed.push({
        name: m.name,
        className: m.className,
        scheme: planned?.scheme ?? (m.name === module && query !== null ? group : null),
      });
    }
  }
  const lmHead = linears.linears[linears.linears.length - 1];
  schemed.push({ name: lmHead.name, className: "Linear", scheme: lmHead.scheme });
  needsData ||= attention.length > 0;
  const quantizationConfig = buildQuantizationConfig({
    modules: schemed,
    kvCacheScheme: resolved.kvCacheScheme,
  });
  const unmatched = linears.unmatched.filter((t) =>
    !Array.from({ length: config.numHiddenLayers }, (_, k) => `${layerPrefix(k)}.self_attn`)
      .some((m) => matchesTarget(t, m, cls))
  );
  return Object.freeze({
    modifier,
    resolved,
    unmatched: Object.freeze(unmatched),
    linears,
    attention: Object.freeze(attention),
    modules: Object.freeze(schemed),
    quantizationConfig,
    needsData,
  });
}
