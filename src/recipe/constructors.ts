/**
 * Build recipes in code, as with llm-compressor's Python classes:
 * `GPTQModifier({ scheme: "W4A16", ignore: ["lm_head"] })`. Options are the
 * camelCase forms of the YAML arguments; each constructor converts them to the
 * YAML form and runs the very parser a recipe file goes through, so both ways
 * of writing a recipe are checked by the same code.
 *
 * @module
 */

import type { ActivationOrdering, QuantizationArgs } from "../quant/args.ts";
import { quantizationArgsToJson } from "../quant/args.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import { quantizationSchemeToJson } from "../quant/scheme.ts";
import { isMapping } from "./_fields.ts";
import type {
  GPTQModifierSpec,
  ModifierSpec,
  ObserverOverrides,
  QuantizationModifierSpec,
  SparseGPTModifierSpec,
  SparsityTarget,
} from "./modifiers.ts";
import { parseModifier } from "./parse_modifier.ts";
import type { Recipe } from "./recipe.ts";

/** Quantization args, as compressed-tensors JSON (snake_case) or already parsed. */
export type QuantizationArgsInput = QuantizationArgs | Record<string, unknown>;

/** A config group, as compressed-tensors JSON (snake_case) or already parsed. */
export type QuantizationSchemeInput = QuantizationScheme | Record<string, unknown>;

/** Options every modifier takes (§3.2). */
export interface CommonOptions {
  /** Group name in the saved recipe (default `"default"`). */
  group?: string;
  /** Position in the modifier list (a training-era field; unused by oneshot). */
  index?: number | null;
  /** Start epoch (training-era; oneshot requires null or -1). */
  start?: number | null;
  /** End epoch (training-era; oneshot requires null or -1). */
  end?: number | null;
  /** Update frequency (training-era). */
  update?: number | null;
}

/** The §3.3 quantization options. */
export interface QuantizationOptions extends CommonOptions {
  /** Config groups by name (compressed-tensors JSON or parsed); exclusive with `scheme`. */
  configGroups?: Record<string, QuantizationSchemeInput> | null;
  /** Targets for `scheme`: module names, `re:` patterns or class names (`"Linear"`). */
  targets?: string | string[];
  /** Modules never quantized: names, `re:` patterns or class names. */
  ignore?: string[];
  /** A preset name, `{PRESET: targets}`, or a scheme body (snake_case, without targets). */
  scheme?: string | Record<string, string | string[]> | Record<string, unknown> | null;
  /** K/V cache quantization args. */
  kvCacheScheme?: QuantizationArgsInput | null;
  /** Overrides the weight observer of every group (e.g. `"mse"`). */
  weightObserver?: string | null;
  /** Overrides the input-activation observer of every group. */
  inputObserver?: string | null;
  /** Overrides the output-activation observer of every group. */
  outputObserver?: string | null;
  /** The three overrides as one mapping; exclusive with them. */
  observer?: ObserverOverrides | null;
}

/** GPTQModifier options. */
export interface GPTQOptions extends QuantizationOptions {
  /** Deprecated upstream (use oneshot's `sequentialTargets`); kept as written. */
  sequentialTargets?: string | string[] | null;
  /** Columns quantized per GPTQ block (default 128). */
  blockSize?: number;
  /** Hessian dampening as a fraction of the mean diagonal (default 0.01). */
  dampeningFrac?: number | null;
  /** Leave unset for upstream's default ("static" for group weights that do not choose). */
  actorder?: ActivationOrdering | null;
  /** Keep Hessians on the CPU between uses (accepted for compatibility). */
  offloadHessians?: boolean;
}

/** SparseGPTModifier options. */
export interface SparseGPTOptions extends CommonOptions {
  /** Fraction of weights set to zero: one value, one per layer, or by layer name. */
  sparsity: SparsityTarget | null;
  /** `"owl"` for outlier-weighted layer-wise sparsity, or null. */
  sparsityProfile?: "owl" | null;
  /** `"N:M"` such as `"2:4"`; `"0:0"` (the default) is unstructured. */
  maskStructure?: string;
  /** OWL threshold multiplier. */
  owlM?: number | null;
  /** OWL lambda. */
  owlLmbda?: number | null;
  /** Layers calibrated one at a time; kept as written. */
  sequentialTargets?: string | string[] | null;
  /** Layers (or containers of layers) to prune. */
  targets?: string | string[];
  /** Modules never pruned. */
  ignore?: string[];
  /** Columns pruned per block (default 128). */
  blockSize?: number;
  /** Hessian dampening as a fraction of the mean diagonal (default 0.01). */
  dampeningFrac?: number | null;
  /** Keep zeros that are already there (default true). */
  preserveSparsityMask?: boolean;
  /** Keep Hessians on the CPU between uses (accepted for compatibility). */
  offloadHessians?: boolean;
}

