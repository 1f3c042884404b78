/**
 * The per-layer modifier contract of the calibration graph.
 *
 * A modifier opens a session for each decoder layer. The graph runs the
 * layer's calibration forwards in rounds; in each round every session sees
 * the forwards' activations as a stream of {@link CalibrationTap}s and
 * applies its operator to it (observers reduce statistics, GPTQ accumulates
 * Hessians). When the stream completes the session has folded the round's
 * statistics. After the last round the graph calls `finish` (upstream's
 * SEQUENTIAL_EPOCH_END), which yields the layer's module results, and then
 * runs the propagation forward with the results' weights and input
 * simulation, whose outputs feed the next layer (§4.11).
 *
 * A session may also rewrite any tensor of its layer (a norm weight, a bias,
 * a Linear weight: SmoothQuant and AWQ rescale them) by returning it in
 * {@link LayerResult.tensors}. A modifier that does so declares
 * `rewritesLayer`; the graph then finishes it before it opens the sessions
 * of the modifiers after it, so they calibrate on the rewritten tensors.
 * The propagation forward runs with them and the checkpoint stores them.
 * A session can run a sub-graph of its layer on the cached inputs with
 * candidate weights through {@link LayerEnvironment.subgraph}.
 *
 * ```ts ignore
 * const session = modifier.open(env);
 * for (let r = 0; r < session.rounds; r++) await lastValueFrom(taps$(r).pipe(session.observe(r)));
 * const result = await session.finish();
 * ```
 *
 * @module
 */

import type { OperatorFunction } from "../_rxjs.ts";
import type { DType } from "../io/dtype.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { Engine } from "../engine/engine.ts";
import type { LinearInputTransform, TapEvent, TapPart } from "../model/taps.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import type { ModuleFormat } from "../quant/compression_format.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import type { CalibrationBatch } from "./calibration_batches.ts";
import type { GraphEventSink } from "./events.ts";
import type { ExpertTokenCounter, ExpertTokens } from "./expert_tokens.ts";
import type { LayerSubgraph } from "./layer_subgraph.ts";

/** One activation event of a calibration forward, with the samples it covers. */
export interface CalibrationTap {
  /** What the layer showed (tensors alive for the layer's command batch only). */
  readonly event: TapEvent;
  /** The calibration samples in this forward. */
  readonly samples: CalibrationBatch;
}

/** Static activation qparams observed for a Linear's input (or an attention state). */
export interface ObservedQParams {
  /** Scales (`[1]` tensor, `[heads]` attn_head), absent for dynamic args. */
  readonly scale?: Float32Array | null;
  /** Zero points (asymmetric args), absent otherwise. */
  readonly zeroPoint?: Float32Array | null;
  /** NVFP4's global scale (tensor_group), absent otherwise. */
  readonly globalScale?: number | null;
  /** Shape of scale / zero point. */
  readonly shape?: readonly number[];
}

/** A Linear after a modifier finished with it. */
export interface LinearResult {
  /** Module name, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly module: string;
  /** The modifier that produced it. */
  readonly modifier: string;
  /** The scheme the module is quantized with. */
  readonly scheme: QuantizationScheme;
  /** Its compression format (null: weight kept dense). */
  readonly format: ModuleFormat | null;
  /** `[out, in]`. */
  readonly shape: readonly [number, number];
  /**
   * The dense weight the checkpoint is compressed from: the original weight
   * for round-to-nearest, GPTQ's updated (fake-quantized) weight for GPTQ.
   */
  readonly weight: Float32Array;
  /** Weight qparams (null when the scheme has no weight args). */
  readonly weightQParams: WeightQParams | null;
  /** Observed input qparams (null when the scheme has no input args). */
  readonly input: ObservedQParams | null;
  /** The weight later forwards run with (fake-quantized under quantization-aware calibration). */
  readonly forwardWeight: Float32Array;
  /** How far quantization moved the weight and what it cost (null: weight not quantized). */
  readonly metric: LinearMetric | null;
}

/** The quantization error of one weight and the time it took. */
export interface LinearMetric {
  /** GPTQ's loss, or ‖W − Ŵ‖²/‖W‖² for round-to-nearest. */
  readonly error: number;
  readonly errorKind: "gptq_loss" | "relative_weight_mse";
  /** Seconds spent quantizing it. */
  readonly seconds: number;
  /**
   * Relative output reconstruction error ‖X(W − Ŵ)ᵀ‖²/‖XWᵀ‖² on the
   * calibration inputs X the modifier saw (GPTQ: computed from its Hessian).
   */
  readonly outputError?: number;
  /** The same for round-to-nearest with the same args, for comparison (GPTQ). */
  readonly rtnOutputError?: number;
  /** An MoE expert's calibration tokens. */
  readonly expertTokens?: ExpertTokens;
}

/** Observed static scales of an attention state (K, V or Q). */
export interface StateQParams {
  /** `[1]` (tensor) or one per head (attn_head). */
  readonly scale: Float32Array;
  /** Asymmetric args only. */
  readonly zeroPoint?: Float32Array | null;
}

