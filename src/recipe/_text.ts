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

import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import type { DocumentOptions, ParseOptions, ScalarTag, SchemaOptions, Tags } from "yaml";
import { RecipeError } from "./errors.ts";

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

function parseYaml(text: string, origin: string): unknown {
  const doc = parseDocument(text, { ...YAML_OPTIONS, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RecipeError(`${origin}not valid JSON or YAML: ${doc.errors[0].message}`);
  }
  checkDuplicateKeys(doc.contents, "", origin, text);
  return doc.toJS({ maxAliasCount: 1000 });
}

/**
 * Parses recipe text: JSON first, then YAML (1.1, like PyYAML).
 *
 * @param text the recipe text
 * @param origin a prefix for error messages (e.g. `"recipe.yaml: "`), may be empty
 * @returns the parsed data (not yet checked to be a mapping)
 * @throws {RecipeError} when the text is neither JSON nor YAML, or repeats a key
 * @example
 * ```ts
 * import { parseRecipeText } from "./_text.ts";
 * const data = parseRecipeText("a_stage: {b_modifiers: {}}", "");
 * console.assert(JSON.stringify(data) === '{"a_stage":{"b_modifiers":{}}}');
 * ```
 */
export function parseRecipeText(text: string, origin: string): unknown {
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
