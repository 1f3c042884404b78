/**
 * The plan of one SparseGPTModifier over a whole model (§3.4, §4.5), made
 * before anything is read: which Linears it prunes (targets may name
 * Linears or containers such as `re:model.layers.\d*$`; every Linear
 * inside a matched container is pruned unless ignored), each one's
 * sparsity (scalar, list by decoder layer, or dict by layer name) and the
 * mask structure.
 *
 * @module
 */

import type { ModelConfig } from "../../io/model_config.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { layerLinearModules } from "../../model/moe_names.ts";
import { decoderLayerModules } from "../quantization/layer_fused_sets.ts";
import type { PlanSource } from "../quantization/linear_plan.ts";
import { parseMaskStructure } from "./mask_structure.ts";
import { isIgnored, matchesTarget } from "../../quant/match.ts";
import type { SparsityStructure } from "../../quant/format.ts";
import type { SparseGPTModifierSpec } from "../../recipe/modifiers.ts";
import { CalibrationUnsupportedError } from "../quantization/quantization_plan.ts";

/** One Linear a sparsity modifier prunes. */
export interface PrunedLinear {
  readonly name: string;
  readonly layer: number;
  /** `[out, in]`. */
  readonly shape: readonly [number, number];
  /** Target fraction of zeros (unstructured; N:M fixes it at N/M). */
  readonly sparsity: number;
}

/** A SparseGPTModifier's plan. */
export interface SparsityPlan {
  readonly kind: "sparsity";
  readonly modifier: SparseGPTModifierSpec;
  /** `"N:M"` or `"0:0"`. */
  readonly maskStructure: string;
  /** The model's sparsity structure as compressed-tensors names it. */
  readonly structure: SparsityStructure;
  /** Pruned Linears in `named_modules()` order. */
  readonly linears: readonly PrunedLinear[];
  /** Always true: SparseGPT needs Hessians. */
  readonly needsData: true;
  /** Targets and ignore entries that match no module. */
  readonly unmatched: readonly string[];
}

/**
 * Whether a modifier plan is a sparsity plan.
 *
 * @param p a plan
 * @returns true for {@link SparsityPlan}
 * @example
 * ```ts ignore
 * plans.filter(isSparsityPlan).length;
 * ```
 */
export function isSparsityPlan(p: object): p is SparsityPlan {
  return (p as { kind?: unknown }).kind === "sparsity";
}

function where(m: SparseGPTModifierSpec): string {
  return `${m.stage}_stage.${m.group}_modifiers.${m.type}`;
}

function sparsityOfLayer(m: SparseGPTModifierSpec, k: number, layers: number): number {
  const s = m.sparsity ?? 0.5;
  let v: number | undefined;
  if (typeof s === "number") v = s;
  else if (Array.isArray(s)) {
    const list = s as readonly number[];
    if (list.length !== layers) {
      throw new CalibrationUnsupportedError(
        `${where(m)}: sparsity lists ${list.length} values for ${layers} decoder layers`,
      );
    }
    v = list[k];
  } else {
    // Dict keys are layer names or `re:` patterns over them; the first match wins.
    const name = layerPrefix(k);
    for (const [key, val] of Object.entries(s as Record<string, number>)) {
      if (matchesTarget(key, name, [])) {
        v = val;
        break;
      }
    }
    if (v === undefined) {
      throw new CalibrationUnsupportedError(`${where(m)}: sparsity has no entry for ${name}`);
    }
  }
  if (!(v >= 0 && v < 1)) {
    throw new CalibrationUnsupportedError(
      `${where(m)}: sparsity ${v} of ${layerPrefix(k)} not in [0, 1)`,
    );
  }
  return v;
}

/**
 * Plans a SparseGPTModifier over a model.
 *
 * @param source the model (config and tensor headers)
 * @param modifier the modifier
 * @returns the plan
 * @throws {CalibrationUnsupportedError} for OWL profiles, a targeted lm_head, bad sparsity values
 * @throws {SparseGptConfigError} (from modifiers/sparsegpt) for a bad mask structure
 * @example
 * ```ts ignore
 * const plan = planSparsity(model, SparseGPTModifier({ sparsity: 0.5, maskStructure: "2:4",
 *   targets: ["re:model.layers.\\d*$"] }));
 * plan.linears.length; // 35 on stories260K
 * ```
 */
export function planSparsity(source: PlanSource, modifier: SparseGPTModifierSpec): SparsityPlan {
  const w = where(modifier);
  if (modifier.sparsityProfile !== null) {
    throw new CalibrationUnsupportedError(`${w}: sparsity_profile "owl" is not supported yet`);
  }
  const mask = parseMaskStructure(modifier.maskStructure);
  const structure: SparsityStructure = mask.kind === "n:m" && mask.n === 2 && mask.m === 4
    ? "2:4"
    : "unstructured";
  const config: ModelConfig = source.config;
  const targets = typeof modifier.targets === "string" ? [modifier.targets] : [...modifier.targets];
  const ignore = modifier.ignore;
  const used = new Set<string>();
  const linears: PrunedLinear[] = [];
  for (let k = 0; k < config.numHiddenLayers; k++) {
    const modules = decoderLayerModules(k, config);
    for (const l of layerLinearModules(config, k)) {
      const name = `${layerPrefix(k)}.${l}`;
      // The Linear itself or any container above it (the model, the layer list, the layer, attn/mlp).
      const chain = [
        { name, cls: "Linear" },
        ...modules.filter((m) => name.startsWith(m.name + ".")).map((m) => ({
          name: m.name,
          cls: m.className,
        })),
        { name: "model.layers", cls: "ModuleList" },
        { name: "model", cls: `${config.modelType}Model` },
      ];
      const hit = targets.filter((t) => chain.some((c) => matchesTarget(t, c.name, c.cls)));
      if (hit.length === 0) continue;
      for (const t of hit) used.add(t);
      if (isIgnored(name, "Linear", ignore)) continue;
      const info = source.info(`${name}.weight`);
      linears.push({
        name,
        layer: k,
        shape: [info.shape[0], info.shape[1]],
        sparsity: mask.kind === "n:m"
          ? mask.n / mask.m
          : sparsityOfLayer(modifier, k, config.numHiddenLayers),
      });
    }
  }
  const lmHeadHit = targets.some((t) => matchesTarget(t, "lm_head", "Linear"));
  if (lmHeadHit && !isIgnored("lm_head", "Linear", ignore)) {
    throw new CalibrationUnsupportedError(
      `${w}: targets ${JSON.stringify(targets)} include lm_head, which llmc does not prune; ` +
        `add "re:.*lm_head" to ignore (upstream no longer ignores it automatically)`,
    );
  }
  if (lmHeadHit) {
    for (const t of targets) {
      if (matchesTarget(t, "lm_head", "Linear")) used.add(t);
    }
  }
  return Object.freeze({
    kind: "sparsity" as const,
    modifier,
    maskStructure: modifier.maskStructure,
    structure,
    linears: Object.freeze(linears),
    needsData: true as const,
    unmatched: Object.freeze(targets.filter((t) => !used.has(t))),
  });
}
