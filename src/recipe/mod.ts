/**
 * llm-compressor recipes: parse YAML/JSON recipes (or build them in code),
 * resolve their quantization config, and write the `recipe.yaml` upstream
 * saves next to a checkpoint.
 *
 * @example
 * ```ts
 * import { parseRecipe, recipeToYaml, resolveQuantizationConfig } from "./mod.ts";
 * const recipe = parseRecipe(`
 * default_stage:
 *   default_modifiers:
 *     QuantizationModifier: {targets: [Linear], scheme: FP8_DYNAMIC, ignore: [lm_head]}
 * `);
 * const mod = recipe.modifiers[0];
 * if (mod.type === "QuantizationModifier") {
 *   const config = resolveQuantizationConfig(mod);
 *   console.assert(config.configGroups.group_0.inputActivations?.dynamic === true);
 * }
 * console.assert(recipeToYaml(recipe).includes("scheme: FP8_DYNAMIC"));
 * ```
 *
 * @module
 */

export { RecipeError, UnsupportedModifierError } from "./errors.ts";
export type { Recipe } from "./recipe.ts";
export { parseRecipe, type ParseRecipeOptions } from "./parse.ts";
export { loadRecipe } from "./load.ts";
export { type ModifierLocation, parseModifier } from "./parse_modifier.ts";
export {
  type ConstantPruningModifierSpec,
  type GptqActorder,
  type GPTQModifierSpec,
  isQuantizationModifier,
  type MagnitudePruningModifierSpec,
  MODIFIER_NAMES,
  type ModifierCommon,
  type ModifierSpec,
  NOT_YET_SUPPORTED,
  type NotYetSupportedModifierSpec,
  type NotYetSupportedName,
  type ObserverOverrides,
  PARSED_MODIFIERS,
  type QuantizationFields,
  type QuantizationModifierSpec,
  type SchemeSetting,
  type SparseGPTModifierSpec,
  type SparsityFields,
  type SparsityTarget,
  type WandaPruningModifierSpec,
} from "./modifiers.ts";
export {
  KV_CACHE_TARGET,
  type ResolvedQuantizationConfig,
  resolveQuantizationConfig,
} from "./resolve.ts";
export { validateModifier } from "./validate.ts";
export { assertSupported, isSupported } from "./supported.ts";
export {
  type CommonOptions,
  GPTQModifier,
  type GPTQOptions,
  type QuantizationArgsInput,
  QuantizationModifier,
  type QuantizationOptions,
  type QuantizationSchemeInput,
  recipeFromModifiers,
  SparseGPTModifier,
  type SparseGPTOptions,
} from "./constructors.ts";
export { modifierArgs, recipeToYaml, type RecipeToYamlOptions } from "./serialize.ts";
