/**
 * QuantizationModifier and GPTQModifier as layer modifiers of the graph.
 *
 * Per layer, a session
 * 1. (QuantizationModifier) quantizes the weights round-to-nearest at the
 *    layer's start, as upstream does at calibration start;
 * 2. observes, per calibration sample, the inputs of Linears with static
 *    input args (or NVFP4's calibrated input global scale) and the
 *    post-RoPE K/V (and query) states of attention, with the args'
 *    observer (§4.2, minmax EMA by default: the first sample dominates);
 * 3. (GPTQModifier) accumulates Hessians and runs GPTQ at the layer's end;
 * 4. yields the modules' results: weight qparams, input scales, K/V scales.
 *
 * Quantization-aware calibration (upstream default, switched off when GPTQ,
 * AWQ or AutoRound is in the recipe or by the user): calibration forwards
 * run with fake-quantized weights, and each Linear's input is fake-quantized
 * with the scale its observer holds after the current sample. That scale
 * depends on statistics of the same forward, and statistics further down
 * the layer depend on the fake-quantized inputs above them, so llmc
 * calibrates a layer in rounds: round r observes the points whose upstream
 * scales were all settled in earlier rounds and replays those per-sample
 * scales. The propagation forward then uses the final scales, like
 * upstream's second pass. K/V are not fake-quantized in calibration
 * forwards (the layer API has no hook for it); only their scales are
 * observed.
 *
 * @module
 */

import {
  concatMap,
  from,
  last,
  lastValueFrom,
  mergeMap,
  type OperatorFunction,
  toArray,
} from "../../_rxjs.ts";
import type { Engine, Tensor } from "../../engine/engine.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { expertIndexOf, linearInputGroups } from "../../model/moe_names.ts";
import {
  furthestTapPart,
  type LinearInputTransform,
  nearestTapPart,
  type TapPart,
  tapPartOfInput,
} from "../../model/taps.ts";
import { computeDTypeOf } from "./linear_plan.ts";
import type { PlannedLinear } from "./linear_plan.ts";
import type { GptqResult } from "../gptq/gptq_quantize.ts";
import { quantizationArgsEqual } from "../../quant/args.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import type { MinMax } from "../../quant/calibration_view.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import { qparamsOf } from "../../quant/observers.ts";
import type { ObserverState } from "../../quant/observers.ts";
import {
  fakeQuantizeDynamicTokens,
  fakeQuantizeRows,
  inputSimulation,
} from "../../graph/activation_fake_quant.ts";
import type { InputSimulation } from "../../graph/activation_fake_quant.ts";
import type { CalibrationBatch } from "../../graph/calibration_batches.ts";
import { gptqLayerWeights, LayerHessians, reconstructionErrors } from "../gptq/gptq_weights.ts";
import type {
  AttentionResult,
  CalibrationTap,
  LayerEnvironment,
  LayerModifier,
  LayerResult,
  LayerSession,
  LinearResult,
  ObservedQParams,
  StateQParams,
} from "../../graph/modifier.ts";
import { globalScaleOfState, observeMinMax } from "../../graph/observer_operators.ts";
import { inputNeedsCalibration, isQuantizedLinear } from "./quantization_plan.ts";
import type { AttentionPlan, QuantizationPlan } from "./quantization_plan.ts";
import { type QuantizedLinear, rtnQuantizeLinears } from "./rtn_linears.ts";
import { layerFusedSets } from "./layer_fused_sets.ts";
import { rtnFakeQuantize } from "./rtn_fake_quantize.ts";
import {
  readSampleMinMax,
  recordHeadMinMax,
  recordTensorMinMax,
} from "../../graph/sample_statistics.ts";
import type { PendingSampleMinMax } from "../../graph/sample_statistics.ts";
import { oncePerRun } from "../_once_per_run.ts";

/** The attention states' position among the observation points (after q/k/v's inputs). */
const ATTENTION_POINT = 1;
/** The input groups' positions in forward order, around the attention point. */
const groupPoint = (i: number) => (i === 0 ? 0 : i + 1);
/** The group every expert's gate/up Hessian is when all experts see all tokens. */
const MOE_IN = "moe_in";

interface InputGroup {
  readonly key: string;
  readonly point: number;
  /** The group's modules (full names), in forward order. */
  readonly modules: readonly string[];
  /** The planned quantized Linears of the group. */
  readonly planned: readonly PlannedLinear[];
  /** Linears whose input statistics are observed. */
  readonly observed: readonly PlannedLinear[];
  /** How calibration forwards simulate the group's input quantization. */
  readonly simulation: InputSimulation;
  /** The shared input args when every module of the group has the same ones. */
  readonly args: QuantizationArgs | null;
}

