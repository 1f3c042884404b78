/**
 * One decoder layer of the calibration graph (§4.11):
 *
 * ```
 * inputs ──► calibration rounds ──► modifiers finish ──► propagation ──► outputs
 *            (forwards whose taps     (RTN / GPTQ,         (forward with the
 *             stream into every        K/V scales)          results' weights)
 *             session's observer)
 * ```
 *
 * Modifiers run in stages: one that rewrites layer tensors (SmoothQuant,
 * AWQ) finishes before the modifiers after it open their sessions on the
 * rewritten tensors. Every round runs all calibration batches through the layer once; each
 * forward's activations are emitted into that round's tap stream, which
 * every modifier session consumes with its own operator. The propagation
 * forward's outputs become the next layer's inputs (error propagation); in
 * the `basic` pipeline they come from the calibration weights instead (no
 * error propagation, as upstream's one full-model forward per batch).
 *
 * Only this layer's weights are on the GPU, and only while it runs.
 *
 * @module
 */

import { lastValueFrom, Subject } from "../_rxjs.ts";
import type { DType } from "../io/dtype.ts";
import type { Tensor } from "../engine/engine.ts";
import { collectGarbage } from "../_gc.ts";
import type { DecoderModel } from "../model/decoder_model.ts";
import { LayerWeights } from "../model/layer_weights.ts";
import {
  type ExpertSlice,
  furthestTapPart,
  type LayerPart,
  type LayerResume,
  type LinearInputTransform,
  nearestTapPart,
  type ResumePoint,
  resumePointOf,
  TAP_PARTS,
  type TapPart,
} from "../model/taps.ts";
import type { ActivationCache } from "./activation_cache.ts";
import type { CalibrationBatch } from "./calibration_batches.ts";
import type { GraphEventSink, GraphPhase } from "./events.ts";
import { LayerSubgraph, type SubgraphMemory } from "./layer_subgraph.ts";
import { PendingReads } from "./pending_reads.ts";
import { ExpertTokenCounter } from "./expert_tokens.ts";
import type {
  AttentionResult,
  CalibrationTap,
  LayerModifier,
  LayerResult,
  LayerSession,
  LinearResult,
} from "./modifier.ts";

/** How the next layer's inputs are produced. */
export type Propagation =
  /** From the layer with its compressed (fake-quantized) weights: `sequential`. */
  | "compressed"
  /** From the layer as calibrated, before compression: `basic`. */
  | "calibration";

/** What stays the same for every layer of a pass. */
export interface LayerGraphContext {
  readonly model: DecoderModel;
  readonly batches: readonly CalibrationBatch[];
  readonly modifiers: readonly LayerModifier[];
  /** Upstream's quantization-aware calibration, already resolved for this pass. */
  readonly quantizationAware: boolean;
  readonly propagation: Propagation;
  readonly emit: GraphEventSink;
  /** This pass and the number of passes (independent pipeline). */
  readonly pass: number;
  readonly passes: number;
  /** MoE models: upstream's `moe_calibrate_all_experts` (default true). */
  readonly moeCalibrateAllExperts?: boolean;
  /**
   * The run's activation budget and spill folder, for what sub-graph runs
   * cache (AWQ's parent inputs and reference outputs); default unbounded.
   */
  readonly activations?: SubgraphMemory;
}

/** One layer's inputs. */
export interface LayerGraphInput {
  readonly layer: number;
  /** The layer's dense weights (full tensor name → float32). */
  readonly weights: ReadonlyMap<string, Float32Array>;
  /** Their stored dtypes. */
  readonly dtypes: ReadonlyMap<string, DType>;
  /** Hidden states entering the layer, per batch. */
  readonly inputs: ActivationCache;
  /** Where the layer's outputs go, or null when nobody needs them. */
  readonly outputs: ActivationCache | null;
}

/** A calibrated layer. */
export interface CalibratedLayer {
  readonly layer: number;
  /** Every session's results, later modifiers overriding earlier ones per module. */
  readonly result: LayerResult;
  /** Bytes of weights the layer held on the GPU. */
  readonly gpuBytes: number;
  readonly seconds: number;
}

