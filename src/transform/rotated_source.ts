/**
 * SpinQuant's fused (offline) rotations as a {@link WeightSource} decorator:
 * every tensor is rotated in float64 as it is read, so a whole-model pass
 * (embeddings, decoder layers, final norm, lm_head) never holds more than
 * the tensor being read. The decorated model computes the same function.
 *
 * Preparation (SPEC §4.8): embeddings are untied (lm_head reads a copy of
 * embed_tokens), each RMSNorm's scale is folded into the Linears it feeds
 * (`W ← W · diag(γ)`, then `γ ← 1`): input_layernorm → q, k, v;
 * post_attention_layernorm → gate, up; model.norm → lm_head.
 * Embedding rows are NOT centred: subtracting a row's mean is exact only in
 * front of a LayerNorm; in front of an RMSNorm it changes the model.
 *
 * Rotations, with the hidden state becoming `h' = h · R1`:
 *
 * | tensor | R1 (hidden) | R2 (head_dim) |
 * |---|---|---|
 * | embed_tokens | `E ← E R1` | |
 * | q, k, gate, up, lm_head | `W ← W R1` | |
 * | v | `W ← W R1` | `W ← R2ᵀ W`, bias `b ← b R2` |
 * | o | `W ← R1ᵀ W`, bias `b ← b R1` | `W ← W R2` |
 * | down | `W ← R1ᵀ W`, bias `b ← b R1` | |
 *
 * Every product runs through the engine's float64 op
 * (`Engine.blockTransform`; by default the host kernels both engines use),
 * one tensor at a time.
 *
 * R1 and R2 act block-diagonally (R1 over `transform_block_size` when set,
 * R2 over `head_dim`), so GQA's narrower v and Qwen3's per-head q/k norms are
 * untouched by construction: q and k outputs do not change at all.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import type { WeightSource } from "../model/weight_source.ts";
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD } from "../model/module_names.ts";
import type { BlockTransform, BlockTransformOps } from "../engine/engine.ts";
import { TransformError } from "./errors.ts";

/**
 * A fused rotation: an orthogonal float64 block applied block-diagonally
 * (through its Hadamard factors when it has them).
 */
export type FusedRotation = BlockTransform;

/** The fused rotations of a SpinQuant run. */
export interface FusedRotations {
  /** R1, over the hidden size (or a block of it); null to skip. */
  readonly r1: FusedRotation | null;
  /** R2, over head_dim; null to skip. */
  readonly r2: FusedRotation | null;
}

const LAYER = /^model\.layers\.(\d+)\.(.+)$/;

/**
 * Checks that the rotations fit the model.
 *
 * @param config the model config
 * @param rotations R1 and R2
 * @throws {TransformError} naming the size that does not divide its dimension
 */
function checkSizes(config: ModelConfig, rotations: FusedRotations): void {
  const { r1, r2 } = rotations;
  if (r1 !== null && config.hiddenSize % r1.size !== 0) {
    throw new TransformError(
      `R1 of size ${r1.size}: hidden_size ${config.hiddenSize} is not a multiple of it`,
    );
  }
  if (r2 !== null && r2.size !== config.headDim) {
    throw new TransformError(`R2 of size ${r2.size}: expected head_dim ${config.headDim}`);
  }
}

/**
 * A model whose tensors read rotated (see the module doc).
 *
 * @example
 * ```ts ignore
 * import { RotatedWeightSource } from "./rotated_source.ts";
 * const rotated = new RotatedWeightSource(hf, { r1, r2 }, engine);
 * const q = await rotated.readF32("model.layers.0.self_attn.q_proj.weight");
 * ```
 */
export class RotatedWeightSource implements WeightSource {
  /** The inner config with `tieWordEmbeddings: false` (lm_head is its own tensor now). */
  readonly config: ModelConfig;
  /** Every array is computed afresh for the caller. */
  readonly returnsFreshArrays = true;
  readonly #inner: WeightSource;
  readonly #r: FusedRotations;
  readonly #ops: BlockTransformOps;

