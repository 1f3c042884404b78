/**
 * Recipe text → plain data: JSON first, then YAML, as llm-compressor's
 * `_load_json_or_yaml_string` does, plus front matter for `.md` recipe cards.
 *
 * YAML is read with the YAML 1.1 schema because upstream uses PyYAML's
 * `safe_load` (YAML 1.1): `yes`/`no`/`on`/`off` are booleans there, and a
 * recipe must mean the same thing to both tools. Unlike PyYAML and
 * `JSON.parse`, which silently keep the last of two equal keys, a duplicate key
 * is an error here: in a `<group>_modifiers` mapping it would silently drop a
 * modifier.
 *
 * @module
 */

import { isAlias, isMap, isScalar, isSeq, parseDocument, visit } from "yaml";
import type { Document, DocumentOptions, ParseOptions, ScalarTag, SchemaOptions, Tags } from "yaml";
import { describeDepthExcess, findDepthExcess, nestsDeeperThan } from "../io/json_limits.ts";
import { RecipeError } from "./errors.ts";

/** The largest recipe text llmc parses (real recipes are a few KB). */
export const MAX_RECIPE_BYTES = 16 * 1024 * 1024;

/** The deepest bracket nesting a recipe may have (real recipes nest about 6 deep). */
export const MAX_RECIPE_DEPTH = 64;

/**
 * The cap on alias expansion (the yaml package's `maxAliasCount`): an anchor
 * referenced n times whose node itself holds m aliases counts about n × m, so
 * a "billion laughs" document is refused long before it grows.
 */
export const MAX_RECIPE_ALIAS_COUNT = 1000;

type YamlNode = unknown;

function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

/** Walks a YAML document's nodes and throws on the first mapping with two equal keys. */
function checkDuplicateKeys(node: YamlNode, path: string, origin: string, text: string): void {
  if (isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      if (isMap(pair.key) || isSeq(pair.key)) {
        // PyYAML refuses these (unhashable key); the yaml package would stringify them.
        const offset = (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0;
        const where = path === "" ? "the top level" : path;
        throw new RecipeError(
          `${origin}${where}: a mapping key must be a plain scalar, got a ` +
            `${isMap(pair.key) ? "mapping" : "list"} (line ${
              text.slice(0, offset).split("\n").length
            })`,
        );
      }
      const key = keyText(pair.key);
      const here = path === "" ? key : `${path}.${key}`;
      if (seen.has(key)) {
        const offset = isScalar(pair.key) && pair.key.range ? pair.key.range[0] : -1;
        const line = offset >= 0 ? ` (line ${text.slice(0, offset).split("\n").length})` : "";
        const where = path === "" ? "the top level" : path;
        throw new RecipeError(
          `${origin}${where}: duplicate key "${key}"${line}; each key may appear only once ` +
            `per mapping (a modifier class only once per <group>_modifiers group: put the ` +
            `second one in another group or stage)`,
        );
      }
      seen.add(key);
      checkDuplicateKeys(pair.value, here, origin, text);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => checkDuplicateKeys(item, `${path}[${i}]`, origin, text));
  }
}

// The npm package's YAML 1.1 schema is looser than PyYAML's in two places a
// recipe can hit: it reads `y`/`n` as booleans, and `0:0` (the unstructured
// mask_structure) as a base-60 integer. PyYAML's resolvers keep both strings.
const PYYAML_TESTS: Record<string, RegExp> = {
  "bool/true": /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/,
  "bool/false": /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/,
  "int/TIME": /^[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+$/,
};

function pyyamlTags(tags: Tags): Tags {
  return tags.map((tag) => {
    if (typeof tag !== "object" || !(tag.test instanceof RegExp) || "collection" in tag) return tag;
    const scalar = tag as ScalarTag;
    const kind = scalar.tag.replace("tag:yaml.org,2002:", "");
    const key = kind === "bool"
      ? `bool/${scalar.test!.test("true") ? "true" : "false"}`
      : `${kind}/${scalar.format ?? ""}`;
    const test = PYYAML_TESTS[key];
    return test ? { ...scalar, test } : tag;
  });
}

const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: "1.1",
  uniqueKeys: false,
  customTags: pyyamlTags,
};

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 0x0a) line++;
  return line;
}

/** Names the alias behind a failed `toJS`: the unresolved one, or the first that nests aliases. */
function aliasFault(doc: Document, text: string, message: string): string {
  const unresolved = /Unresolved alias[^:]*: (.*)$/.exec(message)?.[1];
  const anchors = new Map<string, unknown>();
  let found: string | null = null;
  let firstAlias: string | null = null;
  visit(doc, {
    Node(_key, node) {
      if (!isAlias(node) && node.anchor) anchors.set(node.anchor, node);
    },
    Alias(_key, node) {
      const at = `line ${lineOf(text, node.range?.[0] ?? 0)}`;
      firstAlias ??= `*${node.source} at ${at}`;
      const target = anchors.get(node.source);
      if (target === undefined) {
        found = `alias *${node.source} at ${at} refers to no anchor &${node.source} before it`;
        return visit.BREAK;
      }
      if (unresolved === undefined && (isMap(target) || isSeq(target))) {
        let nested = false;
        visit(target as never, {
          Alias() {
            nested = true;
            return visit.BREAK;
          },
        });
        if (nested) {
          found = `alias *${node.source} at ${at} expands an anchor that itself holds aliases; ` +
            `the expansion exceeds the cap of ${MAX_RECIPE_ALIAS_COUNT} alias resolutions ` +
            `(a "billion laughs" document)`;
          return visit.BREAK;
        }
      }
    },
  });
  if (found !== null) return found;
  if (unresolved !== undefined) return `unresolved alias *${unresolved}`;
  return `alias expansion exceeds the cap of ${MAX_RECIPE_ALIAS_COUNT} alias resolutions` +
    (firstAlias ? ` (first alias: ${firstAlias})` : "");
}

