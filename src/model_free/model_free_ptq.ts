/**
 * `model_free_ptq` (§3.7): quantize a checkpoint straight from its
 * safetensors files, without a model definition, so it works for any
 * architecture. Every tensor `X.weight` whose module `X` does not end with
 * `norm` and is not ignored is treated as a Linear weight `[out, in]` —
 * embeddings, lm_head and MoE routers included, so list those in `ignore`.
 * Files keep their names, the index is rewritten, config.json gets a
 * `quantization_config`, every other file is copied, and the output folder
 * appears atomically. Memory holds two tensors (or fused q/k/v or gate/up
 * sets) at a time: the one being quantized and the next, which is read
 * meanwhile. Quantized tensors go to a spill file so each output file can
 * be laid out in `save_pretrained`'s order; copied tensors are read from
 * the source only when that file is written.
 *
 * @module
 */

import { resolveModelDir } from "../hub/resolve_model.ts";
import type { HubOptions } from "../hub/hub_settings.ts";
import { isFileEntry } from "../io/_path.ts";
import { assertOutputOutsideInput, atomicOutputDir, removeOrphans } from "../io/atomic_dir.ts";
import { acquireOutputLock, type OutputLock } from "../io/output_lock.ts";
import { SafetensorsFile } from "../io/safetensors_read.ts";
import { ShardedSafetensorsWriter } from "../io/safetensors_write.ts";
import { checkWeightQuantizable } from "../modifiers/quantization/check_weight.ts";
import { computeDTypeOf } from "../modifiers/quantization/linear_plan.ts";
import { rtnQuantizeLinears } from "../modifiers/quantization/rtn_linears.ts";
import type { LinearToQuantize } from "../modifiers/quantization/rtn_linears.ts";
import { moduleFormat } from "../quant/format.ts";
import { matchesTarget } from "../quant/match.ts";
import { jsonLimitFault, MAX_CONFIG_BYTES, MAX_JSON_DEPTH } from "../io/json_limits.ts";
import { parsePythonJson } from "../quant/python_json.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { COMPRESSED_TENSORS_VERSION } from "../quant/quantization_config.ts";
import { quantizationSchemeToJson, withFormat } from "../quant/scheme.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import { stableStringify } from "../quant/stable_stringify.ts";
import { checkpointConfigJson } from "../sink/config_json.ts";
import type { JsonObject } from "../sink/config_json.ts";
import { compareSafetensorsOrder } from "../sink/tensor_order.ts";
import { ModelFreeError } from "./errors.ts";
import { fusedTensorSets } from "./fused_tensor_sets.ts";
import { modelFreeScheme } from "./model_free_scheme.ts";
import { TensorSpill } from "./_tensor_spill.ts";

const INDEX_NAME = "model.safetensors.index.json";

/** Options of {@link modelFreePtq}. */
export interface ModelFreePtqOptions {
  /** Replace an existing output folder. */
  readonly overwrite?: boolean;
  /** Omit null `scale_dtype`/`zp_dtype` from config.json, for vLLM builds with compressed-tensors ≤ 0.12. */
  readonly omitNullDtypes?: boolean;
  /** Called after each safetensors file. */
  readonly onProgress?: (event: ModelFreeProgress) => void;
  /** Warnings (observer swaps); `console.warn` by default. */
  readonly onWarning?: (message: string) => void;
  /** How a Hub id given as the model is resolved (default: from the environment). */
  readonly hub?: HubOptions;
}

/** Progress after one file. */
export interface ModelFreeProgress {
  /** The file name. */
  readonly file: string;
  /** Files done so far. */
  readonly done: number;
  /** Number of files. */
  readonly files: number;
  /** Weights quantized in this file. */
  readonly quantized: number;
  /** Seconds spent on this file. */
  readonly seconds: number;
}

/** What {@link modelFreePtq} wrote. */
export interface ModelFreePtqResult {
  /** The committed output folder. */
  readonly outputDir: string;
  /** Safetensors file names, as in the source. */
  readonly files: readonly string[];
  /** Bytes of tensor data written. */
  readonly totalSize: number;
  /** Number of weights quantized. */
  readonly quantized: number;
  /** Bytes of source weights quantized. */
  readonly quantizedBytes: number;
  /** The `quantization_config` written. */
  readonly quantizationConfig: JsonObject;
  /** Wall time in seconds. */
  readonly seconds: number;
}

