/**
 * The independent pipeline (upstream's default, §3.6): each modifier runs
 * in its own pass over the whole model, one after another, each with the
 * pipeline its own needs infer (sequential with a full pass over the
 * calibration data, or data-free). What a pass did is kept in a scratch
 * area on disk (src/pipelines/scratch_store.ts); the next pass starts from
 * those weights, and the last pass merges everything into the checkpoint.
 *
 * Later passes see the modules of earlier ones as upstream's model holds
 * them: the dense weight (GPTQ's updated weight, or the original one for
 * round-to-nearest), fake-quantized in forwards when that pass calibrates
 * quantization-aware.
 *
 * @module
 */

import { lastValueFrom, type MonoTypeOperatorFunction, tap } from "../_rxjs.ts";
import type { HfModel } from "../io/hf_model.ts";
import { computeDTypeOf } from "../modifiers/quantization/linear_plan.ts";
import { fakeQuantize } from "../quant/quantize.ts";
import type { CheckpointSink } from "../sink/checkpoint_sink.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import type { LayerDoneEvent } from "../graph/events.ts";
import type { AttentionResult, LayerResult, LinearResult } from "../graph/modifier.ts";
import { DENSE_SCHEME } from "../modifiers/sparsegpt/sparsegpt_session.ts";
import { isSparsityPlan } from "../modifiers/sparsegpt/sparsity_plan.ts";
import { layerModifiersOf, type ModifierPlan, quantizationOf } from "./modifier_plan.ts";
import type { SparsityTracker } from "./sparsity_config.ts";
import type { CalibrationOptions } from "./calibrated.ts";
import { readLayerFromSource } from "./layer_source.ts";
import { layerPass$ } from "./sequential.ts";
import type { LayerTarget, LayerWeightsOnHost, PassContext, PassOutputs } from "./sequential.ts";
import { sinkTarget } from "./sink_target.ts";
import { ScratchStore } from "./scratch_store.ts";

/**
 * The results of layer `k` in the passes before `before`, from the scratch
 * store; the weights of the `newer` modules (the caller has them from a
 * later pass) are not read.
 */
async function storedResults(
  scratch: ScratchStore,
  plans: readonly ModifierPlan[],
  before: number,
  k: number,
  newer: ReadonlySet<string> = new Set(),
): Promise<LayerResult[]> {
  const out: LayerResult[] = [];
  for (let j = 0; j < before; j++) {
    const plan = plans[j];
    const stored = await scratch.readLayer(j, k, newer);
    const linears: LinearResult[] = stored.linears.map((s) => {
      if (isSparsityPlan(plan)) {
        return {
          module: s.module,
          modifier: plan.modifier.type,
          scheme: DENSE_SCHEME,
          format: null,
          shape: plan.linears.find((l) => l.name === s.module)!.shape,
          weight: s.weight,
          weightQParams: null,
          input: null,
          forwardWeight: s.weight,
          metric: null,
        };
      }
      const p = quantizationOf(plan)!.linears.linears.find((l) => l.name === s.module)!;
      return {
        module: s.module,
        modifier: plan.modifier.type,
        scheme: p.scheme!,
        format: p.format,
        shape: p.shape,
        weight: s.weight,
        weightQParams: s.weightQParams,
        input: s.input,
        forwardWeight: s.weight,
        metric: null,
      };
    });
    const quant = quantizationOf(plan);
    const attention: AttentionResult[] = quant === null ? [] : stored.attention.map((s) => ({
      module: s.module,
      args: quant.attention.find((a) => a.module === s.module)!.kv!,
      k: s.k,
      v: s.v,
      q: s.q,
    }));
    out.push({ linears, attention, tensors: stored.tensors });
  }
  return out;
}

