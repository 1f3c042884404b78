/**
 * AWQModifier in the modifier registry: smoothing, then round-to-nearest
 * quantization of the smoothed weights with the modifier's scheme.
 *
 * @module
 */

import type { AWQModifierSpec } from "../../recipe/modifiers.ts";
import type { ModifierRegistration } from "../registry.ts";
import { planQuantization } from "../quantization/quantization_plan.ts";
import { quantizationLayerModifier } from "../quantization/quantization_session.ts";
import { awqLayerModifier, awqMappingsOf, type AwqPlan, planAwq } from "./awq_session.ts";

/**
 * The registration of AWQModifier.
 *
 * @example
 * ```ts ignore
 * awqModifier.layerModifiers(awqModifier.plan(hf, spec)); // [smoothing, RTN]
 * ```
 */
export const awqModifier: ModifierRegistration<AwqPlan> = {
  types: ["AWQModifier"],
  plan: (source, spec, formatOverride) => {
    const awq = spec as AWQModifierSpec;
    return planAwq(source.config, awq, planQuantization(source, awq, formatOverride));
  },
  layerModifiers: (plan) => [awqLayerModifier(plan), quantizationLayerModifier(plan.quantization)],
  quantization: (plan) => plan.quantization,
  withQuantization: (plan, quantization) => ({ ...plan, quantization }),
  // Upstream's initialize sets self.mappings from the architecture; recipe.yaml records them.
  initialized: (spec, config) => {
    const awq = spec as AWQModifierSpec;
    if (awq.mappings !== null) return awq;
    const mappings = awqMappingsOf(config, awq).map((m) => ({
      smoothLayer: m.smooth,
      balanceLayers: [...m.balance],
    }));
    return { ...awq, mappings };
  },
};
