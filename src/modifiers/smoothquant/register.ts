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
  smoothQuantMappingsOf,
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
  // Upstream's initialize sets self.mappings from the architecture; recipe.yaml records them.
  initialized: (spec, config) => {
    const sq = spec as SmoothQuantModifierSpec;
    if (sq.mappings !== null) return sq;
    const mappings = smoothQuantMappingsOf(config, sq).map((m) => ({
      balanceLayers: [...m.balance],
      balanceAsString: false,
      smoothLayer: m.smooth,
    }));
    return { ...sq, mappings };
  },
};
