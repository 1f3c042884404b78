/**
 * The error thrown for any safetensors file that cannot be trusted or read.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A safetensors file is malformed, inconsistent or unreadable. The message
 * starts with the file path and names the tensor or header field at fault.
 *
 * @example
 * ```ts
 * import { SafetensorsError } from "./safetensors_error.ts";
 * const e = new SafetensorsError("model.safetensors", "header length 9 exceeds the file");
 * e.file; // "model.safetensors"
 * ```
 */
export class SafetensorsError extends LlmcError {
  /** The path of the file at fault. */
  readonly file: string;

  /**
   * @param file the path of the file at fault
   * @param message what was wrong and what was expected
   * @param options the underlying cause, if any
   */
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.file = file;
  }
}
