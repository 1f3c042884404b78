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

import { concatMap, defer, finalize, type Observable, range } from "../_rxjs.ts";
import type { DType } from "../io/dtype.ts";
import type { DecoderModel } from "../model/decoder_model.ts";
import { ActivationCache, type MemoryBudget } from "../graph/activation_cache.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import type { GraphEventSink, LayerDoneEvent } from "../graph/events.ts";
import { calibrateLayer, type LayerGraphContext, type Propagation } from "../graph/layer_graph.ts";
import {
  calibrateExpertGroups,
  expertGroups,
  expertOfTensor,
  groupsExperts,
} from "../graph/expert_groups.ts";
import { PendingReads } from "../graph/pending_reads.ts";
import { releaseEngineCache } from "../graph/engine_cache.ts";
import type { LayerModifier, LayerResult, LinearResult } from "../graph/modifier.ts";

/** Where a pass's finished layers go. */
export interface LayerTarget {
  /** Whether layer k is already persisted (resume). */
  isDone(k: number): boolean;
  /** The latest layer whose outputs were saved, or null. */
  boundaryLayer(): number | null;
  /** Fills `cache` with the saved outputs of layer k; false when none are saved. */
  loadBoundary(k: number, cache: ActivationCache): Promise<boolean>;
  /** Persists layer k (after any parts of it handed to `writePart`). */
  write(k: number, result: LayerResult): Promise<void>;
  /**
   * Takes a finished part of layer k (a group of its experts) before the
   * rest, so the part's dense weights can be released; absent: the part
   * stays in memory until `write`.
   */
  writePart?(k: number, result: LayerResult): Promise<void>;
  /**
   * Saves layer k's outputs for a resumed run (their write may still be in
   * flight when it resolves: see `flush`).
   */
  saveBoundary(k: number, outputs: ActivationCache): Promise<void>;
  /** Waits for writes still in flight; rejects with their error. Absent: nothing is in flight. */
  flush?(): Promise<void>;
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
  /**
   * Reads layer k's dense weights (the source checkpoint, or it overlaid by
   * earlier passes); only the tensors `include` selects, when given.
   */
  readonly readLayer: (
    k: number,
    include?: (name: string) => boolean,
  ) => Promise<LayerWeightsOnHost>;
  /**
   * MoE layers: float32 bytes of expert weights processed together; a layer
   * whose experts exceed it is processed in groups (graph/expert_groups.ts).
   * Absent: all of a layer's experts together.
   */
  readonly maxExpertBytes?: number;
}

/** The outputs of a pass's last layer, when kept. */
export interface PassOutputs {
  /** The last layer's outputs (dispose after use), or null. */
  last: ActivationCache | null;
}

interface PassState {
  first: number;
  inputs: ActivationCache;
  /** Whether the pass said its layers' experts are processed together after all. */
  warnedUngrouped?: boolean;
}

const EMPTY = new Float32Array(0);

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
  await releaseEngineCache(ctx.model);
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
  const groups = ctx.maxExpertBytes === undefined
    ? null
    : expertGroups(ctx.model.config, k, ctx.maxExpertBytes);
  const grouped = groups !== null && groupsExperts(spec.modifiers);
  if (groups !== null && !grouped && !state.warnedUngrouped) {
    state.warnedUngrouped = true;
    ctx.emit({
      type: "warning",
      message: `layer ${k}: its experts exceed the expert memory budget but are processed ` +
        `together: ${spec.modifiers.map((m) => m.type).join(", ")} need the whole layer`,
    });
  }
  const sizeOf = (m: ReadonlyMap<string, Float32Array>) =>
    [...m.values()].reduce((a, w) => a + w.byteLength, 0);
  const host = await ctx.readLayer(k, grouped ? (n) => expertOfTensor(n) === null : undefined);
  let bytesRead = sizeOf(host.weights);
  const last = k === n - 1;
  const wantOutputs = spec.needsData && (!last || spec.keepLastOutputs);
  const outputs = wantOutputs
    ? new ActivationCache(ctx.budget, ctx.spillDir, `p${spec.pass}-l${k}`)
    : null;
  const graph: LayerGraphContext = {
    model: ctx.model,
    batches: spec.needsData ? ctx.batches : [],
    modifiers: spec.modifiers,
    quantizationAware: spec.quantizationAware,
    propagation: spec.propagation,
    emit: ctx.emit,
    pass: spec.pass,
    passes: spec.passes,
    moeCalibrateAllExperts: ctx.moeCalibrateAllExperts,
    activations: { budget: ctx.budget, spillDir: ctx.spillDir },
  };
  const input = {
    layer: k,
    weights: host.weights,
    dtypes: host.dtypes,
    inputs: state.inputs,
    outputs,
  };
  // The metrics of parts written early (their weights are gone by the end of the layer).
  const partLinears: LinearResult[] = [];
  const writePart = target.writePart === undefined || target.isDone(k)
    ? undefined
    : async (result: LayerResult) => {
      await target.writePart!(k, result);
      for (const l of result.linears) {
        partLinears.push({ ...l, weight: EMPTY, forwardWeight: EMPTY });
      }
    };
  const done = grouped
    ? await calibrateExpertGroups(graph, input, {
      groups: groups!,
      read: async (include) => {
        const part = await ctx.readLayer(k, include);
        bytesRead += sizeOf(part.weights);
        return part;
      },
      writePart,
    })
    : await calibrateLayer(graph, input);
  await state.inputs.dispose();
  if (outputs !== null) state.inputs = outputs;
  await releaseEngineCache(ctx.model);
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
  if (last) await target.flush?.();
  const rssBytes = Deno.memoryUsage().rss;
  const samples = spec.needsData ? ctx.batches.reduce((a, b) => a + b.sequences, 0) : 0;
  for (const l of [...partLinears, ...done.result.linears]) {
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
