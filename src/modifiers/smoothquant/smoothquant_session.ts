/**
 * SmoothQuantModifier and LogarithmicEqualizationModifier (§4.7) as layer
 * modifiers. Per layer, one calibration round records the per-channel
 * minimum and maximum of every smooth layer's output (the balance layers'
 * shared input) on the device; at the layer's end each mapping gets
 *
 * ```
 * act_j  = max_j − min_j                                  (dynamic range)
 * wmax_j = 2 · max over balance layers and rows of |W_ij|
 * s_j    = act_j^α / wmax_j^(1−α)   (act_j where wmax_j = 0)      SmoothQuant
 * s_j    = act_j / log2(2 + act_j)                                logarithmic equalization
 * s_j    = max(s_j, 1e-5)
 * ```
 *
 * and the layer is rescaled exactly: balance columns `W[:, j] · s_j`, the
 * norm `γ_j / s_j`. The rewritten tensors are the session's result; the
 * modifiers after it (GPTQ for W8A8) calibrate on them.
 *
 * @module
 */

import { concatMap, map, type OperatorFunction, toArray } from "../../_rxjs.ts";
import type { Tensor } from "../../engine/engine.ts";
import type { ModelConfig } from "../../io/model_config.ts";
import { isIgnored } from "../../quant/match.ts";
import type { SmoothQuantModifierSpec } from "../../recipe/modifiers.ts";
import type {
  CalibrationTap,
  LayerEnvironment,
  LayerModifier,
  LayerResult,
  LayerSession,
} from "../../graph/modifier.ts";
import {
  applySmoothing,
  type LayerMapping,
  type MappingPatterns,
  resolveLayerMappings,
  SmoothingMappingError,
  smoothQuantDefaultMappings,
} from "../smoothing/layer_mappings.ts";
import { oncePerRun } from "../_once_per_run.ts";
import { furthestTapPart, type TapPart, tapPartOfInput } from "../../model/taps.ts";

/** The smallest smoothing scale (upstream's MINIMUM_SMOOTHING_SCALE). */
export const MINIMUM_SMOOTHING_SCALE = 1e-5;

/** A planned SmoothQuant (or logarithmic equalization) run. */
export interface SmoothQuantPlan {
  readonly kind: "smoothquant";
  readonly modifier: SmoothQuantModifierSpec;
  /** The mappings (given, or the architecture's defaults). */
  readonly mappings: readonly MappingPatterns[];
  /** Always true: the scales come from calibration activations. */
  readonly needsData: true;
  /** Nothing: SmoothQuant has no targets. */
  readonly unmatched: readonly string[];
}

function where(spec: SmoothQuantModifierSpec): string {
  return `${spec.stage}_stage.${spec.group}_modifiers.${spec.type}`;
}

/**
 * The mappings SmoothQuant applies: the recipe's, or (null) those inferred
 * for the architecture, as upstream's `initialize` sets `self.mappings`.
 *
 * @param config the model config (the architecture the defaults are for)
 * @param spec the modifier
 * @returns the mappings as patterns
 * @example
 * ```ts ignore
 * smoothQuantMappingsOf(hf.config, spec).length; // 2 for llama (1 for mixtral) with inferred mappings
 * ```
 */
export function smoothQuantMappingsOf(
  config: ModelConfig,
  spec: SmoothQuantModifierSpec,
): readonly MappingPatterns[] {
  return spec.mappings === null
    ? smoothQuantDefaultMappings(config)
    : spec.mappings.map((m) => ({ smooth: m.smoothLayer, balance: m.balanceLayers }));
}

/**
 * Plans a SmoothQuant run and checks its mappings on every layer.
 *
 * @param source the model (its config)
 * @param spec the modifier
 * @returns the plan
 * @throws {SmoothingMappingError} for a mapping llmc cannot apply, or one whose smooth
 *   layer is not a norm (SmoothQuant's statistics are the norm's outputs)
 * @example
 * ```ts ignore
 * const plan = planSmoothQuant(hf, SmoothQuantModifier({ smoothing_strength: 0.8 }));
 * ```
 */
