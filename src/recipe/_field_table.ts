/**
 * One table per modifier class lists its arguments in upstream's pydantic
 * field order, with the YAML key, the spec property, a typed reader and the
 * default. The same table drives parsing (typed errors, unknown-key warnings)
 * and serialization (the order and Python types of the saved `recipe.yaml`),
 * so the two cannot drift apart.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import type { Reader, Warn } from "./_fields.ts";
import { PyFloat, type PyValue } from "./_pyyaml.ts";

/** Marks an argument without a default: leaving it out is an error. */
export const REQUIRED: unique symbol = Symbol("required");

/** One modifier argument. */
export interface FieldDef {
  /** The YAML key (pydantic field name), e.g. `block_size`. */
  key: string;
  /** The spec property, e.g. `blockSize`. */
  prop: string;
  /** Checks and converts a raw value. */
  read: Reader<unknown>;
  /** The value when the key is absent, or `REQUIRED`. */
  default: (() => unknown) | typeof REQUIRED;
  /** Numbers are Python floats (dumped `1.0`, not `1`). */
  float?: boolean;
  /** Custom dump; `undefined` leaves the key out. Default: nulls left out, the rest converted. */
  dump?: (value: unknown, spec: Readonly<Record<string, unknown>>) => PyValue | undefined;
  /** Not written back to `recipe.yaml` (upstream excludes `group`). */
  noDump?: boolean;
}

/** A key upstream still accepts but ignores; llmc warns with `message`. */
export interface DeprecatedKey {
  key: string;
  message: string;
}

/** Converts a spec value to what PyYAML would be handed. */
export function toPy(value: unknown, float = false): PyValue {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return float ? new PyFloat(value) : value;
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (value instanceof PyFloat) return value;
  if (Array.isArray(value)) return value.map((v) => toPy(v, float));
  if (value instanceof Map) {
    return new Map([...value.entries()].map(([k, v]) => [String(k), toPy(v, float)]));
  }
  if (typeof value === "object") {
    return new Map(Object.entries(value).map(([k, v]) => [k, toPy(v, float)]));
  }
  throw new RecipeError(`cannot serialize a ${typeof value} into recipe.yaml`);
}

/**
 * Reads a modifier's raw arguments by its field table.
 *
 * @param defs the field table
 * @param raw the argument mapping from the recipe
 * @param where the modifier's path, e.g. `quant_stage.quant_modifiers.GPTQModifier`
 * @param warn receives one message per unknown or deprecated key
 * @param deprecated keys accepted with a warning and dropped
 * @param strict unknown keys are errors rather than warnings
 * @returns property → value for every field of the table, defaults filled in
 */
export function readFields(
  defs: readonly FieldDef[],
  raw: Record<string, unknown>,
  where: string,
  warn: Warn,
  deprecated: readonly DeprecatedKey[] = [],
  strict = false,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const known = new Set(defs.map((d) => d.key));
  for (const key of Object.keys(raw)) {
    if (known.has(key)) continue;
    const dep = deprecated.find((d) => d.key === key);
    if (dep) {
      warn(`${where}.${key}: ${dep.message}`);
      continue;
    }
    const close = defs.find((d) => d.key.toLowerCase() === key.toLowerCase() || d.prop === key);
    const hint = close ? `; did you mean "${close.key}"?` : "";
    if (strict) throw new RecipeError(`${where}.${key}: unknown argument${hint}`);
    // Upstream's pydantic models use extra="ignore", so a typo silently does
    // nothing there. llmc warns instead of failing, to accept every recipe
    // upstream accepts.
    warn(`${where}.${key}: unknown argument, ignored (llm-compressor ignores it silently)${hint}`);
  }
  for (const def of defs) {
    const path = `${where}.${def.key}`;
    if (Object.hasOwn(raw, def.key) && raw[def.key] !== undefined) {
      out[def.prop] = def.read(raw[def.key], path);
    } else if (def.default === REQUIRED) {
      throw new RecipeError(`${path}: required argument is missing`);
    } else {
      out[def.prop] = def.default();
    }
  }
  return out;
}

/**
 * Dumps a spec by its field table the way llm-compressor writes a modifier into
 * `recipe.yaml`: table (pydantic field) order, nulls and `group` left out.
 *
 * @param defs the field table
 * @param spec the modifier spec
 * @returns key → value in dump order
 */
export function dumpFields(
  defs: readonly FieldDef[],
  spec: Readonly<Record<string, unknown>>,
): Map<string, PyValue> {
  const out = new Map<string, PyValue>();
  for (const def of defs) {
    if (def.noDump) continue;
    const value = spec[def.prop];
    const py = def.dump
      ? def.dump(value, spec)
      : value === null
      ? undefined
      : toPy(value, def.float);
    if (py !== undefined) out.set(def.key, py);
  }
  return out;
}
