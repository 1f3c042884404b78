/**
 * Typed modifier specs: what one entry of a recipe asks for, with every
 * argument checked and every default filled in, as a discriminated union on
 * `type` (the llm-compressor class name). Properties are the camelCase forms
 * of upstream's argument names (`block_size` → `blockSize`).
 *
 * @module
 */

import type { ActivationOrdering, QuantizationArgs } from "../quant/args.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";

/** Fields every modifier has (§3.2). `group` is the resolved group name. */
export interface ModifierCommon {
  /** The stage the modifier was written in, minus `_stage` (`"default"` for code-built recipes). */
  readonly stage: string;
  /** Its group: the `<group>_modifiers` key minus the suffix, or its own `group:` argument. */
  readonly group: string;
  /** Position in the modifier list (a training-era field; unused by oneshot). */
  readonly index: number | null;
  /** Start epoch (training-era; oneshot requires null or -1). */
  readonly start: number | null;
  /** End epoch (training-era; oneshot requires null or -1). */
  readonly end: number | null;
  /** Update frequency (training-era). */
  readonly update: number | null;
}

/**
 * The `scheme` argument in its three forms: a preset name (`"W4A16"`), a map
 * of preset names to targets (`{W4A16: ["Linear"]}`), or a scheme body whose
 * targets come from the modifier's `targets` (kept as written, snake_case).
 */
export type SchemeSetting =
  | { readonly form: "preset"; readonly name: string }
  | { readonly form: "presets"; readonly presets: Readonly<Record<string, readonly string[]>> }
  | { readonly form: "body"; readonly body: Readonly<Record<string, unknown>> };

/** The `observer` argument: observer names per tensor kind. */
export interface ObserverOverrides {
  /** The weight observer, e.g. `"minmax"` or `"mse"`. */
  readonly weights?: string;
  /** The input-activation observer. */
  readonly input?: string;
  /** The output-activation observer. */
  readonly output?: string;
}

/** The quantization fields shared by QuantizationModifier and GPTQModifier (§3.3). */
export interface QuantizationFields {
  /** Config groups by name, or null when `scheme` (or nothing) is used. */
  readonly configGroups: Readonly<Record<string, QuantizationScheme>> | null;
  /** Targets for `scheme` (a bare string becomes a one-element list, as upstream). */
  readonly targets: readonly string[];
  /** Modules never quantized: names, `re:` patterns or class names. */
  readonly ignore: readonly string[];
  /** A preset, preset→targets map or scheme body; exclusive with `configGroups`. */
  readonly scheme: SchemeSetting | null;
  /** K/V cache quantization. */
  readonly kvCacheScheme: QuantizationArgs | null;
  /** Overrides the weight observer of every group. */
  readonly weightObserver: string | null;
  /** Overrides the input-activation observer of every group. */
  readonly inputObserver: string | null;
  /** Overrides the output-activation observer of every group. */
  readonly outputObserver: string | null;
  /** The three overrides as one mapping; exclusive with them. */
  readonly observer: ObserverOverrides | null;
}

/** Round-to-nearest quantization (§3.4, §4.3). */
export interface QuantizationModifierSpec extends ModifierCommon, QuantizationFields {
  /** The llm-compressor class name. */
  readonly type: "QuantizationModifier";
}

/**
 * GPTQ's `actorder`: left unset, upstream uses a sentinel that means "static
 * for group-strategy weights that do not choose"; set explicitly (even to
 * null), it overrides every group-strategy weight and must not conflict.
 */
export type GptqActorder =
  | { readonly source: "default" }
  | { readonly source: "explicit"; readonly value: ActivationOrdering | null };

/** GPTQ (§3.4, §4.4). */
export interface GPTQModifierSpec extends ModifierCommon, QuantizationFields {
  /** The llm-compressor class name. */
  readonly type: "GPTQModifier";
  /** Deprecated here (use oneshot's `sequential_targets`); kept as written. */
  readonly sequentialTargets: string | readonly string[] | null;
  /** Columns quantized per GPTQ block (128). */
  readonly blockSize: number;
  /** Hessian dampening as a fraction of the mean diagonal (0.01). */
  readonly dampeningFrac: number | null;
  /** Activation ordering. */
  readonly actorder: GptqActorder;
  /** Keep Hessians on the CPU between uses. */
  readonly offloadHessians: boolean;
}

