/**
 * One modifier entry of a recipe (`<ClassName>: {args}`) → a typed spec.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import { describe, isMapping, type Warn } from "./_fields.ts";
import { readFields } from "./_field_table.ts";
import { modifierTables } from "./_tables.ts";
import {
  MODIFIER_NAMES,
  type ModifierSpec,
  NOT_YET_SUPPORTED,
  type NotYetSupportedName,
} from "./modifiers.ts";
import { validateModifier } from "./validate.ts";

/** Where a modifier sits in its recipe. */
export interface ModifierLocation {
  /** The stage name minus `_stage`. */
  stage: string;
  /** The group name inferred from the `<group>_modifiers` key. */
  group: string;
  /** The modifier's path for messages, e.g. `quant_stage.quant_modifiers.GPTQModifier`. */
  where: string;
}

function unknownModifier(name: string, where: string): RecipeError {
  const close = MODIFIER_NAMES.find((m) => m.toLowerCase() === name.toLowerCase());
  return new RecipeError(
    `${where}: unknown modifier "${name}"` +
      (close ? `; did you mean "${close}"?` : `; known modifiers: ${MODIFIER_NAMES.join(", ")}`),
  );
}

/**
 * Parses one modifier by its class name: checks every argument's type (errors
 * name the full path), fills in upstream's defaults, warns about unknown
 * arguments, and checks the rules that tie arguments together.
 *
 * @param name the class name, e.g. `"GPTQModifier"` (exact, as upstream)
 * @param raw the argument mapping (null is read as no arguments)
 * @param location the stage, group and path of the entry
 * @param warn receives each warning
 * @param strict unknown arguments are errors (for modifiers built in code)
 * @returns the typed spec
 * @throws {RecipeError} on an unknown class, a wrongly typed argument or an invalid combination
 * @example
 * ```ts
 * import { parseModifier } from "./parse_modifier.ts";
 * const m = parseModifier(
 *   "GPTQModifier",
 *   { scheme: "W4A16", ignore: ["lm_head"] },
 *   { stage: "quant", group: "quant", where: "quant_stage.quant_modifiers.GPTQModifier" },
 *   console.warn,
 * );
 * console.assert(m.type === "GPTQModifier" && m.blockSize === 128);
 * ```
 */
export function parseModifier(
  name: string,
  raw: unknown,
  location: ModifierLocation,
  warn: Warn,
  strict = false,
): ModifierSpec {
  const { where } = location;
  const tables = modifierTables(warn);
  if (!Object.hasOwn(tables, name)) throw unknownModifier(name, where);
  const args = raw === null || raw === undefined ? {} : raw;
  if (!isMapping(args)) {
    throw new RecipeError(`${where}: expected a mapping of arguments, got ${describe(args)}`);
  }
  const table = tables[name];
  const fields = readFields(table.fields, args, where, warn, table.deprecated, strict);
  const group = typeof fields.group === "string" ? fields.group : location.group;
  const common = {
    stage: location.stage,
    group,
    index: fields.index,
    start: fields.start,
    end: fields.end,
    update: fields.update,
  };
  let spec: ModifierSpec;
  if ((NOT_YET_SUPPORTED as readonly string[]).includes(name)) {
    const kept = structuredClone(args);
    delete kept.group;
    spec = Object.freeze({
      type: name as NotYetSupportedName,
      ...common,
      args: Object.freeze(kept),
    }) as ModifierSpec;
  } else {
    const own: Record<string, unknown> = { ...fields };
    delete own.group;
    spec = Object.freeze({ type: name, ...own, ...common }) as ModifierSpec;
  }
  validateModifier(spec, where);
  return spec;
}
