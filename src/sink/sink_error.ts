/**
 * The error the checkpoint sink raises.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * The checkpoint sink cannot start, continue or finish a checkpoint: the
 * output exists, a resumed work folder belongs to another job, a layer is
 * missing or written twice, a tensor name repeats.
 *
 * @example
 * ```ts
 * import { CheckpointSinkError } from "./sink_error.ts";
 * const e = new CheckpointSinkError("out/llama-w4a16", "already exists; pass overwrite to replace it");
 * e.message; // "out/llama-w4a16: already exists; pass overwrite to replace it"
 * ```
 */
export class CheckpointSinkError extends LlmcError {
  /** The output folder (or work file) the error is about. */
  readonly path: string;

  /**
   * @param path the output folder or work file at fault
   * @param message what was wrong and what was expected
   * @param options the underlying cause, if any
   */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(`${path}: ${message}`, options);
    this.path = path;
  }
}

/**
 * Whether an error (or any error in its `cause` chain) is a full disk
 * (`ENOSPC`, "No space left on device", os error 28).
 *
 * @param e the error
 * @returns true for a full disk
 * @example
 * ```ts
 * import { isDiskFull } from "./sink_error.ts";
 * console.assert(isDiskFull(new Error("write failed: No space left on device (os error 28)")));
 * ```
 */
export function isDiskFull(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    if (/No space left on device|ENOSPC|os error 28\b/.test(c.message)) return true;
  }
  return false;
}