/** Per-layer sparsity: one value, one per layer (list), or by layer name. */
export type SparsityTarget = number | readonly number[] | Readonly<Record<string, number>>;

/** Arguments shared by SparseGPT and Wanda (§3.4, §4.5). */
export interface SparsityFields {
  /** Fraction of weights set to zero. */
  readonly sparsity: SparsityTarget | null;
  /** `"owl"` for outlier-weighted layer-wise sparsity, or null. */
  readonly sparsityProfile: "owl" | null;
  /** `"N:M"`; `"0:0"` is unstructured. */
  readonly maskStructure: string;
  /** OWL threshold multiplier. */
  readonly owlM: number | null;
  /** OWL lambda. */
  readonly owlLmbda: number | null;
  /** Layers calibrated one at a time; kept as written. */
  readonly sequentialTargets: string | readonly string[] | null;
  /** Layers (or containers of layers) to prune; kept as written. */
  readonly targets: string | readonly string[];
  /** Modules never pruned. */
  readonly ignore: readonly string[];
}

/** SparseGPT pruning. */
export interface SparseGPTModifierSpec extends ModifierCommon, SparsityFields {
  /** The llm-compressor class name. */
  readonly type: "SparseGPTModifier";
  /** Columns pruned per block (128). */
  readonly blockSize: number;
  /** Hessian dampening as a fraction of the mean diagonal (0.01). */
  readonly dampeningFrac: number | null;
  /** Keep zeros that are already there. */
  readonly preserveSparsityMask: boolean;
  /** Keep Hessians on the CPU between uses. */
  readonly offloadHessians: boolean;
}

/** Wanda pruning. */
export interface WandaPruningModifierSpec extends ModifierCommon, SparsityFields {
  /** The llm-compressor class name. */
  readonly type: "WandaPruningModifier";
}

/** Training-era gradual magnitude pruning (parsed; finetuning is deprecated upstream). */
export interface MagnitudePruningModifierSpec extends ModifierCommon {
  /** The llm-compressor class name. */
  readonly type: "MagnitudePruningModifier";
  /** Parameter regexes such as `re:.*q_proj.weight`. */
  readonly targets: string | readonly string[];
  /** Sparsity at the start epoch. */
  readonly initSparsity: number;
  /** Sparsity at the end epoch. */
  readonly finalSparsity: number;
  /** How sparsity grows between them (e.g. `"cubic"`). */
  readonly updateScheduler: string;
  /** Arguments of the scheduler, as written. */
  readonly schedulerArgs: Readonly<Record<string, unknown>>;
  /** `"unstructured"` or `"N:M"`. */
  readonly maskStructure: string;
  /** Keep the masks applied after the end epoch. */
  readonly leaveEnabled: boolean;
  /** Rank weights across all targets instead of per parameter. */
  readonly applyGlobally: boolean;
}

/** Training-era modifier that keeps existing zeros at zero. */
export interface ConstantPruningModifierSpec extends ModifierCommon {
  /** The llm-compressor class name. */
  readonly type: "ConstantPruningModifier";
  /** Parameter regexes whose zeros stay zero. */
  readonly targets: string | readonly string[];
}

/**
 * One SmoothQuant mapping as upstream writes it: `[[balance regexes...], smooth regex]`
 * (a single balance pattern may be a bare string).
 */
export interface SmoothQuantMapping {
  /** Layers whose input columns absorb the scales. */
  readonly balanceLayers: readonly string[];
  /** Whether the balance layers were written as one string rather than a list. */
  readonly balanceAsString: boolean;
  /** The layer whose output is divided by the scales (a norm). */
  readonly smoothLayer: string;
}

/** SmoothQuant and logarithmic equalization (§3.4, §4.7). */
export interface SmoothQuantModifierSpec extends ModifierCommon {
  /** Which of the two smoothing modifiers. */
  readonly type: "SmoothQuantModifier" | "LogarithmicEqualizationModifier";
  /** α (0.5); unused by logarithmic equalization. */
  readonly smoothingStrength: number;
  /** Mappings, or null to infer them from the architecture. */
  readonly mappings: readonly SmoothQuantMapping[] | null;
  /** Layers never smoothed. */
  readonly ignore: readonly string[] | null;
  /** Samples used for calibration (null: all). */
  readonly numCalibrationSteps: number | null;
  /** A Python callable upstream; kept as written, unused. */
  readonly calibrationFunction: unknown;
}

