/**
 * The plan of one modifier of a calibrated run (quantization or sparsity)
 * and the layer modifier that runs it.
 *
 * @module
 */

import type { LayerModifier } from "../graph/modifier.ts";
import type { QuantizationPlan } from "../modifiers/quantization/quantization_plan.ts";
import { quantizationLayerModifier } from "../modifiers/quantization/quantization_session.ts";
import { sparseGptLayerModifier } from "../modifiers/sparsegpt/sparsegpt_session.ts";
import { isSparsityPlan } from "../modifiers/sparsegpt/sparsity_plan.ts";
import type { SparsityPlan } from "../modifiers/sparsegpt/sparsity_plan.ts";

/** The plan of one modifier of a calibrated run. */
export type ModifierPlan = QuantizationPlan | SparsityPlan;

/**
 * The layer modifier of a plan.
 *
 * @param plan a quantization or sparsity plan
 * @returns its layer modifier
 * @example
 * ```ts ignore
 * const modifiers = plans.map(layerModifierOf);
 * ```
 */
export function layerModifierOf(plan: ModifierPlan): LayerModifier {
  return isSparsityPlan(plan) ? sparseGptLayerModifier(plan) : quantizationLayerModifier(plan);
}
