/**
 * The error llmc throws on a dataset file it cannot use.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A dataset file that is missing, empty, not UTF-8, malformed, or too short
 * for what was asked of it. The message starts with the file's path (and the
 * line, for JSONL) and says what was expected.
 *
 * @example
 * ```ts
 * import { DatasetError } from "./dataset_error.ts";
 * const e = new DatasetError("calib.jsonl:3: field 'text' is missing");
 * e.name; // "DatasetError"
 * ```
 */
export class DatasetError extends LlmcError {}
