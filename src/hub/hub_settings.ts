/**
 * Where the Hugging Face cache lives, which endpoint to ask, with which
 * token, and whether to ask at all: the environment variables
 * huggingface_hub reads, with the same precedence.
 *
 * @module
 */

import { joinPath } from "../io/_path.ts";

/** How llmc reaches the Hub; every field defaults from the environment. */
export interface HubOptions {
  /** The hub cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  readonly cacheDir?: string;
  /** The Hub's base URL (`HF_ENDPOINT`, default `https://huggingface.co`). */
  readonly endpoint?: string;
  /** The access token (`HF_TOKEN`, else the token file); null for none. */
  readonly token?: string | null;
  /** Use the cache only (`HF_HUB_OFFLINE=1`). */
  readonly offline?: boolean;
  /** Called once per file that is downloaded, before it starts. */
  readonly onDownload?: (event: { file: string; bytes: number | null }) => void;
}

/** {@link HubOptions} with every default filled in. */
export interface HubSettings {
  /** The hub cache folder. */
  readonly cacheDir: string;
  /** The Hub's base URL, without a trailing slash. */
  readonly endpoint: string;
  /** The access token, or null. */
  readonly token: string | null;
  /** Cache only. */
  readonly offline: boolean;
  /** Download notifications. */
  readonly onDownload?: (event: { file: string; bytes: number | null }) => void;
}

/** The public Hub. */
export const DEFAULT_ENDPOINT = "https://huggingface.co";

function env(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? undefined : v;
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && ["1", "ON", "YES", "TRUE"].includes(v.toUpperCase());
}

function homeDir(): string {
  return env("HOME") ?? env("USERPROFILE") ?? ".";
}

/**
 * `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
 *
 * @returns the folder
 * @example
 * ```ts
 * import { hfHome } from "./hub_settings.ts";
 * hfHome(); // e.g. "/home/me/.cache/huggingface"
 * ```
 */
export function hfHome(): string {
  return env("HF_HOME") ??
    joinPath(env("XDG_CACHE_HOME") ?? joinPath(homeDir(), ".cache"), "huggingface");
}

function readTokenFile(): string | null {
  const path = env("HF_TOKEN_PATH") ?? joinPath(hfHome(), "token");
  try {
    const t = Deno.readTextFileSync(path).trim();
    return t === "" ? null : t;
  } catch {
    // No token file (or an unreadable one) means anonymous access, as in huggingface_hub.
    return null;
  }
}

/**
 * Fills in every Hub option from the environment, as huggingface_hub does:
 * `HF_HUB_CACHE` (or the legacy `HUGGINGFACE_HUB_CACHE`), `HF_HOME`,
 * `HF_ENDPOINT`, `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`, or the file at
 * `HF_TOKEN_PATH` / `HF_HOME/token`), `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`).
 *
 * @param options explicit values, which win over the environment
 * @returns the settings
 * @example
 * ```ts
 * import { hubSettings } from "./hub_settings.ts";
 * hubSettings({ cacheDir: "/tmp/hf", offline: true }).endpoint; // "https://huggingface.co" unless HF_ENDPOINT is set
 * ```
 */
export function hubSettings(options: HubOptions = {}): HubSettings {
  const cacheDir = options.cacheDir ?? env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE") ??
    joinPath(hfHome(), "hub");
  const endpoint = (options.endpoint ?? env("HF_ENDPOINT") ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const token = options.token !== undefined
    ? options.token
    : env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN") ?? readTokenFile();
  const offline = options.offline ??
    (isTrue(env("HF_HUB_OFFLINE")) || isTrue(env("TRANSFORMERS_OFFLINE")));
  return { cacheDir, endpoint, token, offline, onDownload: options.onDownload };
}
