/**
 * The recipe grammar of llm-compressor 0.9 (SPEC §3.1):
 *
 * ```
 * recipe    := { <name>_stage: stage, ..., [args: {...}] }
 * stage     := { <group>_modifiers: group, ... }
 * group     := { <ModifierClassName>: { <arg>: <value>, ... }, ... }
 * ```
 *
 * Upstream silently ignores every key that does not match (a stage key
 * without `_stage`, a group key without `_modifiers`, an unknown modifier
 * argument), which turns typos into recipes that quietly do nothing. llmc
 * accepts the same recipes but reports each ignored key as a warning.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import { describe, isMapping } from "./_fields.ts";
import { parseRecipeText } from "./_text.ts";
import { MODIFIER_NAMES, type ModifierSpec } from "./modifiers.ts";
import { parseModifier } from "./parse_modifier.ts";
import type { Recipe } from "./recipe.ts";

/** Options of {@link parseRecipe}. */
export interface ParseRecipeOptions {
  /**
   * oneshot's `stage=`: keep only the top-level keys that start with this
   * string (as upstream's `filter_dict`).
   */
  stage?: string;
  /** The file the text came from, prefixed to error messages. */
  file?: string;
  /** Receives each warning as it is found (they are also in `recipe.warnings`). */
  onWarning?: (message: string) => void;
}

const STAGE = "_stage";
const GROUP = "_modifiers";

function looksLikeStage(value: unknown): boolean {
  return isMapping(value) && Object.keys(value).some((k) => k.endsWith(GROUP));
}

function looksLikeGroup(value: unknown): boolean {
  return isMapping(value) && Object.keys(value).some((k) => MODIFIER_NAMES.includes(k));
}

function topLevelHint(key: string, value: unknown): string {
  if (MODIFIER_NAMES.includes(key)) {
    return `; a modifier must sit inside <name>_stage.<group>_modifiers, e.g. default_stage.default_modifiers.${key}`;
  }
  if (looksLikeStage(value)) {
    return `; stage keys must end in "_stage" (did you mean "${key}_stage"?)`;
  }
  if (looksLikeGroup(value)) {
    return `; modifiers must sit inside <name>_stage.<group>_modifiers (e.g. default_stage.${
      key.endsWith(GROUP) ? key : "default_modifiers"
    })`;
  }
  return "";
}

function stageLevelHint(key: string, value: unknown): string {
  if (MODIFIER_NAMES.includes(key)) {
    return `; a modifier must sit inside a <group>_modifiers mapping (e.g. quant_modifiers.${key})`;
  }
  if (looksLikeGroup(value)) {
    const fix = key.endsWith("_modifier") ? `${key}s` : `${key}_modifiers`;
    return `; group keys must end in "_modifiers" (did you mean "${fix}"?)`;
  }
  return "";
}

/**
 * Parses a recipe: YAML or JSON text (JSON first, then YAML, as upstream), or
 * an already-parsed object. To read a file, use `loadRecipe`.
 *
 * @param source recipe text, or the parsed mapping
 * @param options stage filter, file name for messages, warning callback
 * @returns the recipe: modifiers of all stages in document order, `stage` the last stage
 * @throws {RecipeError} on unparsable text, a non-mapping where the grammar needs one,
 *   an unknown modifier, a wrongly typed argument (the message names
 *   `<stage>.<group>.<Modifier>.<arg>`) or a stage filter that matches nothing
 * @example
 * ```ts
 * import { parseRecipe } from "./parse.ts";
 * const recipe = parseRecipe(`
 * quant_stage:
 *   quant_modifiers:
 *     GPTQModifier: {scheme: W4A16, ignore: [lm_head]}
 * `);
 * console.assert(recipe.stage === "quant" && recipe.modifiers[0].type === "GPTQModifier");
 * ```
 */
export function parseRecipe(
  source: string | Record<string, unknown>,
  options: ParseRecipeOptions = {},
): Recipe {
  const origin = options.file ? `${options.file}: ` : "";
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(origin + message);
    options.onWarning?.(origin + message);
  };
  const withOrigin = <T>(run: () => T): T => {
    if (!origin) return run();
    try {
      return run();
    } catch (e) {
      if (e instanceof RecipeError && !e.message.startsWith(origin)) {
        throw new RecipeError(origin + e.message, { cause: e.cause ?? e });
      }
      throw e;
    }
  };

  const data = typeof source === "string" ? parseRecipeText(source, origin) : source;
  if (!isMapping(data)) {
    throw new RecipeError(
      `${origin}a recipe must be a mapping of <name>_stage keys, got ${describe(data)}`,
    );
  }
  let entries = Object.entries(data);
  if (options.stage !== undefined) {
    const prefix = options.stage;
    const kept = entries.filter(([k]) => k.startsWith(prefix));
    if (kept.length === 0) {
      throw new RecipeError(
        `${origin}stage "${prefix}" matches no top-level key (have: ${
          entries.map(([k]) => k).join(", ") || "none"
        })`,
      );
    }
    entries = kept;
  }

  let stage = "default";
  let args: Record<string, unknown> = {};
  const modifiers: ModifierSpec[] = [];
  withOrigin(() => {
    for (const [stageKey, stageValue] of entries) {
      if (stageKey === "args") {
        if (stageValue === null) continue;
        if (!isMapping(stageValue)) {
          throw new RecipeError(`args: expected a mapping, got ${describe(stageValue)}`);
        }
        args = structuredClone(stageValue);
        continue;
      }
      if (!stageKey.endsWith(STAGE)) {
        warn(`${stageKey}: unknown top-level key, ignored${topLevelHint(stageKey, stageValue)}`);
        continue;
      }
      if (stageValue === null) {
        warn(`${stageKey}: empty stage, ignored`);
        continue;
      }
      if (!isMapping(stageValue)) {
        throw new RecipeError(
          `${stageKey}: expected a mapping of <group>_modifiers keys, got ${describe(stageValue)}`,
        );
      }
      stage = stageKey.slice(0, -STAGE.length);
      for (const [groupKey, groupValue] of Object.entries(stageValue)) {
        const groupPath = `${stageKey}.${groupKey}`;
        if (!groupKey.endsWith(GROUP)) {
          warn(`${groupPath}: unknown key, ignored${stageLevelHint(groupKey, groupValue)}`);
          continue;
        }
        if (groupValue === null) {
          warn(`${groupPath}: empty modifier group, ignored`);
          continue;
        }
        if (!isMapping(groupValue)) {
          throw new RecipeError(
            `${groupPath}: expected a mapping of modifier class names, got ${describe(groupValue)}`,
          );
        }
        const group = groupKey.slice(0, -GROUP.length);
        for (const [name, modArgs] of Object.entries(groupValue)) {
          const where = `${groupPath}.${name}`;
          modifiers.push(parseModifier(name, modArgs, { stage, group, where }, warn));
        }
      }
    }
  });

  return Object.freeze({
    stage,
    args: Object.freeze(args),
    modifiers: Object.freeze(modifiers),
    warnings: Object.freeze(warnings),
  });
}
