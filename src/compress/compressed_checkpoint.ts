/**
 * Reads a compressed-tensors checkpoint back as dense float32 weights, the
 * way compressed-tensors' decompression does when transformers loads it. It
 * is a `WeightSource`, so the model runner evaluates a checkpoint llmc (or
 * llm-compressor) wrote without a separate conversion step.
 *
 * @module
 */

import { HfModel } from "../io/hf_model.ts";
import type { DType } from "../io/dtype.ts";
import type { ModelConfig } from "../io/model_config.ts";
import { bytesToF32 } from "../io/tensor_bytes.ts";
import { isMapping } from "../quant/args.ts";
import { isCompressionFormat, type ModuleFormat } from "../quant/compression_format.ts";
import { findMatchingScheme } from "../quant/match.ts";
import { presetScheme } from "../quant/presets.ts";
import { parseQuantizationScheme, type QuantizationScheme } from "../quant/scheme.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { decompressModule } from "./compress_module.ts";
import { CompressionError } from "./errors.ts";

/** Tensor suffixes that replace or accompany `P.weight` in a compressed module. */
const MODULE_SUFFIXES = [
  "weight",
  "weight_packed",
  "weight_shape",
  "weight_scale",
  "weight_zero_point",
  "weight_global_scale",
  "weight_g_idx",
  "shape",
  "compressed",
  "bitmask",
  "row_offsets",
];

/**
 * Where a checkpoint's tensors come from: a folder of safetensors files
 * ({@link HfModel}) or tensors held in memory.
 */
export interface CheckpointTensorStore {
  /** The parsed config.json. */
  readonly config: ModelConfig;
  /** The folder (for messages). */
  readonly dir: string;
  /** Every tensor name. */
  tensorNames(): readonly string[];
  /** Whether a tensor of that name exists. */
  has(name: string): boolean;
  /** A tensor's dtype and shape. */
  info(name: string): { readonly dtype: DType; readonly shape: readonly number[] };
  /** A tensor's bytes as stored. */
  readRaw(name: string): Promise<Uint8Array>;
  /** A tensor's values as float32. */
  readF32(name: string): Promise<Float32Array>;
  /** Releases files. */
  close(): void;
}

/** A tensor held in memory: name, safetensors dtype, shape and little-endian bytes. */
export interface MemoryTensor {
  /** Full tensor name. */
  readonly name: string;
  /** safetensors dtype. */
  readonly dtype: DType;
  /** Shape, row-major. */
  readonly shape: readonly number[];
  /** The bytes. */
  readonly data: Uint8Array;
}

/** Tensors in memory, falling back to a folder for the names they lack. */
class MemoryTensorStore implements CheckpointTensorStore {
  readonly #tensors: ReadonlyMap<string, MemoryTensor>;
  readonly #fallback: HfModel | null;

  constructor(
    readonly config: ModelConfig,
    readonly dir: string,
    tensors: Iterable<MemoryTensor>,
    fallback: HfModel | null,
  ) {
    this.#tensors = new Map([...tensors].map((t) => [t.name, t]));
    this.#fallback = fallback;
  }

  tensorNames(): readonly string[] {
    const names = new Set(this.#tensors.keys());
    for (const n of this.#fallback?.tensorNames() ?? []) names.add(n);
    return [...names];
  }

  has(name: string): boolean {
    return this.#tensors.has(name) || (this.#fallback?.has(name) ?? false);
  }

  info(name: string): { readonly dtype: DType; readonly shape: readonly number[] } {
    return this.#tensors.get(name) ?? this.#require(name).info(name);
  }

  readRaw(name: string): Promise<Uint8Array> {
    const t = this.#tensors.get(name);
    // A copy: the caller may keep or release what it reads.
    return t ? Promise.resolve(t.data.slice()) : this.#require(name).readRaw(name);
  }

  readF32(name: string): Promise<Float32Array> {
    const t = this.#tensors.get(name);
    return t ? Promise.resolve(bytesToF32(t.dtype, t.data)) : this.#require(name).readF32(name);
  }

  close(): void {
    this.#fallback?.close();
  }

  #require(name: string): HfModel {
    if (this.#fallback === null) {
      throw new CompressionError(`${this.dir}: no tensor '${name}' in the in-memory checkpoint`);
    }
    return this.#fallback;
  }
}

/**
 * A compressed-tensors checkpoint folder seen as dense float32 tensors: each
 * quantized or sparse module's `P.weight` is decompressed on request; every
 * other tensor is read as stored. Unquantized checkpoints pass through.
 *
 * @example
 * ```ts ignore
 * import { CompressedCheckpoint } from "./compressed_checkpoint.ts";
 * const ckpt = await CompressedCheckpoint.open("out/stories-w4a16");
 * const w = await ckpt.readF32("model.layers.0.self_attn.q_proj.weight");
 * ckpt.close();
 * ```
 */
export class CompressedCheckpoint {
  readonly #store: CheckpointTensorStore;
  readonly #groups: QuantizationScheme[];
  readonly #ignore: string[];
  readonly #globalFormat: ModuleFormat | null;
  readonly #compressedPrefixes: Set<string>;

