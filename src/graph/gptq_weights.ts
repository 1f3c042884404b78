/**
 * The GPTQModifier's weight step for one decoder layer (§4.4): Hessians are
 * accumulated on the GPU from each Linear's calibration inputs (one per
 * distinct input: q/k/v share one, gate/up share one), and at the layer's
 * end every targeted weight is quantized with GPTQ, NVFP4 global scales
 * fused over q/k/v and gate/up first as for round-to-nearest.
 *
 * @module
 */

import { CommandBatch } from "../gpu/batch.ts";
import { ChunkedWeight } from "../gpu/chunked.ts";
import type { Gpu } from "../gpu/device.ts";
import { matmul, mul, reduceRows } from "../gpu/ops.ts";
import { GpuTensor, readMany } from "../gpu/tensor.ts";
import type { ModelType } from "../io/model_config.ts";
import { recordColumnLoop, type RecordedColumnLoop } from "../modifiers/gptq/column_loop.ts";
import { HessianAccumulator } from "../modifiers/gptq/hessian_accumulator.ts";
import {
  checkGptqWeight,
  type GptqLoopPlan,
  type GptqOptions,
  gptqQuantize,
  type GptqResult,
  gptqResult,
  planGptqLoop,
} from "../modifiers/gptq/gptq_quantize.ts";
import {
  type InverseFactorOptions,
  InverseHessianFactor,
  type SpeculativeFactor,
} from "../modifiers/gptq/inverse_hessian_factor.ts";
import { lcm, PANEL_BLOCK, roundUp } from "../modifiers/gptq/panel_matrix.ts";
import { recordDiagonal } from "../modifiers/gptq/panel_ops.ts";
import { layerFusedSets } from "../modifiers/quantization/layer_fused_sets.ts";
import { canonicalActorder, type QuantizationArgs } from "../quant/args.ts";
import type { ComputeDType } from "../quant/compute_dtype.ts";
import { fuseGlobalScales } from "../quant/fused_global_scales.ts";
import { rtnGlobalScale } from "../quant/rtn.ts";

/**
 * The Hessians of one layer, keyed by the input they are accumulated from.
 *
 * @example
 * ```ts ignore
 * const h = LayerHessians.create(gpu, new Map([["qkv", 64]]));
 * h.add("qkv", tap.batch, tap.x, tap.sequences);
 * ```
 */
export class LayerHessians {
  readonly #byKey: Map<string, HessianAccumulator>;

  private constructor(byKey: Map<string, HessianAccumulator>) {
    this.#byKey = byKey;
  }