/** K/V (and Q) scales of an attention module. */
export interface AttentionResult {
  /** Module name, e.g. `model.layers.0.self_attn`. */
  readonly module: string;
  /** The args the scales were computed with (the kv_cache_scheme). */
  readonly args: QuantizationArgs;
  readonly k: StateQParams;
  readonly v: StateQParams;
  /** Query scales, with attention (query) quantization. */
  readonly q: StateQParams | null;
}

/** What one session yields at the end of its layer. */
export interface LayerResult {
  readonly linears: readonly LinearResult[];
  readonly attention: readonly AttentionResult[];
  /**
   * Tensors of the layer the session rewrote (full tensor name → dense
   * float32): later modifiers, the propagation forward and the checkpoint
   * use them instead of the source's. A Linear weight here is the dense
   * weight later modifiers quantize; a {@link LinearResult} of the same
   * module takes precedence in the checkpoint.
   */
  readonly tensors?: ReadonlyMap<string, Float32Array>;
}

/** What a session knows about the layer it calibrates. */
export interface LayerEnvironment {
  /** The engine the layer runs on. */
  readonly engine: Engine;
  /** The model config. */
  readonly config: ModelConfig;
  /** The decoder layer. */
  readonly layer: number;
  /** The layer's current dense weights by full tensor name (float32; do not modify). */
  readonly weights: ReadonlyMap<string, Float32Array>;
  /** The stored dtype of each of the layer's tensors. */
  readonly dtypes: ReadonlyMap<string, DType>;
  /** Upstream's quantization-aware calibration: fake-quantize during calibration forwards. */
  readonly quantizationAware: boolean;
  /** Number of calibration samples. */
  readonly samples: number;
  /** Receives metrics, progress and warnings. */
  readonly emit: GraphEventSink;
  /** Runs parts of this layer on its cached inputs with candidate weights (AWQ's grid search). */
  readonly subgraph: LayerSubgraph;
  /**
   * MoE layers: the tokens each expert saw in the calibration forwards
   * (filled once the first round is done; see expert_tokens.ts).
   */
  readonly expertTokens?: ExpertTokenCounter;
  /**
   * The Linears (full module names, and `….self_attn` for K/V scales) this
   * session handles; absent: all of the layer's. A layer whose experts run
   * in groups opens one session for the rest of the layer and one per group
   * (only for modifiers that declare {@link LayerModifier.moduleSubsets}).
   */
  readonly modules?: ReadonlySet<string>;
}

/** One modifier's work on one decoder layer. */
export interface LayerSession {
  /** Calibration rounds (forwards over all samples) it needs; 0 when it needs no data. */
  readonly rounds: number;
  /** Weights (full tensor name → values) that calibration forwards run with instead of the layer's. */
  readonly calibrationWeights: ReadonlyMap<string, Float32Array>;
  /**
   * The operator applied to round `round`'s activation stream. It must do
   * its GPU recording synchronously per tap; it completes when the round's
   * statistics are folded.
   */
  observe(round: number): OperatorFunction<CalibrationTap, unknown>;
  /**
   * The furthest tap `observe(round)` reads: the round's forwards stop
   * after the furthest tap any of its sessions reads. Absent: every tap.
   */
  tapPart?(round: number): TapPart;
  /**
   * How far round `round`'s forwards repeat round `round − 1`'s, as far as
   * this session's input transforms go: the furthest part through whose
   * last tap every Linear input is transformed as in the round before (that
   * last tap's own input may be transformed differently; it is the same
   * before its transform). The graph may then start the round where the
   * previous one stopped (see `LayerResume` in src/model/taps.ts). Absent:
   * nothing repeats.
   */
  repeatsThrough?(round: number): TapPart;
  /**
   * How Linear inputs are transformed in a calibration round or in the
   * propagation forward (valid after `finish`), for one forward's samples.
   */
  inputTransform(
    round: number | "propagate",
    samples: CalibrationBatch,
  ): LinearInputTransform | null;
  /** Ends the layer: quantizes its modules from what was observed. */
  finish(): Promise<LayerResult>;
  /** Releases GPU state (Hessians); idempotent. */
  dispose(): void;
}

/** A modifier as the graph drives it. */
export interface LayerModifier {
  /** The modifier's class name, e.g. `QuantizationModifier`. */
  readonly type: string;
  /** Whether its presence turns quantization-aware calibration off (GPTQ, AWQ, AutoRound). */
  readonly disablesQuantizationAware: boolean;
  /**
   * Whether its sessions rewrite layer tensors ({@link LayerResult.tensors}):
   * the modifiers after it then open their sessions only once it finished.
   */
  readonly rewritesLayer?: boolean;
  /** Whether its sessions honor {@link LayerEnvironment.modules} (experts in groups). */
  readonly moduleSubsets?: boolean;
  /**
   * Opens the session of one layer.
   *
   * @param env the layer and run
   * @returns the session
   */
  open(env: LayerEnvironment): LayerSession;
}
