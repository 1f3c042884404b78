/**
 * The sequential pipeline (§4.11) as one RxJS stream over decoder layers:
 *
 * ```
 * embed samples (or restore the resume boundary)
 *   └─ for each layer k:  calibrate + compress (graph/layer_graph.ts)
 *                          └─ persist (sink or scratch), save boundary
 *                              └─ LayerDoneEvent
 * ```
 *
 * The same stream runs `basic` (outputs from the calibrated layer rather
 * than the compressed one) and the data-free passes of an independent run
 * (no forwards at all). Where finished layers go is a {@link LayerTarget}:
 * the checkpoint sink for the last pass, the scratch folder for earlier ones.
 *
 * @module
 */

import { concatMap, defer, finalize, type Observable, range } from "rxjs";
import { collectGarbage } from "../_gc.ts";
import { CpuEngine } from "../engine/cpu_engine.ts";
import { webGpuOf } from "../engine/webgpu_engine.ts";
import { storagePool } from "../gpu/buffer_pool.ts";
import type { DType } from "../io/dtype.ts";
import type { DecoderModel } from "../model/decoder_model.ts";
import { ActivationCache, type MemoryBudget } from "../graph/activation_cache.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import type { GraphEventSink, LayerDoneEvent } from "../graph/events.ts";
import { calibrateLayer, type Propagation } from "../graph/layer_graph.ts";
import { PendingReads } from "../graph/pending_reads.ts";
import type { LayerModifier, LayerResult } from "../graph/modifier.ts";

/** Where a pass's finished layers go. */
export interface LayerTarget {
  /** Whether layer k is already persisted (resume). */
  isDone(k: number): boolean;
  /** The latest layer whose outputs were saved, or null. */
  boundaryLayer(): number | null;
  /** Fills `cache` with the saved outputs of layer k; false when none are saved. */
  loadBoundary(k: number, cache: ActivationCache): Promise<boolean>;
  /** Persists layer k. */
  write(k: number, result: LayerResult): Promise<void>;
  /** Saves layer k's outputs for a resumed run. */
  saveBoundary(k: number, outputs: ActivationCache): Promise<void>;
}

/** A layer's dense weights and their stored dtypes. */
export interface LayerWeightsOnHost {
  readonly weights: ReadonlyMap<string, Float32Array>;
  readonly dtypes: ReadonlyMap<string, DType>;
}

/** One pass over the layers. */
export interface PassSpec {
  readonly modifiers: readonly LayerModifier[];
  readonly propagation: Propagation;
  readonly quantizationAware: boolean;
  /** False for a data-free pass: no forwards, no activations. */
  readonly needsData: boolean;
  /** Whether the last layer's outputs are needed afterwards (lm_head calibration). */
  readonly keepLastOutputs: boolean;
  readonly pass: number;
  readonly passes: number;
}

/** What every pass shares. */
export interface PassContext {
  readonly model: DecoderModel;
  readonly batches: readonly CalibrationBatch[];
  readonly budget: MemoryBudget;
  /** An existing folder for spilled activations. */
  readonly spillDir: string;
  readonly emit: GraphEventSink;
  /** MoE models: upstream's `moe_calibrate_all_experts` (default true). */
  readonly moeCalibrateAllExperts?: boolean;
  /** Reads layer k's dense weights (the source checkpoint, or it overlaid by earlier passes). */
  readonly readLayer: (k: number) => Promise<LayerWeightsOnHost>;
}

/** The outputs of a pass's last layer, when kept. */
export interface PassOutputs {
  /** The last layer's outputs (dispose after use), or null. */
  last: ActivationCache | null;
}

/**
 * Frees the engine's buffer cache once it is idle: the GPU buffer pool (on
 * unified-memory and software devices those buffers are host memory; keeping
 * a layer's worth of them cached across layers would double the resident
 * weights), or the CPU engine's array pool.
 */
async function releaseGpuCache(model: DecoderModel): Promise<void> {
  await model.idle();
  const gpu = webGpuOf(model.engine);
  if (gpu) storagePool(gpu.gpu).trim();
  if (model.engine instanceof CpuEngine) model.engine.trim();
  collectGarbage();
}

interface PassState {
  first: number;
  inputs: ActivationCache;
}

/**
 * Runs one pass over every decoder layer; emits one event per layer (and
 * per module metric / progress through `ctx.emit`).
 *
 * @param ctx the run
 * @param spec the pass
 * @param target where finished layers go
 * @param kept receives the last layer's outputs when `spec.keepLastOutputs`
 * @returns the stream of finished layers; subscribe to run it
 * @example
 * ```ts ignore
 * await lastValueFrom(layerPass$(ctx, spec, sinkTarget(hf, sink), kept));
 * ```
 */