  /**
   * Zero Hessians for each input.
   *
   * @param gpu the device
   * @param columns in_features per input key
   * @returns the accumulators
   * @example
   * ```ts ignore
   * LayerHessians.create(gpu, new Map([["down", 172]]));
   * ```
   */
  static create(gpu: Gpu, columns: ReadonlyMap<string, number>): LayerHessians {
    const byKey = new Map<string, HessianAccumulator>();
    try {
      for (const [key, n] of columns) byKey.set(key, HessianAccumulator.create(gpu, n));
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
   * @param batch the layer's command batch
   * @param x the input `[rows, in]`
   * @param sequences samples in `x`
   * @example
   * ```ts ignore
   * hessians.add("qkv", tap.batch, tap.x, tap.sequences);
   * ```
   */
  add(key: string, batch: CommandBatch, x: GpuTensor, sequences: number): void {
    this.#byKey.get(key)?.add(batch, x, sequences);
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
   * Bound on the GPU bytes (factors and weight chunks) one wave of
   * {@link gptqLayerWeights} records before it submits and reads back
   * (default {@link GPTQ_WAVE_BYTES}; a wave always holds at least one factor).
   */
  readonly waveBytes?: number;
}

/** Default bound on the bytes of one wave of {@link gptqLayerWeights}. */
export const GPTQ_WAVE_BYTES = 256 * 2 ** 20;

/**
 * Quantizes a layer's targeted weights with GPTQ, in few GPU round trips
 * (each awaited readback costs ≈11 ms of polling on llvmpipe however little
 * work is pending):
 *
 * 1. one batch mirrors every Hessian the weights read and extracts its
 *    diagonal; one `readMany` brings all diagonals back;
 * 2. per wave of factor keys (input + activation order: q/k/v share one,
 *    gate/up share one), one batch records each key's first factorization
 *    attempt speculatively (InverseHessianFactor.recordFirstAttempt: no
 *    status read in between) followed by the column loop of every weight on
 *    that factor; one `readMany` brings back every status and every loop's
 *    output. A wave closes before its bytes (factors + weight chunks) would
 *    exceed `options.waveBytes`, so a small model's layer is one wave and a
 *    large one's several; each wave's buffers are freed after its readback;
 * 3. a key whose status says the attempt failed (rare: an indefinite
 *    Hessian) takes the slow path: InverseHessianFactor.compute with its
 *    dampening retries and RTN fallback, then gptqQuantize per weight.
 *
 * Results are bit-identical to computing each factor with
 * InverseHessianFactor.compute and calling gptqQuantize per weight (same
 * kernels, same operations per matrix). Timings of a weight quantized in a
 * wave: `prepareMs` is the layer's diagonal round trip, `quantizeMs` the
 * wall time of its whole wave (all its factorizations and loops, which
 * cannot be told apart), `choleskyMs` and `inverseMs` 0, `totalMs` the sum;
 * weights of one wave report the same times.
 *
 * @param gpu the device
 * @param layer the decoder layer (fused global-scale sets)
 * @param modelType the architecture
 * @param hessians the layer's Hessians
 * @param linears the weights
 * @param options block size, dampening, wave budget
 * @returns one result per weight, in order
 * @throws {GptqConfigError} for unsupported args (before any GPU work)
 * @throws {GptqShapeError} when a weight and its Hessian disagree (before any GPU work)
 * @example
 * ```ts ignore
 * const results = await gptqLayerWeights(gpu, 0, "llama", hessians, linears, { blockSize: 128, dampeningFrac: 0.01 });
 * ```
 */
export async function gptqLayerWeights(
  gpu: Gpu,
  layer: number,
  modelType: ModelType,
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
    checkGptqWeight(l.values, l.shape, hessians.get(l.input).columns, l.args, l.name);
  }
  if (linears.length === 0) return [];
  // Linears reading the same input (q/k/v, gate/up) have the same Hessian,
  // so the same inverse-Hessian factor when their activation ordering
  // agrees: one factor per input and order is exact.
  const groups = new Map<string, FactorGroup>();
  linears.forEach((l, i) => {
    const actorder = canonicalActorder(l.args.actorder) !== null;
    const key = `${l.input}|${actorder}`;
    let g = groups.get(key);
    if (g === undefined) groups.set(key, g = { input: l.input, actorder, members: [] });
    g.members.push(i);
  });
  const step: LayerStep = {
    gpu,
    hessians,
    linears,
    factorOptions: (actorder) => ({
      dampeningFrac: options.dampeningFrac,
      actorder,
      // As gptqQuantize lays the factor out for this block size.
      rowAlign: lcm(128, options.blockSize),
    }),
    quantizeOptions: (l) => ({
      blockSize: options.blockSize,
      dampeningFrac: options.dampeningFrac,
      globalScale: fused.get(l.name) ?? null,
      where: l.name,
    }),
    blockSize: options.blockSize,
    diagonals: new Map(),
    prepareMs: 0,
  };
  const t0 = performance.now();
  step.diagonals = await layerDiagonals(gpu, hessians, [...new Set(linears.map((l) => l.input))]);
  step.prepareMs = performance.now() - t0;
  const out: GptqResult[] = new Array(linears.length);
  const budget = options.waveBytes ?? GPTQ_WAVE_BYTES;
  const pending = [...groups.values()];
  while (pending.length > 0) {
    // Always at least one factor per wave; more while the estimate fits.
    const wave = [pending.shift()!];
    let bytes = groupBytes(step, wave[0]);
    while (pending.length > 0 && bytes + groupBytes(step, pending[0]) <= budget) {
      bytes += groupBytes(step, pending[0]);
      wave.push(pending.shift()!);
    }
    await quantizeWave(step, wave, out);
  }
  return out;
}

/** The weights sharing one factor (one input, one activation ordering). */
interface FactorGroup {
  readonly input: string;
  readonly actorder: boolean;
  /** Indices into the layer's linears. */
  readonly members: number[];
}

/** What every wave of one layer shares. */
interface LayerStep {
  readonly gpu: Gpu;
  readonly hessians: LayerHessians;
  readonly linears: readonly GptqWeightInput[];
  readonly factorOptions: (actorder: boolean) => InverseFactorOptions;
  readonly quantizeOptions: (l: GptqWeightInput) => GptqOptions;
  readonly blockSize: number;
  /** diag(H) per input, `columns` values. */
  diagonals: Map<string, Float32Array>;
  /** The diagonals' round trip, ms. */
  prepareMs: number;
}

/** Mirrors every Hessian and reads all their diagonals with one wait. */
async function layerDiagonals(
  gpu: Gpu,
  hessians: LayerHessians,
  inputs: readonly string[],
): Promise<Map<string, Float32Array>> {
  const batch = new CommandBatch(gpu);
  const tensors: GpuTensor[] = [];
  try {
    for (const input of inputs) {
      const h = hessians.get(input);
      h.recordSymmetrize(batch);
      tensors.push(recordDiagonal(batch, h.matrix));
    }
    const host = await readMany(tensors);
    return new Map(
      inputs.map((input, i) => [
        input,
        (host[i] as Float32Array).slice(0, hessians.get(input).columns),
      ]),
    );
  } finally {
    batch.submit();
    for (const t of tensors) t.destroy();
  }
}

/**
 * Estimated GPU bytes of one group's wave work: U and the inverse's work
 * matrix (order² f32 each, plus scratch) and, per weight, its transposed
 * chunks, zero mask, error block and losses.
 */
function groupBytes(step: LayerStep, g: FactorGroup): number {
  const order = roundUp(step.hessians.get(g.input).columns, PANEL_BLOCK);
  let bytes = 2 * order * order * 4 + 4 * PANEL_BLOCK * order * 4;
  for (const i of g.members) {
    const ld = roundUp(step.linears[i].shape[0], 8);
    bytes += (2 * order + step.blockSize + 1) * ld * 4;
  }
  return bytes;
}

/** One wave: speculative factors and every loop on them, one submit, one readback. */
async function quantizeWave(
  step: LayerStep,
  wave: readonly FactorGroup[],
  out: GptqResult[],
): Promise<void> {
  const { gpu, hessians, linears } = step;
  const t0 = performance.now();
  const batch = new CommandBatch(gpu);
  const recorded: Array<{
    group: FactorGroup;
    spec: SpeculativeFactor;
    loops: Array<{ index: number; plan: GptqLoopPlan; loop: RecordedColumnLoop }>;
  }> = [];
  const failed: FactorGroup[] = [];
  try {
    for (const group of wave) {
      const spec = InverseHessianFactor.recordFirstAttempt(
        batch,
        hessians.get(group.input),
        step.diagonals.get(group.input)!,
        step.factorOptions(group.actorder),
      );
      const entry = { group, spec, loops: [] as (typeof recorded)[number]["loops"] };
      recorded.push(entry);
      spec.releaseScratch();
      for (const index of group.members) {
        const l = linears[index];
        const plan = planGptqLoop(l.values, l.shape, spec.factor, l.args, step.quantizeOptions(l));
        entry.loops.push({ index, plan, loop: recordColumnLoop(batch, plan.loop) });
      }
      // Runs nothing sooner on the whole, but lets the scratch go back to the pool.
      batch.submit();
    }
    const host = await readMany(
      recorded.flatMap((e) => [e.spec.status, ...e.loops.flatMap((x) => x.loop.readback)]),
    );
    const waveMs = performance.now() - t0;
    const timings = {
      prepareMs: step.prepareMs,
      choleskyMs: 0,
      inverseMs: 0,
      quantizeMs: waveMs,
      totalMs: step.prepareMs + waveMs,
    };
    let at = 0;
    for (const e of recorded) {
      const ok = (host[at++] as Uint32Array)[0] === 0;
      for (const x of e.loops) {
        const n = x.loop.readback.length;
        if (ok) out[x.index] = gptqResult(x.plan, x.loop.finish(host.slice(at, at + n)), timings);
        at += n;
      }
      if (!ok) failed.push(e.group);
    }
  } finally {
    batch.submit();
    for (const e of recorded) {
      for (const x of e.loops) x.loop.destroy();
      e.spec.status.destroy();
      e.spec.factor.destroy();
    }
  }
  // The rare failed first attempt: today's slow path, retries and fallback included.
  for (const group of failed) {
    const factor = await InverseHessianFactor.compute(
      gpu,
      hessians.get(group.input),
      step.factorOptions(group.actorder),
    );
    try {
      for (const index of group.members) {
        const l = linears[index];
        out[index] = await gptqQuantize(
          gpu,
          l.values,
          l.shape,
          factor,
          l.args,
          step.quantizeOptions(l),
        );
      }
    } finally {
      factor.destroy();
    }
  }
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
 * @param gpu the device
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
  gpu: Gpu,
  hessians: LayerHessians,
  items: readonly ReconstructionInput[],
  maxChunkBytes: number = RECONSTRUCTION_CHUNK_BYTES,
): Promise<number[][]> {
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
