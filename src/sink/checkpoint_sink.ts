/**
 * The checkpoint sink: the terminal stage of every pipeline. Each finished
 * decoder layer is persisted as soon as it is done (one safetensors file per
 * layer in a work folder beside the output), so a crash loses at most the
 * layer in flight and `resume` can skip what is on disk. `finalize` then
 * streams the per-layer files into the final shards (one tensor in memory at
 * a time, each byte written once), writes config.json, recipe.yaml and the
 * tokenizer files, and renames the finished folder into place.
 *
 * Work folder layout (`<output>.tmp-llmc/`):
 *
 * ```
 * progress.json                  finished layers/groups, options hash, latest boundary
 * layers/layer-00000.safetensors one per finished decoder layer
 * groups/<key>.safetensors       non-layer tensors (embeddings, final norm, lm_head)
 * boundary/after-layer-00003.bin hidden states after the last finished layer (calibrated pipelines)
 * ```
 *
 * @module
 */

import { crashPoint } from "../crash_points.ts";
import {
  assertOutputOutsideInput,
  atomicOutputDir,
  DONE_DIR_MARKER,
  removeOrphans,
} from "../io/atomic_dir.ts";
import { acquireOutputLock } from "../io/output_lock.ts";
import type { OutputLock } from "../io/output_lock.ts";
import { auxiliaryFiles } from "../io/hf_model.ts";
import type { HfModel } from "../io/hf_model.ts";
import { SafetensorsFile } from "../io/safetensors_read.ts";
import { writePlannedSafetensors, writeSafetensors } from "../io/safetensors_write.ts";
import type { DType } from "../io/dtype.ts";
import { layerPrefix } from "../model/module_names.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { stableStringify } from "../quant/stable_stringify.ts";
import { checkpointConfigJson } from "./config_json.ts";
import type { JsonObject } from "./config_json.ts";
import { emptyProgress, readProgress, writeFileAtomic, writeProgress } from "./_progress.ts";
import type { Progress } from "./_progress.ts";
import { CheckpointSinkError } from "./sink_error.ts";
import { compareSafetensorsOrder } from "./tensor_order.ts";

/**
 * One tensor handed to the sink: raw little-endian bytes with dtype and
 * shape (compress's `CompressedTensor` has this shape).
 */
export interface CheckpointTensor {
  /** Full tensor name. */
  readonly name: string;
  /** safetensors dtype. */
  readonly dtype: DType;
  /** Shape, row-major. */
  readonly shape: readonly number[];
  /** `product(shape) × dtype size` little-endian bytes. */
  readonly data: Uint8Array;
}

/** What the sink needs of the source model. */
export type CheckpointSource = Pick<HfModel, "dir" | "config" | "files">;

/** The suffix of the work folder beside the output folder. */
export const WORK_DIR_SUFFIX = ".tmp-llmc";

/** Options of {@link CheckpointSink.open}. */
export interface CheckpointSinkOptions {
  /** The folder the checkpoint should end up in. */
  readonly outputDir: string;
  /** The model being compressed (config.json and tokenizer files are taken from its folder). */
  readonly source: CheckpointSource;
  /** Replace an existing output folder (default: refuse before any work). */
  readonly overwrite?: boolean;
  /** Continue a previous run of the same job from its work folder. */
  readonly resume?: boolean;
  /** Upper bound of a shard's tensor bytes (default 5e9, as transformers). */
  readonly maxShardBytes?: number;
  /** Everything that defines the job (recipe, flags); hashed with the source's identity. */
  readonly job?: JsonValue;
  /** Receives notes such as "discarding a stale work folder"; `console.warn` by default. */
  readonly onWarning?: (message: string) => void;
  /**
   * Receives every tensor group once it is persisted (the same objects that
   * were handed in), e.g. to keep the compressed model in memory.
   */
  readonly onTensors?: (tensors: readonly CheckpointTensor[]) => void;
  /**
   * The output's lock when the caller already holds it (oneshot takes it
   * before its preparation); otherwise `open` takes it. The sink releases it
   * at `finalize` or `close`.
   */
  readonly lock?: OutputLock;
}

