/**
 * The data-free pipeline (§3.6): for a single QuantizationModifier whose
 * schemes need no calibration data (weight-only, or dynamic activations),
 * every Linear is round-to-nearest quantized straight from the checkpoint,
 * one decoder layer at a time — read the layer's weights lazily, quantize,
 * compress, hand the layer to the sink, let it go. Everything that is not a
 * quantized Linear weight (norms, biases, embeddings) is copied unchanged in
 * its stored dtype. Reads run one tensor ahead and the sink writes a layer
 * while the next is quantized, so the disk and the CPU work at once.
 *
 * @module
 */

import type { HfModel } from "../io/hf_model.ts";
import { bytesToF32 } from "../io/tensor_bytes.ts";
import { LlmcError } from "../errors.ts";
import { layerPrefix } from "../model/module_names.ts";
import type { ModifierSpec } from "../recipe/modifiers.ts";
import { resolveQuantizationConfig } from "../recipe/resolve.ts";
import {
  computeDTypeOf,
  planLinearQuantization,
  withFormatOverride,
} from "../modifiers/quantization/linear_plan.ts";
import type { ModuleFormat } from "../quant/compression_format.ts";
import type { LinearPlan, PlannedLinear } from "../modifiers/quantization/linear_plan.ts";
import { layerFusedSets } from "../modifiers/quantization/layer_fused_sets.ts";
import { rtnQuantizeLinears } from "../modifiers/quantization/rtn_linears.ts";
import type { LinearToQuantize } from "../modifiers/quantization/rtn_linears.ts";
import type { CheckpointSink, CheckpointTensor } from "../sink/checkpoint_sink.ts";
import type { ModuleMetricEvent } from "../graph/events.ts";
import type { JsonObject } from "../sink/config_json.ts";

/** What a pipeline hands to the sink's finalize besides the tensors. */
export interface PipelineOutcome {
  /** The `quantization_config` of config.json. */
  readonly quantizationConfig: JsonObject;
  /** Top-level config.json keys to set (e.g. untied embeddings). */
  readonly configPatch?: JsonObject;
  /** The `sparsity_config`, when a sparsity modifier ran. */
  readonly sparsityConfig?: JsonObject;
}

/** Progress of one unit of work (a decoder layer, or the tensors outside the layers). */
export interface LayerEvent {
  /** The decoder layer, or null for the tensors outside the layers. */
  readonly layer: number | null;
  /** Number of decoder layers. */
  readonly layers: number;
  /** True when the sink already had it (resumed run). */
  readonly skipped: boolean;
  /** Seconds spent on it. */
  readonly seconds: number;
  /** Bytes of source weights read for it. */
  readonly bytesRead: number;
}

/** A model that cannot be processed as planned (a tensor outside the expected layers). */
export class DataFreePipelineError extends LlmcError {}

/**
 * Why a modifier cannot run in the data-free pipeline, or null when it can:
 * only a QuantizationModifier qualifies, and only when no group has static
 * (or NVFP4 "local") activation args and there is no KV-cache scheme.
 *
 * @param modifier a recipe modifier
 * @returns the reason, or null
 * @example
 * ```ts
 * import { dataFreeIncompatibility } from "./datafree.ts";
 * import { QuantizationModifier } from "../recipe/constructors.ts";
 * dataFreeIncompatibility(QuantizationModifier({ scheme: "FP8_DYNAMIC" })); // null
 * dataFreeIncompatibility(QuantizationModifier({ scheme: "FP8" })) !== null; // true
 * ```
 */
export function dataFreeIncompatibility(modifier: ModifierSpec): string | null {
  if (modifier.type !== "QuantizationModifier") {
    return `${modifier.type} needs calibration data`;
  }
  const resolved = resolveQuantizationConfig(modifier);
  if (resolved.kvCacheScheme !== null) return "kv_cache_scheme needs calibrated K/V scales";
  for (const [name, g] of Object.entries(resolved.configGroups)) {
    for (
      const [kind, args] of [["input", g.inputActivations], [
        "output",
        g.outputActivations,
      ]] as const
    ) {
      if (args === null || args.dynamic === true) continue;
      return args.dynamic === "local"
        ? `${name} quantizes ${kind} activations with a calibrated global scale (dynamic: local)`
        : `${name} quantizes ${kind} activations statically`;
    }
  }
  return null;
}