interface Pending {
  readonly key: string;
  readonly firstSample: number;
  readonly stats: PendingSampleMinMax;
}

/** Per-sample scales a later round replays. */
interface RunningQParams {
  readonly scale: Float32Array;
  readonly zeroPoint: Float32Array;
}

function groupsOf(
  config: LayerEnvironment["config"],
  layer: number,
  plan: QuantizationPlan,
  quantizationAware: boolean,
  warn: (m: string) => void,
  only?: ReadonlySet<string>,
): InputGroup[] {
  return linearInputGroups(config, layer).map(({ key, linears: g }, i) => {
    const modules = g.map((l) => `${layerPrefix(layer)}.${l}`);
    const planned = plan.linears.linears.filter((l) =>
      modules.includes(l.name) && isQuantizedLinear(l) && (only?.has(l.name) ?? true)
    );
    const observed = planned.filter((l) => inputNeedsCalibration(l.scheme!.inputActivations));
    const inputs = modules.map((m) =>
      planned.find((l) => l.name === m)?.scheme?.inputActivations ?? null
    );
    const first = inputs[0];
    const same = inputs.every((a) =>
      a === first || (a !== null && first !== null && quantizationArgsEqual(a, first))
    );
    let simulation: InputSimulation = { kind: "none", reason: "no input quantization" };
    if (first !== null && same) simulation = inputSimulation(first);
    else if (inputs.some((a) => a !== null)) {
      simulation = { kind: "none", reason: "modules sharing this input quantize it differently" };
    }
    if (quantizationAware && simulation.kind === "none" && inputs.some((a) => a !== null)) {
      warn(
        `quantization-aware calibration does not simulate the inputs of ${g.join("/")} ` +
          `(${simulation.reason}); calibration forwards see them unquantized`,
      );
    }
    return {
      key,
      point: groupPoint(i),
      modules,
      planned,
      observed,
      simulation,
      args: same ? first : null,
    };
  });
}

function observedState(states: readonly ObserverState[]): ObserverState {
  return states[states.length - 1];
}

async function statesOf(
  observations: readonly MinMax[],
  args: QuantizationArgs,
  dtype: ComputeDType,
): Promise<ObserverState[]> {
  return await lastValueFrom(from(observations).pipe(observeMinMax(args, dtype), toArray()));
}

function staticQParams(
  state: ObserverState,
  args: QuantizationArgs,
  dtype: ComputeDType,
): ObservedQParams & StateQParams {
  const qp = qparamsOf(state, args, { dtype });
  const shape = args.strategy === "attn_head" ? [qp.scale.length, 1, 1] : [1];
  return { scale: qp.scale, zeroPoint: args.symmetric ? null : qp.zeroPoint, shape };
}

/** The layer session of a QuantizationModifier or GPTQModifier. */
class QuantizationSession implements LayerSession {
  readonly rounds: number;
  readonly calibrationWeights: Map<string, Float32Array>;
  readonly #env: LayerEnvironment;
  readonly #plan: QuantizationPlan;
  readonly #gptq: boolean;
  readonly #groups: InputGroup[];
  readonly #attention: AttentionPlan | null;
  readonly #roundOf = new Map<number, number>();
  readonly #rtn = new Map<string, QuantizedLinear>();
  readonly #hessians: LayerHessians | null;
  /** Final observer state per module (input) or per `k`/`v`/`q`. */
  readonly #states = new Map<string, ObserverState>();
  /** Per-sample running qparams per group key (quantization-aware replay). */
  readonly #running = new Map<string, RunningQParams>();
  /** Final input qparams per group key (propagation forward). */
  readonly #final = new Map<string, ObservedQParams>();
  #finished = false;

  constructor(env: LayerEnvironment, plan: QuantizationPlan, gptq: boolean, said: Set<string>) {
    this.#env = env;
    this.#plan = plan;
    this.#gptq = gptq;
    const k = env.layer;
    this.#groups = groupsOf(
      env.config,
      k,
      plan,
      env.quantizationAware,
      // The same group has the same note in every layer of its kind (dense or sparse): say it once.
      oncePerRun(said, env.emit),
      env.modules,
    );
    this.#attention =
      plan.attention.find((a) => a.layer === k && (env.modules?.has(a.module) ?? true)) ?? null;

