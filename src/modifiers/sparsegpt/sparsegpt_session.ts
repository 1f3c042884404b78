/**
 * SparseGPTModifier as a layer modifier of the graph (§4.5): per decoder
 * layer, Hessians are accumulated on the layer's engine from the tapped
 * inputs of the pruned Linears (one per distinct input, as for GPTQ), and at
 * the layer's end every pruned weight goes through `sparsifyWeight` on the
 * engine's second-order ops (one factor per input; on WebGPU every
 * factorization and loop of the layer read back together, two device polls
 * when nothing fails). The pruned weights
 * are the layer's forward weights, so the propagation forward (error
 * propagation, §4.11) sees the compressed layer.
 *
 * @module
 */

import { from, last, mergeMap, type OperatorFunction } from "../../_rxjs.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { linearInputGroups } from "../../model/moe_names.ts";
import type { SparseGptWeight } from "./sparsegpt_prune.ts";
import type { QuantizationScheme } from "../../quant/scheme.ts";
import { LayerHessians, perWeight } from "../gptq/gptq_weights.ts";
import { sparsifyWeight } from "./sparsify_weight.ts";
import type {
  CalibrationTap,
  LayerEnvironment,
  LayerModifier,
  LayerResult,
  LayerSession,
  LinearResult,
} from "../../graph/modifier.ts";
import type { PrunedLinear, SparsityPlan } from "./sparsity_plan.ts";

/** The scheme of a Linear that is pruned but not quantized (its weight is written dense). */
export const DENSE_SCHEME: QuantizationScheme = Object.freeze({
  targets: Object.freeze([]) as unknown as readonly string[],
  weights: null,
  inputActivations: null,
  outputActivations: null,
  format: null,
});

class SparseGptSession implements LayerSession {
  readonly rounds: number;
  readonly calibrationWeights = new Map<string, Float32Array>();
  readonly #env: LayerEnvironment;
  readonly #plan: SparsityPlan;
  /** Pruned Linears of this layer with their Hessian key. */
  readonly #targets: { l: PrunedLinear; key: string; first: string }[] = [];
  readonly #hessians: LayerHessians | null;

  constructor(env: LayerEnvironment, plan: SparsityPlan) {
    this.#env = env;
    this.#plan = plan;
    const columns = new Map<string, number>();
    for (const g of linearInputGroups(env.config, env.layer)) {
      const names = g.linears.map((l) => `${layerPrefix(env.layer)}.${l}`);
      for (const l of plan.linears) {
        if (l.layer !== env.layer || !names.includes(l.name)) continue;
        this.#targets.push({ l, key: g.key, first: names[0] });
        columns.set(g.key, l.shape[1]);
      }
    }
    this.rounds = columns.size > 0 ? 1 : 0;
    this.#hessians = columns.size > 0 ? LayerHessians.create(env.engine, columns) : null;
  }

  observe(_round: number): OperatorFunction<CalibrationTap, unknown> {
    return (taps$) =>
      taps$.pipe(
        mergeMap((tap) => {
          const e = tap.event;
          if (e.kind === "linear_input" && this.#hessians !== null) {
            const t = this.#targets.find((t) => t.first === e.modules[0]);
            if (t !== undefined) this.#hessians.add(t.key, e.x, e.sequences);
          }
          return from([null]);
        }),
        last(null, null),
      );
  }

  inputTransform(): null {
    return null;
  }

  async finish(): Promise<LayerResult> {
    const m = this.#plan.modifier;
    const weights: SparseGptWeight[] = this.#targets.map(({ l, key }) => {
      const w = this.#env.weights.get(`${l.name}.weight`);
      if (w === undefined) throw new Error(`${l.name}.weight is not among the layer's weights`);
      return {
        input: key,
        weight: w,
        shape: l.shape,
        options: {
          sparsity: l.sparsity,
          maskStructure: this.#plan.maskStructure,
          preserveSparsityMask: m.preserveSparsityMask,
          where: l.name,
        },
      };
    });
    const shared = { blockSize: m.blockSize, dampeningFrac: m.dampeningFrac ?? 0.01 };
    // Each weight through sparsifyWeight on the engine's second-order ops,
    // the weights reading one Hessian (q/k/v, gate/up) sharing its factor.
    const ops = this.#env.engine.secondOrder;
    const hessians = this.#hessians;
    const results = hessians === null ? [] : await perWeight(
      ops,
      (key) => hessians.get(key),
      weights,
      m.blockSize,
      (w, h, factors) =>
        sparsifyWeight(ops, w.weight, w.shape, h, { ...w.options, ...shared }, factors),
    );
    const linears: LinearResult[] = [];
    this.#targets.forEach(({ l }, i) => {
      const r = results[i];
      if (r.fellBackToMagnitude) {
        this.#env.emit({
          type: "warning",
          message: `${l.name}: the Hessian could not be inverted; fell back to magnitude pruning`,
        });
      }
      linears.push({
        module: l.name,
        modifier: m.type,
        scheme: DENSE_SCHEME,
        format: null,
        shape: l.shape,
        weight: r.weight,
        weightQParams: null,
        input: null,
        forwardWeight: r.weight,
        metric: { error: r.loss, errorKind: "gptq_loss", seconds: r.timings.totalMs / 1000 },
      });
    });
    return { linears, attention: [] };
  }

  dispose(): void {
    this.#hessians?.destroy();
  }
}

/**
 * A SparseGPTModifier as a layer modifier.
 *
 * @param plan the modifier's plan ({@link planSparsity})
 * @returns the layer modifier
 * @example
 * ```ts ignore
 * const modifier = sparseGptLayerModifier(planSparsity(model, recipe.modifiers[0]));
 * ```
 */
export function sparseGptLayerModifier(plan: SparsityPlan): LayerModifier {
  return {
    type: plan.modifier.type,
    // Upstream's SparseGPT calibrates without fake quantization, like GPTQ.
    disablesQuantizationAware: true,
    open: (env) => new SparseGptSession(env, plan),
  };
}
