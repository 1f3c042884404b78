/**
 * The modifiers llmc's calibrated pipelines run: one registration per line.
 * To add a modifier, write its folder under `src/modifiers/<name>/` with a
 * {@link ModifierRegistration} and list it here.
 *
 * @module
 */

import { ModifierRegistry } from "./registry.ts";
import type { ModifierRegistration } from "./registry.ts";
import { quantizationModifiers } from "./quantization/register.ts";
import { sparseGptModifier } from "./sparsegpt/register.ts";
import { smoothQuantModifiers } from "./smoothquant/register.ts";
import { awqModifier } from "./awq/register.ts";

/**
 * Every registration, in no particular order.
 *
 * @example
 * ```ts ignore
 * BUILTIN_MODIFIERS.flatMap((r) => r.types); // ["QuantizationModifier", "GPTQModifier", ...]
 * ```
 */
export const BUILTIN_MODIFIERS: readonly ModifierRegistration[] = [
  quantizationModifiers,
  sparseGptModifier,
  smoothQuantModifiers,
  awqModifier,
];

/**
 * The registry of the built-in modifiers.
 *
 * @example
 * ```ts ignore
 * import { MODIFIERS } from "./builtin.ts";
 * MODIFIERS.get("GPTQModifier") !== undefined; // true
 * ```
 */
export const MODIFIERS: ModifierRegistry = new ModifierRegistry(BUILTIN_MODIFIERS);
