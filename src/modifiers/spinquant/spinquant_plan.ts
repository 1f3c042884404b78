/**
 * SpinQuantModifier's plan: its recipe arguments checked against what llmc
 * runs (fused R1 and R2, not learnable), the rotations built, and the
 * `transform_config` compressed-tensors writes for them.
 *
 * @module
 */

import type { ModelConfig } from "../../io/model_config.ts";
import type { JsonValue } from "../../quant/python_json.ts";
import type { ModifierSpec } from "../../recipe/modifiers.ts";
import { TransformError } from "../../transform/errors.ts";
import type { FusedRotations } from "../../transform/rotated_source.ts";
import { hadamardFactors, isPowerOfTwo } from "../../transform/hadamard.ts";
import { transformArgsJson, transformSchemeJson } from "../../transform/online_transforms.ts";
import {
  blockTransformOf,
  buildTransform,
  permutedTransform,
  randomPermutation,
  TRANSFORM_TYPES,
  type TransformType,
} from "../../transform/transform_matrix.ts";

/** Upstream's SpinQuant mappings for the Llama family (llama, mistral, qwen2, qwen3). */
export const LLAMA_SPINQUANT_MAPPINGS = Object.freeze({
  embedding: "re:.*embed_tokens$",
  attn_q: "re:.*q_proj$",
  attn_k: "re:.*k_proj$",
  attn_v: "re:.*v_proj$",
  attn_o: "re:.*o_proj$",
  mlp_in: ["re:.*up_proj$", "re:.*gate_proj$"],
  mlp_out: ["re:.*down_proj$"],
  lm_head: "lm_head",
  attn: "re:.*self_attn$",
});

/** A SpinQuant rotation. */
export type SpinQuantRotation = "R1" | "R2" | "R3" | "R4";

/** The architectures whose mappings llmc infers. */
const ARCHITECTURES = ["llama", "mistral", "qwen2", "qwen3"];

/** The seeds of R1 and R2 (fixed, so a run is reproducible byte for byte). */
export const SPINQUANT_SEEDS = { R1: 0x5e1, R2: 0x5e2, R3: 0x5e3, R4: 0x5e4 } as const;
const SEEDS = SPINQUANT_SEEDS;

/** A checked SpinQuantModifier. */
export interface SpinQuantPlan {
  /** The recipe entry. */
  readonly modifier: ModifierSpec;
  /** The rotations, in recipe order. */
  readonly rotations: readonly SpinQuantRotation[];
  /** `transform_type`. */
  readonly transformType: TransformType;
  /** `randomize`. */
  readonly randomize: boolean;
  /** `precision` as compressed-tensors writes it, e.g. `"torch.float64"`. */
  readonly precision: string;
  /** `transform_block_size`, or null for the hidden size. */
  readonly blockSize: number | null;
}

function fail(spec: ModifierSpec, field: string, message: string): never {
  throw new TransformError(
    `${spec.stage}_stage.${spec.group}_modifiers.SpinQuantModifier.${field}: ${message}`,
  );
}

/**
 * Checks a SpinQuantModifier entry against a model.
 *
 * @param config the model config
 * @param spec the recipe entry (type SpinQuantModifier, arguments kept raw)
 * @returns the plan
 * @throws {TransformError} naming the field: learnable rotations, R3/R4, custom
 *   mappings, an architecture other than llama/mistral/qwen2/qwen3, or sizes
 *   `hadamard` cannot build
 * @example
 * ```ts ignore
 * const plan = planSpinQuant(hf.config, recipe.modifiers[0]);
 * plan.rotations; // ["R1", "R2"]
 * ```
 */
