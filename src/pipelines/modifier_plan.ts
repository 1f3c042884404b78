/**
 * The plan of one modifier of a calibrated run and the layer modifiers that
 * run it, looked up in the modifier registry (src/modifiers/builtin.ts).
 *
 * @module
 */

import type { HfModel } from "../io/hf_model.ts";
import type { ModifierSpec } from "../recipe/modifiers.ts";
import type { ModuleFormat } from "../quant/compression_format.ts";
import type { LayerModifier } from "../graph/modifier.ts";
import { CalibrationUnsupportedError } from "../modifiers/quantization/quantization_plan.ts";
import type { QuantizationPlan } from "../modifiers/quantization/quantization_plan.ts";
import { MODIFIERS } from "../modifiers/builtin.ts";
import type { PlanBase } from "../modifiers/registry.ts";

/** The plan of one modifier of a calibrated run. */
export type ModifierPlan = PlanBase;

/**
 * Plans one modifier through its registration.
 *
 * @param source the model
 * @param spec the recipe entry
 * @param formatOverride a format forced on every quantized module (`"dense"`), or null
 * @returns its plan
 * @throws {CalibrationUnsupportedError} for a modifier no registration runs
 * @example
 * ```ts ignore
 * const plans = recipe.modifiers.map((m) => planModifier(hf, m));
 * ```
 */
export function planModifier(
  source: HfModel,
  spec: ModifierSpec,
  formatOverride: ModuleFormat | null = null,
): ModifierPlan {
  const r = MODIFIERS.get(spec.type);
  if (r === undefined) {
    throw new CalibrationUnsupportedError(
      `${spec.stage}_stage.${spec.group}_modifiers.${spec.type}: llmc's calibrated pipelines ` +
        `do not run ${spec.type} yet`,
    );
  }
  return r.plan(source, spec, formatOverride);
}

/**
 * The layer modifiers of a plan, in order.
 *
 * @param plan a plan
 * @returns its layer modifiers
 * @example
 * ```ts ignore
 * const modifiers = plans.flatMap(layerModifiersOf);
 * ```
 */
export function layerModifiersOf(plan: ModifierPlan): LayerModifier[] {
  return MODIFIERS.of(plan).layerModifiers(plan);
}

/**
 * The quantization a plan leaves in the checkpoint, or null.
 *
 * @param plan a plan
 * @returns its quantization plan
 * @example
 * ```ts ignore
 * const quant = plans.map(quantizationOf).filter((q) => q !== null);
 * ```
 */
export function quantizationOf(plan: ModifierPlan): QuantizationPlan | null {
  return MODIFIERS.of(plan).quantization(plan);
}

/**
 * A plan with its quantization replaced (or the plan itself when it quantizes nothing).
 *
 * @param plan a plan
 * @param f the replacement of its quantization plan
 * @returns the new plan
 * @example
 * ```ts ignore
 * plans.map((p) => mapQuantization(p, (q) => withSparsityStructure(q, "2:4")));
 * ```
 */
export function mapQuantization(
  plan: ModifierPlan,
  f: (q: QuantizationPlan) => QuantizationPlan,
): ModifierPlan {
  const r = MODIFIERS.of(plan);
  const q = r.quantization(plan);
  if (q === null || r.withQuantization === undefined) return plan;
  return r.withQuantization(plan, f(q));
}