/** What {@link CheckpointSink.finalize} needs besides the tensors. */
export interface FinalizeOptions {
  /** The `quantization_config` object for config.json. */
  readonly quantizationConfig: JsonObject;
  /** Replaces `quantization_config.sparsity_config` when given. */
  readonly sparsityConfig?: JsonObject;
  /** The text of recipe.yaml. */
  readonly recipeYaml: string;
  /** Top-level config.json keys to set (e.g. `{tie_word_embeddings: false}`). */
  readonly configPatch?: JsonObject;
  /** Drop null `scale_dtype`/`zp_dtype` keys so vLLM builds with compressed-tensors ≤ 0.12 load it. */
  readonly omitNullDtypes?: boolean;
}

/** What {@link CheckpointSink.finalize} wrote. */
export interface FinalizeResult {
  /** The committed output folder. */
  readonly outputDir: string;
  /** Names of the safetensors files inside it, in shard order. */
  readonly files: readonly string[];
  /** Sum of all tensors' bytes. */
  readonly totalSize: number;
  /** Number of tensors. */
  readonly tensorCount: number;
}

const GROUP_KEY = /^[A-Za-z0-9_-]+$/;

function layerFile(k: number): string {
  return `layers/layer-${String(k).padStart(5, "0")}.safetensors`;
}