/** One weight to quantize, as found in a file header. */
interface Candidate {
  readonly module: string;
  readonly tensor: string;
  readonly file: SafetensorsFile;
}

function candidateModule(tensor: string, ignore: readonly string[]): string | null {
  if (!tensor.endsWith(".weight")) return null;
  const module = tensor.slice(0, -".weight".length);
  if (module.endsWith("norm")) return null;
  // Names and regexes only: without a model there are no class names.
  if (ignore.some((t) => matchesTarget(t, module, []))) return null;
  return module;
}

async function sourceFiles(dir: string): Promise<{ names: string[]; index: JsonObject | null }> {
  let indexText: string | null = null;
  try {
    indexText = await Deno.readTextFile(`${dir}/${INDEX_NAME}`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (indexText !== null) {
    const index = parsePythonJson(indexText, `${dir}/${INDEX_NAME}`) as JsonObject;
    const wm = index?.weight_map;
    if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
      throw new ModelFreeError(`${dir}/${INDEX_NAME}: has no weight_map object`);
    }
    const names: string[] = [];
    for (const f of Object.values(wm as JsonObject)) {
      if (typeof f !== "string" || f.includes("/") || f === "" || f === "..") {
        throw new ModelFreeError(`${dir}/${INDEX_NAME}: weight_map names ${JSON.stringify(f)}`);
      }
      if (!names.includes(f)) names.push(f);
    }
    return { names, index };
  }
  const names: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (isFileEntry(dir, e) && e.name.endsWith(".safetensors")) names.push(e.name);
    }
  } catch (e) {
    throw new ModelFreeError(`${dir}: cannot list the model folder (${(e as Error).message})`, {
      cause: e,
    });
  }
  if (names.length === 0) throw new ModelFreeError(`${dir}: has no *.safetensors files`);
  return { names: names.sort(), index: null };
}

/**
 * Quantizes a checkpoint without a model definition.
 *
 * @param modelDir the source folder (safetensors files, config.json, tokenizer files, …), or
 *   a Hub id `org/name[@revision]` resolved through the Hugging Face cache
 * @param outDir the output folder
 * @param scheme a preset name (e.g. `"FP8_DYNAMIC"`) or a scheme; activations must be dynamic
 * @param ignore module names / `re:` patterns left dense (embeddings, lm_head, routers…)
 * @param options overwrite, progress and warning callbacks
 * @returns what was written
 * @throws {ModelFreeError} for a scheme that needs calibration, a non-2-D or non-float
 *   weight, a fused set split across files, or a folder without weights
 * @throws {QuantizationShapeError} (from quant) for a weight whose shape does not fit the scheme
 * @throws {AtomicDirError} (from io) when the output exists without `overwrite`
 * @example
 * ```ts ignore
 * import { modelFreePtq } from "./model_free_ptq.ts";
 * await modelFreePtq("models/llama", "out/llama-fp8", "FP8_DYNAMIC", ["re:.*embed_tokens$", "lm_head"]);
 * ```
 */
