/**
 * Several quantization modifiers in one run: a module quantized by more than
 * one takes the scheme of the last (upstream attaches schemes in modifier
 * order, a later one overwriting), and the `quantization_config` is built
 * from the combined module schemes.
 *
 * @module
 */

import type { PlannedLinear } from "../modifiers/quantization/linear_plan.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { buildQuantizationConfig } from "../quant/quantization_config.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import type { QuantizationPlan } from "../graph/quantization_plan.ts";

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
export function combinePlans(plans: readonly QuantizationPlan[]): CombinedPlan {
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
    quantizationConfig: buildQuantizationConfig({ modules, kvCacheScheme: kv }),
    lmHead,
    lmHeadPlan,
    untieLmHead,
  };
}