    // A point's round is the number of replayed groups before it.
    const replayed = env.quantizationAware
      ? this.#groups.filter((g) => g.observed.length > 0 && g.simulation.kind === "static")
      : [];
    const roundAt = (point: number) => replayed.filter((g) => g.point < point).length;
    const points: number[] = this.#groups.filter((g) => g.observed.length > 0).map((g) => g.point);
    if (this.#attention !== null) points.push(ATTENTION_POINT);
    if (gptq) {
      const hessianGroups = new Set(
        this.#groups.filter((g) => this.#gptqTargets(g).length > 0).map((g) => this.#hessianKey(g)),
      );
      points.push(...this.#groups.filter((g) => hessianGroups.has(g.key)).map((g) => g.point));
    }
    for (const p of points) this.#roundOf.set(p, roundAt(p));
    this.rounds = points.length === 0 ? 0 : Math.max(...points.map(roundAt)) + 1;

    this.calibrationWeights = new Map();
    if (!gptq) {
      const linears = this.#groups.flatMap((g) => g.planned).filter((l) =>
        l.scheme!.weights !== null
      );
      for (const r of this.#rtnOf(linears)) {
        this.#rtn.set(r.name, r);
        if (env.quantizationAware) {
          this.calibrationWeights.set(`${r.name}.weight`, r.fakeQuantized!);
        }
      }
    }
    const columns = new Map<string, number>();
    if (gptq) {
      for (const g of this.#groups) {
        const t = this.#gptqTargets(g);
        if (t.length > 0) columns.set(this.#hessianKey(g), t[0].shape[1]);
      }
    }
    this.#hessians = columns.size > 0 ? LayerHessians.create(env.engine, columns) : null;
  }

  observe(round: number): OperatorFunction<CalibrationTap, unknown> {
    return (taps$) =>
      taps$.pipe(
        mergeMap((tap) => from(this.#record(round, tap))),
        toArray(),
        concatMap((pending) => this.#fold(pending)),
        last(null, null),
      );
  }

  tapPart(round: number): TapPart {
    const { config, layer } = this.#env;
    const parts: TapPart[] = this.#groups
      .filter((g) => this.#roundOf.get(g.point) === round)
      .map((g) => tapPartOfInput(config, layer, g.modules[0]));
    if (this.#roundOf.get(ATTENTION_POINT) === round) parts.push("through_attention");
    // A round that observes nothing here needs no more of the forward than its first tap.
    return parts.length === 0 ? "through_qkv_input" : furthestTapPart(parts);
  }

  repeatsThrough(round: number): TapPart {
    if (!this.#env.quantizationAware) return "inputs";
    const { config, layer } = this.#env;
    // A group's inputs are replayed with the running scales from the round after the
    // one that observed them on: only the groups round − 1 observed change.
    const changed = this.#groups.filter((g) =>
      g.observed.length > 0 && g.simulation.kind === "static" && g.args !== null &&
      this.#roundOf.get(g.point) === round - 1
    );
    return nearestTapPart(changed.map((g) => tapPartOfInput(config, layer, g.modules[0])));
  }

  inputTransform(
    round: number | "propagate",
    samples: CalibrationBatch,
  ): LinearInputTransform | null {
    if (!this.#env.quantizationAware) return null;
    return (modules, x, engine) => {
      const g = this.#groups.find((g) => g.modules[0] === modules[0]);
      if (g === undefined || g.args === null) return x;
      return this.#simulate(g, g.args, round, samples, x, engine);
    };
  }

  async finish(): Promise<LayerResult> {
    this.#finished = true;
    const env = this.#env;
    const linears: LinearResult[] = [];
    const gptq = new Map<string, GptqResult>();
    const reconstruction = new Map<string, number[]>();
    // Experts no calibration token reached have an all-zero Hessian, on
    // which GPTQ would zero every column: they are quantized round-to-nearest.
    const unreached = new Set<string>();
    for (const g of this.#groups) {
      for (const l of this.#gptqTargets(g)) {
        if (this.#expertTokens(l.name)?.calibrated === 0) unreached.add(l.name);
      }
    }
    if (unreached.size > 0) {
      const linears = this.#groups.flatMap((g) => g.planned).filter((l) => unreached.has(l.name));
      for (const r of this.#rtnOf(linears)) this.#rtn.set(r.name, r);
      for (const l of linears) {
        env.emit({
          type: "warning",
          message: `${l.name}: no calibration token was routed to this expert ` +
            "(moe_calibrate_all_experts is false); quantized round-to-nearest instead of GPTQ",
        });
      }
    }
    if (this.#gptq && this.#hessians !== null) {
      const targets = this.#groups.flatMap((g) =>
        this.#gptqTargets(g).filter((l) => !unreached.has(l.name)).map((l) => ({ l, g }))
      );
      const m = this.#plan.modifier;
      const results = await gptqLayerWeights(
        env.engine,
        env.layer,
        env.config,
        this.#hessians,
        targets.map(({ l, g }) => ({
          name: l.name,
          values: this.#weight(l),
          shape: l.shape,
          args: l.scheme!.weights!,
          dtype: this.#dtype(l),
          input: this.#hessianKey(g),
        })),
        {
          blockSize: m.type === "GPTQModifier" ? m.blockSize : 128,
          dampeningFrac: m.type === "GPTQModifier" ? m.dampeningFrac ?? 0.01 : 0.01,
        },
      );
      targets.forEach(({ l }, i) => gptq.set(l.name, results[i]));
      // The output error of GPTQ's weights next to round-to-nearest's with
      // the same args, on the same inputs (the Hessians): the quantization
      // error the per-module metrics report.
      const rtn = await this.#rtnComparison(targets.map(({ l }) => l));
      const errors = await reconstructionErrors(
        env.engine,
        this.#hessians,
        targets.map(({ l, g }, i) => ({
          input: this.#hessianKey(g),
          original: this.#weight(l),
          shape: l.shape,
          candidates: [results[i].weight, rtn[i]],
        })),
      );
      targets.forEach(({ l }, i) => reconstruction.set(l.name, errors[i]));
      // Nothing reads the Hessians after this: free them before the propagation forward.
      this.#hessians.destroy();
    }
    for (const g of this.#groups) {
      for (const l of g.planned) {
        const scheme = l.scheme!;
        const original = this.#weight(l);
        const input = scheme.inputActivations === null ? null : this.#inputQParams(l);
        const rtn = this.#rtn.get(l.name);
        const q = gptq.get(l.name);
        let weight = original;
        let forwardWeight = original;
        let weightQParams: LinearResult["weightQParams"] = null;
        let metric: LinearResult["metric"] = null;
        if (rtn !== undefined) {
          weightQParams = rtn.qparams;
          if (env.quantizationAware) forwardWeight = rtn.fakeQuantized!;
          metric = {
            error: rtn.relativeError!,
            errorKind: "relative_weight_mse",
            seconds: rtn.seconds,
            ...this.#tokensField(l.name),
          };
        } else if (q !== undefined) {
          weight = q.weight;
          forwardWeight = q.weight;
          weightQParams = {
            scale: q.scale,
            zeroPoint: q.zeroPoint,
            globalScale: q.globalScale ?? null,
            gIdx: q.gIdx ?? null,
          };
          const [gptqOut, rtnOut] = reconstruction.get(l.name)!;
          metric = {
            error: q.loss,
            errorKind: "gptq_loss",
            seconds: q.timings.totalMs / 1000,
            outputError: gptqOut,
            rtnOutputError: rtnOut,
            ...this.#tokensField(l.name),
          };
          if (q.fellBackToRtn) {
            env.emit({
              type: "warning",
              message:
                `${l.name}: the Hessian could not be inverted; fell back to round-to-nearest`,
            });
          }
        }
        linears.push({
          module: l.name,
          modifier: this.#plan.modifier.type,
          scheme,
          format: l.format,
          shape: l.shape,
          weight,
          weightQParams,
          input,
          forwardWeight,
          metric,
        });
      }
    }
    const attention: AttentionResult[] = [];
    const a = this.#attention;
    if (a !== null && a.kv !== null) {
      const dtype = this.#attentionDtype();
      attention.push({
        module: a.module,
        args: a.kv,
        k: staticQParams(this.#state("k"), a.kv, dtype),
        v: staticQParams(this.#state("v"), a.kv, dtype),
        q: a.query === null ? null : staticQParams(this.#state("q"), a.query, dtype),
      });
    }
    return { linears, attention };
  }

  dispose(): void {
    this.#hessians?.destroy();
  }

  // ------------------------------------------------------------------ private

  /**
   * The Hessian a group's inputs accumulate into: with all experts
   * calibrated every expert's gate/up reads the router's input, so they
   * share its Hessian instead of accumulating copies of it.
   */
  #hessianKey(g: InputGroup): string {
    const all = this.#env.expertTokens?.calibrateAllExperts ?? true;
    return all && /^expert\.\d+\.gate_up$/.test(g.key) ? MOE_IN : g.key;
  }

  #expertTokens(module: string) {
    const e = expertIndexOf(module);
    if (e === null || this.#env.expertTokens === undefined) return null;
    const block = module.slice(0, module.indexOf(".experts."));
    return this.#env.expertTokens.of(block, e);
  }

  #tokensField(module: string) {
    const t = this.#expertTokens(module);
    return t === null ? {} : { expertTokens: t };
  }

  /**
   * Round-to-nearest of some of the layer's Linears: their qparams, and
   * unless `fakeQuantize` is false their fake-quantized weights and relative errors.
   */
  #rtnOf(linears: readonly PlannedLinear[], fakeQuantize = true): QuantizedLinear[] {
    return rtnQuantizeLinears(
      linears.map((l) => ({
        name: l.name,
        values: this.#weight(l),
        shape: l.shape,
        scheme: l.scheme!,
        format: null,
        dtype: this.#dtype(l),
      })),
      {
        // Only the sets whose members are all here with tensor_group weights are fused.
        fusedSets: layerFusedSets(this.#env.layer, this.#env.config, () => true),
        fakeQuantize,
      },
    );
  }

  /**
   * GPTQ's comparison: the round-to-nearest fake-quantized weights of some
   * of the layer's Linears (their qparams on the host, the grid on the
   * layer's engine where it takes them).
   */
  #rtnComparison(linears: readonly PlannedLinear[]): Promise<Float32Array[]> {
    const quantized = this.#rtnOf(linears, false);
    return rtnFakeQuantize(
      this.#env.engine,
      linears.map((l, i) => ({
        name: l.name,
        values: this.#weight(l),
        shape: l.shape,
        args: l.scheme!.weights!,
        qparams: quantized[i].qparams,
        dtype: this.#dtype(l),
      })),
    );
  }

  #gptqTargets(g: InputGroup): PlannedLinear[] {
    return this.#gptq ? g.planned.filter((l) => l.scheme!.weights !== null) : [];
  }

  #weight(l: PlannedLinear): Float32Array {
    const w = this.#env.weights.get(`${l.name}.weight`);
    if (w === undefined) throw new Error(`${l.name}.weight is not among the layer's weights`);
    return w;
  }

  #dtype(l: PlannedLinear): ComputeDType {
    return computeDTypeOf(this.#env.dtypes.get(`${l.name}.weight`) ?? "F32", `${l.name}.weight`);
  }

  #attentionDtype(): ComputeDType {
    const name = `${this.#attention!.module}.k_proj.weight`;
    return computeDTypeOf(this.#env.dtypes.get(name) ?? "F32", name);
  }

  #state(key: string): ObserverState {
    const s = this.#states.get(key);
    if (s === undefined) throw new Error(`layer ${this.#env.layer}: '${key}' was never observed`);
    return s;
  }

  #inputQParams(l: PlannedLinear): ObservedQParams | null {
    const args = l.scheme!.inputActivations!;
    if (!inputNeedsCalibration(args)) return null;
    const state = this.#state(l.name);
    const dtype = this.#dtype(l);
    if (args.dynamic === "local") return { globalScale: globalScaleOfState(state, dtype) };
    return staticQParams(state, args, dtype);
  }

  /** Records this tap's reductions (synchronously, into the tap's batch). */
  #record(round: number, tap: CalibrationTap): Pending[] {
    const e = tap.event;
    const first = tap.samples.firstSample;
    if (e.kind === "attention") {
      const a = this.#attention;
      if (a === null || this.#roundOf.get(ATTENTION_POINT) !== round) return [];
      const rec = (x: Tensor, heads: number, args: QuantizationArgs) =>
        args.strategy === "attn_head"
          ? recordHeadMinMax(e.engine, x, e.sequences, e.seqLen, heads)
          : recordTensorMinMax(e.engine, x, e.sequences, e.seqLen);
      const out: Pending[] = [];
      if (a.kv !== null) {
        out.push({ key: "k", firstSample: first, stats: rec(e.k, e.kvHeads, a.kv) });
        out.push({ key: "v", firstSample: first, stats: rec(e.v, e.kvHeads, a.kv) });
      }
      if (a.query !== null) {
        out.push({ key: "q", firstSample: first, stats: rec(e.q, e.heads, a.query) });
      }
      return out;
    }
    if (e.kind === "moe_routing") return [];
    const g = this.#groups.find((g) => g.modules[0] === e.modules[0]);
    if (g === undefined || this.#roundOf.get(g.point) !== round) return [];
    // A group sharing another's Hessian adds nothing of its own.
    if (this.#hessianKey(g) === g.key && this.#hessians?.has(g.key)) {
      this.#hessians.add(g.key, e.x, e.sequences);
    }
    if (g.observed.length === 0) return [];
    return [{
      key: g.key,
      firstSample: first,
      stats: recordTensorMinMax(e.engine, e.x, e.sequences, e.seqLen),
    }];
  }

  /** Reads a round's statistics back and folds them into the observers. */
  async #fold(pending: readonly Pending[]): Promise<void> {
    const ordered = [...pending].sort((a, b) => a.firstSample - b.firstSample);
    const perForward = await readSampleMinMax(this.#env.engine, ordered.map((p) => p.stats));
    const byKey = new Map<string, MinMax[]>();
    ordered.forEach((p, i) => {
      const list = byKey.get(p.key) ?? [];
      list.push(...perForward[i]);
      byKey.set(p.key, list);
    });
    for (const [key, observations] of byKey) {
      const g = this.#groups.find((g) => g.key === key);
      if (g === undefined) {
        const a = this.#attention!;
        const args = key === "q" ? a.query! : a.kv!;
        this.#states.set(
          key,
          observedState(await statesOf(observations, args, this.#attentionDtype())),
        );
        continue;
      }
      for (const l of g.observed) {
        const args = l.scheme!.inputActivations!;
        const dtype = this.#dtype(l);
        const states = await statesOf(observations, args, dtype);
        this.#states.set(l.name, observedState(states));
        if (g.args !== null && g.simulation.kind === "static" && !this.#running.has(g.key)) {
          const scale = new Float32Array(states.length);
          const zeroPoint = new Float32Array(states.length);
          states.forEach((s, i) => {
            const qp = qparamsOf(s, args, { dtype });
            scale[i] = qp.scale[0];
            zeroPoint[i] = qp.zeroPoint[0];
          });
          this.#running.set(g.key, { scale, zeroPoint });
          this.#final.set(g.key, staticQParams(observedState(states), args, dtype));
        }
      }
    }
  }

  /** Fake-quantizes a group's input as upstream's wrapped forward would at this point. */
  #simulate(
    g: InputGroup,
    args: QuantizationArgs,
    round: number | "propagate",
    samples: CalibrationBatch,
    x: Tensor,
    engine: Engine,
  ): Tensor {
    switch (g.simulation.kind) {
      case "none":
        return x;
      case "dynamic_token":
        return fakeQuantizeDynamicTokens(engine, x, args);
      case "static": {
        const rows = samples.sequences * samples.seqLen;
        const scale = new Float32Array(rows);
        const zp = new Float32Array(rows);
        if (round === "propagate") {
          if (!this.#finished) throw new Error("propagation transform requested before finish()");
          const fin = this.#final.get(g.key);
          if (fin === undefined) return x;
          scale.fill(fin.scale![0]);
          zp.fill(fin.zeroPoint?.[0] ?? 0);
        } else {
          // A group whose scales are not settled yet cannot affect what this round observes.
          const run = this.#running.get(g.key);
          if (run === undefined) return x;
          for (let b = 0; b < samples.sequences; b++) {
            const s = samples.firstSample + b;
            scale.fill(run.scale[s], b * samples.seqLen, (b + 1) * samples.seqLen);
            zp.fill(run.zeroPoint[s], b * samples.seqLen, (b + 1) * samples.seqLen);
          }
        }
        return fakeQuantizeRows(engine, x, scale, zp, args);
      }
    }
  }
}

/**
 * A QuantizationModifier (round-to-nearest weights, calibrated activations)
 * or GPTQModifier (GPTQ weights, calibrated activations) as a layer modifier.
 *
 * @param plan the modifier's plan ({@link planQuantization})
 * @returns the layer modifier
 * @example
 * ```ts ignore
 * const modifier = quantizationLayerModifier(planQuantization(model, recipe.modifiers[0]));
 * const session = modifier.open(env);
 * ```
 */
export function quantizationLayerModifier(plan: QuantizationPlan): LayerModifier {
  const gptq = plan.modifier.type === "GPTQModifier";
  const said = new Set<string>();
  return {
    type: plan.modifier.type,
    disablesQuantizationAware: gptq,
    moduleSubsets: true,
    open: (env) => new QuantizationSession(env, plan, gptq, said),
  };
}