export function planSmoothQuant(
  source: { readonly config: ModelConfig },
  spec: SmoothQuantModifierSpec,
): SmoothQuantPlan {
  const mappings = smoothQuantMappingsOf(source.config, spec);
  for (let k = 0; k < source.config.numHiddenLayers; k++) {
    for (const m of resolveLayerMappings(k, source.config, mappings, where(spec))) {
      if (!m.smoothIsNorm) {
        throw new SmoothingMappingError(
          `${where(spec)}: smooth layer ${m.smooth} is a Linear; llmc's SmoothQuant smooths ` +
            `norm outputs (input_layernorm, post_attention_layernorm)`,
        );
      }
    }
  }
  return Object.freeze({
    kind: "smoothquant",
    modifier: spec,
    mappings,
    needsData: true,
    unmatched: Object.freeze([]),
  });
}

/**
 * The smoothing scales of one mapping.
 *
 * @param spec the modifier (algorithm and α)
 * @param range per-channel dynamic range of the smooth layer's output (max − min)
 * @param balance the balance weights, each `[out, in]` row-major with `in = range.length`
 * @returns the scales (clamped below at {@link MINIMUM_SMOOTHING_SCALE})
 * @example
 * ```ts
 * import { smoothingScales } from "./smoothquant_session.ts";
 * const s = smoothingScales(
 *   { type: "SmoothQuantModifier", smoothingStrength: 0.5 },
 *   new Float32Array([4]),
 *   [new Float32Array([0.5])],
 * );
 * console.assert(Math.abs(s[0] - 2) < 1e-6); // sqrt(4) / sqrt(2 · 0.5)
 * ```
 */
export function smoothingScales(
  spec: Pick<SmoothQuantModifierSpec, "type" | "smoothingStrength">,
  range: Float32Array,
  balance: readonly Float32Array[],
): Float32Array {
  const n = range.length;
  const s = new Float32Array(n);
  if (spec.type === "LogarithmicEqualizationModifier") {
    for (let j = 0; j < n; j++) s[j] = range[j] / Math.log2(2 + range[j]);
  } else {
    const wmax = new Float32Array(n);
    for (const w of balance) {
      for (let i = 0; i < w.length; i += n) {
        for (let j = 0; j < n; j++) wmax[j] = Math.max(wmax[j], Math.abs(w[i + j]));
      }
    }
    const a = spec.smoothingStrength;
    for (let j = 0; j < n; j++) {
      const wj = 2 * wmax[j];
      s[j] = wj > 0 ? Math.pow(range[j], a) / Math.pow(wj, 1 - a) : range[j];
    }
  }
  for (let j = 0; j < n; j++) s[j] = Math.max(s[j], MINIMUM_SMOOTHING_SCALE);
  return s;
}

interface PendingRange {
  readonly mapping: number;
  readonly min: Tensor;
  readonly max: Tensor;
}

class SmoothQuantSession implements LayerSession {
  readonly rounds = 1;
  readonly calibrationWeights = new Map<string, Float32Array>();
  readonly #mappings: LayerMapping[];
  readonly #min: (Float32Array | null)[];
  readonly #max: (Float32Array | null)[];
  #pending: Tensor[] = [];

  constructor(
    readonly env: LayerEnvironment,
    readonly plan: SmoothQuantPlan,
    said: Set<string>,
  ) {
    const spec = plan.modifier;
    const ignore = spec.ignore ?? [];
    // Every layer of the same structure gives the same note: each is said once per run.
    const warn = oncePerRun(said, env.emit);
    this.#mappings = resolveLayerMappings(env.layer, env.config, plan.mappings, where(spec), warn)
      .filter((m) => {
        // Upstream skips a mapping only when the smooth layer and every balance layer are ignored.
        const all = [m.smooth, ...m.balance].every((n) => isIgnored(n, [], ignore));
        if (all) warn(`${where(spec)}: skipping ${m.smooth}: all its layers are ignored`);
        return !all;
      });
    this.#min = this.#mappings.map(() => null);
    this.#max = this.#mappings.map(() => null);
    if (spec.numCalibrationSteps !== null) {
      warn(
        `${where(spec)}.num_calibration_steps: llmc calibrates SmoothQuant on every ` +
          `calibration sample (limit them with num_calibration_samples)`,
      );
    }
  }