function isParsedArgs(v: unknown): v is QuantizationArgs {
  return isMapping(v) && "numBits" in v;
}

function isParsedScheme(v: unknown): v is QuantizationScheme {
  return isMapping(v) && "inputActivations" in v;
}

function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function toYamlArgs(options: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const k = snake(key);
    if (k === "kv_cache_scheme" && isParsedArgs(value)) {
      out[k] = quantizationArgsToJson(value);
    } else if (k === "config_groups" && isMapping(value)) {
      out[k] = Object.fromEntries(
        Object.entries(value).map((
          [name, s],
        ) => [name, isParsedScheme(s) ? quantizationSchemeToJson(s) : s]),
      );
    } else {
      out[k] = value;
    }
  }
  return out;
}

function build(type: string, options: object): ModifierSpec {
  const where = type;
  const group = (options as CommonOptions).group ?? "default";
  // In code there is no warning list to read: an unknown option is an error
  // (strict), and what src/quant warns about goes to the console as there.
  const warn = (message: string) => console.warn(message);
  return parseModifier(type, toYamlArgs(options), { stage: "default", group, where }, warn, true);
}

/**
 * A round-to-nearest quantization modifier, validated like its YAML form.
 *
 * @param options camelCase forms of the §3.3 arguments
 * @returns the spec
 * @throws {RecipeError} on a wrongly typed or unknown option, or nothing to quantize
 * @example
 * ```ts
 * import { QuantizationModifier } from "./constructors.ts";
 * const m = QuantizationModifier({ targets: "Linear", scheme: "FP8_DYNAMIC", ignore: ["lm_head"] });
 * console.assert(m.targets[0] === "Linear");
 * ```
 */
export function QuantizationModifier(options: QuantizationOptions): QuantizationModifierSpec {
  return build("QuantizationModifier", options) as QuantizationModifierSpec;
}

/**
 * A GPTQ modifier, validated like its YAML form.
 *
 * @param options camelCase forms of the §3.3 and §3.4 GPTQ arguments
 * @returns the spec
 * @throws {RecipeError} on a wrongly typed or unknown option, or an actorder conflict
 * @example
 * ```ts
 * import { GPTQModifier } from "./constructors.ts";
 * const m = GPTQModifier({ targets: "Linear", scheme: "W4A16", ignore: ["lm_head"] });
 * console.assert(m.blockSize === 128 && m.actorder.source === "default");
 * ```
 */
export function GPTQModifier(options: GPTQOptions = {}): GPTQModifierSpec {
  return build("GPTQModifier", options) as GPTQModifierSpec;
}

/**
 * A SparseGPT pruning modifier, validated like its YAML form.
 *
 * @param options camelCase forms of the SparseGPT arguments
 * @returns the spec
 * @throws {RecipeError} on a wrongly typed or unknown option
 * @example
 * ```ts
 * import { SparseGPTModifier } from "./constructors.ts";
 * const m = SparseGPTModifier({ sparsity: 0.5, maskStructure: "2:4", ignore: ["re:.*lm_head"] });
 * console.assert(m.maskStructure === "2:4");
 * ```
 */
export function SparseGPTModifier(options: SparseGPTOptions): SparseGPTModifierSpec {
  return build("SparseGPTModifier", options) as SparseGPTModifierSpec;
}

/**
 * A recipe from modifiers built in code: stage `default`, each modifier in
 * its own group (`default` unless it was given one), as upstream's
 * `Recipe.from_modifiers`.
 *
 * @param modifiers the modifiers, in application order
 * @returns the recipe
 * @example
 * ```ts
 * import { GPTQModifier, recipeFromModifiers } from "./constructors.ts";
 * const r = recipeFromModifiers([GPTQModifier({ scheme: "W4A16", ignore: ["lm_head"] })]);
 * console.assert(r.stage === "default");
 * ```
 */
export function recipeFromModifiers(modifiers: readonly ModifierSpec[]): Recipe {
  return Object.freeze({
    stage: "default",
    args: Object.freeze({}),
    modifiers: Object.freeze([...modifiers]),
    warnings: Object.freeze([]),
  });
}
