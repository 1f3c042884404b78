/**
 * §3.3 resolution: a quantization modifier's `scheme` / `config_groups` /
 * `targets` / `kv_cache_scheme` / observer arguments → the config groups it
 * applies, as llm-compressor's `QuantizationMixin.resolve_quantization_config`
 * (plus GPTQ's actorder rules of §3.4) computes them.
 *
 * @module
 */

import { canonicalActorder } from "../quant/args.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import { presetScheme } from "../quant/presets.ts";
import { makeQuantizationScheme, parseQuantizationScheme } from "../quant/scheme.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import { asRecipeError, RecipeError } from "./errors.ts";
import type { AWQModifierSpec, GPTQModifierSpec, QuantizationModifierSpec } from "./modifiers.ts";

/** What a quantization modifier applies to the model. */
export interface ResolvedQuantizationConfig {
  /** Config groups in order: `group_0`, `group_1`, … for `scheme`, the given names for `config_groups`. */
  readonly configGroups: Readonly<Record<string, QuantizationScheme>>;
  /** K/V cache args, or null. */
  readonly kvCacheScheme: QuantizationArgs | null;
  /** The modifier's ignore list. */
  readonly ignore: readonly string[];
  /** Every group's targets, once each in first-seen order, plus `re:.*self_attn$` with a KV cache scheme. */
  readonly resolvedTargets: readonly string[];
  /**
   * Whether the modifier configures anything itself (upstream `has_config`).
   * A GPTQModifier without config quantizes with the schemes a preceding
   * QuantizationModifier attached.
   */
  readonly hasConfig: boolean;
}

/** The pattern upstream adds to the targets when a KV cache scheme is set. */
export const KV_CACHE_TARGET = "re:.*self_attn$";

type QuantMod = QuantizationModifierSpec | GPTQModifierSpec | AWQModifierSpec;

function defaultWhere(mod: QuantMod): string {
  return `${mod.stage}_stage.${mod.group}_modifiers.${mod.type}`;
}

function hasConfig(mod: QuantMod): boolean {
  return !(mod.configGroups === null && mod.targets.length === 1 && mod.targets[0] === "Linear" &&
    mod.ignore.length === 0 && mod.scheme === null && mod.kvCacheScheme === null);
}

function withObserver(args: QuantizationArgs | null, observer: string | null | undefined) {
  if (args === null || observer === null || observer === undefined) return args;
  return Object.freeze({ ...args, observer });
}

function applyObserverOverrides(
  mod: QuantMod,
  scheme: QuantizationScheme,
  where: string,
): QuantizationScheme {
  const individual = mod.weightObserver !== null || mod.inputObserver !== null ||
    mod.outputObserver !== null;
  if (individual && mod.observer !== null) {
    throw new RecipeError(
      `${where}.observer: give either weight_observer/input_observer/output_observer ` +
        `or the observer mapping, not both`,
    );
  }
  const w = mod.observer?.weights ?? mod.weightObserver;
  const i = mod.observer?.input ?? mod.inputObserver;
  const o = mod.observer?.output ?? mod.outputObserver;
  if (w === null && i === null && o === null) return scheme;
  return Object.freeze({
    ...scheme,
    weights: withObserver(scheme.weights, w),
    inputActivations: withObserver(scheme.inputActivations, i),
    outputActivations: withObserver(scheme.outputActivations, o),
  });
}

function applyActorder(mod: GPTQModifierSpec, name: string, s: QuantizationScheme, where: string) {
  const w = s.weights;
  if (w === null || w.strategy !== "group") return s;
  let actorder = w.actorder;
  if (mod.actorder.source === "default") {
    // Upstream's Sentinel("static") only fills a group that did not choose.
    actorder = w.actorder ?? "static";
  } else {
    const mine = mod.actorder.value;
    if (w.actorder !== null && canonicalActorder(mine) !== canonicalActorder(w.actorder)) {
      throw new RecipeError(
        `${where}.actorder: ${JSON.stringify(mine)} conflicts with ` +
          `config group ${name}'s weights.actorder ${JSON.stringify(w.actorder)}; ` +
          `unset GPTQModifier.actorder or remove actorder from the config group`,
      );
    }
    actorder = mine;
  }
  return Object.freeze({ ...s, weights: Object.freeze({ ...w, actorder }) });
}

