/**
 * The GPTQModifier's weight step for one decoder layer (§4.4): Hessians are
 * accumulated on the GPU from each Linear's calibration inputs (one per
 * distinct input: q/k/v share one, gate/up share one), and at the layer's
 * end every targeted weight is quantized with GPTQ, NVFP4 global scales
 * fused over q/k/v and gate/up first as for round-to-nearest.
 *
 * @module
 */

import { cpuTensor } from "../../engine/cpu_engine.ts";
import type { Engine, Tensor } from "../../engine/engine.ts";
import { webGpuOf } from "../../engine/webgpu_engine.ts";
import { CommandBatch } from "../../gpu/batch.ts";
import { ChunkedWeight } from "../../gpu/chunked.ts";
import type { Gpu } from "../../gpu/device.ts";
import { matmul, mul, reduceRows } from "../../gpu/ops.ts";
import { GpuTensor, readMany } from "../../gpu/tensor.ts";
import type { ModelConfig, ModelType } from "../../io/model_config.ts";
import type { SecondOrderHessian, SecondOrderOps } from "../../engine/engine.ts";
import { SECOND_ORDER_WAVE_BYTES, webGpuSecondOrder } from "../../engine/webgpu_second_order.ts";
import { CpuHessian, cpuReconstructionErrors } from "./cpu_gptq.ts";
import { destroyFactors, type FactorCache, quantizeWeight } from "./quantize_weight.ts";
import { HessianAccumulator } from "./hessian_accumulator.ts";
import { checkGptqWeight, type GptqResult } from "./gptq_quantize.ts";
import { layerFusedSets } from "../quantization/layer_fused_sets.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import { fuseGlobalScales } from "../../quant/fused_global_scales.ts";
import { rtnGlobalScale } from "../../quant/rtn.ts";

/** Where GPTQ's statistics live: an engine, or (GPU-only callers) a WebGPU device. */
export type GptqDevice = Engine | Gpu;

/** The WebGPU device behind `d`, or null for the CPU engine. */
function gpuOf(d: GptqDevice): Gpu | null {
  return "kind" in d ? webGpuOf(d)?.gpu ?? null : d;
}

/**
 * The Hessians of one layer, keyed by the input they are accumulated from:
 * on the GPU for the WebGPU engine, on the host for the CPU engine.
 *
 * @example
 * ```ts ignore
 * const h = LayerHessians.create(gpu, new Map([["qkv", 64]]));
 * h.add("qkv", tap.batch, tap.x, tap.sequences);
 * ```
 */
export class LayerHessians {
  readonly #byKey: Map<string, HessianAccumulator | CpuHessian>;

  private constructor(byKey: Map<string, HessianAccumulator | CpuHessian>) {
    this.#byKey = byKey;
  }

