/**
 * The scratch area of an independent run: what each pass but the last did
 * to each layer (dense weights and observed qparams of the modules it
 * quantized), on disk rather than in memory, one safetensors file per layer
 * and pass. A later pass reads it as its starting point; the last pass
 * merges it into the checkpoint. A pass whose every layer is stored is
 * marked complete, so a resumed run does not redo it.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";
import { SafetensorsFile } from "../io/safetensors_read.ts";
import { writeSafetensors } from "../io/safetensors_write.ts";
import type { TensorToWrite } from "../io/safetensors_write.ts";
import { f32ToBytes } from "../io/tensor_bytes.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import type { LayerResult, ObservedQParams, StateQParams } from "../graph/modifier.ts";

/** A damaged scratch file. */
export class ScratchStoreError extends LlmcError {}

/** What a stored pass kept of one Linear (its scheme comes from the pass's plan). */
export interface StoredLinear {
  readonly module: string;
  readonly weight: Float32Array;
  readonly weightQParams: WeightQParams | null;
  readonly input: ObservedQParams | null;
}

/** What a stored pass kept of one attention module. */
export interface StoredAttention {
  readonly module: string;
  readonly k: StateQParams;
  readonly v: StateQParams;
  readonly q: StateQParams | null;
}

/** One stored layer of one pass. */
export interface StoredLayer {
  readonly linears: readonly StoredLinear[];
  readonly attention: readonly StoredAttention[];
  /** Tensors the pass rewrote (smoothed norms and Linears), by full name. */
  readonly tensors: ReadonlyMap<string, Float32Array>;
}

interface Manifest {
  linears: { module: string; weightQ: boolean; global: boolean; gIdx: boolean; input: string[] }[];
  attention: { module: string; parts: string[] }[];
  /** Names of rewritten tensors, stored as `rewritten.<name>` (absent in older files). */
  tensors?: string[];
}

function f32(name: string, values: Float32Array, shape?: readonly number[]): TensorToWrite {
  return {
    name,
    dtype: "F32",
    shape: [...(shape ?? [values.length])],
    data: f32ToBytes("F32", values),
  };
}

function observedTensors(
  prefix: string,
  qp: ObservedQParams,
): { parts: string[]; tensors: TensorToWrite[] } {
  const parts: string[] = [];
  const tensors: TensorToWrite[] = [];
  if (qp.scale) {
    parts.push("scale");
    tensors.push(f32(`${prefix}_scale`, qp.scale, qp.shape));
  }
  if (qp.zeroPoint) {
    parts.push("zero_point");
    tensors.push(f32(`${prefix}_zero_point`, qp.zeroPoint, qp.shape));
  }
  if (qp.globalScale !== undefined && qp.globalScale !== null) {
    parts.push("global_scale");
    tensors.push(f32(`${prefix}_global_scale`, new Float32Array([qp.globalScale])));
  }
  return { parts, tensors };
}

/**
 * The scratch folder of an independent run.
 *
 * @example
 * ```ts ignore
 * const scratch = new ScratchStore(`${sink.workDir}/graph/passes`);
 * await scratch.writeLayer(0, 3, result);
 * await scratch.markComplete(0);
 * ```
 */
export class ScratchStore {
  /** @param dir the folder (created on first write) */
  constructor(readonly dir: string) {}

