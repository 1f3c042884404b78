/**
 * Which parsed modifiers llmc can run. A recipe naming AWQ, SmoothQuant or
 * another not-yet-implemented modifier still parses (so it can be inspected
 * and re-serialized); running it must call {@link assertSupported} first.
 *
 * @module
 */

import { UnsupportedModifierError } from "./errors.ts";
import { type ModifierSpec, NOT_YET_SUPPORTED, RUNNABLE_RAW_MODIFIERS } from "./modifiers.ts";

/**
 * Whether llmc can run a modifier.
 *
 * @param modifier a parsed modifier spec
 * @returns false for QuIP and AutoRound (SpinQuant runs as a whole-model transform)
 * @example
 * ```ts
 * import { isSupported } from "./supported.ts";
 * import { GPTQModifier } from "./constructors.ts";
 * console.assert(isSupported(GPTQModifier({ scheme: "W4A16" })));
 * ```
 */
export function isSupported(modifier: ModifierSpec): boolean {
  return !(NOT_YET_SUPPORTED as readonly string[]).includes(modifier.type) ||
    (RUNNABLE_RAW_MODIFIERS as readonly string[]).includes(modifier.type);
}

/**
 * Refuses a modifier llmc parses but cannot run yet, naming its stage, group
 * and class.
 *
 * @param modifier a parsed modifier spec
 * @throws {UnsupportedModifierError} for the not-yet-supported modifiers
 * @example
 * ```ts
 * import { assertSupported } from "./supported.ts";
 * import { parseRecipe } from "./parse.ts";
 * const r = parseRecipe("quant_stage: {quant_modifiers: {SmoothQuantModifier: {smoothing_strength: 0.8}}}");
 * try {
 *   assertSupported(r.modifiers[0]);
 * } catch (e) {
 *   console.assert((e as Error).message.includes("quant_stage.quant_modifiers.SmoothQuantModifier"));
 * }
 * ```
 */
export function assertSupported(modifier: ModifierSpec): void {
  if (isSupported(modifier)) return;
  const where = `${modifier.stage}_stage.${modifier.group}_modifiers.${modifier.type}`;
  throw new UnsupportedModifierError(where, modifier.type);
}