function parseYaml(text: string, origin: string): unknown {
  const doc = parseDocument(text, { ...YAML_OPTIONS, prettyErrors: true });
  if (doc.errors.length > 0) {
    const message = doc.errors[0].message;
    const why = /Maximum call stack/.test(message)
      ? `recipe nests too deeply to parse (limit: ${MAX_RECIPE_DEPTH} levels): ${message}`
      : `not valid JSON or YAML: ${message}`;
    throw new RecipeError(`${origin}${why}`);
  }
  checkDuplicateKeys(doc.contents, "", origin, text);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_RECIPE_ALIAS_COUNT });
  } catch (e) {
    // The yaml package throws ReferenceError for unresolved and excessive aliases.
    if (!(e instanceof ReferenceError)) throw e;
    throw new RecipeError(`${origin}${aliasFault(doc, text, e.message)}`, { cause: e });
  }
  // Block style nests by indentation, which the bracket scan does not see.
  if (nestsDeeperThan(data, MAX_RECIPE_DEPTH)) {
    throw new RecipeError(`${origin}recipe nests deeper than ${MAX_RECIPE_DEPTH} levels`);
  }
  return data;
}

/**
 * Checks recipe text against the size and nesting caps before any parser
 * sees it.
 *
 * @param text the recipe text
 * @param origin a prefix for error messages (e.g. `"recipe.yaml: "`), may be empty
 * @throws {RecipeError} naming the cap and where the text passes it
 * @example
 * ```ts
 * import { checkRecipeLimits } from "./_text.ts";
 * checkRecipeLimits("a_stage: {b_modifiers: {}}", ""); // fine
 * ```
 */
export function checkRecipeLimits(text: string, origin: string): void {
  if (text.length > MAX_RECIPE_BYTES) {
    throw new RecipeError(
      `${origin}recipe is ${text.length} characters; the limit is ${MAX_RECIPE_BYTES}`,
    );
  }
  const excess = findDepthExcess(text, MAX_RECIPE_DEPTH, true);
  if (excess !== null) {
    throw new RecipeError(`${origin}recipe ${describeDepthExcess(excess, MAX_RECIPE_DEPTH)}`);
  }
}

/** Runs a parser step, turning anything but a RecipeError (e.g. a stack overflow) into one. */
function guarded<T>(origin: string, run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (e instanceof RecipeError) throw e;
    const why = e instanceof RangeError
      ? `recipe is nested too deeply to parse (${e.message})`
      : `cannot parse recipe: ${(e as Error)?.message ?? String(e)}`;
    throw new RecipeError(`${origin}${why}`, { cause: e });
  }
}

/**
 * Parses recipe text: JSON first, then YAML (1.1, like PyYAML).
 *
 * @param text the recipe text
 * @param origin a prefix for error messages (e.g. `"recipe.yaml: "`), may be empty
 * @returns the parsed data (not yet checked to be a mapping)
 * @throws {RecipeError} when the text is neither JSON nor YAML, repeats a key,
 *   passes the size or nesting cap, or has an unresolved or excessive alias
 *   (naming the line)
 * @example
 * ```ts
 * import { parseRecipeText } from "./_text.ts";
 * const data = parseRecipeText("a_stage: {b_modifiers: {}}", "");
 * console.assert(JSON.stringify(data) === '{"a_stage":{"b_modifiers":{}}}');
 * ```
 */
export function parseRecipeText(text: string, origin: string): unknown {
  checkRecipeLimits(text, origin);
  return guarded(origin, () => parseRecipeTextUnguarded(text, origin));
}

function parseRecipeTextUnguarded(text: string, origin: string): unknown {
  let json: unknown;
  let isJson = true;
  try {
    json = JSON.parse(text);
  } catch {
    isJson = false;
  }
  if (!isJson) return parseYaml(text, origin);
  // JSON is YAML too; reading it again is the simplest way to see duplicate keys.
  try {
    const doc = parseDocument(text, YAML_OPTIONS);
    if (doc.errors.length === 0) checkDuplicateKeys(doc.contents, "", origin, text);
  } catch (e) {
    if (e instanceof RecipeError) throw e;
  }
  return json;
}

/**
 * Extracts the YAML front matter of a markdown recipe card (between `---` or
 * `+++` lines), as llm-compressor's `_parse_recipe_from_md` does.
 *
 * @param markdown the card's text
 * @param origin a prefix for error messages, e.g. the file name and `": "`
 * @returns the front matter text
 * @throws {RecipeError} when there is no front matter
 * @example
 * ```ts
 * import { frontMatter } from "./_text.ts";
 * console.assert(frontMatter("---\na: 1\n---\n# Card", "") === "\na: 1\n");
 * ```
 */
export function frontMatter(markdown: string, origin: string): string {
  const m = /^\s*(?:---|\+\+\+)(.*?)(?:---|\+\+\+)/ms.exec(markdown);
  if (!m) throw new RecipeError(`${origin}could not find YAML front matter (--- ... ---)`);
  return m[1];
}