export function planSpinQuant(config: ModelConfig, spec: ModifierSpec): SpinQuantPlan {
  const args = (spec as { args?: Record<string, unknown> }).args ?? {};
  if (!ARCHITECTURES.includes(config.modelType)) {
    fail(spec, "mappings", `no SpinQuant mappings for model_type "${config.modelType}"`);
  }
  const rotations = ((args.rotations ?? ["R1", "R2"]) as string[]).map((r) => r.toUpperCase());
  for (const r of rotations) {
    if (!["R1", "R2", "R3", "R4"].includes(r)) fail(spec, "rotations", `${r}: expected R1…R4`);
  }
  if (args.learnable === true) {
    fail(spec, "learnable", "learnable rotations (SpinQuant's Cayley training) are not supported");
  }
  for (const field of ["mappings", "norm_mappings", "transform_config"]) {
    if (args[field] !== undefined && args[field] !== null) {
      fail(spec, field, "llmc infers it for llama, mistral, qwen2 and qwen3; leave it unset");
    }
  }
  const transformType = (args.transform_type ?? "hadamard") as TransformType;
  if (!TRANSFORM_TYPES.includes(transformType)) {
    fail(spec, "transform_type", `expected one of ${TRANSFORM_TYPES.join(", ")}`);
  }
  const blockSize = (args.transform_block_size ?? null) as number | null;
  const precision = args.precision ?? "torch.float64";
  if (
    typeof precision !== "string" ||
    !/^(torch\.)?(float64|float32|bfloat16|float16)$/.test(precision)
  ) {
    fail(
      spec,
      "precision",
      "expected torch.float64, torch.float32, torch.bfloat16 or torch.float16",
    );
  }
  const plan: SpinQuantPlan = {
    modifier: spec,
    rotations: rotations as SpinQuantRotation[],
    transformType,
    randomize: args.randomize === true,
    precision: precision.startsWith("torch.") ? precision : `torch.${precision}`,
    blockSize,
  };
  spinQuantRotations(config, plan); // builds once, so bad sizes fail before any output exists
  checkOnlineSizes(config, plan);
  return plan;
}

/**
 * The fused rotations a plan applies. R1 is one matrix for the whole model
 * (the residual stream shares it) and R2 one for every layer's v/o pair.
 * With `randomize: true` each is `W[perm][:, perm]` with one seeded
 * permutation per rotation (compressed-tensors draws one per cached weight,
 * i.e. per group and size; `random-matrix` ignores it, as upstream).
 *
 * @param config the model config
 * @param plan the plan
 * @returns R1 and R2 (null where the plan skips them)
 * @throws {TransformError} for sizes the transform type cannot build
 * @example
 * ```ts ignore
 * const { r1, r2 } = spinQuantRotations(hf.config, plan);
 * ```
 */
export function spinQuantRotations(config: ModelConfig, plan: SpinQuantPlan): FusedRotations {
  const build = (name: SpinQuantRotation, size: number) => {
    try {
      const t = buildTransform(plan.transformType, size, SEEDS[name]);
      if (!plan.randomize || plan.transformType === "random-matrix") return blockTransformOf(t);
      return blockTransformOf(permutedTransform(t, randomPermutation(size, SEEDS[name])));
    } catch (e) {
      if (e instanceof TransformError) {
        fail(plan.modifier, "transform_type", `${name} of size ${size}: ${e.message}`);
      }
      throw e;
    }
  };
  const r1Size = plan.blockSize ?? config.hiddenSize;
  return {
    r1: plan.rotations.includes("R1") ? build("R1", r1Size) : null,
    r2: plan.rotations.includes("R2") ? build("R2", config.headDim) : null,
  };
}

/**
 * The `transform_config` compressed-tensors writes for the plan (a group per
 * rotation, `R1`…`R4`; fields in TransformScheme's and TransformArgs' order).
 *
 * @param config the model config
 * @param plan the plan
 * @returns `{config_groups: {R1: …, R2: …, …}}`
 * @example
 * ```ts ignore
 * spinQuantTransformConfig(hf.config, plan).config_groups.R1.apply.length; // 2
 * ```
 */
