/**
 * A Llama-family decoder (llama, mistral, qwen2, qwen3) that runs on a
 * compute engine (src/engine: WebGPU or CPU) one layer at a time: `embed`, then `runLayer(k, …)` for each layer, then
 * `head` (logits on the GPU), `logits` (read back) or `nll` (perplexity). This is the API the sequential
 * calibration pipeline and the compression modifiers build on.
 *
 * Memory: weights are on the GPU only while their layer runs. Each
 * `runLayer` reads its layer's tensors from the checkpoint one at a time,
 * uploading each and freeing its host copy at once (when the source hands
 * out arrays it no longer uses: see `WeightSource.returnsFreshArrays`),
 * records the layer into one command batch, submits it and releases the
 * weights, whose buffers the next layer reuses. Before uploading, it waits
 * for the GPU when more than 64 MiB were uploaded since it was last idle:
 * a layer larger than that never overlaps another, while a small model runs
 * many layers per device poll (each awaited poll costs about 11 ms on
 * llvmpipe). Calls with weights already on the GPU (`LayerWeights`, as the
 * calibration graph passes) upload nothing and do not wait. The embedding
 * table and lm_head are streamed when `embed`/`head`/`logits`/`nll` need
 * them, in row blocks of at most 16 MiB (embed reads only the blocks its ids
 * fall in; the others compute the logits one vocabulary block at a time, and
 * `logits` and `nll` never hold whole logits on the GPU), so neither is
 * ever whole on the GPU.
 *
 * @module
 */

import { type Engine, MAX_HEAD_DIM, type Tensor } from "../engine/engine.ts";
import { type OnlineApplication, onlineTransformPlan } from "../transform/online_transforms.ts";
import { createEngine } from "../engine/choose.ts";
import { HfModel } from "../io/hf_model.ts";
import type { ModelConfig } from "../io/model_config.ts";
import { encodeDecoderLayer } from "./decoder_layer.ts";
import { layerTensorShapes } from "./layer_tensors.ts";
import { LayerWeights } from "./layer_weights.ts";
import { DecoderModelError } from "./model_error.ts";
import { OnlineRotations } from "./online_rotations.ts";
import { readMatrixRows } from "./matrix_rows.ts";
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD } from "./module_names.ts";
import { ropeTable } from "./rope.ts";
import type { RunLayerOptions } from "./taps.ts";
import { releaseRead, type WeightSource } from "./weight_source.ts";

/** How `hidden` tensors are split into sequences. */
interface Layout {
  sequences: number;
  seqLen: number;
}

/** Largest block of logits `head` and `nll` make at once. */
const NLL_CHUNK_BYTES = 64 * 2 ** 20;
/** Weights uploaded while earlier GPU work may still run, before an upload waits for it. */
const UPLOADS_IN_FLIGHT_BYTES = 64 * 2 ** 20;
/** Largest block of the embedding table or lm_head read and uploaded at once. */
const STREAM_BLOCK_BYTES = 16 * 2 ** 20;

// Shared by all models, so a hidden state can move between two instances.
const layouts = new WeakMap<Tensor, Layout>();

/**
 * A decoder checkpoint bound to a compute engine.
 *
 * @example
 * ```ts ignore
 * import { DecoderModel } from "./decoder_model.ts";
 * const model = await DecoderModel.load("/work/shared/models/stories260K");
 * const ids = new Int32Array([1, 403, 407]);
 * let hidden = await model.embed(ids, 1, ids.length);
 * for (let k = 0; k < model.config.numHiddenLayers; k++) {
 *   const next = await model.runLayer(k, hidden, {
 *     taps: (e) => { if (e.kind === "linear_input") console.log(e.modules); },
 *   });
 *   hidden.destroy();
 *   hidden = next;
 * }
 * const [logits] = await model.engine.read([await model.head(hidden)]);
 * model.close();
 * ```
 */
export class DecoderModel {
  readonly #ropeTables = new Map<number, { cos: Tensor; sin: Tensor }>();
  #inflight: Promise<{ error: unknown } | null> | null = null;
  #uploadedSinceIdle = 0;

