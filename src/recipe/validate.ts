/**
 * Rules that tie a modifier's arguments together (pydantic model validators
 * upstream, or checks upstream only makes when the modifier starts). llmc runs
 * them when the recipe is read, so a bad recipe fails before a model loads.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import { isQuantizationModifier, type ModifierSpec } from "./modifiers.ts";
import { resolveQuantizationConfig } from "./resolve.ts";

/**
 * Checks the cross-argument rules of one modifier spec.
 *
 * - QuantizationModifier / GPTQModifier: the whole §3.3 resolution must
 *   succeed (scheme xor config_groups, observer arguments, GPTQ actorder,
 *   something to quantize for QuantizationModifier).
 * - SparseGPT / Wanda: `sparsity` must be set; `sparsity_profile: owl`,
 *   `owl_m` and `owl_lmbda` come all together or not at all.
 * - AWQ: as the quantization modifiers; duo_scaling only with weights finer than a tensor.
 * - AutoRound (not yet supported): scheme xor config_groups.
 *
 * @param spec the spec to check
 * @param where its path, for messages
 * @throws {RecipeError} naming the path and the rule
 * @example
 * ```ts
 * import { validateModifier } from "./validate.ts";
 * import { SparseGPTModifier } from "./constructors.ts";
 * validateModifier(SparseGPTModifier({ sparsity: 0.5 }), "default_stage.default_modifiers.SparseGPTModifier");
 * ```
 */
export function validateModifier(spec: ModifierSpec, where: string): void {
  if (isQuantizationModifier(spec)) {
    const resolved = resolveQuantizationConfig(spec, where);
    if (spec.type === "AWQModifier" && spec.duoScaling !== false) {
      for (const [name, g] of Object.entries(resolved.configGroups)) {
        if (g.weights?.strategy === "tensor") {
          throw new RecipeError(
            `${where}.duo_scaling: ${name} quantizes weights per tensor; duo_scaling needs ` +
              `per-channel (or finer) weights, set duo_scaling: false`,
          );
        }
      }
    }
    return;
  }
  switch (spec.type) {
    case "SparseGPTModifier":
    case "WandaPruningModifier": {
      if (spec.sparsity === null) {
        throw new RecipeError(`${where}.sparsity: required; give the fraction of weights to prune`);
      }
      const owl = [spec.sparsityProfile === "owl", spec.owlM !== null, spec.owlLmbda !== null];
      if (owl.some((x) => x) && !owl.every((x) => x)) {
        throw new RecipeError(
          `${where}: give all of sparsity_profile: owl, owl_m and owl_lmbda, or none of them`,
        );
      }
      return;
    }
    case "AutoRoundModifier": {
      const a = spec.args;
      if (
        a.scheme !== undefined && a.scheme !== null && a.config_groups !== undefined &&
        a.config_groups !== null
      ) {
        throw new RecipeError(`${where}: give either scheme or config_groups, not both`);
      }
      return;
    }
    default:
      return;
  }
}