function composeTransforms(
  list: readonly LinearInputTransform[],
): LinearInputTransform | undefined {
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0];
  return (modules, x, engine) => {
    let y = x;
    for (const t of list) {
      const z = t(modules, y, engine);
      // Intermediate results are ours to release; the layer releases the last one.
      if (z !== y && y !== x) y.destroy();
      y = z;
    }
    return y;
  };
}

/**
 * Merges sessions' results, later ones overriding earlier ones per module.
 *
 * @param results the sessions' results in order
 * @returns one result
 * @example
 * ```ts ignore
 * const result = mergeResults(await Promise.all(sessions.map((s) => s.finish())));
 * ```
 */
export function mergeResults(results: readonly LayerResult[]): LayerResult {
  const linears = new Map<string, LinearResult>();
  const attention = new Map<string, AttentionResult>();
  const tensors = new Map<string, Float32Array>();
  for (const r of results) {
    for (const l of r.linears) linears.set(l.module, l);
    for (const a of r.attention) attention.set(a.module, a);
    for (const [n, t] of r.tensors ?? []) tensors.set(n, t);
  }
  return {
    linears: [...linears.values()],
    attention: [...attention.values()],
    ...(tensors.size > 0 ? { tensors } : {}),
  };
}

/** Reports a phase of layer k's work. */
export type LayerProgress = (
  phase: GraphPhase,
  round: number,
  samplesDone: number,
  module?: string,
) => void;

/**
 * The progress reporter of layer `k` in a pass.
 *
 * @param ctx the pass
 * @param k the layer
 * @param samples calibration samples in the pass
 * @returns the reporter
 * @example
 * ```ts ignore
 * const progress = layerProgress(ctx, 0, 16);
 * progress("calibrate", 0, 0);
 * ```
 */
export function layerProgress(ctx: LayerGraphContext, k: number, samples: number): LayerProgress {
  return (phase, round, samplesDone, module) =>
    ctx.emit({
      type: "progress",
      pass: ctx.pass,
      passes: ctx.passes,
      layer: k,
      layers: ctx.model.numLayers,
      phase,
      round,
      samplesDone,
      samples,
      ...(module === undefined ? {} : { module }),
    });
}

/**
 * Calibrates, compresses and propagates one decoder layer.
 *
 * @param ctx the pass
 * @param input the layer's weights and hidden states
 * @returns the modules' results
 * @example
 * ```ts ignore
 * const done = await calibrateLayer(ctx, { layer: 0, weights, dtypes, inputs, outputs });
 * done.result.linears.length;
 * ```
 */