/**
 * Resolves a QuantizationModifier's or GPTQModifier's config (§3.3):
 * a `scheme` string becomes `{scheme: targets}`; each key of that mapping
 * becomes `group_<i>` (a preset expanded by `presetScheme`, a scheme body
 * taking the modifier's targets); `config_groups` are used as given; with
 * neither, one empty scheme on `targets`. Observer overrides are applied to
 * every group; for GPTQ, `actorder` to every group-strategy weight.
 *
 * @param mod a QuantizationModifier or GPTQModifier spec
 * @param where its path for messages (default `<stage>_stage.<group>_modifiers.<type>`)
 * @returns the resolved config groups, KV cache args, ignore list and targets
 * @throws {RecipeError} when `scheme` and `config_groups` are both given, observer
 *   arguments conflict, GPTQ's actorder conflicts with a group's, or a
 *   QuantizationModifier configures no quantization at all
 * @example
 * ```ts
 * import { GPTQModifier } from "./constructors.ts";
 * import { resolveQuantizationConfig } from "./resolve.ts";
 * const r = resolveQuantizationConfig(GPTQModifier({ scheme: "W4A16", ignore: ["lm_head"] }));
 * console.assert(r.configGroups.group_0.weights?.actorder === "static");
 * ```
 */
export function resolveQuantizationConfig(
  mod: QuantMod,
  where: string = defaultWhere(mod),
): ResolvedQuantizationConfig {
  if (mod.scheme !== null && mod.configGroups !== null) {
    throw new RecipeError(
      `${where}: give either scheme or config_groups, not both`,
    );
  }
  let groups: Record<string, QuantizationScheme> = {};
  const scheme = mod.scheme;
  if (scheme !== null) {
    if (scheme.form === "body") {
      groups.group_0 = asRecipeError(() =>
        parseQuantizationScheme({ ...scheme.body, targets: [...mod.targets] }, `${where}.scheme`)
      );
    } else {
      const presets = scheme.form === "preset" ? { [scheme.name]: mod.targets } : scheme.presets;
      Object.entries(presets).forEach(([name, targets], i) => {
        groups[`group_${i}`] = asRecipeError(() => presetScheme(name, targets));
      });
    }
  } else if (mod.configGroups !== null && Object.keys(mod.configGroups).length > 0) {
    groups = { ...mod.configGroups };
  } else {
    groups.group_0 = makeQuantizationScheme({ targets: mod.targets }, where);
  }
  for (const name of Object.keys(groups)) {
    let s = applyObserverOverrides(mod, groups[name], where);
    if (mod.type === "GPTQModifier") s = applyActorder(mod, name, s, where);
    groups[name] = s;
  }
  const configured = hasConfig(mod);
  const quantizesSomething = mod.kvCacheScheme !== null ||
    Object.values(groups).some((s) =>
      s.weights !== null || s.inputActivations !== null || s.outputActivations !== null
    );
  if (mod.type === "QuantizationModifier" && (!configured || !quantizesSomething)) {
    throw new RecipeError(
      `${where}: nothing to quantize; give a scheme (e.g. scheme: W4A16), ` +
        `config_groups or kv_cache_scheme`,
    );
  }
  const targets: string[] = [];
  for (const s of Object.values(groups)) {
    for (const t of s.targets) if (!targets.includes(t)) targets.push(t);
  }
  if (mod.kvCacheScheme !== null && !targets.includes(KV_CACHE_TARGET)) {
    targets.push(KV_CACHE_TARGET);
  }
  return Object.freeze({
    configGroups: Object.freeze(groups),
    kvCacheScheme: mod.kvCacheScheme,
    ignore: mod.ignore,
    resolvedTargets: Object.freeze(targets),
    hasConfig: configured,
  });
}
