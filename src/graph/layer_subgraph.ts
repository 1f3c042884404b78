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
 * Both run through the model's own layer forward (`DecoderModel.runLayer`),
 * with the other half of the layer switched off by a zero output projection:
 * the layer then returns `h + attn(h)` (or `h' + mlp(h')`), and the residual
 * cancels in the difference to the reference. Every candidate's squared
 * error is reduced by the model's engine (WebGPU or CPU) and all of them are
 * read back together: one device round trip per call, however many candidates.
 *
 * @module
 */

import type { Tensor } from "../engine/engine.ts";
import type { DecoderModel } from "../model/decoder_model.ts";
import { LayerWeights } from "../model/layer_weights.ts";
import { layerPrefix } from "../model/module_names.ts";
import { isSparseLayer, moeModuleNames } from "../model/moe_names.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { ActivationCache } from "./activation_cache.ts";
import type { CalibrationBatch } from "./calibration_batches.ts";

/**
 * The Linears whose outputs make up the MLP's (zero them and the MLP adds 0):
 * `down_proj`, or in a sparse MoE layer every expert's and the shared expert's down projection.
 */
function mlpOutputs(config: ModelConfig, k: number): string[] {
  if (!config.moe || !isSparseLayer(config, k)) return ["mlp.down_proj"];
  const names = moeModuleNames(config);
  const downs = Array.from({ length: config.moe!.numExperts }, (_, e) => names.expert(e).down);
  return names.shared === null ? downs : [...downs, names.shared.down];
}

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

/**
 * Runs parts of decoder layer `layer` on its cached inputs.
 *
 * @example
 * ```ts ignore
 * const sub = new LayerSubgraph(model, 0, batches, inputs, weights);
 * const { losses } = await sub.losses("mlp", weights, [candidateA, candidateB]);
 * sub.dispose();
 * ```
 */
export class LayerSubgraph {
  #mlpInputs: Float32Array[] | null = null;

  /**
   * @param model the model (its layer forward runs the parts)
   * @param layer the decoder layer
   * @param batches the calibration batches
   * @param inputs the layer's inputs per batch
   * @param weights the layer's weights as it started (for the mlp's inputs)
   */
  constructor(
    readonly model: DecoderModel,
    readonly layer: number,
    readonly batches: readonly CalibrationBatch[],
    readonly inputs: ActivationCache,
    readonly weights: ReadonlyMap<string, Float32Array>,
  ) {}

  /** The weights with the other half of the layer switched off. */
  #isolated(
    name: SubgraphName,
    weights: ReadonlyMap<string, Float32Array>,
  ): Map<string, Float32Array> {
    const p = layerPrefix(this.layer);
    const out = new Map(weights);
    const off = name === "self_attn"
      ? mlpOutputs(this.model.config, this.layer)
      : ["self_attn.o_proj"];
    for (const rel of off) {
      for (const suffix of [".weight", ".bias"]) {
        const w = weights.get(`${p}.${rel}${suffix}`);
        if (w !== undefined) out.set(`${p}.${rel}${suffix}`, new Float32Array(w.length));
      }
    }
    return out;
  }

  /** The part's inputs per batch (host). */
  async #inputsOf(name: SubgraphName): Promise<Float32Array[]> {
    const layerInputs = () => Promise.all(this.batches.map((b) => this.inputs.get(b.index)));
    if (name === "self_attn") return await layerInputs();
    if (this.#mlpInputs === null) {
      // h' = h + attn(h): the attention half alone, with the layer's own weights.
      const xs = await layerInputs();
      const w = LayerWeights.fromArrays(
        this.model.engine,
        this.model.config,
        this.layer,
        this.#isolated("self_attn", this.weights),
      );
      const outs: Tensor[] = [];
      try {
        for (let i = 0; i < this.batches.length; i++) {
          const hidden = this.#upload(this.batches[i], xs[i]);
          try {
            outs.push(
              await this.model.runLayer(this.layer, hidden, {
                weights: w,
                sequences: this.batches[i].sequences,
              }),
            );
          } finally {
            hidden.destroy();
          }
        }
        this.#mlpInputs = (await this.model.engine.read(outs)) as Float32Array[];
      } finally {
        for (const o of outs) o.destroy();
        w.destroy();
      }
    }
    return this.#mlpInputs;
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
   * candidate's mean squared output error against the reference.
   *
   * @param name which part
   * @param reference the layer's weights the reference output is computed with
   * @param candidates per candidate, the tensors that replace the reference's
   * @returns the losses, read back in one device round trip
   * @example
   * ```ts ignore
   * const { finite, losses } = await sub.losses("self_attn", weights, [{ ... }]);
   * ```
   */
  async losses(
    name: SubgraphName,
    reference: ReadonlyMap<string, Float32Array>,
    candidates: readonly ReadonlyMap<string, Float32Array>[],
  ): Promise<SubgraphLosses> {
    const { config, engine } = this.model;
    const xs = await this.#inputsOf(name);
    const base = this.#isolated(name, reference);
    const hidden = this.batches.map((b, i) => this.#upload(b, xs[i]));
    const negatedRef: Tensor[] = [];
    const refSquares: Tensor[] = [];
    const errors: Tensor[][] = candidates.map(() => []);
    const run = async (
      weights: LayerWeights,
      each: (out: Tensor, i: number) => Tensor[],
    ) => {
      try {
        for (let i = 0; i < this.batches.length; i++) {
          const out = await this.model.runLayer(this.layer, hidden[i], {
            weights,
            sequences: this.batches[i].sequences,
          });
          const temporaries = each(out, i);
          out.destroy();
          for (const t of temporaries) t.destroy();
        }
      } finally {
        weights.destroy();
      }
    };
    try {
      await run(LayerWeights.fromArrays(engine, config, this.layer, base), (out) => {
        negatedRef.push(engine.scale(out, -1));
        const sq = engine.mul(out, out);
        refSquares.push(engine.reduceRows(sq, "sum"));
        return [sq];
      });
      for (let c = 0; c < candidates.length; c++) {
        const w = new Map(base);
        for (const [n, v] of candidates[c]) w.set(n, v);
        await run(LayerWeights.fromArrays(engine, config, this.layer, w), (out, i) => {
          const d = engine.add(out, negatedRef[i]);
          const sq = engine.mul(d, d);
          errors[c].push(engine.reduceRows(sq, "sum"));
          return [d, sq];
        });
      }
      const read = await engine.read([...refSquares, ...errors.flat()]) as Float32Array[];
      const numel = this.batches.reduce((n, b) => n + b.sequences * b.seqLen, 0) *
        config.hiddenSize;
      const total = (list: Float32Array[]) => {
        let s = 0;
        for (const a of list) for (let i = 0; i < a.length; i++) s += a[i];
        return s;
      };
      const ref = total(read.slice(0, refSquares.length));
      const losses = new Float64Array(candidates.length);
      const n = this.batches.length;
      for (let c = 0; c < candidates.length; c++) {
        const at = refSquares.length + c * n;
        losses[c] = total(read.slice(at, at + n)) / numel;
      }
      return { finite: Number.isFinite(ref), losses, referenceMeanSquare: ref / numel };
    } finally {
      for (const t of [...hidden, ...negatedRef, ...refSquares, ...errors.flat()]) t.destroy();
    }
  }
}
