/**
 * The parsed recipe: an ordered list of modifier specs.
 *
 * @module
 */

import type { ModifierSpec } from "./modifiers.ts";

/**
 * A recipe as llm-compressor's `Recipe.from_dict` builds it: every stage's
 * modifiers concatenated in document order, applied in that order.
 */
export interface Recipe {
  /**
   * The last stage seen, minus `_stage` (`"default"` when the recipe has none
   * or was built in code). Upstream records only this one name, and its saved
   * `recipe.yaml` puts every modifier under it.
   */
  readonly stage: string;
  /** The top-level `args` mapping, kept as written. */
  readonly args: Readonly<Record<string, unknown>>;
  /** The modifiers, in application order; each knows its own stage and group. */
  readonly modifiers: readonly ModifierSpec[];
  /** Keys the grammar does not know, unknown arguments, deprecated arguments. */
  readonly warnings: readonly string[];
}