export function spinQuantTransformConfig(
  config: ModelConfig,
  plan: SpinQuantPlan,
): { [key: string]: JsonValue } {
  return { config_groups: spinQuantGroups(config, plan, ["R1", "R2", "R3", "R4"]) };
}

/**
 * The transform_config groups of the plan's online rotations (`R3`, `R4`),
 * as upstream's `_create_r3_scheme`/`_create_r4_scheme` write them.
 *
 * @param config the model config
 * @param plan the plan
 * @returns group name → TransformScheme (empty without R3/R4)
 * @example
 * ```ts ignore
 * Object.keys(spinQuantOnlineGroups(hf.config, plan)); // ["R4"]
 * ```
 */
export function spinQuantOnlineGroups(
  config: ModelConfig,
  plan: SpinQuantPlan,
): { [key: string]: JsonValue } {
  return spinQuantGroups(config, plan, ["R3", "R4"]);
}

/** The TransformSchemes of the plan's rotations among `which`, in R1…R4 order. */
function spinQuantGroups(
  config: ModelConfig,
  plan: SpinQuantPlan,
  which: readonly SpinQuantRotation[],
): { [key: string]: JsonValue } {
  const m = LLAMA_SPINQUANT_MAPPINGS;
  const args = (targets: string[], location: string, inverse: boolean) =>
    transformArgsJson(targets, location, inverse, []);
  const scheme = (headDim: number | null, apply: JsonValue[]) =>
    transformSchemeJson(
      { type: plan.transformType, randomize: plan.randomize, headDim, precision: plan.precision },
      apply,
    );
  const wanted = (r: SpinQuantRotation) => which.includes(r) && plan.rotations.includes(r);
  const groups: { [key: string]: JsonValue } = {};
  if (wanted("R1")) {
    groups.R1 = scheme(plan.blockSize, [
      args([m.embedding, m.attn_o, ...m.mlp_out], "weight_output", false),
      args([m.attn_q, m.attn_k, m.attn_v, ...m.mlp_in, m.lm_head], "weight_input", true),
    ]);
  }
  if (wanted("R2")) {
    groups.R2 = scheme(config.headDim, [
      args([m.attn_v], "weight_output", false),
      args([m.attn_o], "weight_input", true),
    ]);
  }
  if (wanted("R3")) {
    groups.R3 = scheme(config.headDim, [
      args([m.attn], "q_attn", false),
      args([m.attn], "k_cache", false),
    ]);
  }
  if (wanted("R4")) {
    groups.R4 = scheme(plan.blockSize, [
      args([...m.mlp_out], "input", false),
      args([...m.mlp_out], "weight_input", true),
    ]);
  }
  return groups;
}

/** Refuses, by field, R3/R4 sizes the transform type cannot build (without building them). */
function checkOnlineSizes(config: ModelConfig, plan: SpinQuantPlan): void {
  const sizes: [SpinQuantRotation, number][] = [];
  if (plan.rotations.includes("R3")) sizes.push(["R3", config.headDim]);
  if (plan.rotations.includes("R4")) {
    const size = plan.blockSize ?? config.intermediateSize;
    if (config.intermediateSize % size !== 0) {
      fail(
        plan.modifier,
        "transform_block_size",
        `${size} does not divide intermediate_size ${config.intermediateSize} (R4)`,
      );
    }
    sizes.push(["R4", size]);
  }
  for (const [name, size] of sizes) {
    try {
      if (plan.transformType === "hadamard") sylvesterCheck(size);
      else if (plan.transformType === "random-hadamard") hadamardFactors(size);
    } catch (e) {
      if (e instanceof TransformError) {
        fail(plan.modifier, "transform_type", `${name} of size ${size}: ${e.message}`);
      }
      throw e;
    }
  }
}

function sylvesterCheck(n: number): void {
  if (!isPowerOfTwo(n)) {
    throw new TransformError(`Cannot construct deterministic hadamard of size != 2^n: ${n}`);
  }
}
