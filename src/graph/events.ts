/**
 * What a calibrated run tells its subscribers: progress (layer k of n, the
 * pass it is in, samples done), per-module metrics (quantization error,
 * time, memory) and warnings. Events are a discriminated union on `type`;
 * {@link GraphStreams} splits one event callback into RxJS streams.
 *
 * @module
 */

import { filter, type Observable, Subject } from "../_rxjs.ts";
import type { EngineKind } from "../engine/engine.ts";

/** Which part of a layer's work a progress event belongs to. */
export type GraphPhase =
  /** Forwards that feed observers and Hessians (one per calibration round). */
  | "calibrate"
  /** Modifiers turning statistics into quantized modules. */
  | "compress"
  /** The forward with compressed weights whose outputs feed the next layer. */
  | "propagate"
  /** Handing the finished layer to the checkpoint sink. */
  | "write";

/** Progress inside a decoder layer. */
export interface ProgressEvent {
  /** Discriminates the event kinds. */
  readonly type: "progress";
  /** Which pass of an independent run (0 for single-pass pipelines). */
  readonly pass: number;
  /** Number of passes. */
  readonly passes: number;
  /** The decoder layer, or null for work outside the layers (lm_head). */
  readonly layer: number | null;
  /** Number of decoder layers. */
  readonly layers: number;
  /** What the layer is doing. */
  readonly phase: GraphPhase;
  /** Calibration round within `calibrate` (0-based), else 0. */
  readonly round: number;
  /** Calibration samples processed in this phase so far. */
  readonly samplesDone: number;
  /** Calibration samples in all. */
  readonly samples: number;
  /** The module being compressed, during `compress`. */
  readonly module?: string;
}

/** A decoder layer (or the tensors outside the layers) was persisted or skipped. */
export interface LayerDoneEvent {
  /** Discriminates the event kinds. */
  readonly type: "layer_done";
  /** The layer, or null for the tensors outside the layers. */
  readonly layer: number | null;
  /** Number of decoder layers. */
  readonly layers: number;
  /** True when an earlier run had already written it (resume). */
  readonly skipped: boolean;
  /** Wall seconds spent on it. */
  readonly seconds: number;
  /** Bytes of source weights read for it. */
  readonly bytesRead: number;
}

/** What compressing one module cost and how far it moved. */
export interface ModuleMetricEvent {
  /** Discriminates the event kinds. */
  readonly type: "module_metric";
  /** Full module name, e.g. `model.layers.0.self_attn.q_proj` or `model.layers.0.self_attn`. */
  readonly module: string;
  /** The modifier, e.g. `QuantizationModifier`, `GPTQModifier`. */
  readonly modifier: string;
  /** The decoder layer the module is in, or null for modules outside the layers (lm_head). */
  readonly layer: number | null;
  /**
   * The quantization error: GPTQ's loss Σ(w−q)²/d²/2 for GPTQ; for
   * round-to-nearest the relative weight error ‖W−Ŵ‖²/‖W‖²; for AWQ the
   * mean squared error of the smoothed parent module's output (the chosen
   * grid point, balance layers fake-quantized); null for activation-only
   * modules (K/V scales).
   */
  readonly error: number | null;
  /** Which of the three `error` is. */
  readonly errorKind: "gptq_loss" | "relative_weight_mse" | "parent_output_mse" | null;
  /**
   * The relative output reconstruction error ‖X(W − Ŵ)ᵀ‖²/‖XWᵀ‖² on the
   * module's calibration inputs X (the inputs it saw under error
   * propagation), where the modifier measures it (GPTQ: from its Hessian
   * H = 2XᵀX/n, as tr(ΔHΔᵀ)/tr(WHWᵀ); AWQ: the parent's output MSE over its
   * mean square); null otherwise.
   */
  readonly outputError?: number | null;
  /** The same error of round-to-nearest with the same args (GPTQ, AWQ), for comparison; null otherwise. */
  readonly rtnOutputError?: number | null;
  /**
   * AWQ: the grid point its search chose for this parent. `{ratio: 0,
   * duoScaling: false}` is the identity (scales 1), i.e. round-to-nearest:
   * no grid point lowered the parent's output error.
   */
  readonly awqGridPoint?: { readonly ratio: number; readonly duoScaling: boolean };
  /**
   * An MoE expert's Linears: tokens the router sent the expert, and tokens
   * its statistics saw (all of them with `moe_calibrate_all_experts`).
   */
  readonly expertTokens?: { readonly routed: number; readonly calibrated: number } | null;
  /** Calibration samples behind the statistics. */
  readonly samples: number;
  /** Wall seconds spent on this module's compression. */
  readonly seconds: number;
  /** Resident set size of the process after the module, bytes. */
  readonly rssBytes: number;
  /** Bytes of this layer's weights resident on the GPU while it ran. */
  readonly gpuBytes: number;
}

/** Something the user should know (requested pipeline differs, unmatched targets, …). */
export interface WarningEvent {
  /** Discriminates the event kinds. */
  readonly type: "warning";
  /** What happened, in words. */
  readonly message: string;
}

/** Which compute engine a calibrated run uses and why (emitted once, first). */
export interface EngineEvent {
  /** Tags the event. */
  readonly type: "engine";
  /** "webgpu" or "cpu". */
  readonly engine: EngineKind;
  /** Why it was chosen, and the device. */
  readonly reason: string;
}

/** Everything a calibrated run emits. */
export type GraphEvent =
  | ProgressEvent
  | LayerDoneEvent
  | ModuleMetricEvent
  | WarningEvent
  | EngineEvent;

/** A function that receives graph events. */
export type GraphEventSink = (event: GraphEvent) => void;

/**
 * The event callback of a run, split into streams a user subscribes to.
 * Hand `streams.emit` to `oneshot({ onEvent })`; subscribe before the run.
 *
 * @example
 * ```ts
 * import { GraphStreams } from "./events.ts";
 * const streams = new GraphStreams();
 * const seen: string[] = [];
 * streams.metrics$.subscribe((m) => seen.push(m.module));
 * streams.emit({ type: "warning", message: "hello" });
 * streams.complete();
 * seen.length; // 0
 * ```
 */
export class GraphStreams {
  readonly #events = new Subject<GraphEvent>();
  /** Every event. */
  readonly events$: Observable<GraphEvent> = this.#events.asObservable();
  /** Progress inside layers. */
  readonly progress$: Observable<ProgressEvent> = this.events$.pipe(
    filter((e): e is ProgressEvent => e.type === "progress"),
  );
  /** Finished (or skipped) layers. */
  readonly layers$: Observable<LayerDoneEvent> = this.events$.pipe(
    filter((e): e is LayerDoneEvent => e.type === "layer_done"),
  );
  /** Per-module metrics. */
  readonly metrics$: Observable<ModuleMetricEvent> = this.events$.pipe(
    filter((e): e is ModuleMetricEvent => e.type === "module_metric"),
  );
  /** Warnings. */
  readonly warnings$: Observable<WarningEvent> = this.events$.pipe(
    filter((e): e is WarningEvent => e.type === "warning"),
  );

  /** Emits one event to every stream (bound: pass it around as a callback). */
  readonly emit: GraphEventSink = (event) => this.#events.next(event);

  /**
   * Completes every stream (call after the run).
   *
   * @example
   * ```ts
   * import { GraphStreams } from "./events.ts";
   * new GraphStreams().complete();
   * ```
   */
  complete(): void {
    this.#events.complete();
  }
}
