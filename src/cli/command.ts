/**
 * The shape every `llmc` subcommand has, so the entry point can list and
 * dispatch them without knowing their flags.
 *
 * @module
 */

/**
 * One `llmc` subcommand.
 *
 * @example
 * ```ts
 * import type { CliCommand } from "./command.ts";
 * const hello: CliCommand = {
 *   name: "hello",
 *   summary: "print a greeting",
 *   run(argv) {
 *     console.log("hello", ...argv);
 *     return Promise.resolve(0);
 *   },
 * };
 * ```
 */
export interface CliCommand {
  /** The word after `llmc` that selects this command. */
  name: string;
  /** One line for `llmc --help`. */
  summary: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}
