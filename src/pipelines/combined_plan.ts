/**
 * Several quantization modifiers in one run: a module quantized by more than
 * one takes the scheme of the last (upstream attaches schemes in modifier
 * order, a later one overwriting), and the `quantization_config` is built
 * from the combined module schemes.
 *
 * @module
 */

import { CalibrationUnsupportedError } from "../modifiers/quantization/quantization_plan.ts";
import type { PlannedLinear } from "../modifiers/quantization/linear_plan.ts";
import { inferFormat, type SparsityStructure } from "../quant/format.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { buildQuantizationConfig } from "../quant/quantization_config.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import type { QuantizationPlan } from "../modifiers/quantization/quantization_plan.ts";

/** What the run as a whole writes. */
export interface CombinedPlan {
  readonly quantizationConfig: { [key: string]: JsonValue };
  /** lm_head's plan from the last modifier that quantizes it (else the first plan's, dense). */
  readonly lmHead: PlannedLinear;
  /** The plan quantizing lm_head, or null. */
  readonly lmHeadPlan: QuantizationPlan | null;
  /** Whether a tied lm_head is quantized and must be written untied. */
  readonly untieLmHead: boolean;
}

function lmHeadOf(plan: QuantizationPlan): PlannedLinear {
  return plan.linears.linears[plan.linears.linears.length - 1];
}

/**
 * Combines the plans of a run's quantization modifiers.
 *
 * @param plans the plans, in modifier order (at least one)
 * @returns the combined config and lm_head plan
 * @example
 * ```ts ignore
 * const combined = combinePlans([planQuantization(model, a), planQuantization(model, b)]);
 * ```
 */
export function combinePlans(
  plans: readonly QuantizationPlan[],
  sparsityStructure: SparsityStructure | null = null,
): CombinedPlan {
  let lmHeadPlan: QuantizationPlan | null = null;
  for (const p of plans) if (lmHeadOf(p).scheme !== null) lmHeadPlan = p;
  const lmHead = lmHeadOf(lmHeadPlan ?? plans[0]);
  const untieLmHead = lmHeadPlan !== null && lmHeadPlan.linears.untieLmHead;
  if (plans.length === 1) {
    return { quantizationConfig: plans[0].quantizationConfig, lmHead, lmHeadPlan, untieLmHead };
  }
  const modules = plans[0].modules.map((m, i) => {
    let scheme = m.scheme;
    for (const p of plans.slice(1)) scheme = p.modules[i].scheme ?? scheme;
    return { ...m, scheme };
  });
  let kv: QuantizationArgs | null = null;
  for (const p of plans) kv = p.resolved.kvCacheScheme ?? kv;
  return {
    quantizationConfig: buildQuantizationConfig({ modules, kvCacheScheme: kv, sparsityStructure }),
    lmHead,
    lmHeadPlan,
    untieLmHead,
  };
}

/** Why marlin-24 cannot hold a weight of this shape, or null (compress/marlin_24.ts's checks, made before any output exists). */
function marlinShapeProblem(shape: readonly [number, number], groups: number): string | null {
  const [out, inF] = shape;
  if (out % 32 !== 0) return `out_features ${out} is not divisible by 32 (CUTLASS metadata)`;
  if (inF % 32 !== 0) return `in_features ${inF} is not divisible by 32 (Marlin tiles of in/2)`;
  if (((inF / 2) * out) % 1024 !== 0) {
    return `(in/2)·out = ${(inF / 2) * out} is not divisible by 1024`;
  }
  if ((groups * out) % 64 !== 0) return `groups·out = ${groups * out} is not divisible by 64`;
  return null;
}

/**
 * A quantization plan re-inferred for a model with a sparsity structure
 * (§1.8): with 2:4, int4/int8 weight-only channel/group modules become
 * `marlin-24`. Formats the user set are kept.
 *
 * @param plan the plan made without sparsity
 * @param structure the model's sparsity structure
 * @returns the adjusted plan
 * @throws {CalibrationUnsupportedError} naming a module whose shape or args marlin-24 cannot hold
 * @example
 * ```ts ignore
 * const p = withSparsityStructure(planQuantization(model, gptq), "2:4");
 * ```
 */
export function withSparsityStructure(
  plan: QuantizationPlan,
  structure: SparsityStructure,
): QuantizationPlan {
  const where =
    `${plan.modifier.stage}_stage.${plan.modifier.group}_modifiers.${plan.modifier.type}`;
  const linears = plan.linears.linears.map((l) => {
    // A format the user pinned on the scheme is kept even when it equals the
    // one inferred without sparsity (pack-quantized): comparing formats alone
    // turned it into marlin-24 while quantization_config still named it.
    if (l.scheme === null || l.format === null || l.scheme.format !== null) return l;
    const format = inferFormat(l.scheme, structure);
    if (format === "marlin-24") {
      const w = l.scheme.weights!;
      const groups = w.strategy === "group" ? Math.ceil(l.shape[1] / (w.groupSize ?? 1)) : 1;
      const problem = !w.symmetric
        ? "its weights are asymmetric"
        : w.strategy === "group" && w.groupSize !== 128
        ? `group_size ${w.groupSize} is not 128`
        : marlinShapeProblem(l.shape, groups);
      if (problem !== null) {
        throw new CalibrationUnsupportedError(
          `${where} ${l.name}: 2:4 sparsity with ${w.type}${w.numBits} weight-only quantization ` +
            `is saved as marlin-24, which cannot hold this module: ${problem}; ignore the module ` +
            `in the sparsity or quantization modifier, or use W8A8 (sparse-24-bitmask)`,
        );
      }
    }
    return { ...l, format };
  });
  return Object.freeze({
    ...plan,
    linears: { ...plan.linears, linears },
    quantizationConfig: buildQuantizationConfig({
      modules: plan.modules,
      kvCacheScheme: plan.resolved.kvCacheScheme,
      sparsityStructure: structure,
    }),
  });
}