export async function calibrateLayer(
  ctx: LayerGraphContext,
  input: LayerGraphInput,
): Promise<CalibratedLayer> {
  const t0 = performance.now();
  const { model, batches } = ctx;
  const k = input.layer;
  const samples = batches.reduce((n, b) => n + b.sequences, 0);
  const progress = layerProgress(ctx, k, samples);
  const subgraph = new LayerSubgraph(
    model,
    k,
    batches,
    input.inputs,
    input.weights,
    ctx.activations,
  );
  const allExperts = ctx.moeCalibrateAllExperts ?? true;
  const expertTokens = model.config.moe === null ? undefined : new ExpertTokenCounter(allExperts);
  // The experts' token counts come from the layer's first calibration round (a later stage's
  // forwards route the same tokens: the rewrites before it preserve the layer's function).
  let countExperts = expertTokens;
  const sessions: LayerSession[] = [];
  let gpuBytes = 0;
  let calibrationGpu: LayerWeights | null = null;
  try {
    // The layer's tensors as the modifiers so far left them.
    let current: ReadonlyMap<string, Float32Array> = input.weights;
    let calibrationWeights = new Map(current);
    let rounds = 0;
    const results: LayerResult[] = [];
    for (const stage of stagesOf(ctx.modifiers)) {
      calibrationGpu?.destroy();
      calibrationGpu = null;
      const opened = stage.map((m) =>
        m.open({
          engine: model.engine,
          config: model.config,
          layer: k,
          weights: current,
          dtypes: input.dtypes,
          quantizationAware: ctx.quantizationAware,
          samples,
          emit: ctx.emit,
          subgraph,
          expertTokens,
        })
      );
      sessions.push(...opened);
      rounds = Math.max(0, ...opened.map((s) => s.rounds));
      calibrationWeights = new Map(current);
      for (const s of opened) {
        for (const [n, w] of s.calibrationWeights) calibrationWeights.set(n, w);
      }
      if (rounds > 0) {
        // Kept after the rounds for the propagation forward when it runs with the same weights.
        calibrationGpu = LayerWeights.fromArrays(
          model.engine,
          model.config,
          k,
          calibrationWeights,
        );
        gpuBytes = Math.max(gpuBytes, calibrationGpu.bytes);
        // What a round stopped at, when the next round starts there (see roundResume).
        let kept: RoundStart | null = null;
        let from: RoundStart | null = null;
        try {
          for (let r = 0; r < rounds; r++) {
            const counter = r === 0 ? countExperts : undefined;
            from = kept;
            const keep = counter === undefined && r + 1 < rounds
              ? roundResume(ctx, opened, r + 1)
              : null;
            kept = keep === null ? null : { at: keep, inputs: await subgraph.cache("round") };
            await calibrationRound(ctx, input, calibrationGpu, opened, r, progress, counter, {
              ...(from === null ? {} : { resume: from }),
              ...(kept === null ? {} : { keep: kept.inputs }),
            });
            await from?.inputs.dispose();
            from = null;
          }
        } finally {
          await from?.inputs.dispose();
          await kept?.inputs.dispose();
        }
        countExperts = undefined;
      }
      progress("compress", 0, samples);
      // The forwards' pooled arrays and buffers would sit beside the modifiers' own work.
      model.engine.trim();
      collectGarbage();
      const finished = await Promise.all(opened.map((s) => s.finish()));
      results.push(...finished);
      const rewritten = finished.filter((r) => r.tensors !== undefined && r.tensors.size > 0);
      if (rewritten.length > 0) {
        const next = new Map(current);
        for (const r of rewritten) for (const [n, w] of r.tensors!) next.set(n, w);
        current = next;
      }
    }
    const result = mergeResults(results);

    if (input.outputs === null) calibrationGpu?.destroy();
    else {
      const forwardWeights = new Map(current);
      if (ctx.propagation === "compressed") {
        for (const l of result.linears) forwardWeights.set(`${l.module}.weight`, l.forwardWeight);
      } else {
        for (const [n, w] of calibrationWeights) forwardWeights.set(n, w);
      }
      // basic: replay every settled calibration scale (round `rounds`); sequential: final scales.
      const round = ctx.propagation === "compressed" ? "propagate" : rounds;
      // Usually the calibration forwards already ran with these weights (round-to-nearest
      // under quantization-aware calibration); then they stay on the GPU instead of a re-upload.
      const same = calibrationGpu !== null &&
        [...forwardWeights].every(([n, w]) => calibrationWeights.get(n) === w);
      if (!same) calibrationGpu?.destroy();
      const weights = same
        ? calibrationGpu!
        : LayerWeights.fromArrays(model.engine, model.config, k, forwardWeights);
      gpuBytes = Math.max(gpuBytes, weights.bytes);
      try {
        let done = 0;
        progress("propagate", 0, 0);
        const reads = new PendingReads(input.outputs);
        for (const b of batches) {
          const out = await forward(ctx, input, b, weights, sessions, round);
          try {
            await reads.add(b.index, out, model.engine);
          } finally {
            out.destroy();
          }
          done += b.sequences;
          progress("propagate", 0, done);
        }
        await reads.drain();
      } finally {
        weights.destroy();
      }
    }
    return { layer: k, result, gpuBytes, seconds: (performance.now() - t0) / 1000 };
  } finally {
    calibrationGpu?.destroy();
    for (const s of sessions) s.dispose();
    await subgraph.dispose();
  }
}