/**
 * Plans a data-free run: resolves the modifier's config groups and plans
 * (and validates) every Linear, reading no weights. Every error a bad
 * recipe or shape can cause is raised here, before any output exists.
 *
 * @param model the source model
 * @param modifier a data-free QuantizationModifier (see {@link dataFreeIncompatibility})
 * @param formatOverride a format forced on every quantized module (`"dense"` for an
 *   uncompressed save), or null
 * @returns the plan
 * @throws {DataFreePipelineError} when the modifier needs calibration or a tensor lies outside the layers
 * @throws {QuantizationShapeError} (from quant) for a module whose shape does not fit its scheme
 * @example
 * ```ts ignore
 * const plan = planDataFree(model, recipe.modifiers[0]);
 * plan.quantizationConfig.format; // "float-quantized"
 * ```
 */
export function planDataFree(
  model: HfModel,
  modifier: ModifierSpec,
  formatOverride: ModuleFormat | null = null,
): LinearPlan {
  const why = dataFreeIncompatibility(modifier);
  if (why !== null || modifier.type !== "QuantizationModifier") {
    throw new DataFreePipelineError(`the data-free pipeline cannot run this recipe: ${why}`);
  }
  const n = model.config.numHiddenLayers;
  for (const name of model.tensorNames()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m !== null && Number(m[1]) >= n) {
      throw new DataFreePipelineError(
        `${model.dir}: tensor '${name}' belongs to layer ${m[1]}, but config.json has ` +
          `num_hidden_layers ${n}`,
      );
    }
  }
  return planLinearQuantization(
    model,
    withFormatOverride(resolveQuantizationConfig(modifier), formatOverride),
  );
}

function quantized(l: PlannedLinear): boolean {
  return l.scheme !== null && l.scheme.weights !== null && l.format !== null;
}

/**
 * Reads tensors in the order the run will use them, one ahead: the read of
 * the next tensor (done off the main thread) overlaps the quantization of
 * this one. Memory holds at most one tensor more than without it.
 */
class ReadAhead {
  readonly #model: HfModel;
  readonly #order: readonly string[];
  /** Index in `#order` of the tensor `#pending` reads. */
  #next = 0;
  #pending: Promise<Uint8Array> | null = null;

  constructor(model: HfModel, order: readonly string[]) {
    this.#model = model;
    this.#order = order;
  }

  /** The raw bytes of `name`; a name out of the expected order is simply read. */
  raw(name: string): Promise<Uint8Array> {
    const at = this.#order.indexOf(name, this.#next);
    if (at < 0) return this.#model.readRaw(name);
    const bytes = at === this.#next && this.#pending !== null
      ? this.#pending
      : this.#model.readRaw(name);
    this.#next = at + 1;
    this.#pending = null;
    if (this.#next < this.#order.length) {
      this.#pending = this.#model.readRaw(this.#order[this.#next]);
      // A read ahead that is never asked for (the run failed first) must not
      // surface as an unhandled rejection; an awaited one still rejects.
      this.#pending.catch(() => {});
    }
    return bytes;
  }

  /** The values of `name` as float32, as `HfModel.readF32` gives them. */
  async f32(name: string): Promise<Float32Array> {
    const dtype = this.#model.info(name).dtype;
    const raw = await this.raw(name);
    // readRaw's buffer is fresh and aligned: F32 needs no copy.
    return dtype === "F32"
      ? new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
      : bytesToF32(dtype, raw);
  }
}

async function copyRaw(reader: ReadAhead, model: HfModel, name: string): Promise<CheckpointTensor> {
  const info = model.info(name);
  return { name, dtype: info.dtype, shape: info.shape, data: await reader.raw(name) };
}

/** The batches {@link quantizeAll} quantizes, in order: each fused set, then each other Linear. */
function batchesOf(
  linears: readonly PlannedLinear[],
  fusedSets: readonly (readonly string[])[],
): { sets: (readonly string[])[]; batches: PlannedLinear[][] } {
  const names = new Set(linears.map((l) => l.name));
  const sets = fusedSets.filter((set) => set.every((n) => names.has(n)));
  const inSet = new Set(sets.flat());
  const batches = [
    ...sets.map((set) => linears.filter((l) => set.includes(l.name))),
    ...linears.filter((l) => !inSet.has(l.name)).map((l) => [l]),
  ];
  return { sets, batches };
}

