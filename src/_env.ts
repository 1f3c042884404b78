/**
 * Reading an environment variable without ever prompting for permission.
 *
 * Why: `Deno.env.get` without env permission asks on a terminal. A library
 * user who runs llmc without `--allow-env` should get the defaults, not a
 * prompt for a variable that only tunes llmc.
 *
 * @module
 */

/**
 * The variable's value, or undefined when it is unset or env access to it is
 * not already granted (no prompt is shown).
 *
 * @param name the variable
 * @returns its value, or undefined
 * @example
 * ```ts
 * import { readEnvQuietly } from "./_env.ts";
 * const v = readEnvQuietly("LLMC_ENGINE"); // undefined without permission
 * console.assert(v === undefined || typeof v === "string");
 * ```
 */
export function readEnvQuietly(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
