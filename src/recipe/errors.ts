/**
 * The errors a recipe can raise. Every message starts with the full path of
 * the offending key (`quant_stage.quant_modifiers.GPTQModifier.block_size`) so
 * a user can find it in their YAML without a debugger.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";
import { QuantizationConfigError } from "../quant/errors.ts";

/**
 * A recipe that cannot be parsed, has a wrongly typed argument, names an
 * unknown modifier, or resolves to an impossible quantization config.
 *
 * @example
 * ```ts
 * import { RecipeError } from "./errors.ts";
 * const e = new RecipeError('quant_stage.quant_modifiers.GPTQModifier.block_size: expected a positive integer, got "abc"');
 * console.assert(e.name === "RecipeError");
 * ```
 */
export class RecipeError extends LlmcError {
  /**
   * Creates the error.
   *
   * @param message the path at fault, what was expected and what was found
   * @param options standard `ErrorOptions`; `cause` keeps the underlying error
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * A modifier llm-compressor knows and llmc parses, but cannot run yet
 * (AWQ, SmoothQuant, SpinQuant, …). Raised by `assertSupported`, not by the
 * parser, so a recipe can still be read, printed and re-serialized.
 *
 * @example
 * ```ts
 * import { UnsupportedModifierError } from "./errors.ts";
 * const e = new UnsupportedModifierError("quant_stage.quant_modifiers.AWQModifier", "AWQModifier");
 * console.assert(e.modifier === "AWQModifier");
 * ```
 */
export class UnsupportedModifierError extends RecipeError {
  /** The modifier class name, e.g. `"AWQModifier"`. */
  readonly modifier: string;

  /**
   * Creates the error.
   *
   * @param where the modifier's path in the recipe (`<stage>_stage.<group>_modifiers.<Class>`)
   * @param modifier the modifier class name
   */
  constructor(where: string, modifier: string) {
    super(
      `${where}: ${modifier} is a valid llm-compressor modifier but is not yet supported by llmc; ` +
        `remove it from the recipe or run this recipe with llm-compressor`,
    );
    this.modifier = modifier;
  }
}

/**
 * Runs a `src/quant` parser, re-raising its `QuantizationConfigError` as a
 * `RecipeError` with the same message (which already starts with the path
 * the recipe passed in), so callers catch one error type per recipe.
 *
 * @param run the parse to run
 * @returns what `run` returns
 * @throws {RecipeError} in place of a QuantizationConfigError
 * @example
 * ```ts
 * import { asRecipeError, RecipeError } from "./errors.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * try {
 *   asRecipeError(() => parseQuantizationArgs({ num_bits: "4" }, "x.weights"));
 * } catch (e) {
 *   console.assert(e instanceof RecipeError);
 * }
 * ```
 */
export function asRecipeError<T>(run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (e instanceof QuantizationConfigError) throw new RecipeError(e.message, { cause: e });
    throw e;
  }
}
