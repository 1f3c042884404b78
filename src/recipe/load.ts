/**
 * Reads a recipe from a file, or parses recipe text, as oneshot's `recipe=`
 * argument does.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import { checkRecipeLimits, frontMatter, MAX_RECIPE_BYTES } from "./_text.ts";
import { parseRecipe, type ParseRecipeOptions } from "./parse.ts";
import type { Recipe } from "./recipe.ts";

const FILE = /\.(ya?ml|json|md)$/i;

/**
 * Loads a recipe. A string ending in `.yaml`, `.yml`, `.json` or `.md` is a
 * path and is read from disk (a `.md` recipe card by its YAML front matter
 * between `---` lines); any other string is recipe text (JSON, then YAML).
 *
 * @param pathOrText a recipe file path, or recipe text
 * @param options stage filter and warning callback (`file` is set from the path)
 * @returns the parsed recipe
 * @throws {RecipeError} when the file cannot be read or the recipe is invalid
 * @example
 * ```ts
 * import { loadRecipe } from "./load.ts";
 * const r = await loadRecipe("default_stage: {default_modifiers: {QuantizationModifier: {scheme: W8A16}}}");
 * console.assert(r.modifiers.length === 1);
 * ```
 */
export async function loadRecipe(
  pathOrText: string,
  options: Omit<ParseRecipeOptions, "file"> = {},
): Promise<Recipe> {
  if (!FILE.test(pathOrText.trim()) || pathOrText.includes("\n")) {
    return parseRecipe(pathOrText, options);
  }
  const path = pathOrText.trim();
  let text: string;
  try {
    const size = (await Deno.stat(path)).size;
    if (size > MAX_RECIPE_BYTES) {
      throw new RecipeError(
        `${path}: recipe file is ${size} bytes; the limit is ${MAX_RECIPE_BYTES}`,
      );
    }
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof RecipeError) throw e;
    const why = e instanceof Deno.errors.NotFound ? "no such file" : String(e);
    throw new RecipeError(`${path}: cannot read recipe file (${why})`, { cause: e });
  }
  text = text.trim();
  if (/\.md$/i.test(path)) text = frontMatter(text, `${path}: `);
  if (/\.json$/i.test(path)) {
    // A .json file is JSON only, as upstream: no YAML fallback hiding a syntax error.
    checkRecipeLimits(text, `${path}: `);
    try {
      JSON.parse(text);
    } catch (e) {
      throw new RecipeError(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
  }
  return parseRecipe(text, { ...options, file: path });
}
