/**
 * The error an engine throws for a tensor or an option it cannot take.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A tensor of another engine, or an unknown engine name.
 *
 * @example
 * ```ts
 * import { EngineError } from "./engine_error.ts";
 * const e = new EngineError("--engine metal: expected webgpu, cpu or auto");
 * console.assert(e.name === "EngineError");
 * ```
 */
export class EngineError extends LlmcError {}
