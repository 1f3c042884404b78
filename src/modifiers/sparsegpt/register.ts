/**
 * SparseGPTModifier in the modifier registry.
 *
 * @module
 */

import type { SparseGPTModifierSpec } from "../../recipe/modifiers.ts";
import type { ModifierRegistration } from "../registry.ts";
import { sparseGptLayerModifier } from "./sparsegpt_session.ts";
import { planSparsity, type SparsityPlan } from "./sparsity_plan.ts";

/**
 * The registration of SparseGPTModifier.
 *
 * @example
 * ```ts ignore
 * sparseGptModifier.layerModifiers(sparseGptModifier.plan(hf, spec));
 * ```
 */
export const sparseGptModifier: ModifierRegistration<SparsityPlan> = {
  types: ["SparseGPTModifier"],
  plan: (source, spec) => planSparsity(source, spec as SparseGPTModifierSpec),
  layerModifiers: (plan) => [sparseGptLayerModifier(plan)],
  quantization: () => null,
};
