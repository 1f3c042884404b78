/**
 * Transform groups with an online half (SpinQuant R3/R4, QuIP's u/v) as a
 * {@link WeightSource} decorator: their fused halves (`weight_input`,
 * `weight_output`) are applied in float64 to the Linear weights as they are
 * read, and their online matrices appear as extra tensors
 * `<module>.<group>_<location>.weight` (SPEC §1.9.13), so the written
 * checkpoint, read by llmc's forward with its transform_config, computes
 * the original function.
 *
 * Conventions (compressed-tensors' `apply_transform_weight`, T the
 * normalized block, M = T, or its inverse Tᵀ with `inverse`):
 * `weight_input`: `W ← W · Mᵀ`; `weight_output`: `W ← Mᵀ · W` and the bias
 * `b ← b · M` (so that the online `output` transform, applied after the
 * bias as vLLM does, restores it; upstream leaves biases alone, which only
 * matters for models with Linear biases); `input`/`output`: `x ← x · M`.
 * Stored matrices: the unnormalized ±1 matrix for the Hadamard types
 * (the inverse is taken at use), the matrix itself (already inverted when
 * `inverse`) for `random-matrix`; in the scheme's `precision`.
 *
 * One matrix per group and size, as compressed-tensors caches them, so the
 * fused and online halves of a group are exact inverses. With
 * `randomize: true` (Hadamard types) each such matrix also draws one seeded
 * permutation: the fused halves use `W[perm][:, perm]`, and every online
 * application stores `<module>.<group>_<location>.perm` (int64) next to its
 * unpermuted `.weight`, as compressed-tensors saves its HadamardTransform.
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";
import type { ModelConfig } from "../io/model_config.ts";
import { parseModelConfig } from "../io/model_config.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { layerTensorShapes } from "../model/layer_tensors.ts";
import type { WeightSource } from "../model/weight_source.ts";
import type { BlockTransform, BlockTransformOps } from "../engine/engine.ts";
import { TransformError } from "./errors.ts";
import {
  type FusedLocation,
  fusedTransformPlan,
  onlineTransformPlan,
  type TransformApplication,
} from "./online_transforms.ts";
import {
  blockTransformOf,
  buildTransform,
  permutedTransform,
  randomPermutation,
  type TransformMatrix,
} from "./transform_matrix.ts";

/** A tensor the decorated model has that the inner one does not. */
export interface ExtraTensor {
  /** Its name. */
  readonly name: string;
  /** Its stored dtype. */
  readonly dtype: DType;
  /** Its shape. */
  readonly shape: readonly number[];
}

/** The scheme `precision` as a safetensors dtype. */
const PRECISION_DTYPES: Readonly<Record<string, DType>> = {
  "torch.float64": "F64",
  "torch.float32": "F32",
  "torch.bfloat16": "BF16",
  "torch.float16": "F16",
};

/**
 * The config with `groups` added to `quantization_config.transform_config`.
 *
 * @param config the model config
 * @param groups transform_config groups to add (later groups of the same name replace)
 * @returns the new config
 * @example
 * ```ts ignore
 * const withR4 = withTransformGroups(hf.config, { R4: r4Scheme });
 * ```
 */
export function withTransformGroups(
  config: ModelConfig,
  groups: { [group: string]: JsonValue },
): ModelConfig {
  const qc = (config.raw.quantization_config ?? {}) as Record<string, unknown>;
  const tc = (qc.transform_config ?? {}) as Record<string, unknown>;
  const old = (tc.config_groups ?? {}) as Record<string, unknown>;
  const raw = {
    ...config.raw,
    quantization_config: {
      ...qc,
      transform_config: { ...tc, config_groups: { ...old, ...groups } },
    },
  };
  return { ...parseModelConfig(raw, "config.json"), tieWordEmbeddings: config.tieWordEmbeddings };
}

/** A group's matrix of one size: as built, its permutation (randomize) and the one applied. */
interface Drawn {
  readonly t: TransformMatrix;
  readonly perm: Int32Array | null;
  /** `t`, or `t[perm][:, perm]` with a permutation. */
  readonly used: TransformMatrix;
}

/** A fused step on one tensor. */
interface Step {
  readonly t: BlockTransform;
  /** Apply on the left (`weight_output`) or the right. */
  readonly left: boolean;
  /** Use Tᵀ. */
  readonly transpose: boolean;
}

/**
 * A model with transform groups' fused halves applied and their online
 * matrices added (see the module doc).
 *
 * @example
 * ```ts ignore
 * const src = new OnlineTransformSource(hf, { R4: r4Scheme }, { R4: 0x5e4 }, engine);
 * src.extraTensors(); // [{ name: "model.layers.0.mlp.down_proj.R4_input.weight", … }]
 * ```
 */
export class OnlineTransformSource implements WeightSource {
  /** The inner config with the groups added to its transform_config. */
  readonly config: ModelConfig;
  /** Every array is computed afresh for the caller. */
  readonly returnsFreshArrays = true;
  readonly #inner: WeightSource;
  readonly #steps = new Map<string, Step[]>();
  readonly #extra = new Map<string, { info: ExtraTensor; values: Float64Array }>();
  readonly #ops: BlockTransformOps;

