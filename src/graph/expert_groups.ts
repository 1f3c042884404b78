/**
 * A sparse MoE layer with its experts processed in groups, so that a layer
 * with many experts never holds all their weights and Hessians at once:
 *
 * ```
 * rest of the layer (attention, norms, router, shared expert): read once
 * for each group of experts [start, end):
 *   read the group's weights ──► calibration forward of attention + router + the group
 *     (taps to the group's sessions; the first group's run also to the rest's sessions)
 *   ──► the group's sessions finish (GPTQ / RTN) ──► written (checkpoint bytes)
 *   ──► propagation forward of the group, continuing the block's sum per batch
 *   ──► the group's weights, Hessians and results are released
 * ```
 *
 * The sparse block sums the shared expert and then the experts in index
 * order (moe_block.ts), and each propagation forward continues the sum the
 * previous group left (read back to the host between groups: float32 is
 * exact there), so the layer's outputs and every tensor written are the
 * bytes the whole-layer path produces. The attention and router run once per
 * group (their cost is repeated, their weights stay resident).
 *
 * Only modifiers whose sessions take a module subset (quantization, GPTQ:
 * {@link LayerModifier.moduleSubsets}) and do not rewrite the layer run this
 * way, with at most one calibration round; otherwise the layer is calibrated
 * whole.
 *
 * @module
 */

import type { Tensor } from "../engine/engine.ts";
import type { DType } from "../io/dtype.ts";
import type { ModelConfig } from "../io/model_config.ts";
import { LayerWeights } from "../model/layer_weights.ts";
import { layerPrefix } from "../model/module_names.ts";
import { expertIndexOf, isSparseLayer, layerLinearModules } from "../model/moe_names.ts";
import type { ExpertSlice } from "../model/taps.ts";
import { ExpertTokenCounter } from "./expert_tokens.ts";
import {
  type CalibratedLayer,
  calibrateLayer,
  calibrationRound,
  forward,
  type LayerGraphContext,
  type LayerGraphInput,
  layerProgress,
  mergeResults,
} from "./layer_graph.ts";
import { LayerSubgraph } from "./layer_subgraph.ts";
import type { LayerEnvironment, LayerModifier, LayerResult } from "./modifier.ts";
import { PendingReads } from "./pending_reads.ts";
import { releaseEngineCache } from "./engine_cache.ts";

/** Experts `start … end−1` of one layer. */
export interface ExpertRange {
  readonly start: number;
  readonly end: number;
}

/**
 * The groups a sparse layer's experts are processed in under a memory
 * budget: as many experts per group as their float32 weights fit in
 * `maxExpertBytes` (at least one).
 *
 * @param config the model config
 * @param k the layer
 * @param maxExpertBytes float32 bytes of expert weights one group may hold
 * @returns the groups, or null when the layer is dense or all its experts fit
 * @throws {RangeError} for a budget that is not a positive number
 * @example
 * ```ts ignore
 * expertGroups(qwen3MoeConfig, 0, 64 * 2 ** 20); // [{ start: 0, end: 9 }, { start: 9, end: 18 }, …]
 * ```
 */
export function expertGroups(
  config: ModelConfig,
  k: number,
  maxExpertBytes: number,
): ExpertRange[] | null {
  if (!(maxExpertBytes > 0)) {
    throw new RangeError(
      `the expert memory budget must be a positive number, got ${maxExpertBytes}`,
    );
  }
  const moe = config.moe;
  if (moe === null || !isSparseLayer(config, k)) return null;
  const perExpert = 3 * config.hiddenSize * moe.expertIntermediateSize * 4;
  const size = Math.max(1, Math.floor(maxExpertBytes / perExpert));
  if (size >= moe.numExperts) return null;
  const groups: ExpertRange[] = [];
  for (let start = 0; start < moe.numExperts; start += size) {
    groups.push({ start, end: Math.min(moe.numExperts, start + size) });
  }
  return groups;
}

/**
 * Whether a pass's modifiers can process a layer's experts in groups.
 *
 * @param modifiers the pass's layer modifiers
 * @returns true when every one takes module subsets and none rewrites the layer
 * @example
 * ```ts ignore
 * if (groupsExperts(spec.modifiers)) ...
 * ```
 */
