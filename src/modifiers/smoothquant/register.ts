/**
 * SmoothQuantModifier and LogarithmicEqualizationModifier in the modifier registry.
 *
 * @module
 */

import type { SmoothQuantModifierSpec } from "../../recipe/modifiers.ts";
import type { ModifierRegistration } from "../registry.ts";
import {
  planSmoothQuant,
  smoothQuantLayerModifier,
  type SmoothQuantPlan,
} from "./smoothquant_session.ts";

/**
 * The registration of SmoothQuantModifier and LogarithmicEqualizationModifier.
 *
 * @example
 * ```ts ignore
 * smoothQuantModifiers.layerModifiers(smoothQuantModifiers.plan(hf, spec));
 * ```
 */
export const smoothQuantModifiers: ModifierRegistration<SmoothQuantPlan> = {
  types: ["SmoothQuantModifier", "LogarithmicEqualizationModifier"],
  plan: (source, spec) => planSmoothQuant(source, spec as SmoothQuantModifierSpec),
  layerModifiers: (plan) => [smoothQuantLayerModifier(plan)],
  quantization: () => null,
};
