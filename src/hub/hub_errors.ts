/**
 * The errors llmc throws when a Hugging Face Hub repository cannot be
 * resolved or downloaded: each names the repository, the file and the
 * revision involved, and says what to do.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * Base class of the Hub errors.
 *
 * @example
 * ```ts
 * import { HubError } from "./hub_errors.ts";
 * const e = new HubError("org/name@main: the Hub answered 500");
 * e.name; // "HubError"
 * ```
 */
export class HubError extends LlmcError {}

/**
 * The Hub refused the request (HTTP 401 or 403): a gated or private
 * repository, or a missing or invalid token.
 *
 * @example
 * ```ts
 * import { HubAuthError } from "./hub_errors.ts";
 * new HubAuthError("meta-llama/Llama-3.2-1B: gated; set HF_TOKEN").name; // "HubAuthError"
 * ```
 */
export class HubAuthError extends HubError {}

/**
 * The repository, revision or file does not exist on the Hub (HTTP 404).
 *
 * @example
 * ```ts
 * import { HubNotFoundError } from "./hub_errors.ts";
 * new HubNotFoundError("org/name@main: no such repository").name; // "HubNotFoundError"
 * ```
 */
export class HubNotFoundError extends HubError {}

/**
 * Offline mode (`HF_HUB_OFFLINE=1`), or no connection, and what was asked
 * for is not in the cache.
 *
 * @example
 * ```ts
 * import { HubOfflineError } from "./hub_errors.ts";
 * new HubOfflineError("org/name@main is not in the cache").name; // "HubOfflineError"
 * ```
 */
export class HubOfflineError extends HubError {}

/**
 * A downloaded file's size or hash differs from what the Hub reported; the
 * partial file has been deleted.
 *
 * @example
 * ```ts
 * import { HubChecksumError } from "./hub_errors.ts";
 * new HubChecksumError("org/name@abc: model.safetensors: sha256 mismatch").name; // "HubChecksumError"
 * ```
 */
export class HubChecksumError extends HubError {}