  /**
   * Builds the groups' matrices (seeded) and plans their applications.
   *
   * @param inner the model to transform
   * @param groups transform_config groups, as compressed-tensors writes them
   * @param seeds a seed per group (the random types)
   * @param ops the engine whose float64 `blockTransform` runs the fused
   *   products
   * @throws {TransformError} for sizes a type cannot build, or applications
   *   llmc cannot run (see `onlineTransformPlan`)
   */
  constructor(
    inner: WeightSource,
    groups: { [group: string]: JsonValue },
    seeds: Readonly<Record<string, number>>,
    ops: BlockTransformOps,
  ) {
    this.#inner = inner;
    this.#ops = ops;
    this.config = withTransformGroups(inner.config, groups);
    const only = withTransformGroups({
      ...inner.config,
      raw: { ...inner.config.raw, quantization_config: undefined },
    }, groups);
    const matrices = new Map<string, Drawn>();
    const matrix = (a: TransformApplication) => {
      const key = `${a.group}:${a.size}`;
      let m = matrices.get(key);
      if (m === undefined) {
        const seed = ((seeds[a.group] ?? 0) * 65599 + a.size) >>> 0;
        const t = buildTransform(a.type, a.size, seed);
        // randomize: one permutation per group and size, as upstream's perm per cached weight.
        const perm = a.perm === null ? null : randomPermutation(a.size, seed);
        m = { t, perm, used: perm === null ? t : permutedTransform(t, perm) };
        matrices.set(key, m);
      }
      return m;
    };
    const blocks = new Map<TransformMatrix, BlockTransform>();
    const block = (m: TransformMatrix) => {
      let b = blocks.get(m);
      if (b === undefined) blocks.set(m, b = blockTransformOf(m));
      return b;
    };
    for (const list of fusedTransformPlan(only).values()) {
      for (const a of list) this.#addFused(a, block(matrix(a).used));
    }
    for (const list of onlineTransformPlan(only).values()) {
      for (const a of list) {
        const { t: m, perm } = matrix(a);
        const precision = String(
          (groups[a.group] as { precision?: unknown }).precision ?? "torch.float32",
        );
        const dtype = PRECISION_DTYPES[precision];
        if (dtype === undefined) {
          throw new TransformError(
            `transform_config group ${a.group}: precision ${precision} is not one of ` +
              Object.keys(PRECISION_DTYPES).join(", "),
          );
        }
        // Random-matrix stores the inverse itself (Tᵀ, T orthogonal); Hadamards store ±1.
        const values = a.type === "random-matrix" && a.inverse
          ? transposed(m.stored, m.size)
          : m.stored;
        this.#extra.set(a.tensor, {
          info: { name: a.tensor, dtype, shape: [a.size, a.size] },
          values,
        });
        // The unpermuted matrix plus torch.randperm's int64 indices, as upstream saves them.
        if (a.perm !== null && perm !== null) {
          this.#extra.set(a.perm, {
            info: { name: a.perm, dtype: "I64", shape: [a.size] },
            values: Float64Array.from(perm),
          });
        }
      }
    }
  }

  #addFused(a: TransformApplication<FusedLocation>, t: BlockTransform): void {
    const add = (name: string, step: Step) =>
      this.#steps.set(name, [...(this.#steps.get(name) ?? []), step]);
    if (a.location === "weight_input") {
      add(`${a.module}.weight`, { t, left: false, transpose: !a.inverse });
    } else {
      add(`${a.module}.weight`, { t, left: true, transpose: !a.inverse });
      add(`${a.module}.bias`, { t, left: false, transpose: a.inverse });
    }
  }

  /**
   * The online matrices this source adds.
   *
   * @returns name, dtype and shape of each
   */
  extraTensors(): ExtraTensor[] {
    return [...this.#extra.values()].map((e) => e.info);
  }

  /**
   * Whether the model has a tensor.
   *
   * @param name the tensor name
   * @returns true when present
   */
  has(name: string): boolean {
    return this.#extra.has(name) || this.#inner.has(name);
  }

  /**
   * A tensor of the transformed model.
   *
   * @param name the tensor name
   * @returns its values, float32 row-major
   */
  async readF32(name: string): Promise<Float32Array> {
    const extra = this.#extra.get(name);
    if (extra !== undefined) return Float32Array.from(extra.values);
    const steps = this.#steps.get(name);
    if (steps === undefined) return await this.#inner.readF32(name);
    const w = Float64Array.from(await this.#inner.readF32(name));
    for (const s of steps) {
      const n = s.t.size;
      const [rows, cols] = name.endsWith(".bias") ? [w.length / n, n] : this.#shape(name, w.length);
      const side = s.left && !name.endsWith(".bias") ? "left" : "right";
      this.#ops.blockTransform(w, s.t, { rows, cols, side, transpose: s.transpose, what: name });
    }
    return Float32Array.from(w);
  }

  #shape(name: string, numel: number): [number, number] {
    const k = Number(/^model\.layers\.(\d+)\./.exec(name)?.[1]);
    const shape = Number.isInteger(k) ? layerTensorShapes(this.config, k).get(name) : undefined;
    if (shape === undefined || shape.length !== 2 || shape[0] * shape[1] !== numel) {
      throw new TransformError(`${name}: not a decoder-layer Linear weight of ${numel} values`);
    }
    return [shape[0], shape[1]];
  }
}

function transposed(m: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = m[i * n + j];
  return t;
}
