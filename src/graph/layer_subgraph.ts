/**
 * Parts of one decoder layer run on the layer's cached inputs with candidate
 * weights, for modifiers that search over weights (AWQ's grid search):
 *
 * ```
 * self_attn:  h  ──► input_layernorm → q/k/v → attention → o_proj ──► attn(h)
 * mlp:        h' ──► post_attention_layernorm → gate/up → act → down_proj ──► mlp(h')
 *             (h' = h + attn(h), computed once with the layer's own weights;
 *              in an MoE layer the sparse block: router, every expert, shared expert)
 * ```
 *
 * Both run through the model's own layer forward (`DecoderModel.runLayer`)
 * restricted to their half (`part: "self_attn" | "mlp"`): the layer then
 * returns `h + attn(h)` (or `h' + mlp(h')`) without running the other half,
 * the values a zero output projection of the other half gives, and the
 * residual cancels in the difference to the reference. Every candidate's
 * squared error is reduced by the model's engine (WebGPU or CPU) and all of
 * them are read back together: one device round trip for the losses, however
 * many candidates.
 *
 * The cached parent inputs (`h'`) and reference outputs live in
 * {@link ActivationCache}s on the run's shared budget
 * (`--max-activation-memory`): beyond it they spill to files in a folder of
 * this subgraph's own, removed by {@link LayerSubgraph.dispose}. The device
 * holds one batch at a time, so neither host nor device memory grows with
 * the number of calibration batches (upstream's AWQ keeps every parent's
 * inputs of every batch).
 *
 * @module
 */

import type { Tensor } from "../engine/engine.ts";
import type { DecoderModel } from "../model/decoder_model.ts";
import { partNorm } from "../model/decoder_layer.ts";
import { LayerWeights } from "../model/layer_weights.ts";
import { ActivationCache, MemoryBudget } from "./activation_cache.ts";
import type { CalibrationBatch } from "./calibration_batches.ts";

/** The parts of a decoder layer a session can run alone. */
export type SubgraphName = "self_attn" | "mlp";

/** What {@link LayerSubgraph.losses} measured. */
export interface SubgraphLosses {
  /** Whether the reference outputs were finite (NaN or inf anywhere: false). */
  readonly finite: boolean;
  /** Per candidate: Σ over batches of Σ (y_ref − y)², divided by the number of output values. */
  readonly losses: Float64Array;
  /** Σ y_ref² / number of output values (the reference's mean square, to relate losses to). */
  readonly referenceMeanSquare: number;
}

/** Where a subgraph's caches may keep activations. */
export interface SubgraphMemory {
  /** The run's shared host-memory budget (`--max-activation-memory`). */
  readonly budget: MemoryBudget;
  /** An existing folder; the subgraph spills into a temporary folder inside it. */
  readonly spillDir?: string;
}

/**
 * Runs parts of decoder layer `layer` on its cached inputs.
 *
 * @example
 * ```ts ignore
 * const sub = new LayerSubgraph(model, 0, batches, inputs, weights, { budget, spillDir });
 * try {
 *   const { losses } = await sub.losses("mlp", weights, [candidateA, candidateB]);
 * } finally {
 *   await sub.dispose();
 * }
 * ```
 */
export class LayerSubgraph {
  #mlpInputs: ActivationCache | null = null;
  #folder: string | null = null;
  #caches = 0;

  /**
   * @param model the model (its layer forward runs the parts)
   * @param layer the decoder layer
   * @param batches the calibration batches
   * @param inputs the layer's inputs per batch
   * @param weights the layer's weights as it started (for the mlp's inputs)
   * @param memory the budget its caches share (default: unbounded, nothing spills)
   */
  constructor(
    readonly model: DecoderModel,
    readonly layer: number,
    readonly batches: readonly CalibrationBatch[],
    readonly inputs: ActivationCache,
    readonly weights: ReadonlyMap<string, Float32Array>,
    readonly memory: SubgraphMemory = { budget: new MemoryBudget(Infinity) },
  ) {}

  /** Bytes the subgraph's caches have spilled to disk so far (the mlp's inputs). */
  get bytesOnDisk(): number {
    return this.#mlpInputs?.bytesOnDisk ?? 0;
  }

