/**
 * The GPTQModifier's weight step for one decoder layer (§4.4): Hessians are
 * accumulated on the layer's engine from each Linear's calibration inputs
 * (one per distinct input: q/k/v share one, gate/up share one), and at the
 * layer's end every targeted weight is quantized with GPTQ, NVFP4 global
 * scales fused over q/k/v and gate/up first as for round-to-nearest.
 *
 * @module
 */

import type {
  Engine,
  RunningHessian,
  SecondOrderHessian,
  SecondOrderOps,
  Tensor,
} from "../../engine/engine.ts";
import type { ModelConfig, ModelType } from "../../io/model_config.ts";
import { destroyFactors, type FactorCache, quantizeWeight } from "./quantize_weight.ts";
import { checkGptqWeight, type GptqResult } from "./gptq_quantize.ts";
import { layerFusedSets } from "../quantization/layer_fused_sets.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import { fuseGlobalScales } from "../../quant/fused_global_scales.ts";
import { rtnGlobalScale } from "../../quant/rtn.ts";

/**
 * The Hessians of one layer, keyed by the input they are accumulated from,
 * each a running Hessian of the layer's engine.
 *
 * @example
 * ```ts ignore
 * const h = LayerHessians.create(engine, new Map([["qkv", 64]]));
 * h.add("qkv", tap.x, tap.sequences);
 * ```
 */
export class LayerHessians {
  readonly #byKey: Map<string, RunningHessian>;

  private constructor(byKey: Map<string, RunningHessian>) {
    this.#byKey = byKey;
  }

  /**
   * Zero Hessians for each input.
   *
   * @param engine the layer's engine
   * @param columns in_features per input key
   * @returns the accumulators
   * @example
   * ```ts ignore
   * LayerHessians.create(engine, new Map([["down", 172]]));
   * ```
   */
  static create(engine: Engine, columns: ReadonlyMap<string, number>): LayerHessians {
    const byKey = new Map<string, RunningHessian>();
    try {
      for (const [key, n] of columns) byKey.set(key, engine.secondOrder.runningHessian(n));
    } catch (e) {
      for (const h of byKey.values()) h.destroy();
      throw e;
    }
    return new LayerHessians(byKey);
  }

  /**
   * Whether an input is accumulated.
   *
   * @param key the input
   * @returns true when it has a Hessian
   * @example
   * ```ts ignore
   * if (hessians.has("qkv")) hessians.add("qkv", tap.x, tap.sequences);
   * ```
   */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /**
   * Records one forward's inputs (b = its sequences, as upstream counts);
   * an input without a Hessian is ignored.
   *
   * @param key the input
   * @param x the input `[rows, in]`, a tensor of the layer's engine
   * @param sequences samples in `x`
   * @example
   * ```ts ignore
   * hessians.add("qkv", tap.x, tap.sequences);
   * ```
   */
  add(key: string, x: Tensor, sequences: number): void {
    this.#byKey.get(key)?.add(x, sequences);
  }

  /**
   * The running Hessian of an input: what second-order ops of the layer's
   * engine take (the accumulators own it: do not destroy).
   *
   * @param key the input
   * @returns it
   * @example
   * ```ts ignore
   * const h = hessians.get("qkv");
   * ```
   */
  get(key: string): RunningHessian {
    const h = this.#byKey.get(key);
    if (h === undefined) throw new Error(`no Hessian for input '${key}'`);
    return h;
  }

  /**
   * The order of an input's Hessian.
   *
   * @param key the input
   * @returns its column count
   * @example
   * ```ts ignore
   * hessians.columns("qkv");
   * ```
   */
  columns(key: string): number {
    return this.get(key).columns;
  }