/**
 * The modifiers in stages: a stage ends after a modifier that rewrites
 * layer tensors, so the modifiers after it calibrate on what it wrote.
 */
function stagesOf(modifiers: readonly LayerModifier[]): LayerModifier[][] {
  const stages: LayerModifier[][] = [[]];
  for (const m of modifiers) {
    stages[stages.length - 1].push(m);
    if (m.rewritesLayer) stages.push([]);
  }
  return stages.filter((s) => s.length > 0);
}

/** What a calibration round kept for the next one to start from (see {@link roundResume}). */
export interface RoundStart {
  /** The point. */
  readonly at: ResumePoint;
  /** Each batch's activation there. */
  readonly inputs: ActivationCache;
}

/** How one calibration round runs (a layer whose experts are processed in groups, a repeat). */
export interface RoundRun {
  /** The sessions that observe the taps (default: all the round's sessions). */
  readonly observers?: readonly LayerSession[];
  /** The experts the forwards run (default: all). */
  readonly slice?: ExpertSlice;
  /**
   * Each batch's forward starts from what the previous round kept there
   * (see {@link roundResume}) instead of the layer's input.
   */
  readonly resume?: RoundStart;
  /** Receives each batch's activation where the round stops (its part's resume point). */
  readonly keep?: ActivationCache;
}

/** The part of a round's forwards: as far as the furthest tap its observers read. */
function roundPart(observers: readonly LayerSession[], r: number): TapPart {
  return furthestTapPart(observers.map((s) => s.tapPart?.(r) ?? "inputs"));
}

/**
 * Where round `r` may start instead of at the layer's input: at the point
 * round `r − 1` stopped, when every session repeats round `r − 1`'s
 * forward through that point and round `r` runs past it (the running
 * scales of static activations are fixed once observed, so a multi-round
 * static recipe's round `r` recomputes round `r − 1`'s prefix bit for bit).
 * Dense layers only, all experts, all sessions observing; null: from the input.
 *
 * @param ctx the pass
 * @param sessions the stage's sessions
 * @param r the round that would resume (≥ 1)
 * @returns the point, or null
 * @example
 * ```ts ignore
 * roundResume(ctx, sessions, 2); // "o_input" for FP8 static + KV cache
 * ```
 */
export function roundResume(
  ctx: LayerGraphContext,
  sessions: readonly LayerSession[],
  r: number,
): ResumePoint | null {
  if (r < 1 || ctx.model.config.moe !== null) return null;
  const at = resumePointOf(roundPart(sessions, r - 1));
  if (at === null) return null;
  if (sessions.some((s) => s.repeatsThrough === undefined)) return null;
  const repeats = nearestTapPart(sessions.map((s) => s.repeatsThrough!(r)));
  const index = (p: TapPart) => TAP_PARTS.indexOf(p);
  const stop = roundPart(sessions, r - 1);
  if (index(repeats) < index(stop)) return null;
  // The round must run past the point (and all of the layer from the MLP's input).
  const part = roundPart(sessions, r);
  return (at === "mlp_input" ? part === "inputs" : index(part) > index(stop)) ? at : null;
}

/**
 * One calibration round: every batch through the layer, its taps into every
 * observing session; every session transforms Linear inputs.
 *
 * @param ctx the pass
 * @param input the layer
 * @param weights the calibration weights on the engine
 * @param sessions the sessions whose input transforms apply
 * @param r the round
 * @param progress the layer's progress reporter
 * @param expertTokens counts the experts' tokens from the routing taps
 * @param run which sessions observe and which experts run
 * @example
 * ```ts ignore
 * await calibrationRound(ctx, input, weights, sessions, 0, layerProgress(ctx, k, n));
 * ```
 */