  /**
   * Wraps a model so that its tensors are read rotated.
   *
   * @param inner the original model
   * @param rotations R1 and R2
   * @param ops the engine whose float64 `blockTransform` runs the products
   * @throws {TransformError} when a rotation's size does not fit the model
   */
  constructor(
    inner: WeightSource,
    rotations: FusedRotations,
    ops: BlockTransformOps,
  ) {
    checkSizes(inner.config, rotations);
    this.#inner = inner;
    this.#r = rotations;
    this.#ops = ops;
    this.config = { ...inner.config, tieWordEmbeddings: false };
  }

  /**
   * Whether the rotated model has a tensor (lm_head always, once untied).
   *
   * @param name the tensor name
   * @returns true when present
   */
  has(name: string): boolean {
    return name === LM_HEAD || this.#inner.has(name);
  }

  /**
   * A tensor of the rotated model.
   *
   * @param name the tensor name
   * @returns its values, float32 row-major
   */
  async readF32(name: string): Promise<Float32Array> {
    const c = this.config;
    const H = c.hiddenSize;
    const { r1, r2 } = this.#r;
    if (name === EMBED_TOKENS) {
      const e = await this.#read64(EMBED_TOKENS);
      if (r1) this.#rotate(e, e.length / H, H, r1, "right", false, name);
      return Float32Array.from(e);
    }
    if (name === LM_HEAD) {
      const tied = this.#inner.config.tieWordEmbeddings || !this.#inner.has(LM_HEAD);
      const w = await this.#read64(tied ? EMBED_TOKENS : LM_HEAD);
      scaleColumns(w, H, await this.#inner.readF32(FINAL_NORM));
      if (r1) this.#rotate(w, w.length / H, H, r1, "right", false, name);
      return Float32Array.from(w);
    }
    if (name === FINAL_NORM) return new Float32Array(H).fill(1);
    const m = LAYER.exec(name);
    if (m === null) return await this.#inner.readF32(name);
    const p = `model.layers.${m[1]}`;
    const rest = m[2];
    switch (rest) {
      case "input_layernorm.weight":
      case "post_attention_layernorm.weight":
        return new Float32Array(H).fill(1);
      case "self_attn.q_proj.weight":
      case "self_attn.k_proj.weight":
      case "self_attn.v_proj.weight":
      case "mlp.gate_proj.weight":
      case "mlp.up_proj.weight": {
        const norm = rest.startsWith("mlp.") ? "post_attention_layernorm" : "input_layernorm";
        const w = await this.#read64(name);
        const rows = w.length / H;
        scaleColumns(w, H, await this.#inner.readF32(`${p}.${norm}.weight`));
        if (r1) this.#rotate(w, rows, H, r1, "right", false, name);
        if (r2 && rest === "self_attn.v_proj.weight") {
          this.#rotate(w, rows, H, r2, "left", true, name);
        }
        return Float32Array.from(w);
      }
      case "self_attn.v_proj.bias": {
        const b = await this.#read64(name);
        if (r2) this.#rotate(b, 1, b.length, r2, "right", false, name);
        return Float32Array.from(b);
      }
      case "self_attn.o_proj.weight":
      case "mlp.down_proj.weight": {
        const w = await this.#read64(name);
        const cols = w.length / H;
        if (r2 && rest === "self_attn.o_proj.weight") {
          this.#rotate(w, H, cols, r2, "right", false, name);
        }
        if (r1) this.#rotate(w, H, cols, r1, "left", true, name);
        return Float32Array.from(w);
      }
      case "self_attn.o_proj.bias":
      case "mlp.down_proj.bias": {
        const b = await this.#read64(name);
        if (r1) this.#rotate(b, 1, H, r1, "right", false, name);
        return Float32Array.from(b);
      }
      default:
        return await this.#inner.readF32(name);
    }
  }

  #rotate(
    x: Float64Array,
    rows: number,
    cols: number,
    t: BlockTransform,
    side: "left" | "right",
    transpose: boolean,
    what: string,
  ): void {
    this.#ops.blockTransform(x, t, { rows, cols, side, transpose, what });
  }

  async #read64(name: string): Promise<Float64Array> {
    return Float64Array.from(await this.#inner.readF32(name));
  }
}

/** `W ← W · diag(γ)`: column j of every row scaled by γ[j]. */
function scaleColumns(w: Float64Array, cols: number, gamma: Float32Array): void {
  for (let r = 0; r < w.length; r += cols) {
    for (let c = 0; c < cols; c++) w[r + c] *= gamma[c];
  }
}