  private constructor(model: CheckpointTensorStore) {
    this.#store = model;
    const qc = model.config.raw.quantization_config;
    const where = `${model.dir}/config.json: quantization_config`;
    this.#groups = [];
    this.#ignore = [];
    this.#globalFormat = null;
    if (qc !== undefined && qc !== null) {
      if (!isMapping(qc)) throw new CompressionError(`${where}: expected an object`);
      const groups = qc.config_groups ?? {};
      if (!isMapping(groups)) {
        throw new CompressionError(`${where}.config_groups: expected an object`);
      }
      for (const [name, raw] of Object.entries(groups)) {
        // A preset name may stand for a scheme: {"W4A16": ["Linear"]}.
        this.#groups.push(
          Array.isArray(raw)
            ? presetScheme(name, raw.map(String))
            : parseQuantizationScheme(raw, `${where}.config_groups.${name}`),
        );
      }
      const ignore = qc.ignore ?? [];
      if (!Array.isArray(ignore)) throw new CompressionError(`${where}.ignore: expected a list`);
      this.#ignore = ignore.map(String);
      const fmt = qc.format;
      if (isCompressionFormat(fmt) && fmt !== "mixed-precision") this.#globalFormat = fmt;
    }
    this.#compressedPrefixes = new Set();
    for (const name of model.tensorNames()) {
      const m = /^(.*)\.(weight_packed|compressed)$/.exec(name);
      if (m) this.#compressedPrefixes.add(m[1]);
      else if (name.endsWith(".weight") && model.info(name).dtype !== "F32") {
        const prefix = name.slice(0, -".weight".length);
        if (model.has(`${prefix}.weight_scale`)) this.#compressedPrefixes.add(prefix);
      }
    }
  }

  /**
   * Opens a checkpoint folder (config.json + safetensors).
   *
   * @param dir the folder
   * @returns the dense view of the checkpoint
   */
  static async open(dir: string): Promise<CompressedCheckpoint> {
    return new CompressedCheckpoint(await HfModel.open(dir));
  }

  /**
   * A checkpoint whose tensors are in memory (e.g. what a run just wrote),
   * read the same way as a folder; names missing from `tensors` are read
   * from `fallback` (a run's resumed layers, which only the folder has).
   *
   * @param config the checkpoint's config.json, parsed (with its `quantization_config`)
   * @param dir the folder it was written to, for messages
   * @param tensors the tensors, as written
   * @param fallback the written folder, opened, or null; closed by {@link close}
   * @returns the dense view of the checkpoint
   * @example
   * ```ts ignore
   * const ckpt = CompressedCheckpoint.fromTensors(config, "out/x", tensors, null);
   * const model = await DecoderModel.load(ckpt);
   * ```
   */
  static fromTensors(
    config: ModelConfig,
    dir: string,
    tensors: Iterable<MemoryTensor>,
    fallback: HfModel | null,
  ): CompressedCheckpoint {
    return new CompressedCheckpoint(new MemoryTensorStore(config, dir, tensors, fallback));
  }

  /** The parsed config.json. */
  get config(): ModelConfig {
    return this.#store.config;
  }

  /** The folder. */
  get dir(): string {
    return this.#store.dir;
  }

  /** Whether any module is stored compressed. */
  get isCompressed(): boolean {
    return this.#compressedPrefixes.size > 0;
  }

  /**
   * Whether a dense tensor of that name exists (a compressed module's
   * `P.weight` counts, though it is stored under other names).
   *
   * @param name the HF tensor name
   * @returns true when `readF32(name)` succeeds
   */
  has(name: string): boolean {
    return this.#store.has(name) || this.#compressedPrefixes.has(stripWeight(name) ?? "");
  }

  /**
   * A tensor as dense float32: decompressed for compressed modules' weights.
   *
   * @param name the HF tensor name, e.g. `model.layers.0.mlp.up_proj.weight`
   * @returns the values, row-major
   */
  async readF32(name: string): Promise<Float32Array> {
    const prefix = stripWeight(name);
    if (prefix === null || !this.#compressedPrefixes.has(prefix)) {
      return await this.#store.readF32(name);
    }
    const scheme = findMatchingScheme(prefix, "Linear", this.#groups, this.#ignore);
    const tensors: CompressedTensor[] = [];
    for (const suffix of MODULE_SUFFIXES) {
      const t = `${prefix}.${suffix}`;
      if (!this.#store.has(t)) continue;
      const info = this.#store.info(t);
      tensors.push({
        name: t,
        dtype: info.dtype,
        shape: [...info.shape],
        data: await this.#store.readRaw(t),
      });
    }
    if (scheme === null) {
      // Sparse-only modules have no quantization scheme.
      return decompressModule(prefix, tensors, NO_SCHEME, null).weight;
    }
    const format = scheme.format ?? this.#globalFormat;
    if (format === "marlin-24") {
      throw new CompressionError(
        `${this.dir}: ${prefix} is stored as marlin-24, which has no decompression ` +
          `(compressed-tensors has none either)`,
      );
    }
    return decompressModule(prefix, tensors, scheme, format).weight;
  }

  /** Closes the underlying files. */
  close(): void {
    this.#store.close();
  }
}

const NO_SCHEME: QuantizationScheme = {
  targets: [],
  weights: null,
  inputActivations: null,
  outputActivations: null,
  format: null,
};

function stripWeight(name: string): string | null {
  return name.endsWith(".weight") ? name.slice(0, -".weight".length) : null;
}
