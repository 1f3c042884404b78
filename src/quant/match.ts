/**
 * Target matching shared by llm-compressor, compressed-tensors and vLLM
 * (§1.2.4–1.2.5): which config group, if any, quantizes a module, and the
 * `ignore` list llm-compressor writes.
 *
 * A target matches a module when it is `re:<pattern>` and Python's
 * `re.match` succeeds on the full dotted name (anchored at the start only),
 * when it equals that name, or when it equals the class name of the module or
 * of an ancestor class.
 *
 * @module
 */

import { QuantizationConfigError } from "./errors.ts";
import type { QuantizationScheme } from "./scheme.ts";

const regexCache = new Map<string, RegExp>();

/**
 * The JavaScript RegExp for the pattern of a `re:` target, with Python's
 * `re.match` semantics: anchored at the start, not at the end. The pattern is
 * wrapped in a group so an alternation `a|b` stays anchored as a whole;
 * Python's named-group syntax `(?P<n>…)`/`(?P=n)` is translated.
 *
 * @param pattern the text after `re:`
 * @returns the compiled, cached RegExp
 * @throws {QuantizationConfigError} when the pattern does not compile
 * @example
 * ```ts
 * import { targetRegExp } from "./match.ts";
 * targetRegExp(".*q_proj").test("model.layers.0.self_attn.q_proj_foo"); // true
 * targetRegExp("q_proj").test("model.q_proj"); // false
 * ```
 */
export function targetRegExp(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    const js = pattern.replace(/\(\?P</g, "(?<").replace(/\(\?P=(\w+)\)/g, "\\k<$1>");
    try {
      re = new RegExp(`^(?:${js})`);
    } catch (cause) {
      throw new QuantizationConfigError(
        `target "re:${pattern}": not a valid regular expression (${(cause as Error).message})`,
        { cause },
      );
    }
    regexCache.set(pattern, re);
  }
  return re;
}

function classList(classNames: string | readonly string[]): readonly string[] {
  return typeof classNames === "string" ? [classNames] : classNames;
}

function matchesClass(target: string, classNames: readonly string[]): boolean {
  // vLLM's LinearBase counts as "Linear".
  return classNames.some((c) => c === target || (c === "LinearBase" && target === "Linear"));
}

/**
 * Whether one target matches a module.
 *
 * @param target a class name, an exact module name or `re:<pattern>`
 * @param moduleName the module's full dotted name
 * @param classNames the module's class name, or its class and ancestor class names
 * @returns true when the target selects the module
 * @example
 * ```ts
 * import { matchesTarget } from "./match.ts";
 * matchesTarget("re:.*down_proj$", "model.layers.3.mlp.down_proj", "Linear"); // true
 * matchesTarget("Linear", "lm_head", "Linear"); // true
 * ```
 */
export function matchesTarget(
  target: string,
  moduleName: string,
  classNames: string | readonly string[],
): boolean {
  if (target.startsWith("re:")) return targetRegExp(target.slice(3)).test(moduleName);
  return target === moduleName || matchesClass(target, classList(classNames));
}

/**
 * Whether a module is excluded by an ignore list (names, `re:` patterns or class names).
 *
 * @param moduleName the module's full dotted name
 * @param classNames its class name, or class and ancestor class names
 * @param ignore the ignore list
 * @returns true when any entry matches
 * @example
 * ```ts
 * import { isIgnored } from "./match.ts";
 * isIgnored("lm_head", "Linear", ["lm_head"]); // true
 * isIgnored("model.layers.0.mlp.gate", "Linear", ["re:.*mlp.gate$"]); // true
 * ```
 */
export function isIgnored(
  moduleName: string,
  classNames: string | readonly string[],
  ignore: readonly string[],
): boolean {
  return ignore.some((t) => matchesTarget(t, moduleName, classNames));
}

