/**
 * What every `llmc` subcommand does with its command line: strict
 * node:util parseArgs, `--help` / `-h`, list flags that take several values
 * after one flag, required flags, numeric, byte-size and one-of values, and
 * one way to report a bad command line (the message, naming the flag, then
 * the usage, on stderr; exit code 2).
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/**
 * A bad command line. `parseCommandLine` prints it as
 * `llmc <command>: <message>` followed by the usage, and exits with 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./flags.ts";
 * const e = new UsageError("--model is required");
 * console.assert(e.name === "UsageError");
 * ```
 */
export class UsageError extends Error {
  /**
   * @param message what is wrong, naming the flag, e.g. "--model is required"
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The parsed values of a command's flags (strict: no unknown flags, no positionals). */
export type FlagValues<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>["values"];

/** A command's flags and how it reports a bad command line. */
export interface CommandLineSpec<O extends ParseArgsOptionsConfig> {
  /** The subcommand, e.g. "ppl": messages start with `llmc ppl: `. */
  command: string;
  /** Printed on stdout for --help, and on stderr after a bad command line. */
  usage: string;
  /**
   * The flags, as node:util parseArgs takes them; `--help` / `-h` is added.
   * A string flag with `multiple: true` is a list flag: it takes several
   * values after it (see `spreadListFlags`) and may also be repeated.
   */
  options: O;
}

/** What `parseCommandLine` gives back: the command's arguments, or the exit code to return now. */
export type CommandLine<A> = { args: A } | { exit: number };

const HELP = { type: "boolean", short: "h", default: false } as const;

/**
 * Parses a command line strictly (unknown flags and positional arguments are
 * errors; list flags take several values, see `spreadListFlags`), answers `--help` / `-h` with the usage, and turns the flags into
 * the command's arguments with `build`. A parse error or a `UsageError`
 * thrown by `build` is printed as `llmc <command>: <message>`, a blank line
 * and the usage, on stderr.
 *
 * @param argv the arguments after the command's name
 * @param spec the command's name, usage and flags
 * @param build checks the flag values and makes the command's arguments;
 *   throws `UsageError` for a bad value
 * @returns `{ args }`, or `{ exit }`: 0 after --help, 2 after a bad command line
 * @throws whatever `build` throws that is not a `UsageError`
 *
 * @example
 * ```ts
 * import { parseCommandLine, positiveInt, requireFlag } from "./flags.ts";
 * const line = parseCommandLine(["--model", "m", "--windows", "4"], {
 *   command: "ppl",
 *   usage: "usage: llmc ppl --model DIR [--windows N]",
 *   options: { model: { type: "string" }, windows: { type: "string", default: "40" } },
 * }, (values) => ({
 *   model: requireFlag("model", values.model),
 *   windows: positiveInt("windows", values.windows),
 * }));
 * if ("exit" in line) throw new Error(`exit ${line.exit}`);
 * console.assert(line.args.model === "m" && line.args.windows === 4);
 * ```
 */
export function parseCommandLine<O extends ParseArgsOptionsConfig, A>(
  argv: string[],
  spec: CommandLineSpec<O>,
  build: (values: FlagValues<O>) => A,
): CommandLine<A> {
  try {
    const values = strictParse(argv, spec.options);
    if (values.help === true) {
      console.log(spec.usage);
      return { exit: 0 };
    }
    return { args: build(values as FlagValues<O>) };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`llmc ${spec.command}: ${e.message}\n\n${spec.usage}`);
    return { exit: 2 };
  }
}

/**
 * The value of a flag the command cannot run without.
 *
 * @param flag the flag, without dashes, e.g. "model"
 * @param value its parsed value
 * @param options `allowEmpty`: an empty string is a value (e.g. an empty prompt);
 *   by default it counts as missing
 * @returns the value
 * @throws {UsageError} "--flag is required"
 *
 * @example
 * ```ts
 * import { requireFlag } from "./flags.ts";
 * requireFlag("model", "models/llama"); // "models/llama"
 * requireFlag("prompt", "", { allowEmpty: true }); // ""
 * // requireFlag("model", undefined) throws UsageError("--model is required")
 * ```
 */
export function requireFlag(
  flag: string,
  value: string | undefined,
  options: { allowEmpty?: boolean } = {},
): string {
  if (value === undefined || (value === "" && !options.allowEmpty)) {
    throw new UsageError(`--${flag} is required`);
  }
  return value;
}

/**
 * A flag value that must be a positive integer, written in decimal digits.
 *
 * @param flag the flag, without dashes, e.g. "windows"
 * @param value its text
 * @returns the integer (≥ 1)
 * @throws {UsageError} "--flag must be a positive integer, got 'value'"
 *
 * @example
 * ```ts
 * import { positiveInt } from "./flags.ts";
 * positiveInt("windows", "40"); // 40
 * // positiveInt("windows", "0") and positiveInt("windows", "1.5") throw UsageError
 * ```
 */
