/**
 * QuIPModifier as a whole-model transform (see `../model_transforms.ts`):
 * QuIP's `v` (online `input` + fused `weight_input`, inverse) and `u`
 * (fused `weight_output` + online `output`, inverse) on every targeted
 * Linear, written as a float checkpoint (fused halves in the weights, the
 * online matrices as `<module>.v_input.weight` / `<module>.u_output.weight`)
 * that the next modifier (RTN or GPTQ) quantizes while llmc's forward
 * applies the online halves.
 *
 * @module
 */

import type { ModelConfig } from "../../io/model_config.ts";
import type { JsonValue } from "../../quant/python_json.ts";
import type { ModifierSpec } from "../../recipe/modifiers.ts";
import { TransformError } from "../../transform/errors.ts";
import { hadamardFactors, isPowerOfTwo } from "../../transform/hadamard.ts";
import { OnlineTransformSource } from "../../transform/online_source.ts";
import {
  fusedTransformPlan,
  onlineTransformPlan,
  transformArgsJson,
  transformSchemeJson,
} from "../../transform/online_transforms.ts";
import { withTransformGroups } from "../../transform/online_source.ts";
import { TRANSFORM_TYPES, type TransformType } from "../../transform/transform_matrix.ts";
import type { ModelTransformRegistration } from "../model_transforms.ts";
import { writeTransformedCheckpoint } from "../spinquant/rotated_checkpoint.ts";

/** The seeds of u and v (fixed, so a run is reproducible byte for byte). */
const SEEDS = { u: 0x901, v: 0x902 } as const;

/** A checked QuIPModifier: its transform_config groups. */
export interface QuipPlan {
  /** The recipe entry. */
  readonly modifier: ModifierSpec;
  /** `u` and/or `v`, as compressed-tensors writes them. */
  readonly groups: { [group: string]: JsonValue };
}

function fail(spec: ModifierSpec, field: string, message: string): never {
  throw new TransformError(
    `${spec.stage}_stage.${spec.group}_modifiers.QuIPModifier.${field}: ${message}`,
  );
}

const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : [String(v)]);

/**
 * Checks a QuIPModifier entry against a model and builds its
 * transform_config groups (upstream's `_create_v_scheme`/`_create_u_scheme`:
 * defaults rotations [v, u], random-hadamard, targets Linear, ignore lm_head,
 * precision float64).
 *
 * @param config the model config
 * @param spec the recipe entry (arguments kept raw)
 * @returns the plan
 * @throws {TransformError} naming the field: learnable true (upstream refuses it too),
 *   a user transform_config, an unknown type, sizes the type cannot build,
 *   targets llmc's forward cannot rotate online (lm_head, MoE experts)
 * @example
 * ```ts ignore
 * const plan = planQuip(hf.config, recipe.modifiers[0]);
 * Object.keys(plan.groups); // ["v", "u"]
 * ```
 */
export function planQuip(config: ModelConfig, spec: ModifierSpec): QuipPlan {
  const args = (spec as { args?: Record<string, unknown> }).args ?? {};
  if (args.learnable === true) {
    fail(spec, "learnable", "true is not supported (nor by llm-compressor)");
  }
  const randomize = args.randomize === true;
  if (args.transform_config !== undefined && args.transform_config !== null) {
    fail(spec, "transform_config", "a user transform_config is not supported; leave it unset");
  }
  const rotations = list(args.rotations ?? ["v", "u"]).map((r) => r.toLowerCase());
  for (const r of rotations) {
    if (r !== "u" && r !== "v") fail(spec, "rotations", `${r}: expected u or v`);
  }
  const type = (args.transform_type ?? "random-hadamard") as TransformType;
  if (!TRANSFORM_TYPES.includes(type)) {
    fail(spec, "transform_type", `expected one of ${TRANSFORM_TYPES.join(", ")}`);
  }
  const precisionRaw = String(args.precision ?? "torch.float64");
  const precision = precisionRaw.startsWith("torch.") ? precisionRaw : `torch.${precisionRaw}`;
  if (!/^torch\.(float64|float32|bfloat16|float16)$/.test(precision)) {
    fail(
      spec,
      "precision",
      "expected torch.float64, torch.float32, torch.bfloat16 or torch.float16",
    );
  }
  const targets = list(args.targets ?? "Linear");
  const ignore = list(args.ignore ?? "lm_head");
  const blockSize = (args.transform_block_size ?? null) as number | null;
  const scheme = (apply: JsonValue[]) =>
    transformSchemeJson({ type, randomize, headDim: blockSize, precision }, apply);
  const a = (location: string, inverse: boolean) =>
    transformArgsJson(targets, location, inverse, ignore);
  const groups: { [group: string]: JsonValue } = {};
  // compressed-tensors' order: v before u.
  if (rotations.includes("v")) groups.v = scheme([a("input", false), a("weight_input", true)]);
  if (rotations.includes("u")) groups.u = scheme([a("weight_output", false), a("output", true)]);
  // Every application checked against the model, and every size against the type.
  const plain = { ...config, raw: { ...config.raw, quantization_config: undefined } };
  let sizes: Set<number>;
  try {
    const withGroups = withTransformGroups(plain, groups);
    const all = [
      ...onlineTransformPlan(withGroups).values(),
      ...fusedTransformPlan(withGroups).values(),
    ];
    sizes = new Set(all.flat().map((x) => x.size));
    if (all.length === 0) {
      fail(spec, "targets", `${targets.join(", ")} matches no decoder-layer Linear`);
    }
  } catch (e) {
    if (e instanceof TransformError && !e.message.includes("QuIPModifier")) {
      fail(spec, "targets", e.message);
    }
    throw e;
  }
  for (const n of sizes) {
    try {
      if (type === "hadamard" && !isPowerOfTwo(n)) {
        throw new TransformError(`Cannot construct deterministic hadamard of size != 2^n: ${n}`);
      }
      if (type === "random-hadamard") hadamardFactors(n);
    } catch (e) {
      if (e instanceof TransformError) fail(spec, "transform_type", `size ${n}: ${e.message}`);
      throw e;
    }
  }
  return { modifier: spec, groups };
}

/**
 * The registration of QuIPModifier.
 *
 * @example
 * ```ts ignore
 * const plan = quipModifier.plan(hf.config, spec);
 * const rotated = await quipModifier.apply(hf, plan, tmpDir, engine);
 * ```
 */
export const quipModifier: ModelTransformRegistration<QuipPlan> = {
  types: ["QuIPModifier"],
  plan: planQuip,
  apply: (source, plan, dir, ops) =>
    writeTransformedCheckpoint(
      source,
      new OnlineTransformSource(source, plan.groups, SEEDS, ops),
      dir,
      plan.groups,
    ),
  transformGroups: (_config, plan) => plan.groups,
};