export function groupsExperts(modifiers: readonly LayerModifier[]): boolean {
  return modifiers.length > 0 && modifiers.every((m) => m.moduleSubsets && !m.rewritesLayer);
}

/**
 * Whether tensor `name` of layer `k` is an expert's weight (then it is read with its group).
 *
 * @param name a full tensor name
 * @returns the expert index, or null
 * @example
 * ```ts ignore
 * expertOfTensor("model.layers.0.mlp.experts.3.up_proj.weight"); // 3
 * ```
 */
export function expertOfTensor(name: string): number | null {
  return expertIndexOf(name.replace(/\.(weight|bias)$/, ""));
}

/** What the grouped path needs besides the layer's non-expert tensors. */
export interface ExpertGroupsInput {
  readonly groups: readonly ExpertRange[];
  /** Reads the layer's tensors that `include` selects, with their stored dtypes. */
  readonly read: (include: (name: string) => boolean) => Promise<{
    readonly weights: ReadonlyMap<string, Float32Array>;
    readonly dtypes: ReadonlyMap<string, DType>;
  }>;
  /**
   * Persists a finished group's results (compressed right away); absent:
   * they are returned with the layer's.
   */
  readonly writePart?: (result: LayerResult) => Promise<void>;
}

/**
 * Calibrates, compresses and propagates sparse layer `input.layer` with its
 * experts in groups. `input.weights` holds the layer's tensors other than
 * the experts'.
 *
 * @param ctx the pass
 * @param input the layer's non-expert weights and hidden states
 * @param experts the groups and how to read and write them
 * @returns the layer's results (those of the experts only when there is no `writePart`)
 * @example
 * ```ts ignore
 * const done = await calibrateExpertGroups(ctx, input, { groups, read, writePart });
 * ```
 */