export function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${flag} must be a positive integer, got '${value}'`);
  }
  return n;
}

/**
 * An optional numeric flag: any finite number `check` accepts.
 *
 * @param flag the flag, without dashes, e.g. "temperature"
 * @param value its text, undefined when the flag was not given
 * @param fallback the value when the flag was not given
 * @param check what the number must satisfy, e.g. `(n) => n >= 0`
 * @returns the number, or `fallback`
 * @throws {UsageError} "--flag: invalid value 'value'"
 *
 * @example
 * ```ts
 * import { numberFlag } from "./flags.ts";
 * numberFlag("top-p", "0.9", 1, (n) => n > 0 && n <= 1); // 0.9
 * numberFlag("top-p", undefined, 1, (n) => n > 0 && n <= 1); // 1
 * ```
 */
export function numberFlag(
  flag: string,
  value: string | undefined,
  fallback: number,
  check: (n: number) => boolean,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !check(n)) {
    throw new UsageError(`--${flag}: invalid value '${value}'`);
  }
  return n;
}

/**
 * A flag value that must be one of a fixed set of words.
 *
 * @param flag the flag, without dashes, e.g. "pipeline"
 * @param value its text
 * @param choices the accepted words
 * @returns the value, typed as one of `choices`
 * @throws {UsageError} "--flag must be one of a, b, c, got 'value'"
 *
 * @example
 * ```ts
 * import { choiceFlag } from "./flags.ts";
 * choiceFlag("progress", "bar", ["auto", "bar", "json", "none"] as const); // "bar"
 * // choiceFlag("progress", "loud", ["auto", "bar"]) throws UsageError
 * ```
 */
export function choiceFlag<T extends string>(
  flag: string,
  value: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${flag} must be one of ${choices.join(", ")}, got '${value}'`);
  }
  return value as T;
}

/**
 * An optional flag that is a byte size, such as `5GB`, `500MB`, `2GiB` or `123456`
 * (see `parseByteSize`).
 *
 * @param flag the flag, without dashes, e.g. "max-shard-size"
 * @param value its text, undefined when the flag was not given
 * @returns bytes, or undefined when the flag was not given
 * @throws {UsageError} "--flag: 'value' is not a size such as 5GB, 500MB or a byte count"
 *
 * @example
 * ```ts
 * import { byteSizeFlag } from "./flags.ts";
 * byteSizeFlag("max-shard-size", "500MB"); // 500000000
 * byteSizeFlag("max-shard-size", undefined); // undefined
 * ```
 */
export function byteSizeFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseByteSize(value);
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
}

/**
 * Parses a byte size such as `5GB`, `500MB`, `2GiB` or `123456`: decimal
 * units (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB,
 * TiB) powers of 1024, case-insensitively; a fraction is rounded down to
 * whole bytes.
 *
 * @param text the size
 * @returns bytes (≥ 1)
 * @throws {Error} when it is not a positive size, or exceeds {@link MAX_BYTE_SIZE}
 *
 * @example
 * ```ts
 * import { parseByteSize } from "./flags.ts";
 * parseByteSize("5GB"); // 5000000000
 * parseByteSize("1KiB"); // 1024
 * ```
 */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/i.exec(text.trim());
  const n = m === null ? NaN : Number(m[1]) * BYTE_UNITS[(m[2] ?? "b").toLowerCase()];
  if (!(n >= 1)) throw new Error(`'${text}' is not a size such as 5GB, 500MB or a byte count`);
  if (n > MAX_BYTE_SIZE) {
    throw new Error(
      `'${text}' is more than the largest size llmc handles, ${MAX_BYTE_SIZE} bytes ` +
        `(2^53 - 1, about 9 PB: byte offsets in safetensors files must be exact integers)`,
    );
  }
  return Math.floor(n);
}

/**
 * The largest byte size a flag accepts: 2^53 − 1 (about 9 PB), the largest
 * integer a JavaScript number holds exactly; safetensors offsets beyond it
 * could not be written correctly.
 */
export const MAX_BYTE_SIZE = Number.MAX_SAFE_INTEGER;

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Rewrites `--flag a b c` into `--flag a --flag b --flag c` for list flags,
 * so a list can follow one flag as in llm-compressor's examples; repeated
 * flags keep working. The values run up to the next argument that starts
 * with `--`. `parseCommandLine` does this for every `multiple: true` string flag.
 *
 * @param argv the arguments
 * @param flags the list flags, without dashes
 * @returns the rewritten arguments
 *
 * @example
 * ```ts
 * import { spreadListFlags } from "./flags.ts";
 * spreadListFlags(["--ignore", "lm_head", "re:.*gate$", "--overwrite"], ["ignore"]);
 * // ["--ignore", "lm_head", "--ignore", "re:.*gate$", "--overwrite"]
 * ```
 */
export function spreadListFlags(argv: readonly string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    out.push(a);
    if (!a.startsWith("--") || !flags.includes(a.slice(2))) continue;
    let first = true;
    while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
      if (!first) out.push(a);
      out.push(argv[++i]);
      first = false;
    }
  }
  return out;
}

/**
 * parseArgs with --help added and list flags spread; its complaints about
 * the command line become UsageErrors.
 */
function strictParse(argv: string[], options: ParseArgsOptionsConfig): ParsedValues {
  const lists = Object.entries(options)
    .filter(([, o]) => o.type === "string" && o.multiple === true)
    .map(([name]) => name);
  try {
    return parseArgs({
      args: lists.length > 0 ? spreadListFlags(argv, lists) : argv,
      options: { ...options, help: HELP },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")) {
      throw new UsageError((e as Error).message);
    }
    throw e;
  }
}

type ParsedValues = Record<string, string | boolean | (string | boolean)[] | undefined>;