function boundaryFile(k: number): string {
  return `boundary/after-layer-${String(k).padStart(5, "0")}.bin`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The hash that ties a work folder to one job: the source's folder, config
 * text and weight files (names and sizes), the shard size and the job options.
 */
async function optionsHash(
  source: CheckpointSource,
  maxShardBytes: number,
  job: JsonValue,
): Promise<string> {
  const files: JsonValue[] = [];
  for (const f of source.files()) files.push([f, (await Deno.stat(f)).size]);
  let configText = "";
  try {
    configText = await Deno.readTextFile(`${source.dir}/config.json`);
  } catch {
    // A source without a readable config.json fails later, when it is needed.
  }
  return await sha256Hex(stableStringify({
    source: await Deno.realPath(source.dir).catch(() => source.dir),
    config: configText,
    files,
    maxShardBytes,
    job,
  }));
}

/**
 * Writes a compressed checkpoint layer by layer, resumably, and commits it
 * atomically.
 *
 * @example
 * ```ts ignore
 * import { CheckpointSink } from "./checkpoint_sink.ts";
 * const sink = await CheckpointSink.open({ outputDir: "out/w4a16", source: model });
 * for (let k = 0; k < model.config.numHiddenLayers; k++) {
 *   if (sink.isLayerDone(k)) continue;
 *   await sink.writeLayer(k, compressedTensorsOfLayer(k));
 * }
 * await sink.writeTensors("embed", [embedTensor]);
 * await sink.finalize({ quantizationConfig, recipeYaml });
 * ```
 */
export class CheckpointSink {
  /** The final output folder. */
  readonly outputDir: string;
  /** The work folder (`<outputDir>.tmp-llmc`). */
  readonly workDir: string;
  /** Whether an earlier run's progress was picked up. */
  readonly resumed: boolean;
  readonly #source: CheckpointSource;
  readonly #overwrite: boolean;
  readonly #maxShardBytes: number;
  readonly #onTensors: ((tensors: readonly CheckpointTensor[]) => void) | undefined;
  readonly #lock: OutputLock;
  #progress: Progress;
  #state: "open" | "finalizing" | "done" | "closed" = "open";
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    outputDir: string,
    workDir: string,
    source: CheckpointSource,
    progress: Progress,
    resumed: boolean,
    overwrite: boolean,
    maxShardBytes: number,
    onTensors: ((tensors: readonly CheckpointTensor[]) => void) | undefined,
    lock: OutputLock,
  ) {
    this.#onTensors = onTensors;
    this.outputDir = outputDir;
    this.workDir = workDir;
    this.#source = source;
    this.#progress = progress;
    this.resumed = resumed;
    this.#overwrite = overwrite;
    this.#maxShardBytes = maxShardBytes;
    this.#lock = lock;
  }

  /**
   * Opens a sink. Refuses an existing output folder unless `overwrite`;
   * with `resume`, picks up the work folder of an earlier run of the same
   * job (same source, shard size and job options), otherwise starts a new
   * one (discarding a stale work folder).
   *
   * @param options output folder, source model, overwrite/resume, shard size, job options
   * @returns the open sink; `doneLayers()` tells which layers can be skipped
   * @throws {CheckpointSinkError} when the output exists without `overwrite`, or the
   *   work folder to resume belongs to another job or is damaged
   * @example
   * ```ts ignore
   * const sink = await CheckpointSink.open({ outputDir: "out", source: model, resume: true });
   * sink.doneLayers(); // e.g. [0, 1, 2]
   * ```
   */
  static async open(options: CheckpointSinkOptions): Promise<CheckpointSink> {
    const warn = options.onWarning ?? ((m: string) => console.warn(m));
    const outputDir = options.outputDir.length > 1
      ? options.outputDir.replace(/\/+$/, "")
      : options.outputDir;
    const overwrite = options.overwrite ?? false;
    const maxShardBytes = options.maxShardBytes ?? 5e9;
    if (!(maxShardBytes > 0) || maxShardBytes > Number.MAX_SAFE_INTEGER) {
      throw new CheckpointSinkError(
        outputDir,
        `maxShardBytes must be positive and at most 2^53 - 1, got ${maxShardBytes}`,
      );
    }
    await assertOutputOutsideInput(options.source.dir, outputDir);
    // finalize rewrites the source's config.json at the very end: parse it now, before any work.
    const sourceConfig = `${options.source.dir}/config.json`;
    checkpointConfigJson(await Deno.readTextFile(sourceConfig), {}, { file: sourceConfig });
    // Everything beside the output belongs to the lock's holder: a second run
    // is refused here, before it can touch the first run's work folder.
    const lock = options.lock ?? await acquireOutputLock(outputDir, warn);
    try {
      return await CheckpointSink.#openLocked(options, outputDir, overwrite, maxShardBytes, lock);
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  static async #openLocked(
    options: CheckpointSinkOptions,
    outputDir: string,
    overwrite: boolean,
    maxShardBytes: number,
    lock: OutputLock,
  ): Promise<CheckpointSink> {
    const warn = options.onWarning ?? ((m: string) => console.warn(m));
    await removeOrphans(outputDir, warn, outputDir + WORK_DIR_SUFFIX);
    if (!overwrite && await exists(outputDir)) {
      throw new CheckpointSinkError(outputDir, "already exists; pass overwrite to replace it");
    }
    const workDir = outputDir + WORK_DIR_SUFFIX;
    const hash = await optionsHash(options.source, maxShardBytes, options.job ?? null);
    const progressPath = `${workDir}/progress.json`;
    let progress: Progress | null = null;
    if (options.resume && await exists(progressPath)) {
      const found = await readProgress(progressPath);
      if (found.optionsHash !== hash) {
        throw new CheckpointSinkError(
          workDir,
          "was started by a different job (source model, recipe or options differ); " +
            "run without resume to start over",
        );
      }
      progress = await verifiedProgress(workDir, found, warn);
    }
    const resumed = progress !== null;
    if (progress === null) {
      if (await exists(workDir)) {
        warn(`${workDir}: discarding the work folder of an earlier run (not resuming)`);
        await Deno.remove(workDir, { recursive: true });
      }
      progress = emptyProgress(hash);
      try {
        for (const sub of ["layers", "groups", "boundary"]) {
          await Deno.mkdir(`${workDir}/${sub}`, { recursive: true });
        }
      } catch (e) {
        throw new CheckpointSinkError(workDir, `cannot create: ${(e as Error).message}`, {
          cause: e,
        });
      }
      await writeProgress(progressPath, progress);
    }
    return new CheckpointSink(
      outputDir,
      workDir,
      options.source,
      progress,
      resumed,
      overwrite,
      maxShardBytes,
      options.onTensors,
      lock,
    );
  }

  /**
   * Ends this run's hold on the output without finalizing: the lock is
   * released and the work folder stays for a later `resume`. Safe to call
   * after `finalize` (which releases the lock itself) and more than once.
   *
   * @example
   * ```ts ignore
   * try { await pipeline.run(sink); await sink.finalize(options); } finally { await sink.close(); }
   * ```
   */
  close(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#state !== "done") this.#state = "closed";
      await this.#lock.release();
    });
  }

  /** Where the finished layers are kept and how to continue or discard them. */
  resumeHint(): string {
    return `the finished layers are kept in ${this.workDir}: rerun the same command with ` +
      `--resume (resume: true) to continue, or delete ${this.workDir} to start over`;
  }

  /**
   * The decoder layers already on disk.
   *
   * @returns their indices, ascending
   * @example
   * ```ts ignore
   * sink.doneLayers(); // [0, 1]
   * ```
   */
  doneLayers(): number[] {
    return Object.keys(this.#progress.layers).map(Number).sort((a, b) => a - b);
  }

  /**
   * Whether decoder layer `k` is already on disk.
   *
   * @param k the layer index
   * @returns true when done
   * @example
   * ```ts ignore
   * if (!sink.isLayerDone(3)) await sink.writeLayer(3, tensors);
   * ```
   */
  isLayerDone(k: number): boolean {
    return Object.hasOwn(this.#progress.layers, String(k));
  }

  /**
   * Whether a non-layer tensor group is already on disk.
   *
   * @param key the group key given to {@link writeTensors}
   * @returns true when done
   * @example
   * ```ts ignore
   * if (!sink.isGroupDone("embed")) await sink.writeTensors("embed", [embed]);
   * ```
   */
  isGroupDone(key: string): boolean {
    return Object.hasOwn(this.#progress.groups, key);
  }

  /**
   * Persists the tensors of finished decoder layer `k` (every tensor named
   * `model.layers.{k}.…`, compressed or copied) and records the layer as done.
   *
   * @param k the layer index, `0 ≤ k < num_hidden_layers`
   * @param tensors the layer's output tensors
   * @throws {CheckpointSinkError} for a bad index, a layer written twice, a
   *   tensor outside the layer, or an I/O failure
   * @example
   * ```ts ignore
   * await sink.writeLayer(0, [{ name: "model.layers.0.input_layernorm.weight", dtype: "F32", shape: [64], data }]);
   * ```
   */
  writeLayer(k: number, tensors: readonly CheckpointTensor[]): Promise<void> {
    return this.#exclusive(async () => {
      this.#assertOpen();
      const n = this.#source.config.numHiddenLayers;
      if (!Number.isSafeInteger(k) || k < 0 || k >= n) {
        throw new CheckpointSinkError(this.outputDir, `layer ${k} is not in 0..${n - 1}`);
      }
      if (this.isLayerDone(k)) {
        throw new CheckpointSinkError(this.outputDir, `layer ${k} was already written`);
      }
      const prefix = layerPrefix(k) + ".";
      for (const t of tensors) {
        if (!t.name.startsWith(prefix)) {
          throw new CheckpointSinkError(
            this.outputDir,
            `tensor '${t.name}' handed in for layer ${k} does not start with '${prefix}'`,
          );
        }
      }
      const file = layerFile(k);
      await this.#writeFile(file, tensors);
      this.#progress = {
        ...this.#progress,
        layers: { ...this.#progress.layers, [String(k)]: file },
      };
      await writeProgress(`${this.workDir}/progress.json`, this.#progress);
      await this.#lock.refresh();
      await crashPoint("layer-written");
    });
  }

  /**
   * Persists tensors that belong to no decoder layer (embeddings, final
   * norm, lm_head) under a key, and records the key as done.
   *
   * @param key a name for the group, e.g. `"embed"`, `"head"` (letters, digits, `_`, `-`)
   * @param tensors the tensors
   * @throws {CheckpointSinkError} for a bad key, a key written twice, a layer
   *   tensor (use {@link writeLayer}) or an I/O failure
   * @example
   * ```ts ignore
   * await sink.writeTensors("final_norm", [{ name: "model.norm.weight", dtype: "F32", shape: [64], data }]);
   * ```
   */
  writeTensors(key: string, tensors: readonly CheckpointTensor[]): Promise<void> {
    return this.#exclusive(async () => {
      this.#assertOpen();
      if (!GROUP_KEY.test(key)) {
        throw new CheckpointSinkError(
          this.outputDir,
          `group key ${JSON.stringify(key)} must be letters, digits, '_' or '-'`,
        );
      }
      if (this.isGroupDone(key)) {
        throw new CheckpointSinkError(this.outputDir, `tensor group '${key}' was already written`);
      }
      for (const t of tensors) {
        if (t.name.startsWith("model.layers.")) {
          throw new CheckpointSinkError(
            this.outputDir,
            `tensor '${t.name}' belongs to a decoder layer; hand it in with writeLayer`,
          );
        }
      }
      const file = `groups/${key}.safetensors`;
      await this.#writeFile(file, tensors);
      this.#progress = {
        ...this.#progress,
        groups: { ...this.#progress.groups, [key]: file },
      };
      await writeProgress(`${this.workDir}/progress.json`, this.#progress);
      await this.#lock.refresh();
    });
  }

  /**
   * Saves the hidden states after decoder layer `k` (the input of layer
   * k+1), so a resumed calibrated run can continue from there. Only the
   * latest boundary is kept.
   *
   * @param k the last finished layer
   * @param bytes the serialized hidden states (the pipeline's own format), or
   *   consecutive parts of them (not modified until the returned promise settles)
   * @throws {CheckpointSinkError} on I/O failure
   * @example
   * ```ts ignore
   * await sink.saveBoundary(3, new Uint8Array(hidden.buffer));
   * ```
   */
  saveBoundary(k: number, bytes: Uint8Array | readonly Uint8Array[]): Promise<void> {
    return this.#exclusive(async () => {
      this.#assertOpen();
      if (!Number.isSafeInteger(k) || k < 0) {
        throw new CheckpointSinkError(this.outputDir, `boundary layer ${k} is not a layer index`);
      }
      const file = boundaryFile(k);
      await writeFileAtomic(`${this.workDir}/${file}`, bytes);
      const old = this.#progress.boundary;
      this.#progress = { ...this.#progress, boundary: { layer: k, file } };
      await writeProgress(`${this.workDir}/progress.json`, this.#progress);
      if (old !== null && old.file !== file) {
        await Deno.remove(`${this.workDir}/${old.file}`).catch(() => {});
      }
    });
  }

  /**
   * Loads the hidden states saved after layer `k`.
   *
   * @param k the layer index
   * @returns the bytes, or null when no boundary for `k` is saved
   * @example
   * ```ts ignore
   * const last = sink.doneLayers().at(-1);
   * const bytes = last === undefined ? null : await sink.loadBoundary(last);
   * ```
   */
  async loadBoundary(k: number): Promise<Uint8Array | null> {
    const b = this.#progress.boundary;
    if (b === null || b.layer !== k) return null;
    try {
      return await Deno.readFile(`${this.workDir}/${b.file}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw new CheckpointSinkError(this.workDir, `cannot read boundary ${b.file}: ${e}`, {
        cause: e,
      });
    }
  }

  /**
   * The latest saved boundary's layer.
   *
   * @returns the layer index, or null when none is saved
   * @example
   * ```ts ignore
   * sink.boundaryLayer(); // 3
   * ```
   */
  boundaryLayer(): number | null {
    return this.#progress.boundary?.layer ?? null;
  }

  /**
   * Assembles the checkpoint and commits it: every tensor is streamed from
   * the work files into `model.safetensors` (or shards plus index) in the
   * order `save_pretrained` uses, config.json gets `quantization_config`,
   * recipe.yaml and the tokenizer/generation files are written, and the
   * folder is renamed into place. The work folder is removed afterwards; on
   * failure nothing appears at the output path and the work folder stays for
   * a resumed finalize.
   *
   * @param options quantization config, recipe text, optional sparsity config and config patch
   * @returns the output folder and what it holds
   * @throws {CheckpointSinkError} when layers are missing or a tensor name repeats
   * @throws {AtomicDirError} (from io) when the output appeared meanwhile or cannot be renamed
   * @example
   * ```ts ignore
   * await sink.finalize({ quantizationConfig: qc, recipeYaml: recipeToYaml(recipe) });
   * ```
   */
  finalize(options: FinalizeOptions): Promise<FinalizeResult> {
    return this.#exclusive(async () => {
      this.#assertOpen();
      const missing: number[] = [];
      for (let k = 0; k < this.#source.config.numHiddenLayers; k++) {
        if (!this.isLayerDone(k)) missing.push(k);
      }
      if (missing.length > 0) {
        throw new CheckpointSinkError(
          this.outputDir,
          `cannot finalize: layer(s) ${missing.join(", ")} were never written`,
        );
      }
      this.#state = "finalizing";
      try {
        const result = await this.#assemble(options);
        this.#state = "done";
        await this.#lock.release();
        return result;
      } catch (e) {
        this.#state = "open";
        throw e;
      }
    });
  }

  async #assemble(options: FinalizeOptions): Promise<FinalizeResult> {
    const files: SafetensorsFile[] = [];
    const out = await atomicOutputDir(this.outputDir, { overwrite: this.#overwrite });
    try {
      const entries: { name: string; dtype: DType; file: SafetensorsFile }[] = [];
      const seen = new Map<string, string>();
      const workFiles = [
        ...Object.values(this.#progress.groups),
        ...this.doneLayers().map((k) => this.#progress.layers[String(k)]),
      ];
      for (const rel of workFiles) {
        const f = await SafetensorsFile.open(`${this.workDir}/${rel}`);
        files.push(f);
        for (const name of f.names()) {
          const prev = seen.get(name);
          if (prev !== undefined) {
            throw new CheckpointSinkError(
              this.outputDir,
              `tensor '${name}' was handed in twice (${prev} and ${rel})`,
            );
          }
          seen.set(name, rel);
          entries.push({ name, dtype: f.info(name).dtype, file: f });
        }
      }
      entries.sort(compareSafetensorsOrder);
      await crashPoint("shards-planned");
      // Every tensor's dtype and shape are in the work files' headers: the
      // shards are written in one pass, each tensor read when its turn comes.
      const written = await writePlannedSafetensors(
        out.tmpDir,
        entries.map(({ name, dtype, file }) => ({
          name,
          dtype,
          shape: file.info(name).shape,
          read: () => file.readRaw(name),
        })),
        { maxShardBytes: this.#maxShardBytes },
      );
      await crashPoint("shards-written");
      const sourceConfig = `${this.#source.dir}/config.json`;
      const qc: JsonObject = { ...options.quantizationConfig };
      if (options.sparsityConfig !== undefined) qc.sparsity_config = options.sparsityConfig;
      const configText = checkpointConfigJson(await Deno.readTextFile(sourceConfig), qc, {
        configPatch: options.configPatch,
        file: sourceConfig,
        omitNullDtypes: options.omitNullDtypes,
      });
      await Deno.writeTextFile(`${out.tmpDir}/config.json`, configText);
      await Deno.writeTextFile(`${out.tmpDir}/recipe.yaml`, options.recipeYaml);
      for (const aux of auxiliaryFiles(this.#source.dir)) {
        const name = aux.slice(aux.lastIndexOf("/") + 1);
        await Deno.copyFile(aux, `${out.tmpDir}/${name}`);
      }
      for (const f of files) f.close();
      files.length = 0;
      await crashPoint("before-commit");
      // The work folder goes aside first: once the output is committed, nothing
      // of this run may be mistaken for a resumable one. If the process dies in
      // between, removeOrphans tells the two cases apart by whether
      // out.tmpDir still exists (see DONE_DIR_MARKER).
      const aside = `${this.outputDir}${DONE_DIR_MARKER}${Deno.pid}`;
      await Deno.rename(this.workDir, aside);
      await crashPoint("work-moved");
      try {
        await out.commit();
      } catch (e) {
        await Deno.rename(aside, this.workDir).catch(() => {});
        throw e;
      }
      await crashPoint("committed");
      await Deno.remove(aside, { recursive: true }).catch(() => {});
      await crashPoint("work-removed");
      return {
        outputDir: this.outputDir,
        files: written.files.map((p) => p.slice(p.lastIndexOf("/") + 1)),
        totalSize: written.totalSize,
        tensorCount: entries.length,
      };
    } catch (e) {
      await out.abort().catch(() => {});
      throw e;
    } finally {
      for (const f of files) f.close();
    }
  }

  async #writeFile(rel: string, tensors: readonly CheckpointTensor[]): Promise<void> {
    const names = new Set<string>();
    for (const t of tensors) {
      if (names.has(t.name)) {
        throw new CheckpointSinkError(this.outputDir, `tensor '${t.name}' is given twice`);
      }
      names.add(t.name);
    }
    // Sorted already here so the work file reads in the final order.
    const sorted = [...tensors].sort(compareSafetensorsOrder)
      .map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: t.data }));
    await writeSafetensors(`${this.workDir}/${rel}`, sorted, { overwrite: true });
    this.#onTensors?.(tensors);
  }

  #assertOpen(): void {
    if (this.#state !== "open") {
      throw new CheckpointSinkError(
        this.outputDir,
        this.#state === "done"
          ? "the checkpoint was already finalized"
          : this.#state === "closed"
          ? "the sink was closed"
          : "finalize is running",
      );
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // One progress record: operations run one at a time, in call order.
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/** Drops entries whose files vanished (a crash between file and record cannot cause this, but a user might). */
async function verifiedProgress(
  workDir: string,
  p: Progress,
  warn: (m: string) => void,
): Promise<Progress> {
  const keep = async (rec: Readonly<Record<string, string>>) => {
    const out: Record<string, string> = {};
    for (const [k, f] of Object.entries(rec)) {
      if (await exists(`${workDir}/${f}`)) out[k] = f;
      else warn(`${workDir}: ${f} is missing; redoing '${k}'`);
    }
    return out;
  };
  const boundary = p.boundary !== null && await exists(`${workDir}/${p.boundary.file}`)
    ? p.boundary
    : null;
  for (const sub of ["layers", "groups", "boundary"]) {
    await Deno.mkdir(`${workDir}/${sub}`, { recursive: true });
  }
  const verified = {
    ...p,
    layers: await keep(p.layers),
    groups: await keep(p.groups),
    boundary,
  };
  // Files the dead run had not recorded (half-written `*.tmp-<pid>`, a boundary
  // replaced but not yet deleted) are redone or unneeded: remove them.
  const known = new Set([
    ...Object.values(verified.layers),
    ...Object.values(verified.groups),
    ...(boundary === null ? [] : [boundary.file]),
  ]);
  for (const sub of ["layers", "groups", "boundary"]) {
    for await (const e of Deno.readDir(`${workDir}/${sub}`)) {
      if (!known.has(`${sub}/${e.name}`)) {
        await Deno.remove(`${workDir}/${sub}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
  }
  for await (const e of Deno.readDir(workDir)) {
    if (/\.tmp-\d+$/.test(e.name)) await Deno.remove(`${workDir}/${e.name}`).catch(() => {});
  }
  return verified;
}