async function overlaidLayer(
  hf: HfModel,
  scratch: ScratchStore,
  plans: readonly ModifierPlan[],
  pass: number,
  k: number,
  quantizationAware: boolean,
  include?: (name: string) => boolean,
): Promise<LayerWeightsOnHost> {
  const substitutes = new Map<string, Float32Array>();
  for (const r of await storedResults(scratch, plans, pass, k)) {
    for (const [n, t] of r.tensors ?? []) substitutes.set(n, t);
    for (const l of r.linears) {
      const name = `${l.module}.weight`;
      const args = l.scheme.weights;
      substitutes.set(
        name,
        quantizationAware && args !== null && l.weightQParams !== null
          ? fakeQuantize(l.weight, l.shape, l.weightQParams, args, {
            dtype: computeDTypeOf(hf.info(name).dtype, name),
            where: l.module,
          })
          : l.weight,
      );
    }
  }
  return await readLayerFromSource(hf, k, substitutes, include);
}

/**
 * Runs every modifier in its own pass; the last pass writes the checkpoint.
 *
 * @param ctx the run's shared context
 * @param plans one plan per modifier, in order
 * @param options calibration options
 * @param sink the open sink
 * @param batches calibration batches
 * @param hf the source model
 * @param report applied to the last pass's layer events (progress callbacks)
 * @param kept receives the last layer's outputs of the last pass, when `keepLastOutputs`
 * @param keepLastOutputs whether lm_head needs those outputs
 * @param sparsity measures written weights for the sparsity_config (runs with a sparsity modifier)
 * @example
 * ```ts ignore
 * await runIndependent(ctx, plans, options, sink, batches, hf, tap(() => {}), kept, false);
 * ```
 */
export async function runIndependent(
  ctx: PassContext,
  plans: readonly ModifierPlan[],
  options: CalibrationOptions,
  sink: CheckpointSink,
  batches: readonly CalibrationBatch[],
  hf: HfModel,
  report: MonoTypeOperatorFunction<LayerDoneEvent>,
  kept: PassOutputs,
  keepLastOutputs: boolean,
  sparsity: SparsityTracker | null = null,
): Promise<void> {
  const scratch = new ScratchStore(`${ctx.spillDir}/passes`);
  const passes = plans.length;
  for (let i = 0; i < passes; i++) {
    const last = i === passes - 1;
    if (!last && await scratch.isComplete(i)) continue;
    const modifiers = layerModifiersOf(plans[i]);
    const quantizationAware = options.quantizationAwareCalibration !== false &&
      !modifiers.some((m) => m.disablesQuantizationAware);
    const final = sinkTarget(hf, sink, batches, ctx.budget.limit, sparsity);
    const target: LayerTarget = last
      ? {
        ...final,
        async write(k, result) {
          // This pass's Linears replace the earlier passes' ones below: their weights stay on disk.
          const newer = new Set(result.linears.map((l) => l.module));
          const prior = await storedResults(scratch, plans, i, k, newer);
          const linears = new Map<string, LinearResult>();
          const attention = new Map<string, AttentionResult>();
          const tensors = new Map<string, Float32Array>();
          for (const r of [...prior, result]) {
            for (const l of r.linears) linears.set(l.module, l);
            for (const a of r.attention) attention.set(a.module, a);
            for (const [n, t] of r.tensors ?? []) tensors.set(n, t);
          }
          await final.write(k, {
            linears: [...linears.values()],
            attention: [...attention.values()],
            tensors,
          });
        },
      }
      : {
        isDone: () => false,
        boundaryLayer: () => null,
        loadBoundary: () => Promise.resolve(false),
        write: (k, result) => scratch.writeLayer(i, k, result),
        saveBoundary: () => Promise.resolve(),
      };
    await lastValueFrom(
      layerPass$(
        {
          ...ctx,
          readLayer: (k, include) =>
            overlaidLayer(hf, scratch, plans, i, k, quantizationAware, include),
        },
        {
          modifiers,
          propagation: "compressed",
          quantizationAware,
          needsData: plans[i].needsData,
          keepLastOutputs: last && keepLastOutputs,
          pass: i,
          passes,
        },
        target,
        last ? kept : { last: null },
      ).pipe(last ? report : tap((e) => ctx.emit(e))),
      { defaultValue: null },
    );
    if (!last) await scratch.markComplete(i);
  }
}