export async function modelFreePtq(
  modelDir: string,
  outDir: string,
  scheme: string | QuantizationScheme,
  ignore: readonly string[] = [],
  options: ModelFreePtqOptions = {},
): Promise<ModelFreePtqResult> {
  const t0 = performance.now();
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const source = await resolveModelDir(modelDir, { ...options.hub, onWarning: warn });
  const dir = source.length > 1 ? source.replace(/\/+$/, "") : source;
  const { groupName, scheme: s } = modelFreeScheme(scheme, warn);
  const args = s.weights!;
  const format = moduleFormat(s)!;
  const configPath = `${dir}/config.json`;
  let configText: string;
  try {
    configText = await Deno.readTextFile(configPath);
  } catch (e) {
    throw new ModelFreeError(`${configPath}: cannot read (${(e as Error).message})`, { cause: e });
  }
  // Checked now, not when config.json is written at the very end of the run.
  const configFault = jsonLimitFault(configText, MAX_CONFIG_BYTES, MAX_JSON_DEPTH);
  if (configFault !== null) throw new ModelFreeError(`${configPath}: ${configFault}`);
  try {
    checkpointConfigJson(configText, {}, { file: configPath });
  } catch (e) {
    throw new ModelFreeError((e as Error).message, { cause: e });
  }
  const { names: fileNames, index } = await sourceFiles(dir);

  const files: SafetensorsFile[] = [];
  let lock: OutputLock | undefined;
  try {
    // Validate everything from the headers before any output exists.
    const candidates = new Map<string, Candidate[]>();
    const fileOf = new Map<string, string>();
    for (const name of fileNames) {
      const f = await SafetensorsFile.open(`${dir}/${name}`);
      files.push(f);
      const list: Candidate[] = [];
      for (const tensor of f.names()) {
        const module = tensor.endsWith(".weight") ? tensor.slice(0, -7) : null;
        if (module !== null) fileOf.set(module, name);
        const m = candidateModule(tensor, ignore);
        if (m === null) continue;
        const info = f.info(tensor);
        if (info.shape.length !== 2) {
          throw new ModelFreeError(
            `${name}: '${tensor}' has shape [${info.shape.join(", ")}], not a 2-D Linear weight; ` +
              `add '${m}' to ignore`,
          );
        }
        computeDTypeOf(info.dtype, `${name}: ${tensor}`);
        checkWeightQuantizable(m, info.shape, args);
        list.push({ module: m, tensor, file: f });
      }
      candidates.set(name, list);
    }
    const fused = new Map<string, string[][]>();
    for (const name of fileNames) {
      if (args.strategy !== "tensor_group") {
        fused.set(name, []);
        continue;
      }
      const mods = [...fileOf].filter(([, f]) => f === name).map(([m]) => m);
      const sets = fusedTensorSets(mods);
      for (const inc of sets.incomplete) {
        const elsewhere = inc.missing.filter((m) => fileOf.has(m));
        if (elsewhere.length > 0) {
          throw new ModelFreeError(
            `${name}: ${inc.present.join(", ")} share a fused global scale with ` +
              `${elsewhere.join(", ")} in ${fileOf.get(elsewhere[0])}; model-free PTQ needs each ` +
              `fused set (q/k/v, gate/up) in one safetensors file`,
          );
        }
      }
      const quantizedHere = new Set(candidates.get(name)!.map((c) => c.module));
      fused.set(
        name,
        sets.complete
          .map((set) => set.filter((m) => quantizedHere.has(m)))
          .filter((set) => set.length > 1),
      );
    }

    await assertOutputOutsideInput(dir, outDir);
    // A second run on the same output is refused; leftovers of dead runs go.
    lock = await acquireOutputLock(outDir, warn);
    await removeOrphans(outDir, warn);
    const out = await atomicOutputDir(outDir, { overwrite: options.overwrite });
    try {
      const weightMap: Record<string, string> = {};
      let totalSize = 0;
      let quantized = 0;
      let quantizedBytes = 0;
      for (let fi = 0; fi < fileNames.length; fi++) {
        const t1 = performance.now();
        const name = fileNames[fi];
        const f = files[fi];
        const byTensor = new Map(candidates.get(name)!.map((c) => [c.tensor, c]));
        const sets = fused.get(name)!;
        const setOf = new Map<string, string[]>();
        for (const set of sets) for (const m of set) setOf.set(m, set);
        // Quantization groups in file order; every other tensor is copied as it is.
        const groups: string[][] = [];
        const copied: string[] = [];
        const grouped = new Set<string>();
        for (const tensor of f.names()) {
          if (grouped.has(tensor)) continue;
          const c = byTensor.get(tensor);
          if (c === undefined) {
            copied.push(tensor);
            continue;
          }
          const group = setOf.get(c.module) ?? [c.module];
          for (const m of group) grouped.add(`${m}.weight`);
          groups.push(group);
        }
        const spill = await TensorSpill.create(`${out.tmpDir}/.${name}.spill`);
        let quantizedHere = 0;
        // At most one spill append in flight, overlapping the next group's quantization.
        let spilling: Promise<void> = Promise.resolve();
        try {
          // Each group's weights are read while the group before it is quantized.
          const readGroup = (group: readonly string[]) =>
            group.map((m) => {
              const read = f.readF32(`${m}.weight`);
              // Awaited below; this only keeps a read that an earlier error overtakes from
              // surfacing as an unhandled rejection.
              read.catch(() => {});
              return read;
            });
          let next = groups.length > 0 ? readGroup(groups[0]) : [];
          for (let gi = 0; gi < groups.length; gi++) {
            const group = groups[gi];
            const values = await Promise.all(next);
            next = gi + 1 < groups.length ? readGroup(groups[gi + 1]) : [];
            const todo: LinearToQuantize[] = group.map((m, i) => {
              const t = `${m}.weight`;
              const info = f.info(t);
              quantizedBytes += info.byteLength;
              return {
                name: m,
                values: values[i],
                shape: [info.shape[0], info.shape[1]],
                scheme: s,
                format,
                dtype: computeDTypeOf(info.dtype, t),
              };
            });
            const tensors = rtnQuantizeLinears(todo, {
              fusedSets: group.length > 1 ? [group] : [],
            }).flatMap((q) => q.tensors);
            await spilling;
            spilling = (async () => {
              for (const t of tensors) await spill.append(t);
            })();
            spilling.catch(() => {});
            quantizedHere += todo.length;
          }
          await spilling;

          // Copied tensors are read from the source when written, not spilled first.
          const parts = [
            ...spill.entries.map((e) => ({ ...e, read: () => spill.read(e) })),
            ...copied.map((tensor) => {
              const info = f.info(tensor);
              return {
                name: tensor,
                dtype: info.dtype,
                shape: info.shape,
                length: info.byteLength,
                read: () => f.readRaw(tensor),
              };
            }),
          ].sort(compareSafetensorsOrder);
          const sub = `${out.tmpDir}/.${name}.parts`;
          await Deno.mkdir(sub);
          const writer = new ShardedSafetensorsWriter(sub, {
            maxShardBytes: Number.MAX_SAFE_INTEGER,
          });
          // One read ahead: the next tensor is read while this one is written.
          const readPart = (i: number) => {
            const read = parts[i].read();
            read.catch(() => {});
            return read;
          };
          let pending = parts.length > 0 ? readPart(0) : null;
          for (let i = 0; i < parts.length; i++) {
            const e = parts[i];
            const data = await pending!;
            pending = i + 1 < parts.length ? readPart(i + 1) : null;
            await writer.add(e.name, e.dtype, [...e.shape], data);
            weightMap[e.name] = name;
            totalSize += e.length;
          }
          const written = await writer.finish();
          await Deno.rename(written.files[0], `${out.tmpDir}/${name}`);
          await Deno.remove(sub, { recursive: true });
        } finally {
          await spilling.catch(() => {});
          await spill.remove();
        }
        quantized += quantizedHere;
        options.onProgress?.({
          file: name,
          done: fi + 1,
          files: fileNames.length,
          quantized: quantizedHere,
          seconds: (performance.now() - t1) / 1000,
        });
      }
      if (index !== null) {
        const sorted: JsonObject = {};
        for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k];
        const meta = typeof index.metadata === "object" && index.metadata !== null &&
            !Array.isArray(index.metadata)
          ? { ...(index.metadata as JsonObject) }
          : {};
        meta.total_size = totalSize;
        await Deno.writeTextFile(
          `${out.tmpDir}/${INDEX_NAME}`,
          stableStringify({ metadata: meta, weight_map: sorted }) + "\n",
        );
      }
      const quantizationConfig: JsonObject = {
        config_groups: { [groupName]: quantizationSchemeToJson(withFormat(s, format)) },
        format,
        global_compression_ratio: null,
        ignore: [...ignore] as JsonValue[],
        kv_cache_scheme: null,
        quant_method: "compressed-tensors",
        quantization_status: "compressed",
        sparsity_config: {},
        transform_config: {},
        version: COMPRESSED_TENSORS_VERSION,
      };
      await Deno.writeTextFile(
        `${out.tmpDir}/config.json`,
        checkpointConfigJson(configText, quantizationConfig, {
          file: configPath,
          omitNullDtypes: options.omitNullDtypes,
        }),
      );
      for (const e of Deno.readDirSync(dir)) {
        if (!isFileEntry(dir, e) || e.name === "config.json" || e.name === INDEX_NAME) continue;
        if (e.name.endsWith(".safetensors")) continue;
        await Deno.copyFile(`${dir}/${e.name}`, `${out.tmpDir}/${e.name}`);
      }
      await out.commit();
      return {
        outputDir: outDir,
        files: fileNames,
        totalSize,
        quantized,
        quantizedBytes,
        quantizationConfig,
        seconds: (performance.now() - t0) / 1000,
      };
    } catch (e) {
      await out.abort().catch(() => {});
      throw e;
    }
  } finally {
    for (const f of files) f.close();
    await lock?.release();
  }
}
