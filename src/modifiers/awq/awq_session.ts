/**
 * AWQModifier's smoothing (§4.6) as a layer modifier; the quantization its
 * scheme asks for runs after it as an ordinary round-to-nearest session on
 * the smoothed weights (a GPTQModifier may follow instead).
 *
 * Per layer:
 * 1. one calibration round accumulates the per-channel mean |x| of each
 *    mapping's balance input (the input of its first balance layer);
 * 2. per mapping, in order, a grid search over the exponent r:
 *    ```
 *    s = duo ? clamp(x̄^r / (w̄^(1−r) + 1e-4), 1e-4) : clamp(x̄^r, 1e-4)
 *    s = s / sqrt(max(s) · min(s));  non-finite s_j → 1
 *    balance W → Q(W · s) / s          (memoryless min/max qparams of the scheme)
 *    loss = mean((parent_ref − parent)²)  over every calibration token
 *    ```
 *    every candidate is built from the unmodified weights (upstream 0.10;
 *    0.9.0.x on CPU aliased them between grid points), and all candidates'
 *    losses come back from the device together ({@link LayerSubgraph});
 * 3. the best scales rescale the layer exactly: balance columns `· s`,
 *    the smooth layer's outputs `/ s`.
 *
 * The grid is upstream's later one: r = k/(n−1) (ratio 1 included), and
 * with duo scaling the identity (0, false) first. That first point is
 * round-to-nearest with the same scheme, which the metrics stream reports
 * next to the chosen point for every smoothed parent.
 *
 * @module
 */

import { concatMap, map, type OperatorFunction } from "../../_rxjs.ts";
import type { Engine, RunningHessian, SecondOrderOps, Tensor } from "../../engine/engine.ts";
import type { ActivationCache } from "../../graph/activation_cache.ts";
import type { ModelConfig } from "../../io/model_config.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import type { QuantizationScheme } from "../../quant/scheme.ts";
import type { AWQModifierSpec } from "../../recipe/modifiers.ts";
import type { SubgraphLosses } from "../../graph/layer_subgraph.ts";
import type {
  CalibrationTap,
  LayerEnvironment,
  LayerModifier,
  LayerResult,
  LayerSession,
} from "../../graph/modifier.ts";
import { computeDTypeOf } from "../quantization/linear_plan.ts";
import { rtnQuantizeLinears } from "../quantization/rtn_linears.ts";
import { hostRtnFakeQuantize, hostSlotMinMax } from "../quantization/rtn_fake_quantize.ts";
import { layerFusedSets } from "../quantization/layer_fused_sets.ts";
import type { QuantizationPlan } from "../quantization/quantization_plan.ts";
import {
  applySmoothing,
  awqDefaultMappings,
  type LayerMapping,
  type MappingPatterns,
  resolveLayerMappings,
} from "../smoothing/layer_mappings.ts";
import { oncePerRun } from "../_once_per_run.ts";
import { GptqShapeError } from "../gptq/errors.ts";

/** A planned AWQ run: its mappings and the quantization after the smoothing. */
export interface AwqPlan {
  readonly kind: "awq";
  readonly modifier: AWQModifierSpec;
  readonly mappings: readonly MappingPatterns[];
  /** Round-to-nearest with the modifier's scheme, after the smoothing. */
  readonly quantization: QuantizationPlan;
  /** Always true: the scales come from calibration activations. */
  readonly needsData: true;
  readonly unmatched: readonly string[];
}

/** One grid point: the exponent and whether weights take part. */
export interface GridPoint {
  readonly ratio: number;
  readonly duo: boolean;
}

/**
 * The grid of upstream's later AWQ (ratio 1 included; with duo scaling the
 * identity point first).
 *
 * @param duoScaling the modifier's `duo_scaling`
 * @param nGrid the modifier's `n_grid`
 * @returns the grid points in search order
 * @example
 * ```ts
 * import { awqGrid } from "./awq_session.ts";
 * awqGrid(false, 3).map((p) => p.ratio); // [0, 0.5, 1]
 * awqGrid(true, 3); // [{ratio: 0, duo: false}, {ratio: 0, duo: true}, {ratio: 1, duo: true}]
 * ```
 */
