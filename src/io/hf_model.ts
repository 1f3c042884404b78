/**
 * A Hugging Face model folder: its config and its tensors, whether in one
 * `model.safetensors` or in shards listed by `model.safetensors.index.json`.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";
import { isFileEntry, joinPath } from "./_path.ts";
import { parseModelConfig } from "./model_config.ts";
import type { ModelConfig } from "./model_config.ts";
import { SafetensorsFile } from "./safetensors_read.ts";
import type { TensorInfo } from "./safetensors_read.ts";
import { SAFETENSORS_INDEX_NAME } from "./safetensors_write.ts";
import { MAX_CONFIG_BYTES, MAX_JSON_DEPTH, readLimitedJsonText } from "./json_limits.ts";

/** A model folder is missing a file or its files disagree. */
export class HfModelError extends LlmcError {
  /** The file at fault (config, index or shard). */
  readonly file: string;

  /**
   * @param file the file at fault
   * @param message what was wrong and what was expected
   * @param options the underlying cause, if any
   */
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.file = file;
  }
}

/**
 * An open model folder. Tensor reads go to whichever shard holds the tensor.
 *
 * @example
 * ```ts
 * import { HfModel } from "./hf_model.ts";
 * import { writeSafetensors } from "./safetensors_write.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({
 *   model_type: "llama", hidden_size: 4, intermediate_size: 8, num_hidden_layers: 1,
 *   num_attention_heads: 2, vocab_size: 2,
 * }));
 * const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
 * await writeSafetensors(`${dir}/model.safetensors`, [
 *   { name: "model.norm.weight", dtype: "F32", shape: [4], data: f32([1, 1, 1, 1]) },
 * ]);
 * const m = await HfModel.open(dir);
 * try {
 *   m.config.headDim; // 2
 *   const w = await m.readF32("model.norm.weight");
 * } finally {
 *   m.close();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class HfModel {
  /** The folder. */
  readonly dir: string;
  /** Its parsed config.json. */
  readonly config: ModelConfig;
  /** Every `readF32` / `readRowsF32` reads the file into a new array the caller owns. */
  readonly returnsFreshArrays = true;
  readonly #files: SafetensorsFile[];
  readonly #where: Map<string, SafetensorsFile>;

  private constructor(
    dir: string,
    config: ModelConfig,
    files: SafetensorsFile[],
    where: Map<string, SafetensorsFile>,
  ) {
    this.dir = dir;
    this.config = config;
    this.#files = files;
    this.#where = where;
  }

  /**
   * Opens a model folder: parses config.json, then opens `model.safetensors`
   * if present, else the shards named by `model.safetensors.index.json`
   * (the order transformers tries them in).
   *
   * @param dir the folder
   * @returns the open model
   * @throws {HfModelError} for a missing config, weights file or shard, or an
   *   index naming a tensor its shard lacks
   * @throws {ModelConfigError} for an invalid config.json
   * @throws {SafetensorsError} (from safetensors_read.ts) for a malformed safetensors file
   * @example
   * ```ts ignore
   * const m = await HfModel.open("models/stories260K");
   * ```
   */
  static async open(dir: string): Promise<HfModel> {
    const configPath = joinPath(dir, "config.json");
    const config = parseModelConfig(await readJson(configPath), configPath);

    const single = joinPath(dir, "model.safetensors");
    const indexPath = joinPath(dir, SAFETENSORS_INDEX_NAME);
    if (await isFile(single)) {
      const f = await SafetensorsFile.open(single);
      return new HfModel(dir, config, [f], new Map(f.names().map((n) => [n, f])));
    }
    if (!await isFile(indexPath)) {
      throw new HfModelError(
        dir,
        `has neither model.safetensors nor ${SAFETENSORS_INDEX_NAME} ` +
          "(llmc reads safetensors checkpoints only)",
      );
    }
    const weightMap = parseWeightMap(await readJson(indexPath, MAX_INDEX_BYTES), indexPath);
    const opened = new Map<string, SafetensorsFile>();
    try {
      for (const shard of new Set(weightMap.values())) {
        const path = joinPath(dir, shard);
        if (!await isFile(path)) {
          throw new HfModelError(indexPath, `names shard '${shard}', but ${path} does not exist`);
        }
        opened.set(shard, await SafetensorsFile.open(path));
      }
      // The index is authoritative, as in transformers: a tensor it maps to a
      // shard must be in that shard.
      const where = new Map<string, SafetensorsFile>();
      for (const [name, shard] of weightMap) {
        const f = opened.get(shard)!;
        if (!f.has(name)) {
          throw new HfModelError(
            indexPath,
            `maps tensor '${name}' to ${f.path}, which has no such tensor`,
          );
        }
        where.set(name, f);
      }
      return new HfModel(dir, config, [...opened.values()], where);
    } catch (e) {
      for (const f of opened.values()) f.close();
      throw e;
    }
  }

  /**
   * All tensor names: file order for one file, index order for shards.
   *
   * @returns the names
   * @example
   * ```ts ignore
   * m.tensorNames().length; // 47 for stories260K
   * ```
   */
  tensorNames(): string[] {
    return [...this.#where.keys()];
  }

  /**
   * Whether the model has a tensor.
   *
   * @param name the tensor name
   * @returns true when present
   * @example
   * ```ts ignore
   * m.has("lm_head.weight"); // false when embeddings are tied
   * ```
   */
  has(name: string): boolean {
    return this.#where.has(name);
  }

  /**
   * A tensor's dtype, shape, location, and the file that holds it.
   *
   * @param name the tensor name
   * @returns its info plus the file path
   * @throws {HfModelError} when the model has no such tensor
   * @example
   * ```ts ignore
   * m.info("model.norm.weight").file; // ".../model.safetensors"
   * ```
   */
  info(name: string): TensorInfo & { file: string } {
    const f = this.#file(name);
    return { ...f.info(name), file: f.path };
  }

  /**
   * Reads a tensor as float32 values (see {@link SafetensorsFile.readF32}).
   *
   * @param name the tensor name
   * @returns the values, row-major
   * @throws {HfModelError} when the model has no such tensor
   * @example
   * ```ts ignore
   * const w = await m.readF32("model.embed_tokens.weight");
   * ```
   */
  async readF32(name: string): Promise<Float32Array> {
    return await this.#file(name).readF32(name);
  }

  /**
   * Reads rows `row0 … row0 + rows − 1` of a tensor as float32 values,
   * reading only those rows' bytes (see {@link SafetensorsFile.readRowsF32}):
   * for streaming an embedding table or lm_head in blocks.
   *
   * @param name the tensor name
   * @param row0 the first row (along the first dimension)
   * @param rows how many rows
   * @returns rows · (numel / shape[0]) values, row-major
   * @throws {HfModelError} when the model has no such tensor
   * @throws {SafetensorsError} (from safetensors_read.ts) when the rows are out of range
   * @example
   * ```ts ignore
   * const block = await m.readRowsF32("model.embed_tokens.weight", 1024, 256);
   * ```
   */
  async readRowsF32(name: string, row0: number, rows: number): Promise<Float32Array> {
    return await this.#file(name).readRowsF32(name, row0, rows);
  }

  /**
   * Reads a tensor's raw little-endian bytes.
   *
   * @param name the tensor name
   * @returns the bytes
   * @throws {HfModelError} when the model has no such tensor
   * @example
   * ```ts ignore
   * const bytes = await m.readRaw("model.norm.weight");
   * ```
   */
  async readRaw(name: string): Promise<Uint8Array> {
    return await this.#file(name).readRaw(name);
  }

  /**
   * The safetensors files in use.
   *
   * @returns their paths
   * @example
   * ```ts ignore
   * m.files(); // [".../model.safetensors"]
   * ```
   */
  files(): string[] {
    return this.#files.map((f) => f.path);
  }

  /**
   * Closes every file.
   *
   * @example
   * ```ts ignore
   * m.close();
   * ```
   */
  close(): void {
    for (const f of this.#files) f.close();
  }

  /** Closes the model at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }

  #file(name: string): SafetensorsFile {
    const f = this.#where.get(name);
    if (f === undefined) throw new HfModelError(this.dir, `model has no tensor named '${name}'`);
    return f;
  }
}

function parseWeightMap(json: unknown, file: string): Map<string, string> {
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new HfModelError(file, "has no 'weight_map' object (tensor name → shard file)");
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    // A shard must be a plain file name beside the index, never a path out of the folder.
    if (
      typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes("\\") ||
      shard === "." || shard === ".."
    ) {
      throw new HfModelError(
        file,
        `weight_map['${name}'] is ${
          JSON.stringify(shard)
        }; expected a file name in the same folder`,
      );
    }
    out.set(name, shard);
  }
  return out;
}

/** The largest model.safetensors.index.json read (a huge MoE's has about a million entries). */
const MAX_INDEX_BYTES = 256 * 1024 * 1024;

async function readJson(path: string, maxBytes = MAX_CONFIG_BYTES): Promise<unknown> {
  let text: string;
  try {
    const read = await readLimitedJsonText(path, maxBytes, MAX_JSON_DEPTH);
    if ("fault" in read) throw new HfModelError(path, read.fault);
    text = read.text;
  } catch (e) {
    if (e instanceof HfModelError) throw e;
    const why = e instanceof Deno.errors.NotFound ? "does not exist" : (e as Error).message;
    throw new HfModelError(path, `cannot read: ${why}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HfModelError(path, `is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

const AUXILIARY_NAMES = new Set([
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "tokenizer.model",
  "spiece.model",
  "sentencepiece.bpe.model",
  "generation_config.json",
  "chat_template.jinja",
  "chat_template.json",
  "preprocessor_config.json",
  "processor_config.json",
  "video_preprocessor_config.json",
  "vocab.json",
  "vocab.txt",
  "merges.txt",
]);

/**
 * Whether a file of a model folder is one an output checkpoint carries over
 * unchanged: tokenizer files, generation config, chat templates, processor
 * configs, custom `*.py` modelling code.
 *
 * @param name the file's name (no folder)
 * @returns true for an auxiliary file
 * @example
 * ```ts
 * import { isAuxiliaryFileName } from "./hf_model.ts";
 * isAuxiliaryFileName("tokenizer_config.json"); // true
 * isAuxiliaryFileName("model.safetensors"); // false
 * ```
 */
export function isAuxiliaryFileName(name: string): boolean {
  return AUXILIARY_NAMES.has(name) || name.endsWith(".py") || name.endsWith(".jinja") ||
    name.endsWith(".tiktoken");
}

/**
 * The files of a model folder that an output checkpoint should carry over
 * unchanged (see {@link isAuxiliaryFileName}). Symlinks are followed, so a
 * Hugging Face cache snapshot (whose files are links into `blobs/`) gives
 * the same list as a plain folder; a dangling link is skipped.
 *
 * @param dir the model folder
 * @returns their paths, sorted; empty when the folder does not exist
 * @example
 * ```ts ignore
 * import { auxiliaryFiles } from "./hf_model.ts";
 * auxiliaryFiles("models/stories260K");
 * // [".../generation_config.json", ".../tokenizer.json", ".../tokenizer_config.json"]
 * ```
 */
export function auxiliaryFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const e of entries) {
    if (!isAuxiliaryFileName(e.name)) continue;
    if (isFileEntry(dir, e)) out.push(joinPath(dir, e.name));
  }
  return out.sort();
}
