/**
 * QuantizationModifier (round-to-nearest) and GPTQModifier in the modifier registry.
 *
 * @module
 */

import type { GPTQModifierSpec, QuantizationModifierSpec } from "../../recipe/modifiers.ts";
import type { ModifierRegistration } from "../registry.ts";
import { planQuantization, type QuantizationPlan } from "./quantization_plan.ts";
import { quantizationLayerModifier } from "./quantization_session.ts";

/**
 * The registration of QuantizationModifier and GPTQModifier.
 *
 * @example
 * ```ts ignore
 * quantizationModifiers.layerModifiers(quantizationModifiers.plan(hf, spec));
 * ```
 */
export const quantizationModifiers: ModifierRegistration<QuantizationPlan> = {
  types: ["QuantizationModifier", "GPTQModifier"],
  plan: (source, spec, formatOverride) =>
    planQuantization(source, spec as QuantizationModifierSpec | GPTQModifierSpec, formatOverride),
  layerModifiers: (plan) => [quantizationLayerModifier(plan)],
  quantization: (plan) => plan,
  withQuantization: (_plan, quantization) => quantization,
};