  /**
   * A new cache on the run's shared budget, spilling into this subgraph's
   * folder (a session caching its own parent inputs uses it; the folder goes
   * with {@link LayerSubgraph.dispose}).
   *
   * @param tag names its spill files
   * @returns the empty cache
   * @example
   * ```ts ignore
   * const xs = await sub.cache("awq-in");
   * await xs.put(0, x);
   * ```
   */
  async cache(tag: string): Promise<ActivationCache> {
    this.#folder ??= await Deno.makeTempDir({
      dir: this.memory.spillDir,
      prefix: `llmc-subgraph-l${this.layer}-`,
    });
    return new ActivationCache(this.memory.budget, this.#folder, `${tag}-${this.#caches++}`);
  }

  /**
   * Frees the cached parent inputs and removes the spill folder.
   *
   * @returns resolves when the folder is gone
   * @example
   * ```ts ignore
   * await sub.dispose();
   * ```
   */
  async dispose(): Promise<void> {
    await this.#mlpInputs?.dispose();
    this.#mlpInputs = null;
    if (this.#folder !== null) {
      await Deno.remove(this.#folder, { recursive: true }).catch(() => {});
      this.#folder = null;
    }
  }

  /** The part's inputs per batch. */
  async #inputsOf(name: SubgraphName): Promise<ActivationCache> {
    if (name === "self_attn") return this.inputs;
    if (this.#mlpInputs === null) {
      // h' = h + attn(h): the attention half alone, with the layer's own weights.
      const cache = await this.cache("mlp-in");
      const w = LayerWeights.fromArrays(
        this.model.engine,
        this.model.config,
        this.layer,
        this.weights,
      );
      try {
        for (let i = 0; i < this.batches.length; i++) {
          const b = this.batches[i];
          const out = await this.#run(w, "self_attn", i, await this.inputs.get(b.index));
          try {
            const [h] = await this.model.engine.read([out]);
            await cache.put(b.index, h as Float32Array);
          } finally {
            out.destroy();
          }
        }
        this.#mlpInputs = cache;
      } catch (e) {
        await cache.dispose();
        throw e;
      } finally {
        w.destroy();
      }
    }
    return this.#mlpInputs;
  }

  /** Half `part` of the layer forward of batch `i` on `x` with `weights`. */
  async #run(
    weights: LayerWeights,
    part: SubgraphName,
    i: number,
    x: Float32Array,
  ): Promise<Tensor> {
    const hidden = this.#upload(this.batches[i], x);
    try {
      return await this.model.runLayer(this.layer, hidden, {
        weights,
        sequences: this.batches[i].sequences,
        part,
      });
    } finally {
      hidden.destroy();
    }
  }

  /** Half `part` of the layer forward of batch `i` on `x`, starting from its RMSNorm `xn`. */
  #forward(
    weights: LayerWeights,
    part: SubgraphName,
    i: number,
    x: Tensor,
    xn: Tensor,
  ): Promise<Tensor> {
    return this.model.runLayer(this.layer, x, {
      weights,
      sequences: this.batches[i].sequences,
      part,
      normed: xn,
    });
  }

  #upload(b: CalibrationBatch, x: Float32Array): Tensor {
    return this.model.engine.upload(x, [
      b.sequences * b.seqLen,
      this.model.config.hiddenSize,
    ]);
  }

  /**
   * Runs a part with the given weights (the reference) and with each
   * candidate (tensors that replace some of them), and measures each
   * candidate's mean squared output error against the reference. Candidates
   * are built one at a time, when their turn comes, so only one set of
   * candidate weights exists at once.
   *
   * @param name which part
   * @param reference the layer's weights the reference output is computed with
   * @param count the number of candidates
   * @param candidate builds candidate `c`: the tensors that replace the reference's
   * @returns the losses, read back in one device round trip
   * @example
   * ```ts ignore
   * const { finite, losses } = await sub.losses("self_attn", weights, 2, (c) => grid[c]);
   * ```
   */
  async losses(
    name: SubgraphName,
    reference: ReadonlyMap<string, Float32Array>,
    count: number,
    candidate: (c: number) => ReadonlyMap<string, Float32Array>,
  ): Promise<SubgraphLosses> {
    const { config, engine } = this.model;
    const xs = await this.#inputsOf(name);
    const tokens = this.batches.reduce((n, b) => n + b.sequences * b.seqLen, 0);
    // Each batch's input, RMSNorm and reference output, staged on the engine
    // once for every candidate when the run's budget holds them (three
    // [tokens, hidden] tensors); beyond it they go through the caches below
    // and are uploaded again per candidate.
    const stagedBytes = 3 * tokens * config.hiddenSize * 4;
    // The reference output per batch, on the shared budget (spilled beyond it).
    const refs = await this.cache(`ref-${name}`);
    // The half's RMSNorm of each batch: candidates never change the norm, so
    // each candidate's forward starts from it (as upstream's parent modules
    // take the normed hidden states) instead of renorming the same inputs.
    const normed = await this.cache(`norm-${name}`);
    // With the layer's own weights the attention half's reference output is the
    // MLP half's input (h' of #inputsOf, the same bits): kept for it, not run again.
    let mlpInputs = name === "self_attn" && reference === this.weights && this.#mlpInputs === null
      ? await this.cache("mlp-in")
      : null;
    const refSquares: Tensor[] = [];
    const errors: Tensor[][] = Array.from({ length: count }, () => []);
    // Taken only here, after the awaits that can throw: the try's finally gives it back.
    const staged: { x: Tensor; xn: Tensor; ref: Tensor }[] | null =
      this.memory.budget.take(stagedBytes) ? [] : null;
    try {
      const refWeights = LayerWeights.fromArrays(engine, config, this.layer, reference);
      try {
        for (let i = 0; i < this.batches.length; i++) {
          const b = this.batches[i];
          const x = this.#upload(b, await xs.get(b.index));
          let xn: Tensor | null = null;
          let out: Tensor | null = null;
          try {
            xn = partNorm(engine, config, refWeights, name, x);
            out = await this.#forward(refWeights, name, i, x, xn);
            refSquares.push(engine.rowSquaredError(out));
            if (mlpInputs !== null) {
              const [r] = await engine.read([out]);
              await mlpInputs.put(b.index, r as Float32Array);
            }
            if (staged !== null) {
              staged.push({ x, xn, ref: out });
              [xn, out] = [null, null];
            } else {
              const [n, r] = await engine.read([xn, out]);
              await normed.put(b.index, n as Float32Array);
              await refs.put(b.index, r as Float32Array);
            }
          } finally {
            // Staged tensors stay until every candidate has run.
            if (staged?.length !== i + 1) x.destroy();
            xn?.destroy();
            out?.destroy();
          }
        }
      } finally {
        refWeights.destroy();
      }
      if (mlpInputs !== null) [this.#mlpInputs, mlpInputs] = [mlpInputs, null];
      for (let c = 0; c < count; c++) {
        const w = new Map(reference);
        for (const [n, v] of candidate(c)) w.set(n, v);
        const weights = LayerWeights.fromArrays(engine, config, this.layer, w);
        try {
          for (let i = 0; i < this.batches.length; i++) {
            const b = this.batches[i];
            const t = staged?.[i] ?? {
              x: this.#upload(b, await xs.get(b.index)),
              xn: this.#upload(b, await normed.get(b.index)),
              ref: this.#upload(b, await refs.get(b.index)),
            };
            try {
              const out = await this.#forward(weights, name, i, t.x, t.xn);
              errors[c].push(engine.rowSquaredError(out, t.ref));
              out.destroy();
            } finally {
              if (staged === null) { for (const u of [t.x, t.xn, t.ref]) u.destroy(); }
            }
          }
        } finally {
          weights.destroy();
        }
      }
      const read = await engine.read([...refSquares, ...errors.flat()]) as Float32Array[];
      const numel = tokens * config.hiddenSize;
      const total = (list: Float32Array[]) => {
        let s = 0;
        for (const a of list) for (let i = 0; i < a.length; i++) s += a[i];
        return s;
      };
      const ref = total(read.slice(0, refSquares.length));
      const losses = new Float64Array(count);
      const n = this.batches.length;
      for (let c = 0; c < count; c++) {
        const at = refSquares.length + c * n;
        losses[c] = total(read.slice(at, at + n)) / numel;
      }
      return { finite: Number.isFinite(ref), losses, referenceMeanSquare: ref / numel };
    } finally {
      for (const t of [...refSquares, ...errors.flat()]) t.destroy();
      if (staged !== null) {
        for (const t of staged) for (const u of [t.x, t.xn, t.ref]) u.destroy();
        this.memory.budget.give(stagedBytes);
      }
      await refs.dispose();
      await normed.dispose();
      await mlpInputs?.dispose();
    }
  }
}