  observe(): OperatorFunction<CalibrationTap, unknown> {
    return (taps$) =>
      taps$.pipe(
        map((tap) => this.#record(tap)),
        toArray(),
        concatMap(async (pending) => await this.#fold(pending.flat())),
      );
  }

  tapPart(): TapPart {
    const { config, layer } = this.env;
    // Every round reads each mapping's input (the first balance layer's).
    const parts = this.#mappings.map((m) => tapPartOfInput(config, layer, m.balance[0]));
    return parts.length === 0 ? "through_qkv_input" : furthestTapPart(parts);
  }

  #record(tap: CalibrationTap): PendingRange[] {
    const e = tap.event;
    if (e.kind !== "linear_input") return [];
    const out: PendingRange[] = [];
    this.#mappings.forEach((m, i) => {
      if (!e.modules.includes(m.balance[0])) return;
      // Per-column min / max of the activation.
      const { min, max } = e.engine.reduceColumnsMinMax(e.x);
      this.#pending.push(min, max);
      out.push({ mapping: i, min, max });
    });
    return out;
  }

  async #fold(pending: readonly PendingRange[]): Promise<void> {
    const read = await this.env.engine.read(
      pending.flatMap((p) => [p.min, p.max]),
    ) as Float32Array[];
    pending.forEach((p, i) => {
      const mn = read[2 * i];
      const mx = read[2 * i + 1];
      const curMin = this.#min[p.mapping];
      const curMax = this.#max[p.mapping];
      if (curMin === null || curMax === null) {
        this.#min[p.mapping] = Float32Array.from(mn);
        this.#max[p.mapping] = Float32Array.from(mx);
        return;
      }
      for (let j = 0; j < mn.length; j++) {
        curMin[j] = Math.min(curMin[j], mn[j]);
        curMax[j] = Math.max(curMax[j], mx[j]);
      }
    });
    this.#releasePending();
  }

  #releasePending(): void {
    for (const t of this.#pending) t.destroy();
    this.#pending = [];
  }

  inputTransform(): null {
    return null;
  }

  finish(): Promise<LayerResult> {
    let weights: ReadonlyMap<string, Float32Array> = this.env.weights;
    const tensors = new Map<string, Float32Array>();
    this.#mappings.forEach((m, i) => {
      const mn = this.#min[i];
      const mx = this.#max[i];
      if (mn === null || mx === null) return;
      const range = new Float32Array(mn.length);
      for (let j = 0; j < range.length; j++) range[j] = mx[j] - mn[j];
      const s = smoothingScales(
        this.plan.modifier,
        range,
        m.balance.map((b) => weights.get(`${b}.weight`)!),
      );
      const rewritten = applySmoothing(weights, m, s);
      const next = new Map(weights);
      for (const [n, w] of rewritten) {
        next.set(n, w);
        tensors.set(n, w);
      }
      weights = next;
    });
    return Promise.resolve({ linears: [], attention: [], tensors });
  }

  dispose(): void {
    this.#releasePending();
  }
}

/**
 * A SmoothQuant (or logarithmic equalization) plan as a layer modifier.
 *
 * @param plan the plan ({@link planSmoothQuant})
 * @returns the layer modifier; it rewrites layer tensors
 * @example
 * ```ts ignore
 * const modifier = smoothQuantLayerModifier(planSmoothQuant(hf, spec));
 * ```
 */
export function smoothQuantLayerModifier(plan: SmoothQuantPlan): LayerModifier {
  const said = new Set<string>();
  return {
    type: plan.modifier.type,
    disablesQuantizationAware: false,
    rewritesLayer: true,
    open: (env) => new SmoothQuantSession(env, plan, said),
  };
}