function pythonSortKey(a: string, b: string): number {
  // sorted(targets, key=lambda t: ("re:" in t, t))
  const ra = a.includes("re:") ? 1 : 0;
  const rb = b.includes("re:") ? 1 : 0;
  if (ra !== rb) return ra - rb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The targets that match a module, most specific first: exact names, then
 * `re:` patterns, then class names; within each kind in the order of
 * `sorted(targets, key=lambda t: ("re:" in t, t))`.
 *
 * @param moduleName the module's full dotted name
 * @param classNames its class name, or class and ancestor class names
 * @param targets candidate targets
 * @returns the matching targets in priority order
 * @example
 * ```ts
 * import { matchedTargets } from "./match.ts";
 * matchedTargets("model.layers.0.self_attn.q_proj", "Linear", ["Linear", "re:.*q_proj"]);
 * // ["re:.*q_proj", "Linear"]
 * ```
 */
export function matchedTargets(
  moduleName: string,
  classNames: string | readonly string[],
  targets: Iterable<string>,
): string[] {
  const sorted = [...targets].sort(pythonSortKey);
  const classes = classList(classNames);
  const out: string[] = [];
  for (const t of sorted) if (t === moduleName) out.push(t);
  for (const t of sorted) {
    if (t.startsWith("re:") && targetRegExp(t.slice(3)).test(moduleName)) out.push(t);
  }
  for (const t of sorted) if (matchesClass(t, classes)) out.push(t);
  return out;
}

/**
 * The config group that quantizes a module, per compressed-tensors'
 * priority rule: the ignore list is checked first; then targets are mapped
 * to schemes in config order (a later group with an identical target string
 * replaces an earlier one) and the highest-priority matching target wins.
 *
 * @param moduleName the module's full dotted name
 * @param className its class name, or class and ancestor class names
 * @param groups the config groups in config order
 * @param ignore the ignore list
 * @returns the winning scheme, or null when the module is ignored or unmatched
 * @example
 * ```ts
 * import { findMatchingScheme } from "./match.ts";
 * import { presetScheme } from "./presets.ts";
 * const groups = [presetScheme("W4A16", ["Linear"]), presetScheme("W8A16", ["re:.*down_proj$"])];
 * findMatchingScheme("model.layers.0.mlp.down_proj", "Linear", groups, ["lm_head"])?.weights?.numBits; // 8
 * findMatchingScheme("lm_head", "Linear", groups, ["lm_head"]); // null
 * ```
 */
export function findMatchingScheme(
  moduleName: string,
  className: string | readonly string[],
  groups: readonly QuantizationScheme[],
  ignore: readonly string[],
): QuantizationScheme | null {
  if (isIgnored(moduleName, className, ignore)) return null;
  const byTarget = new Map<string, QuantizationScheme>();
  for (const g of groups) for (const t of g.targets) byTarget.set(t, g);
  const matched = matchedTargets(moduleName, className, byTarget.keys());
  return matched.length === 0 ? null : byTarget.get(matched[0])!;
}

/** One module of a model, as {@link generatedIgnoreList} needs it. */
export interface ModuleRecord {
  /** Full dotted name. */
  readonly name: string;
  /** Class name (e.g. `"Linear"`). */
  readonly className: string;
  /** Whether a scheme with weights, inputs or outputs was applied to it. */
  readonly quantized: boolean;
}

/**
 * The `ignore` list llm-compressor writes (§1.2.5): for every class with at
 * least one quantized instance, every non-quantized instance of that class by
 * full name. Classes appear in the order of their first non-quantized
 * instance, names in module order (Python dict insertion order).
 *
 * @param modules every module of the model in `named_modules()` order
 * @returns the generated ignore list
 * @example
 * ```ts
 * import { generatedIgnoreList } from "./match.ts";
 * generatedIgnoreList([
 *   { name: "model.embed_tokens", className: "Embedding", quantized: false },
 *   { name: "model.layers.0.self_attn.q_proj", className: "Linear", quantized: true },
 *   { name: "lm_head", className: "Linear", quantized: false },
 * ]); // ["lm_head"]
 * ```
 */
export function generatedIgnoreList(modules: readonly ModuleRecord[]): string[] {
  const quantizedClasses = new Set<string>();
  const ignoredByClass = new Map<string, string[]>();
  for (const m of modules) {
    if (m.quantized) {
      quantizedClasses.add(m.className);
    } else {
      const list = ignoredByClass.get(m.className);
      if (list === undefined) ignoredByClass.set(m.className, [m.name]);
      else list.push(m.name);
    }
  }
  const out: string[] = [];
  for (const [cls, names] of ignoredByClass) if (quantizedClasses.has(cls)) out.push(...names);
  return out;
}