export function awqGrid(duoScaling: boolean | "both", nGrid: number): GridPoint[] {
  const steps = (n: number) => Array.from({ length: n }, (_, i) => (n <= 1 ? 0 : i / (n - 1)));
  if (duoScaling === "both") {
    return steps(Math.max(1, Math.floor(nGrid / 2))).flatMap((ratio) => [
      { ratio, duo: false },
      { ratio, duo: true },
    ]);
  }
  if (duoScaling === false) return steps(nGrid).map((ratio) => ({ ratio, duo: false }));
  return [
    { ratio: 0, duo: false },
    ...steps(Math.max(1, nGrid - 1)).map((ratio) => ({
      ratio,
      duo: true,
    })),
  ];
}

/**
 * The scales of one grid point.
 *
 * @param xMean per-channel mean |x|
 * @param wMean per-channel mean normalised |W| (needed when `p.duo`)
 * @param p the grid point
 * @returns the normalised scales
 * @example
 * ```ts
 * import { awqScales } from "./awq_session.ts";
 * const s = awqScales(new Float32Array([1, 4]), null, { ratio: 1, duo: false });
 * // [0.5, 2]: s / sqrt(max · min)
 * ```
 */
export function awqScales(
  xMean: Float32Array,
  wMean: Float32Array | null,
  p: GridPoint,
): Float32Array {
  const n = xMean.length;
  const s = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const x = Math.pow(xMean[j], p.ratio);
    const v = p.duo ? x / (Math.pow(wMean![j], 1 - p.ratio) + 1e-4) : x;
    s[j] = Math.max(v, 1e-4);
  }
  let mx = -Infinity;
  let mn = Infinity;
  for (let j = 0; j < n; j++) {
    mx = Math.max(mx, s[j]);
    mn = Math.min(mn, s[j]);
  }
  const norm = Math.sqrt(mx * mn);
  for (let j = 0; j < n; j++) {
    const v = s[j] / norm;
    s[j] = Number.isFinite(v) ? v : 1;
  }
  return s;
}

/** The elements quantized together in one row of a weight (its normalisation chunk). */
function chunkOf(args: QuantizationArgs, rows: number, cols: number): number {
  switch (args.strategy) {
    case "tensor":
      return rows * cols;
    case "group":
    case "tensor_group":
      return args.groupSize ?? cols;
    default:
      return cols;
  }
}

/**
 * Per input channel, the mean over balance layers' rows of |W| normalised
 * by the maximum of its quantization chunk (+1e-6), as upstream's
 * `_compute_layer_means`.
 *
 * @param layers the balance weights `[out, in]` with their weight args
 * @param cols in_features
 * @returns the means, or null when no layer has weight args
 * @example
 * ```ts ignore
 * const wMean = awqWeightMeans([{ w, args }], 64);
 * ```
 */
export function awqWeightMeans(
  layers: readonly { w: Float32Array; args: QuantizationArgs }[],
  cols: number,
): Float32Array | null {
  if (layers.length === 0) return null;
  const sum = new Float64Array(cols);
  let rowsTotal = 0;
  for (const { w, args } of layers) {
    const rows = w.length / cols;
    const chunk = chunkOf(args, rows, cols);
    const norm = new Float32Array(w.length);
    for (let c0 = 0; c0 < w.length; c0 += chunk) {
      let m = 0;
      const end = Math.min(w.length, c0 + chunk);
      for (let i = c0; i < end; i++) m = Math.max(m, Math.abs(w[i]));
      for (let i = c0; i < end; i++) norm[i] = Math.abs(w[i]) / (m + 1e-6);
    }
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) sum[j] += norm[r * cols + j];
    }
    rowsTotal += rows;
  }
  return Float32Array.from(sum, (v) => v / rowsTotal);
}