/** Receives the error of each quantized Linear; see {@link runDataFree}. */
export type DataFreeMetricSink = (event: ModuleMetricEvent) => void;

/**
 * Quantizes Linears one fused set (or one module) at a time, so only that
 * set's dense weights are in memory; the compressed tensors are kept. With
 * `onMetric`, each module's relative weight error ‖W−Ŵ‖²/‖W‖² is reported;
 * that needs the fake-quantized weight, which costs a second pass over the
 * weight, so it is computed only when someone listens.
 */
async function quantizeAll(
  model: HfModel,
  reader: ReadAhead,
  linears: readonly PlannedLinear[],
  fusedSets: readonly (readonly string[])[],
  onMetric?: DataFreeMetricSink,
): Promise<{ tensors: CheckpointTensor[]; bytesRead: number }> {
  const { sets, batches } = batchesOf(linears, fusedSets);
  const tensors: CheckpointTensor[] = [];
  let bytesRead = 0;
  for (const batch of batches) {
    const t0 = performance.now();
    const todo: LinearToQuantize[] = [];
    for (const l of batch) {
      const values = await reader.f32(l.weightTensor);
      bytesRead += model.info(l.weightTensor).byteLength;
      todo.push({
        name: l.name,
        values,
        shape: l.shape,
        scheme: l.scheme!,
        format: l.format!,
        dtype: computeDTypeOf(l.dtype, l.weightTensor),
      });
    }
    const quantized = rtnQuantizeLinears(todo, { fusedSets: sets, fakeQuantize: !!onMetric });
    for (const q of quantized) tensors.push(...q.tensors);
    if (onMetric) {
      // A fused set is quantized together (shared global scale): its time is shared evenly.
      const seconds = (performance.now() - t0) / 1000 / batch.length;
      const rssBytes = Deno.memoryUsage().rss;
      quantized.forEach((q, i) =>
        onMetric({
          type: "module_metric",
          module: q.name,
          modifier: "QuantizationModifier",
          layer: batch[i].layer,
          error: q.relativeError,
          errorKind: "relative_weight_mse",
          samples: 0,
          seconds,
          rssBytes,
          gpuBytes: 0,
        })
      );
    }
  }
  return { tensors, bytesRead };
}

/**
 * Runs a planned data-free job into a sink: the tensors outside the layers
 * (one sink group each, lm_head quantized when planned), then every decoder
 * layer not already in the sink. The caller finalizes the sink with the
 * returned outcome.
 *
 * Reading, quantizing and writing overlap: the next tensor is read while
 * this one is quantized, and a layer is written while the next one is
 * quantized. A layer's event comes once its write has finished, so the
 * layers reported are always the layers in the sink.
 *
 * @param model the source model
 * @param plan the plan from {@link planDataFree}
 * @param sink an open checkpoint sink for this job
 * @param onEvent progress callback, once per layer (and once for the rest)
 * @param onMetric when given, receives each quantized Linear's relative weight
 *   error (as the calibrated pipelines report RTN modules), before its layer's event
 * @returns the quantization config (and config patch) for finalize
 * @example
 * ```ts ignore
 * const outcome = await runDataFree(model, plan, sink);
 * await sink.finalize({ ...outcome, recipeYaml });
 * ```
 */