  #file(pass: number, k: number): string {
    return `${this.dir}/pass-${pass}/layer-${String(k).padStart(5, "0")}.safetensors`;
  }

  /**
   * Whether a pass finished every layer in an earlier (interrupted) run.
   *
   * @param pass the pass
   * @returns true when marked complete
   * @example
   * ```ts ignore
   * if (await scratch.isComplete(0)) console.log("pass 0 is reused");
   * ```
   */
  async isComplete(pass: number): Promise<boolean> {
    try {
      await Deno.lstat(`${this.dir}/pass-${pass}/complete.json`);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Marks a pass complete.
   *
   * @param pass the pass
   * @returns resolves when the marker is written
   * @example
   * ```ts ignore
   * await scratch.markComplete(0);
   * ```
   */
  async markComplete(pass: number): Promise<void> {
    await Deno.writeTextFile(`${this.dir}/pass-${pass}/complete.json`, "{}\n");
  }

  /**
   * Stores one layer's results of a pass.
   *
   * @param pass the pass
   * @param k the layer
   * @param result the session results
   * @returns resolves when the file is written
   * @example
   * ```ts ignore
   * await scratch.writeLayer(0, 3, done.result);
   * ```
   */
  async writeLayer(pass: number, k: number, result: LayerResult): Promise<void> {
    await Deno.mkdir(`${this.dir}/pass-${pass}`, { recursive: true });
    const tensors: TensorToWrite[] = [];
    const manifest: Manifest = { linears: [], attention: [], tensors: [] };
    for (const [name, values] of result.tensors ?? []) {
      tensors.push(f32(`rewritten.${name}`, values));
      manifest.tensors!.push(name);
    }
    for (const l of result.linears) {
      tensors.push(f32(`${l.module}.weight`, l.weight, l.shape));
      const w = l.weightQParams;
      if (w !== null) {
        tensors.push(f32(`${l.module}.weight_scale`, w.scale));
        if (w.zeroPoint) tensors.push(f32(`${l.module}.weight_zero_point`, w.zeroPoint));
        if (w.globalScale !== undefined && w.globalScale !== null) {
          tensors.push(f32(`${l.module}.weight_global_scale`, new Float32Array([w.globalScale])));
        }
        if (w.gIdx) tensors.push(f32(`${l.module}.weight_g_idx`, Float32Array.from(w.gIdx)));
      }
      const input = l.input === null
        ? { parts: [], tensors: [] }
        : observedTensors(`${l.module}.input`, l.input);
      tensors.push(...input.tensors);
      manifest.linears.push({
        module: l.module,
        weightQ: w !== null,
        global: w?.globalScale !== undefined && w?.globalScale !== null,
        gIdx: !!w?.gIdx,
        input: l.input === null ? ["none"] : input.parts,
      });
    }
    for (const a of result.attention) {
      const parts: string[] = [];
      for (const [name, qp] of [["k", a.k], ["v", a.v], ["q", a.q]] as const) {
        if (qp === null) continue;
        const o = observedTensors(`${a.module}.${name}`, qp);
        tensors.push(...o.tensors);
        parts.push(...o.parts.map((p) => `${name}_${p}`));
      }
      manifest.attention.push({ module: a.module, parts });
    }
    await writeSafetensors(this.#file(pass, k), tensors, {
      overwrite: true,
      metadata: { llmc: JSON.stringify(manifest) },
    });
  }

  /**
   * Reads one layer's results of a pass.
   *
   * @param pass the pass
   * @param k the layer
   * @param newer modules the caller has newer weights of: their stored weights
   *   are not read (an empty array stands in), their qparams are
   * @returns what was stored
   * @throws {ScratchStoreError} when the file is missing or damaged
   * @example
   * ```ts ignore
   * const stored = await scratch.readLayer(0, 3);
   * ```
   */
  async readLayer(
    pass: number,
    k: number,
    newer: ReadonlySet<string> = new Set(),
  ): Promise<StoredLayer> {
    const path = this.#file(pass, k);
    let f: SafetensorsFile;
    try {
      f = await SafetensorsFile.open(path);
    } catch (e) {
      throw new ScratchStoreError(`${path}: cannot read the scratch layer: ${e}`, { cause: e });
    }
    try {
      const raw = f.metadata.llmc;
      if (typeof raw !== "string") throw new ScratchStoreError(`${path}: no llmc manifest`);
      const manifest = JSON.parse(raw) as Manifest;
      const read = (name: string) => f.readF32(name);
      const shapeOf = (name: string) => [...f.info(name).shape];
      const observed = async (
        prefix: string,
        parts: readonly string[],
      ): Promise<ObservedQParams> => ({
        scale: parts.includes("scale") ? await read(`${prefix}_scale`) : null,
        zeroPoint: parts.includes("zero_point") ? await read(`${prefix}_zero_point`) : null,
        globalScale: parts.includes("global_scale")
          ? (await read(`${prefix}_global_scale`))[0]
          : null,
        shape: parts.includes("scale") ? shapeOf(`${prefix}_scale`) : undefined,
      });
      const linears: StoredLinear[] = [];
      for (const l of manifest.linears) {
        const m = l.module;
        linears.push({
          module: m,
          weight: newer.has(m) ? new Float32Array(0) : await read(`${m}.weight`),
          weightQParams: l.weightQ
            ? {
              scale: await read(`${m}.weight_scale`),
              zeroPoint: f.has(`${m}.weight_zero_point`)
                ? await read(`${m}.weight_zero_point`)
                : null,
              globalScale: l.global ? (await read(`${m}.weight_global_scale`))[0] : null,
              gIdx: l.gIdx ? Int32Array.from(await read(`${m}.weight_g_idx`)) : null,
            }
            : null,
          input: l.input[0] === "none" ? null : await observed(`${m}.input`, l.input),
        });
      }
      const attention: StoredAttention[] = [];
      for (const a of manifest.attention) {
        const part = (p: string) =>
          a.parts.filter((x) => x.startsWith(`${p}_`)).map((x) => x.slice(2));
        const state = async (p: string): Promise<StateQParams> => {
          const o = await observed(`${a.module}.${p}`, part(p));
          if (!o.scale) throw new ScratchStoreError(`${path}: ${a.module}.${p}_scale is missing`);
          return { scale: o.scale, zeroPoint: o.zeroPoint };
        };
        attention.push({
          module: a.module,
          k: await state("k"),
          v: await state("v"),
          q: part("q").length > 0 ? await state("q") : null,
        });
      }
      const rewritten = new Map<string, Float32Array>();
      for (const name of manifest.tensors ?? []) {
        rewritten.set(name, await read(`rewritten.${name}`));
      }
      return { linears, attention, tensors: rewritten };
    } finally {
      f.close();
    }
  }
}