function where(spec: AWQModifierSpec): string {
  return `${spec.stage}_stage.${spec.group}_modifiers.AWQModifier`;
}

/**
 * The mappings AWQ applies: the recipe's, or (null) those inferred for the
 * architecture, as upstream's `initialize` sets `self.mappings`.
 *
 * @param _config the model config (the architecture the defaults are for)
 * @param spec the modifier
 * @returns the mappings as patterns
 * @example
 * ```ts ignore
 * awqMappingsOf(hf.config, spec).length; // 4 for llama with inferred mappings
 * ```
 */
export function awqMappingsOf(
  config: ModelConfig,
  spec: AWQModifierSpec,
): readonly MappingPatterns[] {
  return spec.mappings === null
    ? awqDefaultMappings(config)
    : spec.mappings.map((m) => ({ smooth: m.smoothLayer, balance: m.balanceLayers }));
}

/**
 * Plans AWQ: its quantization (as a QuantizationModifier with the same
 * fields) and its mappings, checked on every layer.
 *
 * @param config the model config
 * @param spec the modifier
 * @param quantization the plan of its quantization fields
 * @returns the plan
 * @throws {SmoothingMappingError} for a mapping llmc cannot apply
 * @example
 * ```ts ignore
 * const plan = planAwq(hf.config, spec, planQuantization(hf, spec));
 * ```
 */
export function planAwq(
  config: ModelConfig,
  spec: AWQModifierSpec,
  quantization: QuantizationPlan,
): AwqPlan {
  const mappings = awqMappingsOf(config, spec);
  for (let k = 0; k < config.numHiddenLayers; k++) {
    resolveLayerMappings(k, config, mappings, where(spec));
  }
  return Object.freeze({
    kind: "awq",
    modifier: spec,
    mappings,
    quantization,
    needsData: true,
    unmatched: quantization.unmatched,
  });
}

interface PendingInput {
  readonly mapping: number;
  readonly x: Tensor;
}

/** A balance layer of a mapping, as the grid search quantizes it. */
export interface BalanceLayer {
  /** Module name. */
  readonly name: string;
  /** Its scheme (null: not quantized, scaled only). */
  readonly scheme: QuantizationScheme | null;
  /** Weight args (null: not quantized, scaled only). */
  readonly args: QuantizationArgs | null;
  /** The dtype its weight is stored in. */
  readonly dtype: ComputeDType;
}

class AwqSession implements LayerSession {
  readonly rounds = 1;
  readonly calibrationWeights = new Map<string, Float32Array>();
  readonly #mappings: LayerMapping[];
  readonly #sums: Float64Array[];
  readonly #counts: number[];
  /**
   * For mappings whose parent is the balance Linear itself (its output is
   * `X · Wᵀ`), what its grid losses are measured on: the Gram matrix of its
   * inputs, `H = 2/n · XᵀX` over every calibration token (n counting
   * sequences), on the engine; or, where that costs more
   * ({@link gramIsCheaper}), the inputs per forward, on the run's activation
   * budget.
   */
  readonly #grams: (RunningHessian | null)[];
  readonly #inputs: (ActivationCache | null)[];
  /** Per mapping: whether a Linear parent is measured on its Gram matrix (decided at its first input). */
  readonly #useGram: (boolean | null)[];
  #pending: Tensor[] = [];