  /**
   * Zero Hessians for each input.
   *
   * @param device the layer's engine (or a WebGPU device)
   * @param columns in_features per input key
   * @returns the accumulators
   * @example
   * ```ts ignore
   * LayerHessians.create(gpu, new Map([["down", 172]]));
   * ```
   */
  static create(device: GptqDevice, columns: ReadonlyMap<string, number>): LayerHessians {
    const gpu = gpuOf(device);
    const byKey = new Map<string, HessianAccumulator | CpuHessian>();
    try {
      for (const [key, n] of columns) {
        byKey.set(key, gpu ? HessianAccumulator.create(gpu, n) : new CpuHessian(n));
      }
    } catch (e) {
      for (const h of byKey.values()) if (h instanceof HessianAccumulator) h.destroy();
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
   * if (hessians.has("qkv")) hessians.add("qkv", tap.batch, tap.x, tap.sequences);
   * ```
   */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /**
   * Records one forward's inputs (b = its sequences, as upstream counts).
   *
   * @param key the input
   * @param engine the layer's engine (a command batch: WebGPU-only callers)
   * @param x the input `[rows, in]`
   * @param sequences samples in `x`
   * @example
   * ```ts ignore
   * hessians.add("qkv", tap.batch, tap.x, tap.sequences);
   * ```
   */
  add(key: string, engine: Engine | CommandBatch, x: Tensor, sequences: number): void {
    const h = this.#byKey.get(key);
    if (h === undefined) return;
    if (h instanceof CpuHessian) {
      h.add(cpuTensor(x, "Hessian").data as Float32Array, sequences);
      return;
    }
    const batch = engine instanceof CommandBatch ? engine : webGpuOf(engine)?.batch;
    if (batch === undefined) throw new Error(`Hessian '${key}' is on the GPU, the layer is not`);
    h.add(batch, x as GpuTensor, sequences);
  }

  /**
   * The accumulator of an input.
   *
   * @param key the input
   * @returns it
   * @example
   * ```ts ignore
   * hessians.get("qkv").numSamples;
   * ```
   */
  get(key: string): HessianAccumulator {
    const h = this.#byKey.get(key);
    if (h === undefined) throw new Error(`no Hessian for input '${key}'`);
    if (h instanceof CpuHessian) throw new Error(`Hessian '${key}' is on the CPU (use cpu())`);
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
    const h = this.#byKey.get(key);
    if (h === undefined) throw new Error(`no Hessian for input '${key}'`);
    return h.columns;
  }

  /**
   * An input's Hessian as second-order ops take it: the GPU accumulator
   * itself, or the host matrix of a CPU one.
   *
   * @param key the input
   * @param ops the engine's second-order ops
   * @returns the Hessian (the accumulators own it: do not destroy)
   * @example
   * ```ts ignore
   * const h = hessians.secondOrder("qkv", engine.secondOrder);
   * ```
   */
  secondOrder(key: string, ops: SecondOrderOps): SecondOrderHessian {
    const h = this.#byKey.get(key);
    if (h === undefined) throw new Error(`no Hessian for input '${key}'`);
    return h instanceof CpuHessian ? ops.hessian(h.read(), h.columns) : h;
  }

  /**
   * The host accumulator of an input (CPU engine).
   *
   * @param key the input
   * @returns it
   * @example
   * ```ts ignore
   * hessians.cpu("qkv").read();
   * ```
   */
  cpu(key: string): CpuHessian {
    const h = this.#byKey.get(key);
    if (!(h instanceof CpuHessian)) throw new Error(`no CPU Hessian for input '${key}'`);
    return h;
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
    for (const h of this.#byKey.values()) if (h instanceof HessianAccumulator) h.destroy();
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
   * Bound on the device bytes (factors and weights) one wave of the WebGPU
   * scheduler holds before it reads back (default
   * {@link SECOND_ORDER_WAVE_BYTES}; a wave always holds at least one weight).
   */
  readonly waveBytes?: number;
}

/** Default bound on the bytes of one wave of {@link gptqLayerWeights}. */
export const GPTQ_WAVE_BYTES = SECOND_ORDER_WAVE_BYTES;

/**
 * The second-order ops of a layer's device: the engine's own, or (a
 * WebGPU device, or a wave budget given) WebGPU ops over that device.
 *
 * @param device the layer's engine (or a WebGPU device)
 * @param waveBytes a wave budget for the WebGPU scheduler, or undefined for the default
 * @returns the ops
 * @example
 * ```ts ignore
 * const ops = secondOrderOf(engine, undefined);
 * ```
 */
export function secondOrderOf(device: GptqDevice, waveBytes: number | undefined): SecondOrderOps {
  if ("kind" in device) {
    const gpu = webGpuOf(device);
    return gpu === null || waveBytes === undefined
      ? device.secondOrder
      : webGpuSecondOrder(gpu, { waveBytes });
  }
  return webGpuSecondOrder({ gpu: device, batch: new CommandBatch(device) }, { waveBytes });
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
 * @returns one result per weight, in order
 * @example
 * ```ts ignore
 * const results = await perWeight(ops, (key) => hessians.secondOrder(key, ops), linears, 128, (l, h, factors) =>
 *   quantizeWeight(ops, l.values, l.shape, h, l.args, { factors }));
 * ```
 */
export async function perWeight<W extends HessianReader, R>(
  ops: SecondOrderOps,
  hessian: (input: string) => SecondOrderHessian,
  weights: readonly W[],
  blockSize: number,
  run: (w: W, h: SecondOrderHessian, factors: FactorCache) => Promise<R>,
): Promise<R[]> {
  const shared = new Map<string, { h: SecondOrderHessian; factors: FactorCache; left: number }>();
  for (const w of weights) {
    const s = shared.get(w.input);
    if (s) s.left++;
    else shared.set(w.input, { h: hessian(w.input), factors: new Map(), left: 1 });
  }
  const counted = new Set<string>();
  try {
    return await ops.runConcurrently(weights.map((w) => {
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
    }));
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
 * @param device the layer's engine (or a WebGPU device)
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
  device: GptqDevice,
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
  const ops = secondOrderOf(device, options.waveBytes);
  const hessian = (key: string) => hessians.secondOrder(key, ops);
  return await perWeight(
    ops,
    hessian,
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
  );
}

/** Bytes of one row chunk of [W; Δ…] (and of its product with H) in {@link reconstructionErrors}. */
export const RECONSTRUCTION_CHUNK_BYTES = 64 * 2 ** 20;

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
 * in the ratio. [W; Δ₁; Δ₂; …] is multiplied by H on the GPU in row chunks
 * of at most `maxChunkBytes`, multiplied elementwise by itself and summed
 * per row; all weights of a layer share one wait and one readback.
 *
 * @param device the layer's engine (or a WebGPU device); the CPU engine sums on the host
 * @param hessians the layer's Hessians (any state; the upper triangle is mirrored)
 * @param items the weights with their candidates
 * @param maxChunkBytes bound on one row chunk's bytes (tests: exercise chunking)
 * @returns per item, one relative error per candidate (0 when XWᵀ = 0)
 * @example
 * ```ts ignore
 * const [[gptq, rtn]] = await reconstructionErrors(gpu, hessians, [
 *   { input: "qkv", original: w, shape: [64, 64], candidates: [gptqW, rtnW] },
 * ]);
 * ```
 */
export async function reconstructionErrors(
  device: GptqDevice,
  hessians: LayerHessians,
  items: readonly ReconstructionInput[],
  maxChunkBytes: number = RECONSTRUCTION_CHUNK_BYTES,
): Promise<number[][]> {
  const gpu = gpuOf(device);
  if (gpu === null) {
    return items.map((item) =>
      cpuReconstructionErrors(
        hessians.cpu(item.input),
        item.original,
        item.shape,
        item.candidates,
      )
    );
  }
  const sums: GpuTensor[][] = [];
  try {
    for (const item of items) {
      const h = hessians.get(item.input);
      const m = h.matrix;
      const [out, cols] = item.shape;
      const panels = new ChunkedWeight(
        gpu,
        [m.order, m.order],
        m.panels.map((tensor, q) => ({
          tensor,
          row0: m.panelStart(q),
          rows: m.panelEnd(q) - m.panelStart(q),
        })),
      );
      const total = out * (1 + item.candidates.length);
      const chunkRows = Math.max(1, Math.floor(maxChunkBytes / (m.order * 4)));
      const mine: GpuTensor[] = [];
      sums.push(mine);
      for (let r0 = 0; r0 < total; r0 += chunkRows) {
        const rows = Math.min(chunkRows, total - r0);
        // Row r of [W; Δ₁; Δ₂; …]; columns past `cols` stay 0, as H's
        // padding rows and columns may hold junk.
        const stacked = new Float32Array(rows * m.order);
        for (let i = 0; i < rows; i++) {
          const k = Math.floor((r0 + i) / out);
          const r = (r0 + i) % out;
          const w = item.original.subarray(r * cols, (r + 1) * cols);
          const dst = stacked.subarray(i * m.order, i * m.order + cols);
          if (k === 0) dst.set(w);
          else {
            const c = item.candidates[k - 1];
            for (let j = 0; j < cols; j++) dst[j] = w[j] - c[r * cols + j];
          }
        }
        const batch = new CommandBatch(gpu);
        h.recordSymmetrize(batch);
        const d = GpuTensor.fromArray(gpu, stacked, [rows, m.order]);
        // H is symmetric, so D·Hᵀ (what matmul computes) is D·H.
        const dh = matmul(batch, d, panels);
        const prod = mul(batch, dh, d);
        mine.push(reduceRows(batch, prod, "sum"));
        // Submitted per chunk so its operands go back to the pool before the
        // next chunk: only the row sums stay until the single readback.
        batch.submit();
        d.destroy();
        dh.destroy();
        prod.destroy();
      }
    }
    const host = await readMany(sums.flat());
    let next = 0;
    return items.map((item, i) => {
      const rows = new Float64Array(item.shape[0] * (1 + item.candidates.length));
      let at = 0;
      for (let c = 0; c < sums[i].length; c++) {
        const part = host[next++] as Float32Array;
        for (const v of part) rows[at++] = v;
      }
      const out = item.shape[0];
      const part = (k: number) => {
        let s = 0;
        for (let r = k * out; r < (k + 1) * out; r++) s += rows[r];
        return s;
      };
      const base = part(0);
      return item.candidates.map((_, k) => base > 0 ? part(k + 1) / base : 0);
    });
  } finally {
    for (const t of sums.flat()) t.destroy();
  }
}
