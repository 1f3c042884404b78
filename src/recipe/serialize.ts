/**
 * Writes the `recipe.yaml` llm-compressor saves next to a checkpoint (§3.8),
 * byte for byte: `{<stage>_stage: {<group>_modifiers: {<Class>: args}}}`,
 * args in pydantic field order without nulls, `_`-suffixed fields and
 * `group`, dumped as PyYAML does with `sort_keys=False`,
 * `default_flow_style=None`, `width=88`.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import { dumpFields, toPy } from "./_field_table.ts";
import { dumpPyYaml, type PyValue } from "./_pyyaml.ts";
import { modifierTables } from "./_tables.ts";
import { type ModifierSpec, NOT_YET_SUPPORTED } from "./modifiers.ts";
import type { Recipe } from "./recipe.ts";

/** Options of {@link recipeToYaml}. */
export interface RecipeToYamlOptions {
  /**
   * `"upstream"` (default): every modifier under the recipe's one stage name,
   * as llm-compressor writes it (it records only the last stage it read).
   * `"preserve"`: each modifier under the stage it was written in, so a
   * multi-stage recipe reads back with its stages.
   */
  stages?: "upstream" | "preserve";
}

/**
 * The arguments llm-compressor would write for one modifier.
 *
 * Modifiers llmc does not run yet keep their arguments as written: llmc does
 * not know their full upstream field lists, so their defaults are not added.
 *
 * @param modifier a modifier spec
 * @returns argument name → value, in upstream's field order
 * @example
 * ```ts
 * import { modifierArgs } from "./serialize.ts";
 * import { GPTQModifier } from "./constructors.ts";
 * const args = modifierArgs(GPTQModifier({ scheme: "W4A16" }));
 * console.assert([...args.keys()].join() === "targets,ignore,scheme,block_size,dampening_frac,actorder,offload_hessians");
 * ```
 */
export function modifierArgs(modifier: ModifierSpec): Map<string, PyValue> {
  if ((NOT_YET_SUPPORTED as readonly string[]).includes(modifier.type)) {
    const args = (modifier as { args: Record<string, unknown> }).args;
    return toPy(args) as Map<string, PyValue>;
  }
  const table = modifierTables(() => {})[modifier.type];
  return dumpFields(table.fields, modifier as unknown as Record<string, unknown>);
}

/**
 * Serializes a recipe as llm-compressor's `Recipe.yaml()` does.
 *
 * @param recipe the recipe (parsed, or built with `recipeFromModifiers`)
 * @param options how stages are written
 * @returns the YAML text
 * @throws {RecipeError} when two modifiers of one class would land in the same
 *   group (upstream silently keeps only the last one), or when a group's
 *   modifiers are not contiguous, so that grouping them would change the
 *   order in which the recipe applies them (upstream silently reorders)
 * @example
 * ```ts
 * import { recipeToYaml } from "./serialize.ts";
 * import { GPTQModifier, recipeFromModifiers } from "./constructors.ts";
 * const yaml = recipeToYaml(recipeFromModifiers([
 *   GPTQModifier({ targets: "Linear", scheme: "W4A16", ignore: ["lm_head"] }),
 * ]));
 * console.assert(yaml.startsWith("default_stage:\n  default_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n"));
 * ```
 */
export function recipeToYaml(recipe: Recipe, options: RecipeToYamlOptions = {}): string {
  const preserve = options.stages === "preserve";
  const root = new Map<string, Map<string, Map<string, PyValue>>>();
  if (!preserve) root.set(`${recipe.stage}_stage`, new Map());
  for (const mod of recipe.modifiers) {
    const stageKey = `${preserve ? mod.stage : recipe.stage}_stage`;
    if (!root.has(stageKey)) root.set(stageKey, new Map());
    const stage = root.get(stageKey)!;
    const groupKey = `${mod.group}_modifiers`;
    if (!stage.has(groupKey)) stage.set(groupKey, new Map());
    const group = stage.get(groupKey)!;
    const last = [...stage.keys()].at(-1);
    if (group.size > 0 && last !== groupKey) {
      throw new RecipeError(
        `${stageKey}.${groupKey}: ${mod.type} would join its group after modifiers of ` +
          `${last}, and read back the recipe would apply them in another order ` +
          `(upstream silently reorders); give it its own group`,
      );
    }
    if (group.has(mod.type)) {
      throw new RecipeError(
        `${stageKey}.${groupKey}: two ${mod.type}s would share one group, and a group holds ` +
          `each class once (upstream silently keeps the last one); give one of them another ` +
          `group` + (preserve ? "" : `, or serialize with { stages: "preserve" }`),
      );
    }
    group.set(mod.type, modifierArgs(mod));
  }
  return dumpPyYaml(root as Map<string, PyValue>);
}