export function layerPass$(
  ctx: PassContext,
  spec: PassSpec,
  target: LayerTarget,
  kept: PassOutputs = { last: null },
): Observable<LayerDoneEvent> {
  const n = ctx.model.numLayers;
  let state: PassState | null = null;
  return defer(async () => (state = await openPass(ctx, spec, target))).pipe(
    concatMap((s) =>
      range(0, n).pipe(
        concatMap((k) => defer(() => layerStep(ctx, spec, target, s, k))),
      )
    ),
    finalize(() => {
      if (state === null) return;
      // After the last layer the inputs are its outputs (computed or restored from the boundary).
      if (spec.keepLastOutputs && state.first <= n && state.inputs.size > 0) {
        kept.last = state.inputs;
      } else void state.inputs.dispose();
    }),
  );
}

async function openPass(ctx: PassContext, spec: PassSpec, target: LayerTarget): Promise<PassState> {
  const inputs = new ActivationCache(ctx.budget, ctx.spillDir, `p${spec.pass}-in`);
  if (!spec.needsData) return { first: 0, inputs };
  const b = target.boundaryLayer();
  // Resume after the saved boundary only when every layer up to it is persisted.
  if (b !== null && [...Array(b + 1).keys()].every((k) => target.isDone(k))) {
    if (await target.loadBoundary(b, inputs)) return { first: b + 1, inputs };
  }
  const reads = new PendingReads(inputs);
  for (const batch of ctx.batches) {
    const hidden = await ctx.model.embed(batch.ids, batch.sequences, batch.seqLen);
    try {
      await reads.add(batch.index, hidden, ctx.model.engine);
    } finally {
      hidden.destroy();
    }
  }
  await reads.drain();
  await releaseGpuCache(ctx.model);
  return { first: 0, inputs };
}

async function layerStep(
  ctx: PassContext,
  spec: PassSpec,
  target: LayerTarget,
  state: PassState,
  k: number,
): Promise<LayerDoneEvent> {
  const n = ctx.model.numLayers;
  const t0 = performance.now();
  if (k < state.first) {
    return { type: "layer_done", layer: k, layers: n, skipped: true, seconds: 0, bytesRead: 0 };
  }
  const host = await ctx.readLayer(k);
  const bytesRead = [...host.weights.values()].reduce((a, w) => a + w.byteLength, 0);
  const last = k === n - 1;
  const wantOutputs = spec.needsData && (!last || spec.keepLastOutputs);
  const outputs = wantOutputs
    ? new ActivationCache(ctx.budget, ctx.spillDir, `p${spec.pass}-l${k}`)
    : null;
  const done = await calibrateLayer(
    {
      model: ctx.model,
      batches: spec.needsData ? ctx.batches : [],
      modifiers: spec.modifiers,
      quantizationAware: spec.quantizationAware,
      propagation: spec.propagation,
      emit: ctx.emit,
      pass: spec.pass,
      passes: spec.passes,
      moeCalibrateAllExperts: ctx.moeCalibrateAllExperts,
    },
    { layer: k, weights: host.weights, dtypes: host.dtypes, inputs: state.inputs, outputs },
  );
  await state.inputs.dispose();
  if (outputs !== null) state.inputs = outputs;
  await releaseGpuCache(ctx.model);
  const skipped = target.isDone(k);
  ctx.emit({
    type: "progress",
    pass: spec.pass,
    passes: spec.passes,
    layer: k,
    layers: n,
    phase: "write",
    round: 0,
    samplesDone: 0,
    samples: 0,
  });
  if (!skipped) await target.write(k, done.result);
  if (outputs !== null) await target.saveBoundary(k, outputs);
  const rssBytes = Deno.memoryUsage().rss;
  const samples = spec.needsData ? ctx.batches.reduce((a, b) => a + b.sequences, 0) : 0;
  for (const l of done.result.linears) {
    if (l.metric === null) continue;
    ctx.emit({
      type: "module_metric",
      module: l.module,
      modifier: l.modifier,
      layer: k,
      error: l.metric.error,
      errorKind: l.metric.errorKind,
      outputError: l.metric.outputError ?? null,
      rtnOutputError: l.metric.rtnOutputError ?? null,
      ...(l.metric.expertTokens === undefined ? {} : { expertTokens: l.metric.expertTokens }),
      samples,
      seconds: l.metric.seconds,
      rssBytes,
      gpuBytes: done.gpuBytes,
    });
  }
  for (const a of done.result.attention) {
    ctx.emit({
      type: "module_metric",
      module: a.module,
      modifier: "kv_cache",
      layer: k,
      error: null,
      errorKind: null,
      samples,
      seconds: 0,
      rssBytes,
      gpuBytes: done.gpuBytes,
    });
  }
  return {
    type: "layer_done",
    layer: k,
    layers: n,
    skipped,
    seconds: (performance.now() - t0) / 1000,
    bytesRead,
  };
}