export async function runDataFree(
  model: HfModel,
  plan: LinearPlan,
  sink: CheckpointSink,
  onEvent: (e: LayerEvent) => void = () => {},
  onMetric?: DataFreeMetricSink,
): Promise<PipelineOutcome> {
  const n = model.config.numHiddenLayers;
  const byLayer = new Map<number, string[]>();
  const outside: string[] = [];
  for (const name of model.tensorNames()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m === null) outside.push(name);
    else {
      const k = Number(m[1]);
      if (!byLayer.has(k)) byLayer.set(k, []);
      byLayer.get(k)!.push(name);
    }
  }

  const lmHead = plan.linears.find((l) => l.layer === null)!;
  const groupKey = (name: string) => name.replace(/[^A-Za-z0-9_-]/g, "_");
  const layerLinears = (k: number) => plan.linears.filter((l) => l.layer === k && quantized(l));
  const layerFused = (k: number, linears: readonly PlannedLinear[]) => {
    const tg = new Set(
      linears.filter((l) => l.scheme!.weights!.strategy === "tensor_group").map((l) => l.name),
    );
    return layerFusedSets(k, model.config, (m) => tg.has(m));
  };

  // Every read of the run, in the order the code below makes them.
  const order: string[] = [];
  for (const name of outside) if (!sink.isGroupDone(groupKey(name))) order.push(name);
  if (plan.untieLmHead && !sink.isGroupDone("lm_head")) order.push(lmHead.weightTensor);
  for (let k = 0; k < n; k++) {
    if (sink.isLayerDone(k)) continue;
    const linears = layerLinears(k);
    const replaced = new Set(linears.map((l) => l.weightTensor));
    for (const batch of batchesOf(linears, layerFused(k, linears)).batches) {
      for (const l of batch) order.push(l.weightTensor);
    }
    for (const name of byLayer.get(k) ?? []) if (!replaced.has(name)) order.push(name);
  }
  const reader = new ReadAhead(model, order);

  // At most one write in flight: it is awaited before the next is started.
  let inFlight: { write: Promise<void>; settled: (waited: number) => void } | null = null;
  const settle = async () => {
    if (inFlight === null) return;
    const { write, settled } = inFlight;
    inFlight = null;
    const t = performance.now();
    await write;
    settled((performance.now() - t) / 1000);
  };
  const writeBehind = async (write: () => Promise<void>, settled: (waited: number) => void) => {
    await settle();
    inFlight = { write: write(), settled };
  };

  try {
    const start = performance.now();
    let bytesRead = 0;
    for (const name of outside) {
      const key = groupKey(name);
      if (sink.isGroupDone(key)) continue;
      let tensors: CheckpointTensor[];
      if (name === lmHead.weightTensor && quantized(lmHead) && !plan.untieLmHead) {
        const q = await quantizeAll(model, reader, [lmHead], [], onMetric);
        bytesRead += q.bytesRead;
        tensors = q.tensors;
      } else {
        bytesRead += model.info(name).byteLength;
        tensors = [await copyRaw(reader, model, name)];
      }
      await writeBehind(() => sink.writeTensors(key, tensors), () => {});
    }
    if (plan.untieLmHead && !sink.isGroupDone("lm_head")) {
      // A tied lm_head that is quantized is written as its own (untied) module.
      const q = await quantizeAll(model, reader, [lmHead], [], onMetric);
      bytesRead += q.bytesRead;
      await writeBehind(() => sink.writeTensors("lm_head", q.tensors), () => {});
    }
    await settle();
    onEvent({
      layer: null,
      layers: n,
      skipped: false,
      seconds: (performance.now() - start) / 1000,
      bytesRead,
    });

    for (let k = 0; k < n; k++) {
      if (sink.isLayerDone(k)) {
        await settle();
        onEvent({ layer: k, layers: n, skipped: true, seconds: 0, bytesRead: 0 });
        continue;
      }
      const t0 = performance.now();
      const linears = layerLinears(k);
      const replaced = new Set(linears.map((l) => l.weightTensor));
      const q = await quantizeAll(model, reader, linears, layerFused(k, linears), onMetric);
      const tensors = [...q.tensors];
      let layerBytes = q.bytesRead;
      for (const name of byLayer.get(k) ?? []) {
        if (replaced.has(name)) continue;
        layerBytes += model.info(name).byteLength;
        tensors.push(await copyRaw(reader, model, name));
      }
      if (tensors.length === 0) {
        throw new DataFreePipelineError(`${model.dir}: ${layerPrefix(k)} has no tensors`);
      }
      const busy = (performance.now() - t0) / 1000;
      await writeBehind(
        () => sink.writeLayer(k, tensors),
        (waited) =>
          onEvent({
            layer: k,
            layers: n,
            skipped: false,
            seconds: busy + waited,
            bytesRead: layerBytes,
          }),
      );
    }
    await settle();
  } finally {
    // On an error, the write in flight still finishes before the caller cleans up.
    const pending = inFlight as { write: Promise<void> } | null;
    if (pending !== null) await pending.write.catch(() => {});
  }
  return {
    quantizationConfig: plan.quantizationConfig,
    configPatch: plan.untieLmHead ? { tie_word_embeddings: false } : undefined,
  };
}