  private constructor(
    /** The engine the model runs on. */
    readonly engine: Engine,
    /** Where tensors are read from. */
    readonly source: WeightSource,
    private readonly ownsSource: boolean,
    private readonly streamBlockBytes: number,
    private readonly uploadsInFlightBytes: number,
    /** The checkpoint's online transforms by layer (transform_config). */
    private readonly online: ReadonlyMap<number, OnlineApplication[]>,
  ) {}

  /**
   * Opens a checkpoint folder (or wraps an open one) and binds it to an
   * engine. No weights are read yet.
   *
   * @param model a Hugging Face model folder, or an open {@link WeightSource} such as `HfModel`
   * @param engine the engine; default the fastest for the machine
   *   (`createEngine` of src/engine/choose.ts: WebGPU on a hardware adapter,
   *   the CPU engine otherwise)
   * @param options `streamBlockBytes`: the largest block of the embedding
   *   table or lm_head read and uploaded at once (default 16 MiB);
   *   `uploadsInFlightBytes`: weights uploaded while earlier GPU work may
   *   still run before an upload waits for it (default 64 MiB);
   *   `closeSource`: close the source (it needs a `close()`) with the model,
   *   as for a folder it opened (default: only then)
   * @returns the model
   * @throws {DecoderModelError} when the config is outside what the kernels support
   * @example
   * ```ts ignore
   * import { DecoderModel } from "./decoder_model.ts";
   * const model = await DecoderModel.load("/models/Llama-3.2-1B");
   * ```
   */
  static async load(
    model: string | WeightSource,
    engine?: Engine,
    options: { streamBlockBytes?: number; uploadsInFlightBytes?: number; closeSource?: boolean } =
      {},
  ): Promise<DecoderModel> {
    const source = typeof model === "string" ? await HfModel.open(model) : model;
    try {
      const config = source.config;
      if (config.headDim % 4 !== 0 || config.headDim > MAX_HEAD_DIM) {
        throw new DecoderModelError(
          `config head_dim ${config.headDim}: llmc's attention kernel needs a multiple of 4 ` +
            `up to ${MAX_HEAD_DIM}`,
        );
      }
      // Online transforms (R3, R4, QuIP) of the checkpoint's transform_config run in runLayer.
      const online = onlineTransformPlan(config);
      const bound = engine ?? (await createEngine({ headDims: [config.headDim] })).engine;
      return new DecoderModel(
        bound,
        source,
        options.closeSource ?? typeof model === "string",
        options.streamBlockBytes ?? STREAM_BLOCK_BYTES,
        options.uploadsInFlightBytes ?? UPLOADS_IN_FLIGHT_BYTES,
        online,
      );
    } catch (e) {
      if (typeof model === "string") (source as HfModel).close();
      throw e;
    }
  }

  /** The model's config. */
  get config(): ModelConfig {
    return this.source.config;
  }

  /** The number of decoder layers. */
  get numLayers(): number {
    return this.source.config.numHiddenLayers;
  }

  /**
   * Embeds `batch` equal-length sequences: row `b · seqLen + t` is the
   * embedding of `ids[b · seqLen + t]`.
   *
   * @param ids token ids, [batch · seqLen]
   * @param batch the number of sequences
   * @param seqLen tokens per sequence
   * @returns the hidden state, [batch · seqLen, hidden] (the caller owns it)
   * @throws {DecoderModelError} for a bad shape or an id outside the vocabulary
   * @example
   * ```ts ignore
   * const hidden = await model.embed(new Int32Array([1, 2, 1, 3]), 2, 2);
   * ```
   */
  async embed(
    ids: Int32Array,
    batch: number = 1,
    seqLen: number = ids.length / batch,
  ): Promise<Tensor> {
    const layout = this.#checkIds(ids, batch, seqLen);
    const { vocabSize: V, hiddenSize: H } = this.config;
    // Stream the table in row blocks, skipping blocks no id falls in.
    const chunkRows = this.#streamRows(H);
    const blocks = [...new Set(Array.from(ids, (id) => Math.floor(id / chunkRows)))].sort((a, b) =>
      a - b
    );
    const idsGpu = this.engine.upload(ids, [ids.length]);
    const out = this.engine.allocate([ids.length, H]);
    try {
      for (const block of blocks) {
        const row0 = block * chunkRows;
        const rows = Math.min(chunkRows, V - row0);
        const data = await readMatrixRows(this.source, EMBED_TOKENS, H, row0, rows);
        await this.#beforeUpload(data.byteLength);
        const table = this.engine.upload(data, [rows, H]);
        releaseRead(this.source, data);
        this.engine.embeddingGather(table, row0, idsGpu, out);
        table.destroy();
        this.#submit();
      }
    } catch (e) {
      out.destroy();
      throw e;
    } finally {
      idsGpu.destroy();
    }
    layouts.set(out, layout);
    return out;
  }