  /**
   * Releases every accumulator; idempotent.
   *
   * @example
   * ```ts ignore
   * hessians.destroy();
   * ```
   */
  destroy(): void {
    for (const h of this.#byKey.values()) h.destroy();
    this.#byKey.clear();
  }
}

/** A weight GPTQ quantizes. */
export interface GptqWeightInput {
  readonly name: string;
  readonly values: Float32Array;
  readonly shape: readonly [number, number];
  readonly args: QuantizationArgs;
  readonly dtype: ComputeDType;
  /** The Hessian input key it reads. */
  readonly input: string;
}

/** GPTQ options of the modifier. */
export interface GptqStepOptions {
  readonly blockSize: number;
  readonly dampeningFrac: number;
  /**
   * Bound on the estimated bytes (factors and weights) of the weights the
   * engine's scheduler runs together (`SecondOrderOps.runConcurrently`;
   * WebGPU: one wave before it reads back, default 256 MiB, at least one
   * weight; the CPU engine runs one weight at a time and ignores it).
   */
  readonly waveBytes?: number;
}

/** A weight that reads one of a layer's Hessians. */
export interface HessianReader {
  /** The Hessian input key. */
  readonly input: string;
  /** [rows, cols]. */
  readonly shape: readonly [number, number];
}

/**
 * Runs one task per weight on the engine's scheduler with the factors of
 * each Hessian shared (q/k/v share one, gate/up share one) and released
 * as soon as the last weight reading it is done.
 *
 * @param ops the second-order ops
 * @param hessian the Hessian of an input key, as `ops` take it (called once per key)
 * @param weights the weights, with their input keys
 * @param blockSize columns per block (the byte estimate's error block)
 * @param run one weight's work on its Hessian and shared factors
 * @param budgetBytes bound on the bytes of the weights run together, or undefined for the engine's default
 * @returns one result per weight, in order
 * @example
 * ```ts ignore
 * const results = await perWeight(ops, (key) => hessians.get(key), linears, 128, (l, h, factors) =>
 *   quantizeWeight(ops, l.values, l.shape, h, l.args, { factors }));
 * ```
 */
export async function perWeight<W extends HessianReader, R>(
  ops: SecondOrderOps,
  hessian: (input: string) => SecondOrderHessian,
  weights: readonly W[],
  blockSize: number,
  run: (w: W, h: SecondOrderHessian, factors: FactorCache) => Promise<R>,
  budgetBytes?: number,
): Promise<R[]> {
  const shared = new Map<string, { h: SecondOrderHessian; factors: FactorCache; left: number }>();
  for (const w of weights) {
    const s = shared.get(w.input);
    if (s) s.left++;
    else shared.set(w.input, { h: hessian(w.input), factors: new Map(), left: 1 });
  }
  const counted = new Set<string>();
  try {
    return await ops.runConcurrently(
      weights.map((w) => {
        const s = shared.get(w.input)!;
        const [rows, cols] = w.shape;
        // U and the inverse's work matrix once per Hessian; per weight Wᵀ, its mask and errors.
        const factorBytes = counted.has(w.input) ? 0 : 2 * cols * cols * 4;
        counted.add(w.input);
        return {
          bytes: factorBytes + (2 * cols + blockSize + 1) * rows * 4,
          run: async () => {
            try {
              return await run(w, s.h, s.factors);
            } finally {
              if (--s.left === 0) destroyFactors(s.factors);
            }
          },
        };
      }),
      budgetBytes,
    );
  } finally {
    for (const s of shared.values()) destroyFactors(s.factors);
  }
}

/**
 * Quantizes a layer's targeted weights with GPTQ: each weight through
 * `quantizeWeight` (src/modifiers/gptq/quantize_weight.ts, the algorithm
 * read top to bottom) on the engine's second-order ops, NVFP4 global
 * scales fused over q/k/v and gate/up first, the weights reading one
 * Hessian sharing its factor. How many device polls that takes is the
 * engine's business: the CPU engine runs them one after another; WebGPU
 * starts a wave of them together, so its diagonals come back in one poll
 * and every factorization and loop of the wave in another (speculatively:
 * a failed factorization shows in that read and its weights retry with
 * more dampening).
 *
 * @param engine the layer's engine
 * @param layer the decoder layer (fused global-scale sets)
 * @param modelType the architecture
 * @param hessians the layer's Hessians
 * @param linears the weights
 * @param options block size, dampening, wave budget
 * @returns one result per weight, in order
 * @throws {GptqConfigError} for unsupported args (before any device work)
 * @throws {GptqShapeError} when a weight and its Hessian disagree (before any device work)
 * @example
 * ```ts ignore
 * const results = await gptqLayerWeights(engine, 0, "llama", hessians, linears, { blockSize: 128, dampeningFrac: 0.01 });
 * ```
 */
export async function gptqLayerWeights(
  engine: Engine,
  layer: number,
  modelType: ModelType | ModelConfig,
  hessians: LayerHessians,
  linears: readonly GptqWeightInput[],
  options: GptqStepOptions,
): Promise<GptqResult[]> {
  const global = new Map<string, number>();
  for (const l of linears) {
    if (l.args.strategy === "tensor_group") {
      global.set(l.name, rtnGlobalScale(l.values, l.args, l.dtype));
    }
  }
  const fused = fuseGlobalScales(global, layerFusedSets(layer, modelType, (n) => global.has(n)));
  for (const l of linears) {
    checkGptqWeight(l.values, l.shape, hessians.columns(l.input), l.args, l.name);
  }
  const ops = engine.secondOrder;
  return await perWeight(
    ops,
    (key) => hessians.get(key),
    linears,
    options.blockSize,
    (l, h, factors) =>
      quantizeWeight(ops, l.values, l.shape, h, l.args, {
        blockSize: options.blockSize,
        dampeningFrac: options.dampeningFrac,
        globalScale: fused.get(l.name) ?? null,
        where: l.name,
        factors,
      }),
    options.waveBytes,
  );
}

/** A weight and approximations of it whose output error is measured on its Hessian. */
export interface ReconstructionInput {
  /** The Hessian input key the weight reads. */
  readonly input: string;
  /** The original weight W `[out, in]`, row-major. */
  readonly original: Float32Array;
  readonly shape: readonly [number, number];
  /** Approximations Ŵ of W (e.g. GPTQ's and round-to-nearest's fake-quantized weights). */
  readonly candidates: readonly Float32Array[];
}

/**
 * Relative output reconstruction errors ‖X(W − Ŵ)ᵀ‖²_F / ‖XWᵀ‖²_F of each
 * candidate Ŵ on the calibration inputs X the Hessian was accumulated from,
 * without keeping X: the accumulator holds H = 2XᵀX/n (n samples), so for
 * any Δ, ‖XΔᵀ‖²_F = Σ_rows δ XᵀX δᵀ = tr(Δ H Δᵀ)·n/2, and the n/2 cancels
 * in the ratio (`SecondOrderOps.reconstructionErrors`; on WebGPU all
 * weights of a layer share one device poll).
 *
 * @param engine the layer's engine
 * @param hessians the layer's Hessians
 * @param items the weights with their candidates
 * @returns per item, one relative error per candidate (0 when XWᵀ = 0)
 * @example
 * ```ts ignore
 * const [[gptq, rtn]] = await reconstructionErrors(engine, hessians, [
 *   { input: "qkv", original: w, shape: [64, 64], candidates: [gptqW, rtnW] },
 * ]);
 * ```
 */
export function reconstructionErrors(
  engine: Engine,
  hessians: LayerHessians,
  items: readonly ReconstructionInput[],
): Promise<number[][]> {
  return Promise.all(items.map((item) =>
    engine.secondOrder.reconstructionErrors(
      hessians.get(item.input),
      item.original,
      item.shape,
      item.candidates,
    )
  ));
}
