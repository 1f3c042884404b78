/**
 * The base of every error llmc throws on bad input. Subclasses name the file,
 * tensor or field at fault so a user can act on the message alone.
 *
 * @module
 */

/**
 * Base class of llmc's typed errors.
 *
 * @example
 * ```ts
 * import { LlmcError } from "./errors.ts";
 * try {
 *   throw new LlmcError("config.json: field 'hidden_size' is missing");
 * } catch (e) {
 *   if (!(e instanceof LlmcError)) throw e;
 * }
 * ```
 */
export class LlmcError extends Error {
  /**
   * Creates the error.
   *
   * @param message what was wrong and what was expected
   * @param options standard `ErrorOptions`; `cause` keeps the underlying error
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