  /**
   * Runs decoder layer `k` on `hidden`, with the checkpoint's weights or
   * substituted ones, showing its activations to `options.taps`.
   *
   * @param k the layer index, 0 … numLayers − 1
   * @param hidden the layer's input, [sequences · seqLen, hidden]; not modified or destroyed
   * @param options taps, substituted weights, a Linear-input transform, the sequence count
   * @returns the layer's output, [sequences · seqLen, hidden] (the caller owns it)
   * @throws {DecoderModelError} for a bad layer index, shape or weight
   * @example
   * ```ts ignore
   * const out = await model.runLayer(0, hidden, {
   *   weights: new Map([["model.layers.0.mlp.down_proj.weight", fakeQuantized]]),
   * });
   * ```
   */
  async runLayer(k: number, hidden: Tensor, options: RunLayerOptions = {}): Promise<Tensor> {
    if (!Number.isInteger(k) || k < 0 || k >= this.numLayers) {
      throw new DecoderModelError(`runLayer: layer ${k} is outside 0..${this.numLayers - 1}`);
    }
    const layout = this.#layoutOf(hidden, options.sequences, "runLayer");
    if (options.normed !== undefined && options.part !== "self_attn" && options.part !== "mlp") {
      throw new DecoderModelError(
        `runLayer(${k}): a given RMSNorm output (normed) needs part "self_attn" or "mlp", ` +
          `not ${JSON.stringify(options.part ?? "layer")}`,
      );
    }
    const given = options.weights instanceof LayerWeights ? options.weights : null;
    if (given && given.layer !== k) {
      throw new DecoderModelError(`runLayer(${k}): given LayerWeights are layer ${given.layer}`);
    }
    // Given weights upload nothing: calls with them queue up without waiting
    // (each awaited submit costs a device poll).
    let weights = given;
    if (weights === null) {
      let bytes = 0;
      for (const shape of layerTensorShapes(this.config, k).values()) {
        bytes += shape.reduce((a, b) => a * b, 4);
      }
      await this.#beforeUpload(bytes);
      weights = await LayerWeights.load(
        this.engine,
        this.source,
        k,
        options.weights as ReadonlyMap<string, Float32Array> | undefined,
      );
    }
    let out: Tensor;
    let online: OnlineRotations | undefined;
    try {
      const applications = this.online.get(k);
      if (applications !== undefined) {
        online = await OnlineRotations.load(this.engine, this.source, applications);
      }
      const { cos, sin } = this.#rope(layout.seqLen);
      out = encodeDecoderLayer(
        {
          config: this.config,
          engine: this.engine,
          cos,
          sin,
          sequences: layout.sequences,
          seqLen: layout.seqLen,
          taps: options.taps,
          transformLinearInput: options.transformLinearInput,
          moeCalibrateAllExperts: options.moeCalibrateAllExperts,
          online,
          moeExperts: options.moeExperts,
          part: options.part,
          normed: options.normed,
          resume: options.resume,
        },
        weights,
        hidden,
      );
    } finally {
      if (!given) weights.destroy();
      online?.destroy();
      // Flushed even when recording failed, so the engine lets go of its buffers.
      this.#submit();
    }
    layouts.set(out, layout);
    return out;
  }