export async function calibrateExpertGroups(
  ctx: LayerGraphContext,
  input: LayerGraphInput,
  experts: ExpertGroupsInput,
): Promise<CalibratedLayer> {
  const t0 = performance.now();
  const { model, batches } = ctx;
  const { config, engine } = model;
  const k = input.layer;
  const samples = batches.reduce((n, b) => n + b.sequences, 0);
  const progress = layerProgress(ctx, k, samples);
  const prefix = layerPrefix(k);
  const modules = layerLinearModules(config, k).map((l) => `${prefix}.${l}`);
  const headModules = new Set([
    ...modules.filter((m) => expertIndexOf(m) === null),
    `${prefix}.self_attn`,
  ]);
  const expertModules = (g: ExpertRange) =>
    new Set(modules.filter((m) => {
      const e = expertIndexOf(m);
      return e !== null && e >= g.start && e < g.end;
    }));
  const expertTokens = new ExpertTokenCounter(ctx.moeCalibrateAllExperts ?? true);
  const subgraph = new LayerSubgraph(model, k, batches, input.inputs, input.weights);
  const open = (
    weights: ReadonlyMap<string, Float32Array>,
    dtypes: ReadonlyMap<string, DType>,
    only: ReadonlySet<string>,
  ) =>
    ctx.modifiers.map((m) =>
      m.open(
        {
          engine,
          config,
          layer: k,
          weights,
          dtypes,
          quantizationAware: ctx.quantizationAware,
          samples,
          emit: ctx.emit,
          subgraph,
          expertTokens,
          modules: only,
        } satisfies LayerEnvironment,
      )
    );

  const head = open(input.weights, input.dtypes, headModules);
  const headCalibration = new Map(input.weights);
  for (const s of head) for (const [n, w] of s.calibrationWeights) headCalibration.set(n, w);
  let headResult: LayerResult | null = null;
  const kept: LayerResult[] = [];
  // Per batch, the sparse block's sum after the groups so far (propagation).
  const sums: (Float32Array | null)[] = batches.map(() => null);
  const reads = input.outputs === null ? null : new PendingReads(input.outputs);
  let gpuBytes = 0;
  try {
    for (const [gi, group] of experts.groups.entries()) {
      const last = gi === experts.groups.length - 1;
      const inGroup = (name: string) => {
        const e = expertOfTensor(name);
        return e !== null && e >= group.start && e < group.end;
      };
      const part = await experts.read(inGroup);
      const weights = new Map([...input.weights, ...part.weights]);
      const dtypes = new Map([...input.dtypes, ...part.dtypes]);
      const sessions = open(weights, dtypes, expertModules(group));
      try {
        const running = gi === 0 ? [...head, ...sessions] : sessions;
        const rounds = Math.max(0, ...running.map((s) => s.rounds));
        if (rounds > 1) {
          // Replayed rounds (quantization-aware static inputs) see every group's inputs
          // transformed by earlier rounds: the whole-layer path does that.
          if (gi > 0) throw new RangeError(`layer ${k}: expert group ${gi} needs ${rounds} rounds`);
          const all = await experts.read((n) => expertOfTensor(n) !== null);
          ctx.emit({
            type: "warning",
            message: `layer ${k}: the modifiers need ${rounds} calibration rounds; its experts ` +
              `are calibrated together, not in groups`,
          });
          return await calibrateLayer(ctx, {
            ...input,
            weights: new Map([...input.weights, ...all.weights]),
            dtypes: new Map([...input.dtypes, ...all.dtypes]),
          });
        }
        const calibration = new Map([...headCalibration, ...part.weights]);
        for (const s of sessions) for (const [n, w] of s.calibrationWeights) calibration.set(n, w);
        const slice: ExpertSlice = { start: group.start, end: group.end };
        if (rounds > 0) {
          const gpu = LayerWeights.fromArrays(
            engine,
            config,
            k,
            calibration,
            (n) => calibration.has(n),
          );
          gpuBytes = Math.max(gpuBytes, gpu.bytes);
          try {
            // Every run repeats the attention's and router's taps: the rest of the layer's
            // sessions observe the first group's run only; all sessions transform inputs.
            await calibrationRound(
              ctx,
              input,
              gpu,
              [...head, ...sessions],
              0,
              progress,
              gi === 0 ? expertTokens : undefined,
              { observers: running, slice },
            );
          } finally {
            gpu.destroy();
          }
        }
        progress("compress", 0, samples);
        if (gi === 0) headResult = mergeResults(await Promise.all(head.map((s) => s.finish())));
        const result = mergeResults(await Promise.all(sessions.map((s) => s.finish())));
        if (reads !== null) {
          const forwardWeights = new Map(calibration);
          if (ctx.propagation === "compressed") {
            for (const l of [...headResult!.linears, ...result.linears]) {
              forwardWeights.set(`${l.module}.weight`, l.forwardWeight);
            }
          }
          const gpu = LayerWeights.fromArrays(
            engine,
            config,
            k,
            forwardWeights,
            (n) => forwardWeights.has(n),
          );
          gpuBytes = Math.max(gpuBytes, gpu.bytes);
          try {
            const round = ctx.propagation === "compressed" ? "propagate" : rounds;
            let done = 0;
            progress("propagate", 0, 0);
            for (const [i, b] of batches.entries()) {
              const rows = b.sequences * b.seqLen;
              const before = sums[i] === null ? undefined : engine.upload(sums[i]!, [
                rows,
                config.hiddenSize,
              ]);
              let after: Tensor | null = null;
              try {
                const out = await forward(ctx, input, b, gpu, [...head, ...sessions], round, {
                  slice: { ...slice, partial: before, onPartial: (t) => (after = t) },
                });
                try {
                  if (last) await reads.add(b.index, out, engine);
                  else {
                    const [sum] = await engine.read([after!]) as Float32Array[];
                    sums[i] = sum;
                  }
                } finally {
                  out.destroy();
                }
              } finally {
                before?.destroy();
                (after as Tensor | null)?.destroy();
              }
              done += b.sequences;
              progress("propagate", 0, done);
            }
          } finally {
            gpu.destroy();
          }
        }
        if (experts.writePart !== undefined) await experts.writePart(result);
        else kept.push(result);
      } finally {
        for (const s of sessions) s.dispose();
      }
      await releaseEngineCache(model);
    }
    await reads?.drain();
    return {
      layer: k,
      result: mergeResults([headResult!, ...kept]),
      gpuBytes,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const s of head) s.dispose();
  }
}