export async function calibrationRound(
  ctx: LayerGraphContext,
  input: LayerGraphInput,
  weights: LayerWeights,
  sessions: readonly LayerSession[],
  r: number,
  progress: LayerProgress,
  expertTokens?: ExpertTokenCounter,
  run: RoundRun = {},
): Promise<void> {
  const taps$ = new Subject<CalibrationTap>();
  const observers = run.observers ?? sessions;
  const folded = Promise.all(
    observers.map((s) => lastValueFrom(taps$.pipe(s.observe(r)), { defaultValue: null })),
  );
  // The forwards run only as far as the furthest tap the round's observers read (all of the
  // layer's inputs when the round also counts the experts' tokens: routing comes last).
  const part = expertTokens !== undefined ? "inputs" : roundPart(observers, r);
  let done = 0;
  // Each phase reports its start, so a progress display can time it (src/cli/progress_tracker.ts).
  progress("calibrate", r, 0);
  try {
    for (const b of ctx.batches) {
      // Attention's output (o_proj's input), or the normed x or h (q/k/v's or the MLP's input).
      const { config } = ctx.model;
      const resume = run.resume === undefined ? undefined : {
        at: run.resume.at,
        input: ctx.model.engine.upload(await run.resume.inputs.get(b.index), [
          b.sequences * b.seqLen,
          run.resume.at === "o_input"
            ? config.numAttentionHeads * config.headDim
            : config.hiddenSize,
        ]),
      };
      let out: Tensor;
      try {
        out = await forward(
          ctx,
          input,
          b,
          weights,
          sessions,
          r,
          {
            slice: run.slice,
            // The round reads the taps only: the layer's last projection need not run.
            part,
            resume,
            taps: (event) => {
              if (event.kind === "moe_routing") expertTokens?.record(event);
              taps$.next({ event, samples: b });
            },
          },
        );
      } finally {
        resume?.input.destroy();
      }
      try {
        if (run.keep !== undefined) {
          const [host] = await ctx.model.engine.read([out]);
          await run.keep.put(b.index, (host as Float32Array).subarray(0, out.numel));
        }
      } finally {
        out.destroy();
      }
      done += b.sequences;
      progress("calibrate", r, done);
    }
  } catch (e) {
    taps$.error(e);
    await folded.catch(() => {});
    throw e;
  }
  taps$.complete();
  await folded;
  await expertTokens?.settle();
}

/**
 * One forward of the layer over a batch of its inputs.
 *
 * @param ctx the pass
 * @param input the layer
 * @param b the batch
 * @param weights the layer's weights on the engine
 * @param sessions the sessions whose input transforms apply
 * @param round the round (or the propagation forward)
 * @param options the taps' listener, the experts to run, the part of the layer (default: all)
 *   and where it starts (default: at the input)
 * @returns the layer's output (owned by the caller)
 * @example
 * ```ts ignore
 * const out = await forward(ctx, input, batch, weights, sessions, "propagate");
 * ```
 */
export async function forward(
  ctx: LayerGraphContext,
  input: LayerGraphInput,
  b: CalibrationBatch,
  weights: LayerWeights,
  sessions: readonly LayerSession[],
  round: number | "propagate",
  options: {
    taps?: (event: CalibrationTap["event"]) => void;
    slice?: ExpertSlice;
    part?: LayerPart;
    resume?: LayerResume;
  } = {},
): Promise<Tensor> {
  const { model } = ctx;
  // Resumed at the MLP's input, the layer does not read its input: the resume
  // input (the same rows) stands in for it, and the cached input is not uploaded.
  const given = options.resume?.at === "mlp_input" ? options.resume.input : null;
  const hidden = given ?? model.engine.upload(await input.inputs.get(b.index), [
    b.sequences * b.seqLen,
    model.config.hiddenSize,
  ]);
  try {
    const transforms = sessions
      .map((s) => s.inputTransform(round, b))
      .filter((t): t is LinearInputTransform => t !== null);
    return await model.runLayer(input.layer, hidden, {
      weights,
      sequences: b.sequences,
      taps: options.taps,
      transformLinearInput: composeTransforms(transforms),
      moeCalibrateAllExperts: ctx.moeCalibrateAllExperts,
      moeExperts: options.slice,
      part: options.part,
      resume: options.resume,
    });
  } finally {
    if (hidden !== given) hidden.destroy();
  }
}