  constructor(readonly env: LayerEnvironment, readonly plan: AwqPlan, said: Set<string>) {
    // The same mapping is skipped in every layer of its structure; say it once per run.
    const warn = oncePerRun(said, env.emit);
    this.#mappings = resolveLayerMappings(
      env.layer,
      env.config,
      plan.mappings,
      where(plan.modifier),
      warn,
    ).filter((m) => {
      // Upstream smooths a mapping only when one of its layers is quantized.
      const any = [m.smooth, ...m.balance].some((n) => this.#argsOf(n) !== null);
      if (!any) {
        warn(`${where(plan.modifier)}: skipping ${m.smooth}: none of its layers is quantized`);
      }
      return any;
    });
    this.#sums = this.#mappings.map(() => new Float64Array(0));
    this.#counts = this.#mappings.map(() => 0);
    this.#grams = this.#mappings.map(() => null);
    this.#inputs = this.#mappings.map(() => null);
    this.#useGram = this.#mappings.map(() => null);
  }

  #argsOf(module: string): QuantizationArgs | null {
    return this.#schemeOf(module)?.weights ?? null;
  }

  #schemeOf(module: string): QuantizationScheme | null {
    const l = this.plan.quantization.linears.linears.find((l) => l.name === module);
    return l?.scheme ?? null;
  }

  observe(): OperatorFunction<CalibrationTap, unknown> {
    // Folded tap by tap: the host holds one batch's balance inputs at a time,
    // however many calibration batches there are.
    return (taps$) =>
      taps$.pipe(
        map((tap) => this.#record(tap)),
        concatMap(async (pending) => await this.#fold(pending)),
      );
  }

  #record(tap: CalibrationTap): PendingInput[] {
    const e = tap.event;
    if (e.kind !== "linear_input") return [];
    const out: PendingInput[] = [];
    this.#mappings.forEach((m, i) => {
      if (!e.modules.includes(m.balance[0])) return;
      if (isLinearParent(m)) this.#gramOf(i, m, e.x)?.add(e.x, e.sequences);
      const x = e.engine.copy(e.x);
      this.#pending.push(x);
      out.push({ mapping: i, x });
    });
    return out;
  }

  /**
   * The Gram matrix a Linear parent's losses are measured on, made at its
   * first input when {@link gramIsCheaper} on this layer's calibration
   * tokens and the engine holds one of that order; else null (the direct form).
   */
  #gramOf(i: number, m: LayerMapping, x: Tensor): RunningHessian | null {
    if (this.#useGram[i] !== null) return this.#grams[i];
    this.#useGram[i] = false;
    const cols = x.shape[x.shape.length - 1];
    const out = this.env.weights.get(`${m.balance[0]}.weight`)!.length / cols;
    const tokens = this.env.subgraph.batches.reduce((n, b) => n + b.sequences * b.seqLen, 0);
    const spec = this.plan.modifier;
    if (gramIsCheaper(tokens, cols, out, awqGrid(spec.duoScaling, spec.nGrid).length)) {
      try {
        this.#grams[i] = this.env.engine.secondOrder.runningHessian(cols);
        this.#useGram[i] = true;
      } catch (e) {
        // An order the engine's accumulator does not take (WebGPU: a multiple of 4).
        if (!(e instanceof GptqShapeError)) throw e;
      }
    }
    return this.#grams[i];
  }

  async #fold(pending: readonly PendingInput[]): Promise<void> {
    if (pending.length === 0) return;
    const read = await this.env.engine.read(pending.map((p) => p.x)) as Float32Array[];
    pending.forEach((p, i) => {
      const x = read[i];
      const cols = p.x.shape[p.x.shape.length - 1];
      if (this.#sums[p.mapping].length === 0) this.#sums[p.mapping] = new Float64Array(cols);
      const sum = this.#sums[p.mapping];
      for (let r = 0; r < x.length; r += cols) {
        for (let j = 0; j < cols; j++) sum[j] += Math.abs(x[r + j]);
      }
      this.#counts[p.mapping] += x.length / cols;
    });
    for (const [i, p] of pending.entries()) {
      if (!isLinearParent(this.#mappings[p.mapping]) || this.#useGram[p.mapping]) continue;
      const cache = this.#inputs[p.mapping] ??= await this.env.subgraph.cache("awq-in");
      await cache.put(cache.size, read[i]);
    }
    for (const p of pending) p.x.destroy();
    this.#pending = this.#pending.filter((t) => !pending.some((p) => p.x === t));
  }

  inputTransform(): null {
    return null;
  }

  async finish(): Promise<LayerResult> {
    const spec = this.plan.modifier;
    let weights: ReadonlyMap<string, Float32Array> = this.env.weights;
    const tensors = new Map<string, Float32Array>();
    for (let i = 0; i < this.#mappings.length; i++) {
      const m = this.#mappings[i];
      if (this.#counts[i] === 0) continue;
      const t0 = performance.now();
      const xMean = Float32Array.from(this.#sums[i], (v) => v / this.#counts[i]);
      const cols = xMean.length;
      const balance: BalanceLayer[] = m.balance.map((name) => ({
        name,
        scheme: this.#schemeOf(name),
        args: this.#argsOf(name),
        dtype: computeDTypeOf(this.env.dtypes.get(`${name}.weight`) ?? "F32", name),
      }));
      const quantized = balance.filter((b) => b.args !== null);
      const wMean = awqWeightMeans(
        quantized.map((b) => ({ w: weights.get(`${b.name}.weight`)!, args: b.args! })),
        cols,
      );
      const grid = awqGrid(spec.duoScaling, spec.nGrid).filter((p) => !p.duo || wMean !== null);
      const scales = grid.map((p) => awqScales(xMean, wMean, p));
      // Built when the search reaches it: one candidate's weights exist at a time.
      // rtnQuantizeLinears fuses only the sets whose members are all here with tensor_group args.
      const fusedSets = layerFusedSets(this.env.layer, this.env.config, () => true);
      const balanceWeights = quantized.map((b) => ({ b, w: weights.get(`${b.name}.weight`)! }));
      const candidate = (k: number) => awqCandidateWeights(balanceWeights, scales[k], fusedSets);
      // A Linear parent (v_proj → o_proj, up_proj → down_proj) is its balance layer:
      // its output error is X · (W − Ŵ)ᵀ, measured on the Gram matrix of its inputs
      // or on the inputs themselves; no layer forward needed.
      const [gram, inputs] = [this.#grams[i], this.#inputs[i]];
      const w = weights.get(`${m.balance[0]}.weight`)!;
      const candidateOf = (k: number) => candidate(k).get(`${m.balance[0]}.weight`) ?? w;
      const measured = gram !== null
        ? await gramLosses(
          this.env.engine.secondOrder,
          gram,
          this.#counts[i],
          w,
          grid.length,
          candidateOf,
        )
          .finally(() => gram.destroy())
        : inputs !== null
        ? await linearParentLosses(this.env.engine, inputs, cols, w, grid.length, candidateOf)
          // The cached inputs are not needed again: give their memory back.
          .finally(() => inputs.dispose())
        : await this.env.subgraph.losses(m.parent, weights, scales.length, candidate);
      [this.#grams[i], this.#inputs[i]] = [null, null];
      if (!measured.finite) {
        this.env.emit({
          type: "warning",
          message: `${where(spec)}: skipping ${m.smooth}: NaN or inf in the output of ` +
            `${m.parentName} on the calibration data`,
        });
        continue;
      }
      let best = -1;
      measured.losses.forEach((l, c) => {
        if (Number.isFinite(l) && (best < 0 || l < measured.losses[best])) best = c;
      });
      if (best < 0) {
        this.env.emit({
          type: "warning",
          message: `${where(spec)}: skipping ${m.smooth}: no grid point gave a finite loss ` +
            `on ${m.parentName}`,
        });
        continue;
      }
      const rewritten = applySmoothing(weights, m, scales[best]);
      const next = new Map(weights);
      for (const [n, w] of rewritten) {
        next.set(n, w);
        tensors.set(n, w);
      }
      weights = next;
      const ref = measured.referenceMeanSquare;
      this.env.emit({
        type: "module_metric",
        module: m.parentName,
        modifier: "AWQModifier",
        layer: this.env.layer,
        error: measured.losses[best],
        errorKind: "parent_output_mse",
        outputError: ref > 0 ? measured.losses[best] / ref : null,
        // The first grid point is the identity: round-to-nearest with the same scheme.
        rtnOutputError: ref > 0 ? measured.losses[0] / ref : null,
        awqGridPoint: { ratio: grid[best].ratio, duoScaling: grid[best].duo },
        samples: this.env.samples,
        seconds: (performance.now() - t0) / 1000,
        rssBytes: Deno.memoryUsage().rss,
        gpuBytes: 0,
      });
    }
    return { linears: [], attention: [], tensors };
  }

  dispose(): void {
    for (const t of this.#pending) t.destroy();
    this.#pending = [];
    for (const g of this.#grams) g?.destroy();
    // Returns their budget; the files go with the sub-graph's folder in any case.
    for (const c of this.#inputs) c?.dispose().catch(() => {});
  }
}

/** Whether a mapping's parent is its single balance Linear (v_proj → o_proj, up_proj → down_proj). */
function isLinearParent(m: LayerMapping): boolean {
  return !m.smoothIsNorm && m.balance.length === 1 && m.parentName === m.balance[0];
}

/**
 * The mean squared output error of a Linear parent, `Σ‖X(W − Ŵ)ᵀ‖² / (rows · out)`,
 * for each candidate weight Ŵ, through the Gram matrix of its inputs.
 *
 * Upstream runs the parent on every calibration token per grid point; the
 * loss it compares is the same number in another form. With Δ = W − Ŵ and
 * G = XᵀX,
 * ```
 * Σ_t Σ_o (X Δᵀ)²_to = Σ_o Δ_o G Δ_oᵀ = tr(Δ G Δᵀ)
 * ```
 * (expand the square and sum over tokens first), so each candidate costs
 * `out · in²` multiply-adds on G instead of `rows · out · in` on X, and G is
 * accumulated once, in the calibration round. The engine keeps G as the
 * running Hessian `H = 2/n · G` (n sequences), hence the factor n / 2.
 *
 * Rounding: H is float32, each entry off by at most γ_b · Σ_t |x_ti x_tj|
 * (γ_b ≈ b · 2⁻²⁴ for the b tokens of one forward, summed in float32 by the
 * engine's Gram product, then rescaled in float64), and D·H in float32 adds
 * γ_in; the loss moves by at most (γ_b + γ_in) · tr(|Δ| |X|ᵀ|X| |Δ|ᵀ) / (rows · out).
 * The direct float32 forward has the like bound 2γ_in · Σ_to |y_to| Σ_i |x_ti Δ_oi|
 * / (rows · out). These are worst cases; rounding noise Δ is not aligned
 * with X, and measured on the 3M Llama and stories260K (W4A16 asym, 20
 * grid points, 16384 tokens) the two forms' losses differ by at most
 * 5.3e-8 relative while the best and second-best grid points differ by
 * 1.0e-4 or more: the same scales, the same checkpoints bit for bit.
 *
 * @param ops the engine's second-order ops
 * @param gram the running Hessian of the parent's inputs (all of them folded in)
 * @param rows the tokens folded into it
 * @param w the weight W `[out, in]`
 * @param count the number of candidates
 * @param candidate builds candidate Ŵ number c
 * @returns the losses and the reference's mean square
 * @example
 * ```ts ignore
 * const { losses } = await gramLosses(engine.secondOrder, gram, 16384, w, 20, (c) => candidates[c]);
 * ```
 */
export async function gramLosses(
  ops: SecondOrderOps,
  gram: RunningHessian,
  rows: number,
  w: Float32Array,
  count: number,
  candidate: (c: number) => Float32Array,
): Promise<SubgraphLosses> {
  const cols = gram.columns;
  const out = w.length / cols;
  const shape = [out, cols] as const;
  // tr(M H Mᵀ) = 2/n · ‖X Mᵀ‖²: the mean over rows · out values.
  const mean = gram.numSamples / (2 * rows * out);
  // Every call is issued before any is awaited (one device poll on WebGPU);
  // each copies its Δ, so one candidate exists at a time.
  const sums = await Promise.all([
    ops.outputSquareSum(gram, w, shape),
    ...Array.from({ length: count }, (_, c) => {
      const q = candidate(c);
      const d = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) d[i] = w[i] - q[i];
      return ops.outputSquareSum(gram, d, shape);
    }),
  ]);
  const [reference, ...losses] = sums.map((s) => s * mean);
  return {
    finite: Number.isFinite(reference),
    losses: Float64Array.from(losses),
    referenceMeanSquare: reference,
  };
}

/**
 * Whether a Linear parent's grid losses cost fewer multiply-adds through the
 * Gram matrix of its inputs than through its inputs themselves:
 * `tokens·in²` once plus `out·in²` per loss, against `tokens·in·out` per
 * loss (the reference and every grid point). The Gram form wins when the
 * calibration tokens outnumber the input features (the 3M Llama's
 * down_proj: 16384 tokens, 768 inputs, about 5× fewer); with few tokens and a
 * wide input (a 7B down_proj on 128 tokens) it would cost far more.
 *
 * @param tokens calibration tokens (rows of X)
 * @param cols in_features
 * @param out out_features
 * @param points grid points
 * @returns whether to measure on the Gram matrix
 * @example
 * ```ts
 * import { gramIsCheaper } from "./awq_session.ts";
 * gramIsCheaper(16384, 768, 256, 20); // true
 * gramIsCheaper(128, 11008, 4096, 20); // false
 * ```
 */
export function gramIsCheaper(tokens: number, cols: number, out: number, points: number): boolean {
  const losses = points + 1;
  return tokens * cols * cols + losses * out * cols * cols < losses * tokens * cols * out;
}

/**
 * The mean squared output error of a Linear parent, `Σ‖X(W − Ŵ)ᵀ‖² / (rows · out)`,
 * for each candidate weight Ŵ, on the engine: one weight upload per
 * candidate, the cached input batches streamed through it, every row sum
 * read back together.
 *
 * @param engine the engine
 * @param inputs the parent's input batches, `[rows, cols]` each
 * @param cols in_features
 * @param w the weight W `[out, cols]`
 * @param count the number of candidates
 * @param candidate builds candidate Ŵ number c
 * @returns the losses and the reference's mean square
 * @example
 * ```ts ignore
 * const { losses } = await linearParentLosses(engine, inputs, 768, w, 20, (c) => candidates[c]);
 * ```
 */
export async function linearParentLosses(
  engine: Engine,
  inputs: ActivationCache,
  cols: number,
  w: Float32Array,
  count: number,
  candidate: (c: number) => Float32Array,
): Promise<SubgraphLosses> {
  const out = w.length / cols;
  const sums: Tensor[][] = Array.from({ length: count + 1 }, () => []);
  let rows = 0;
  const run = async (weight: Float32Array, into: Tensor[]) => {
    const wt = engine.uploadWeight(weight, [out, cols]);
    try {
      for (let b = 0; b < inputs.size; b++) {
        const xb = await inputs.get(b);
        const x = engine.upload(xb, [xb.length / cols, cols]);
        const y = engine.matmul(x, wt);
        into.push(engine.rowSquaredError(y));
        for (const t of [x, y]) t.destroy();
      }
    } finally {
      wt.destroy();
    }
  };
  try {
    for (let b = 0; b < inputs.size; b++) rows += (await inputs.get(b)).length / cols;
    await run(w, sums[0]);
    for (let c = 0; c < count; c++) {
      // X·Wᵀ − X·Ŵᵀ = X·(W − Ŵ)ᵀ: the error itself comes out of the matmul.
      const q = candidate(c);
      const d = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) d[i] = w[i] - q[i];
      await run(d, sums[c + 1]);
    }
    const read = await engine.read(sums.flat()) as Float32Array[];
    const numel = rows * out;
    const totals: number[] = [];
    let at = 0;
    for (const list of sums) {
      let t = 0;
      for (const a of read.slice(at, at + list.length)) {
        for (let i = 0; i < a.length; i++) t += a[i];
      }
      totals.push(t / numel);
      at += list.length;
    }
    return {
      finite: Number.isFinite(totals[0]),
      losses: Float64Array.from(totals.slice(1)),
      referenceMeanSquare: totals[0],
    };
  } finally {
    for (const t of sums.flat()) t.destroy();
  }
}

/**
 * Q(W · s) / s for every quantized balance layer, with memoryless min/max
 * qparams of each layer's weight args; NVFP4 global scales fused over the
 * given sets (q/k/v, gate/up) as upstream fuses the parent's weight
 * observers during the grid search, so each candidate is quantized as vLLM
 * will run it.
 *
 * @param layers the quantized balance layers with their current weights
 * @param s the candidate's scales (one per input channel)
 * @param fusedSets sets of module names whose global scales are fused
 * @returns the candidate weights by tensor name (`<module>.weight`)
 * @example
 * ```ts ignore
 * const c = awqCandidateWeights([{ b, w }], scales, [["q", "k", "v"]]);
 * ```
 */
export function awqCandidateWeights(
  layers: readonly { readonly b: BalanceLayer; readonly w: Float32Array }[],
  s: Float32Array,
  fusedSets: readonly (readonly string[])[],
): Map<string, Float32Array> {
  const cols = s.length;
  const scaledLayers = layers.map(({ b, w }) => {
    const scaled = new Float32Array(w.length);
    for (let i = 0; i < w.length; i += cols) {
      for (let j = 0; j < cols; j++) scaled[i + j] = w[i + j] * s[j];
    }
    // The grid search observes with memoryless min/max whatever the scheme's observer is.
    const weights = { ...b.args!, observer: "memoryless_minmax" as const };
    return {
      name: b.name,
      values: scaled,
      shape: [w.length / cols, cols] as const,
      scheme: { ...b.scheme!, weights },
      format: null,
      dtype: b.dtype,
    };
  });
  // The qparams here (their min/max on the CPU kernels); the fake quantization
  // below, on the kernels where the layout allows: the same bits as
  // rtnQuantizeLinears' host fakeQuantize, and no relative error, which the
  // search never reads.
  const quantized = rtnQuantizeLinears(scaledLayers, { fusedSets, slotMinMax: hostSlotMinMax });
  const out = new Map<string, Float32Array>();
  for (const [k, r] of quantized.entries()) {
    const l = scaledLayers[k];
    const q = hostRtnFakeQuantize({
      name: l.name,
      values: l.values,
      shape: l.shape,
      args: l.scheme.weights,
      qparams: r.qparams,
      dtype: l.dtype,
    });
    for (let i = 0; i < q.length; i += cols) {
      for (let j = 0; j < cols; j++) q[i + j] /= s[j];
    }
    out.set(`${r.name}.weight`, q);
  }
  return out;
}

/**
 * AWQ's smoothing as a layer modifier (its quantization is a separate one).
 *
 * @param plan the plan ({@link planAwq})
 * @returns the layer modifier; it rewrites layer tensors and turns
 *   quantization-aware calibration off, as upstream
 * @example
 * ```ts ignore
 * const [smooth, quantize] = [awqLayerModifier(plan), quantizationLayerModifier(plan.quantization)];
 * ```
 */
export function awqLayerModifier(plan: AwqPlan): LayerModifier {
  const said = new Set<string>();
  return {
    type: "AWQModifier",
    disablesQuantizationAware: true,
    rewritesLayer: true,
    open: (env) => new AwqSession(env, plan, said),
  };
}