/** One AWQ mapping (`{smooth_layer, balance_layers}`). */
export interface AwqMapping {
  /** The layer whose output is scaled down (a norm or a Linear), by name or `re:` pattern. */
  readonly smoothLayer: string;
  /** The Linears that read it and are scaled up. */
  readonly balanceLayers: readonly string[];
}

/** AWQ (§3.4, §4.6): smoothing by a grid search, then quantization per its scheme. */
export interface AWQModifierSpec extends ModifierCommon, QuantizationFields {
  /** Tags the modifier. */
  readonly type: "AWQModifier";
  /** Mappings, or null to infer them from the architecture. */
  readonly mappings: readonly AwqMapping[] | null;
  /** Where upstream keeps cached parent inputs; accepted, llmc's cache is bounded anyway. */
  readonly offloadDevice: string | null;
  /** Scales from activations and weights (true), activations only (false), or both halves. */
  readonly duoScaling: boolean | "both";
  /** Grid points of the exponent search (20). */
  readonly nGrid: number;
  /** Kept as written (oneshot's `sequential_targets` is the live setting). */
  readonly sequentialTargets: string | readonly string[] | null;
}

/** Modifiers llm-compressor has and llmc reads but cannot run yet. */
export const NOT_YET_SUPPORTED = [
  "SpinQuantModifier",
  "QuIPModifier",
  "AutoRoundModifier",
] as const;

/**
 * The modifiers among {@link NOT_YET_SUPPORTED} (arguments kept as written)
 * that llmc nevertheless runs, as whole-model transforms before the layer
 * pipelines (`src/modifiers/model_transforms.ts`).
 */
export const RUNNABLE_RAW_MODIFIERS: readonly NotYetSupportedName[] = Object.freeze([
  "SpinQuantModifier",
  "QuIPModifier",
]);

/** One of {@link NOT_YET_SUPPORTED}. */
export type NotYetSupportedName = typeof NOT_YET_SUPPORTED[number];

/**
 * A recognized but not yet supported modifier: its known arguments are
 * type-checked, and all of them are kept as written (minus `group`) so the
 * recipe can be re-serialized.
 */
export interface NotYetSupportedModifierSpec extends ModifierCommon {
  /** The llm-compressor class name. */
  readonly type: NotYetSupportedName;
  /** The arguments as written, in their order. */
  readonly args: Readonly<Record<string, unknown>>;
}

/** Every modifier a recipe may name, discriminated on `type`. */
export type ModifierSpec =
  | QuantizationModifierSpec
  | GPTQModifierSpec
  | SparseGPTModifierSpec
  | WandaPruningModifierSpec
  | MagnitudePruningModifierSpec
  | ConstantPruningModifierSpec
  | SmoothQuantModifierSpec
  | AWQModifierSpec
  | NotYetSupportedModifierSpec;

/** The class names llmc parses into typed specs it can run (or, for the training-era ones, keep). */
export const PARSED_MODIFIERS = [
  "QuantizationModifier",
  "GPTQModifier",
  "SparseGPTModifier",
  "WandaPruningModifier",
  "MagnitudePruningModifier",
  "ConstantPruningModifier",
  "SmoothQuantModifier",
  "LogarithmicEqualizationModifier",
  "AWQModifier",
] as const;

/** Every modifier class name a recipe may use (§3.1). */
export const MODIFIER_NAMES: readonly string[] = [...PARSED_MODIFIERS, ...NOT_YET_SUPPORTED];

/**
 * Whether a modifier carries the §3.3 quantization fields and can be resolved
 * with `resolveQuantizationConfig`.
 *
 * @param mod any modifier spec
 * @returns true for QuantizationModifier, GPTQModifier and AWQModifier specs
 * @example
 * ```ts
 * import { isQuantizationModifier, type ModifierSpec } from "./modifiers.ts";
 * const mods: ModifierSpec[] = [];
 * const quant = mods.filter(isQuantizationModifier);
 * console.assert(quant.length === 0);
 * ```
 */
export function isQuantizationModifier(
  mod: ModifierSpec,
): mod is QuantizationModifierSpec | GPTQModifierSpec | AWQModifierSpec {
  return mod.type === "QuantizationModifier" || mod.type === "GPTQModifier" ||
    mod.type === "AWQModifier";
}