  /**
   * The final RMSNorm followed by lm_head (the embedding table when tied).
   *
   * @param hidden the last layer's output, [rows, hidden]; not destroyed
   * @returns logits, [rows, vocab] (the caller owns it)
   * @throws {DecoderModelError} when rows · vocab floats exceed one storage binding (use `nll`)
   * @example
   * ```ts ignore
   * const [logits] = await model.engine.read([await model.head(hidden)]);
   * ```
   */
  async head(hidden: Tensor): Promise<Tensor> {
    const rows = this.#checkHidden(hidden, "head");
    const V = this.config.vocabSize;
    const limit = this.engine.maxTensorBytes;
    if (rows * V * 4 > limit) {
      throw new DecoderModelError(
        `head: logits [${rows}, ${V}] exceed one storage binding (${limit} bytes); ` +
          "run fewer tokens at a time, or use nll() which works in vocabulary blocks",
      );
    }
    const normed = await this.finalNorm(hidden);
    let logits: Tensor | null = null;
    try {
      await this.#forEachHeadBlock(rows, (w, v0, first, last) => {
        const y = this.engine.matmul(normed, w);
        if (first && last) {
          logits = y;
          return;
        }
        logits ??= this.engine.allocate([rows, V]);
        this.engine.copyColumns(y, logits, v0);
        y.destroy();
      });
    } catch (e) {
      (logits as Tensor | null)?.destroy();
      throw e;
    } finally {
      normed.destroy();
    }
    return logits!;
  }

  /**
   * The final RMSNorm only: transformers' last `output_hidden_states` entry.
   *
   * @param hidden the last layer's output, [rows, hidden]; not destroyed
   * @returns the normed hidden state (the caller owns it)
   * @example
   * ```ts ignore
   * const normed = await model.finalNorm(hidden);
   * ```
   */
  async finalNorm(hidden: Tensor): Promise<Tensor> {
    this.#checkHidden(hidden, "finalNorm");
    const H = this.config.hiddenSize;
    const data = await this.source.readF32(FINAL_NORM);
    if (data.length !== H) {
      throw new DecoderModelError(`${FINAL_NORM}: expected [${H}], got ${data.length} values`);
    }
    const norm = this.engine.upload(data, [H]);
    const out = this.engine.rmsnorm(hidden, norm, this.config.rmsNormEps);
    norm.destroy();
    this.#submit();
    return out;
  }

  /**
   * Runs every layer from the embedding to the classifier and reads the
   * logits back.
   *
   * @param ids token ids, [sequences · seqLen]
   * @param sequences the number of equal-length sequences; default 1
   * @returns logits, [sequences · seqLen, vocab]
   * @example
   * ```ts ignore
   * const logits = await model.forward(new Int32Array([1, 403, 407]));
   * ```
   */
  async forward(ids: Int32Array, sequences = 1): Promise<Float32Array> {
    const hidden = await this.#layers(ids, sequences);
    try {
      return await this.logits(hidden);
    } finally {
      hidden.destroy();
    }
  }

  /**
   * The final RMSNorm and lm_head, read back: what `head` computes, but
   * each vocabulary block's logits come straight back into the result, so
   * whole logits never sit on the GPU, nor in a staging copy, next to the
   * host array (a readback stages its bytes about twice on llvmpipe). One
   * device poll per block of lm_head.
   *
   * @param hidden the last layer's output, [rows, hidden]; not destroyed
   * @returns logits, [rows, vocab]
   * @example
   * ```ts ignore
   * const logits = await model.logits(hidden);
   * ```
   */
  async logits(hidden: Tensor): Promise<Float32Array> {
    const rows = this.#checkHidden(hidden, "logits");
    const V = this.config.vocabSize;
    const normed = await this.finalNorm(hidden);
    try {
      const logits = new Float32Array(rows * V);
      await this.#forEachHeadBlock(rows, (w, v0) => {
        const y = this.engine.matmul(normed, w);
        const n = w.shape[0];
        const read = this.engine.read([y]).then(([block]) => {
          for (let r = 0; r < rows; r++) {
            logits.set(block.subarray(r * n, (r + 1) * n), r * V + v0);
          }
        });
        y.destroy();
        return read;
      });
      return logits;
    } finally {
      normed.destroy();
    }
  }

  /**
   * Per-token negative log-likelihood, computed on the GPU: the logits are
   * made one vocabulary block at a time and folded into a running
   * log-softmax per token, and only the NLL values come back.
   *
   * @param ids token ids, [sequences · seqLen]
   * @param sequences the number of equal-length sequences; default 1
   * @param options `maxLogitsBytes`: the largest block of logits made at
   *   once (default 64 MiB, capped by the storage binding limit)
   * @returns NLL of predicting token t+1 at position t, [sequences · (seqLen − 1)]
   * @example
   * ```ts ignore
   * const nll = await model.nll(window);
   * const ppl = Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length);
   * ```
   */
  async nll(
    ids: Int32Array,
    sequences = 1,
    options: { maxLogitsBytes?: number } = {},
  ): Promise<Float32Array> {
    const seqLen = ids.length / sequences;
    if (seqLen < 2) throw new DecoderModelError(`nll: sequences need >= 2 tokens, got ${seqLen}`);
    const rows = ids.length;
    const targets = new Int32Array(rows);
    for (let r = 0; r < rows; r++) targets[r] = r % seqLen === seqLen - 1 ? -1 : ids[r + 1];
    const hidden = await this.#layers(ids, sequences);
    const temps: Tensor[] = [hidden];
    try {
      const normed = await this.finalNorm(hidden);
      temps.push(normed);
      const targetsGpu = this.engine.upload(targets, [rows]);
      const state = this.engine.allocate([rows, 3]);
      const nll = this.engine.allocate([rows]);
      temps.push(targetsGpu, state, nll);
      await this.#forEachHeadBlock(rows, (w, v0, first, last) => {
        const logits = this.engine.matmul(normed, w);
        this.engine.logSoftmaxNll(logits, targetsGpu, state, nll, v0, first, last);
        logits.destroy();
      }, options.maxLogitsBytes);
      const [host] = await this.engine.read([nll]);
      const out = new Float32Array(sequences * (seqLen - 1));
      for (let b = 0; b < sequences; b++) {
        out.set(host.subarray(b * seqLen, (b + 1) * seqLen - 1), b * (seqLen - 1));
      }
      return out;
    } finally {
      for (const t of temps) t.destroy();
    }
  }

  /**
   * Releases the cached RoPE tables and closes the checkpoint when
   * {@link DecoderModel.load} opened it (or was asked to with `closeSource`). Work already submitted still
   * completes; tensors the caller holds stay valid.
   *
   * @example
   * ```ts ignore
   * model.close();
   * ```
   */
  close(): void {
    for (const { cos, sin } of this.#ropeTables.values()) {
      cos.destroy();
      sin.destroy();
    }
    this.#ropeTables.clear();
    if (this.ownsSource) (this.source as WeightSource & { close(): void }).close();
  }

  /**
   * Waits until every batch this model submitted has finished on the GPU.
   *
   * @returns resolves when idle; rejects with the GPU's error if one failed
   * @example
   * ```ts ignore
   * await model.idle();
   * ```
   */
  idle(): Promise<void> {
    return this.#settle();
  }

  // ------------------------------------------------------------------ private

  async #layers(ids: Int32Array, sequences: number): Promise<Tensor> {
    let hidden = await this.embed(ids, sequences, ids.length / sequences);
    try {
      for (let k = 0; k < this.numLayers; k++) {
        const next = await this.runLayer(k, hidden);
        hidden.destroy();
        hidden = next;
      }
    } catch (e) {
      hidden.destroy();
      throw e;
    }
    return hidden;
  }

  /**
   * Streams lm_head (the embedding table when tied) in vocabulary blocks:
   * reads a block, uploads it (see #beforeUpload), lets `use` record its
   * work on the engine, flushes, and waits for what `use` returned, if
   * anything, before the next block. Blocks hold at
   * most `streamBlockBytes` of weights and make at most `maxLogitsBytes` of
   * logits for `rows` rows, so neither the whole lm_head nor whole logits
   * need to exist at once.
   */
  async #forEachHeadBlock(
    rows: number,
    use: (
      weight: Tensor,
      v0: number,
      first: boolean,
      last: boolean,
    ) => void | Promise<void>,
    maxLogitsBytes = NLL_CHUNK_BYTES,
  ): Promise<void> {
    const name = this.config.tieWordEmbeddings ? EMBED_TOKENS : LM_HEAD;
    const { hiddenSize: H, vocabSize: V } = this.config;
    const logitsLimit = Math.min(maxLogitsBytes, this.engine.maxTensorBytes);
    const blockRows = Math.max(
      1,
      Math.min(this.#streamRows(H), Math.floor(logitsLimit / (rows * 4))),
    );
    for (let v0 = 0; v0 < V; v0 += blockRows) {
      const n = Math.min(blockRows, V - v0);
      const data = await readMatrixRows(this.source, name, H, v0, n);
      await this.#beforeUpload(data.byteLength);
      const weight = this.engine.upload(data, [n, H]);
      releaseRead(this.source, data);
      let pending: void | Promise<void>;
      try {
        pending = use(weight, v0, v0 === 0, v0 + n === V);
      } finally {
        weight.destroy();
      }
      this.#submit();
      await pending;
    }
  }

  /** Rows per streamed block of a [*, cols] matrix. */
  #streamRows(cols: number): number {
    const limit = Math.min(this.streamBlockBytes, this.engine.maxTensorBytes);
    return Math.max(1, Math.floor(limit / (cols * 4)));
  }

  #rope(seqLen: number): { cos: Tensor; sin: Tensor } {
    let t = this.#ropeTables.get(seqLen);
    if (!t) {
      // dynamic NTK scaling depends on seqLen; the others only need the rows.
      const table = ropeTable(this.config, seqLen);
      const shape = [seqLen, table.half];
      t = {
        cos: this.engine.upload(table.cos, shape),
        sin: this.engine.upload(table.sin, shape),
      };
      // Keep a few lengths: calibration and generation revisit the same ones.
      if (this.#ropeTables.size >= 4) {
        const [oldest, old] = this.#ropeTables.entries().next().value!;
        old.cos.destroy();
        old.sin.destroy();
        this.#ropeTables.delete(oldest);
      }
      this.#ropeTables.set(seqLen, t);
    }
    return t;
  }

  #submit(): void {
    // Errors surface at the next #settle(); the handler keeps them from being
    // unhandled. Work flushed without a settle in between is all waited
    // for, and the first error wins.
    const done = this.engine.flush().then(() => null, (e) => ({ error: e }));
    const before = this.#inflight;
    this.#inflight = before === null ? done : Promise.all([before, done]).then(([a, b]) => a ?? b);
  }

  /**
   * Bounds the weights in flight: an upload that would take the bytes
   * uploaded since the GPU was last idle past `uploadsInFlightBytes` first
   * waits for it (the first upload after a wait never does). Big layers thus
   * go one at a time, while small models run many layers per device poll.
   */
  async #beforeUpload(bytes: number): Promise<void> {
    const sum = this.#uploadedSinceIdle + bytes;
    if (this.#uploadedSinceIdle > 0 && sum > this.uploadsInFlightBytes) await this.#settle();
    this.#uploadedSinceIdle += bytes;
  }

  async #settle(): Promise<void> {
    const p = this.#inflight;
    this.#inflight = null;
    this.#uploadedSinceIdle = 0;
    const r = await p;
    if (r && typeof r === "object" && "error" in r) throw r.error;
  }

  #checkIds(ids: Int32Array, batch: number, seqLen: number): Layout {
    if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(seqLen) || seqLen < 1) {
      throw new DecoderModelError(
        `embed: batch ${batch} and seqLen ${seqLen} must be positive integers`,
      );
    }
    if (ids.length !== batch * seqLen) {
      throw new DecoderModelError(
        `embed: ${ids.length} ids are not ${batch} sequences of ${seqLen} tokens`,
      );
    }
    const V = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < V)) {
        throw new DecoderModelError(
          `embed: ids[${i}] = ${ids[i]} is outside the vocabulary [0, ${V})`,
        );
      }
    }
    return { sequences: batch, seqLen };
  }

  #checkHidden(hidden: Tensor, what: string): number {
    const H = this.config.hiddenSize;
    if (hidden.numel % H !== 0 || hidden.shape[hidden.shape.length - 1] !== H) {
      throw new DecoderModelError(`${what}: hidden state [${hidden.shape}] is not [rows, ${H}]`);
    }
    return hidden.numel / H;
  }

  #layoutOf(hidden: Tensor, sequences: number | undefined, what: string): Layout {
    const rows = this.#checkHidden(hidden, what);
    const known = layouts.get(hidden);
    const n = sequences ?? known?.sequences;
    if (n === undefined) {
      throw new DecoderModelError(
        `${what}: this hidden state [${hidden.shape}] was not produced by this model; ` +
          "pass options.sequences (how many equal-length sequences it holds)",
      );
    }
    if (!Number.isInteger(n) || n < 1 || rows % n !== 0) {
      throw new DecoderModelError(`${what}: ${rows} rows cannot be ${n} equal-length sequences`);
    }
    return { sequences: n, seqLen: rows / n };
  }
}
