/**
 * The online half of a checkpoint's `transform_config` (compressed-tensors,
 * SPEC §1.2.8/§1.9.13): which activations of which modules llmc's forward
 * must rotate, and with which stored matrix. Locations `input` and `output`
 * act on a Linear's input or output, `q_attn` and `k_cache` on the
 * attention's post-RoPE queries and keys. Fused locations (`weight_input`,
 * `weight_output`) are already in the weights and need nothing here.
 *
 * Each online application reads `<module>.<group>_<location>.weight`, an
 * `[n, n]` matrix applied block-diagonally over runs of n values
 * (n = the scheme's `head_dim` when set, else the module's in/out features),
 * as compressed-tensors does: `x ← x · M` with, for the Hadamard types,
 * `M = W / √n` (`Wᵀ / √n` with `inverse`; W holds ±1) and, for
 * `random-matrix`, `M = W` (already the inverse when `inverse` is set).
 * With `randomize: true` a Hadamard type also reads
 * `<module>.<group>_<location>.perm` and uses `W[perm][:, perm]` in place of
 * W (compressed-tensors' HadamardTransform; `random-matrix` ignores
 * `randomize`, as upstream's factory does).
 *
 * Supported modules: the seven Linears of a dense decoder layer and its
 * `self_attn`; an online transform on lm_head, the embedding or an MoE
 * layer is refused by name.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { isIgnored, matchesTarget } from "../quant/match.ts";
import { LAYER_LINEARS, type LayerLinear, layerPrefix } from "../model/module_names.ts";
import { isSparseLayer } from "../model/moe_names.ts";
import { TransformError } from "./errors.ts";
import { TRANSFORM_TYPES, type TransformType } from "./transform_matrix.ts";

/** Where an online transform acts. */
export type OnlineLocation = "input" | "output" | "q_attn" | "k_cache";

const ONLINE: readonly string[] = ["input", "output", "q_attn", "k_cache"];
const FUSED: readonly string[] = ["weight_input", "weight_output"];

/** Where a fused transform acts (on a Linear's weight). */
export type FusedLocation = "weight_input" | "weight_output";

/** One application of a transform_config group to one module. */
export interface TransformApplication<L extends string = OnlineLocation | FusedLocation> {
  /** The transform_config group, e.g. `R4`, `u`, `v`. */
  readonly group: string;
  /** Where it acts. */
  readonly location: L;
  /** The full module name, e.g. `model.layers.0.mlp.down_proj` or `…self_attn`. */
  readonly module: string;
  /** The stored matrix of an online one, `<module>.<group>_<location>.weight`. */
  readonly tensor: string;
  /**
   * Other stored tensors holding the same matrix (same group and size: compressed-tensors
   * shares one matrix per group and size, and a save may keep only one copy of tied ones),
   * tried in order when `tensor` is absent.
   */
  readonly sameMatrix?: readonly string[];
  /** The scheme's type. */
  readonly type: TransformType;
  /** The matrix order n (block size). */
  readonly size: number;
  /** Whether the inverse applies (Wᵀ for the Hadamard types). */
  readonly inverse: boolean;
  /**
   * With `randomize: true` on a Hadamard type, the stored permutation
   * `<module>.<group>_<location>.perm` (int64 `[n]`; the matrix used is
   * `W[perm][:, perm]`, as compressed-tensors' HadamardTransform; for a fused
   * application the name is only nominal: the permuted matrix is in the
   * weights); null otherwise (random-matrix ignores `randomize`, as upstream).
   */
  readonly perm: string | null;
}

/** One online application of one module. */
export type OnlineApplication = TransformApplication<OnlineLocation>;

interface RawArgs {
  targets: string[];
  location: string;
  inverse: boolean;
  ignore: string[];
}

interface RawScheme {
  type: TransformType;
  apply: RawArgs[];
  randomize: boolean;
  headDim: number | null;
}

/**
 * The `transform_config.config_groups` of a config, checked.
 *
 * @param config the model config (`quantization_config.transform_config` is read)
 * @returns group name → scheme; empty without a transform_config
 * @throws {TransformError} naming the field that is malformed
 */
function parseGroups(config: ModelConfig): Map<string, RawScheme> {
  const qc = config.raw.quantization_config as Record<string, unknown> | undefined | null;
  const tc = qc?.transform_config as Record<string, unknown> | undefined | null;
  const out = new Map<string, RawScheme>();
  if (tc === undefined || tc === null) return out;
  const where = "config.json quantization_config.transform_config";
  const groups = tc.config_groups ?? {};
  if (typeof groups !== "object" || groups === null || Array.isArray(groups)) {
    throw new TransformError(`${where}.config_groups: expected an object`);
  }
  for (const [name, raw] of Object.entries(groups as Record<string, unknown>)) {
    const at = `${where}.config_groups.${name}`;
    if (typeof raw !== "object" || raw === null) {
      throw new TransformError(`${at}: expected an object`);
    }
    const s = raw as Record<string, unknown>;
    if (!TRANSFORM_TYPES.includes(s.type as TransformType)) {
      throw new TransformError(`${at}.type: expected one of ${TRANSFORM_TYPES.join(", ")}`);
    }
    const headDim = s.head_dim ?? null;
    if (headDim !== null && !(Number.isInteger(headDim) && (headDim as number) > 0)) {
      throw new TransformError(`${at}.head_dim: expected a positive integer or null`);
    }
    const apply = Array.isArray(s.apply) ? s.apply : [];
    const args = apply.map((a: Record<string, unknown>, i: number) => {
      const wrap = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? v : [v]).map(String);
      const location = String(a?.location);
      if (!ONLINE.includes(location) && !FUSED.includes(location)) {
        throw new TransformError(
          `${at}.apply[${i}].location: "${location}" is not one of ${[...ONLINE, ...FUSED]}`,
        );
      }
      return {
        targets: wrap(a.targets),
        location,
        inverse: a.inverse === true,
        ignore: wrap(a.ignore),
      };
    });
    out.set(name, {
      type: s.type as TransformType,
      apply: args,
      randomize: s.randomize === true,
      headDim: headDim as number | null,
    });
  }
  return out;
}

/**
 * The online applications a config lists, as `"<group>: <location> on <targets>"`
 * (for messages and banners).
 *
 * @param config the model config
 * @returns one line per online application; empty without a transform_config
 * @example
 * ```ts ignore
 * onlineTransforms(hf.config); // ["R4: input on re:.*down_proj$"]
 * ```
 */
export function onlineTransforms(config: ModelConfig): string[] {
  const out: string[] = [];
  for (const [name, scheme] of parseGroups(config)) {
    for (const a of scheme.apply) {
      if (ONLINE.includes(a.location)) {
        out.push(`${name}: ${a.location} on ${a.targets.join(", ")}`);
      }
    }
  }
  return out;
}

/** The in/out features of a Linear of a decoder layer. */
function linearFeatures(config: ModelConfig, linear: LayerLinear): [number, number] {
  const { hiddenSize: H, intermediateSize: I, headDim: d } = config;
  const q = config.numAttentionHeads * d;
  const kv = config.numKeyValueHeads * d;
  switch (linear) {
    case "self_attn.q_proj":
      return [H, q];
    case "self_attn.k_proj":
    case "self_attn.v_proj":
      return [H, kv];
    case "self_attn.o_proj":
      return [q, H];
    case "mlp.gate_proj":
    case "mlp.up_proj":
      return [H, I];
    case "mlp.down_proj":
      return [I, H];
  }
}

/**
 * Every online application of the model, by layer, checked against the
 * model's shapes: the order of groups and `apply` entries in the config is
 * the order they run in.
 *
 * @param config the model config
 * @returns layer index → its applications (layers without any are absent)
 * @throws {TransformError} for a malformed transform_config, an online
 *   transform on a module llmc's forward cannot rotate (lm_head, the
 *   embedding, MoE layers), or a block size that does not divide the
 *   dimension
 * @example
 * ```ts ignore
 * const plan = onlineTransformPlan(hf.config);
 * plan.get(0); // [{ group: "R4", location: "input", module: "model.layers.0.mlp.down_proj", … }]
 * ```
 */
export function onlineTransformPlan(config: ModelConfig): Map<number, OnlineApplication[]> {
  const plan = collect(config, ONLINE) as Map<number, OnlineApplication[]>;
  const byMatrix = new Map<string, string[]>();
  for (const list of plan.values()) {
    for (const a of list) {
      const key = `${a.group}:${a.size}`;
      byMatrix.set(key, [...(byMatrix.get(key) ?? []), a.tensor]);
    }
  }
  for (const [k, list] of plan) {
    plan.set(
      k,
      list.map((a) => ({
        ...a,
        sameMatrix: byMatrix.get(`${a.group}:${a.size}`)!.filter((t) => t !== a.tensor),
      })),
    );
  }
  return plan;
}

/**
 * The fused (`weight_input`/`weight_output`) applications on decoder-layer
 * Linears, by layer, for groups that also have online halves (R1/R2 are
 * fused by RotatedWeightSource instead).
 *
 * @param config a config whose transform_config holds the groups to fuse
 * @returns layer index → its fused applications, in config order
 * @throws {TransformError} as {@link onlineTransformPlan}, and for a fused
 *   transform on lm_head or the embedding
 * @example
 * ```ts ignore
 * fusedTransformPlan(withQuip).get(0)?.[0].location; // "weight_input"
 * ```
 */
export function fusedTransformPlan(
  config: ModelConfig,
): Map<number, TransformApplication<FusedLocation>[]> {
  return collect(config, FUSED) as Map<number, TransformApplication<FusedLocation>[]>;
}

function collect(
  config: ModelConfig,
  locations: readonly string[],
): Map<number, TransformApplication[]> {
  const out = new Map<number, TransformApplication[]>();
  const groups = parseGroups(config);
  for (const [group, scheme] of groups) {
    const online = scheme.apply.filter((a) => ONLINE.includes(a.location));
    if (online.length === 0) continue;
    const permuted = scheme.randomize && scheme.type !== "random-matrix";
    for (const a of scheme.apply.filter((a) => locations.includes(a.location))) {
      const location = a.location as OnlineLocation | FusedLocation;
      const hits = (name: string, cls: string) =>
        a.targets.some((t) => matchesTarget(t, name, cls)) && !isIgnored(name, cls, a.ignore);
      for (const outside of ["lm_head", "model.embed_tokens"]) {
        if (hits(outside, outside === "lm_head" ? "Linear" : "Embedding")) {
          throw new TransformError(
            `transform_config group ${group}: a ${location} transform on ${outside} ` +
              "is not supported with online transforms (add it to ignore)",
          );
        }
      }
      for (let k = 0; k < config.numHiddenLayers; k++) {
        const add = (module: string, dim: number) => {
          const size = scheme.headDim ?? dim;
          if (dim % size !== 0) {
            throw new TransformError(
              `transform_config group ${group}: block size ${size} does not divide ` +
                `${module}'s ${location} size ${dim}`,
            );
          }
          if (isSparseLayer(config, k)) {
            throw new TransformError(
              `transform_config group ${group}: online transforms in the MoE layer ${k} ` +
                "are not supported",
            );
          }
          const list = out.get(k) ?? [];
          list.push({
            group,
            location,
            module,
            tensor: `${module}.${group}_${location}.weight`,
            type: scheme.type,
            size,
            inverse: a.inverse,
            perm: permuted ? `${module}.${group}_${location}.perm` : null,
          });
          out.set(k, list);
        };
        if (location === "q_attn" || location === "k_cache") {
          const attn = `${layerPrefix(k)}.self_attn`;
          if (!hits(attn, "Attention")) continue;
          if (scheme.headDim === null) {
            throw new TransformError(
              `transform_config group ${group}: ${location} needs head_dim (the block size)`,
            );
          }
          const heads = location === "q_attn" ? config.numAttentionHeads : config.numKeyValueHeads;
          add(attn, heads * config.headDim);
          continue;
        }
        for (const linear of LAYER_LINEARS) {
          const module = `${layerPrefix(k)}.${linear}`;
          if (!hits(module, "Linear")) continue;
          const [inF, outF] = linearFeatures(config, linear);
          add(module, location === "input" || location === "weight_input" ? inF : outF);
        }
      }
    }
  }
  return out;
}

/** What a transform_config scheme says besides its applications. */
export interface TransformSchemeFields {
  readonly type: TransformType;
  readonly randomize: boolean;
  /** `head_dim`: the block size of a block-diagonal transform, or null for the full size. */
  readonly headDim: number | null;
  /** e.g. `torch.float64`. */
  readonly precision: string;
}

/**
 * A TransformScheme as compressed-tensors serializes it (its field order).
 *
 * @param fields the scheme's type, randomize, head_dim and precision
 * @param apply its TransformArgs (see {@link transformArgsJson})
 * @returns the JSON object
 * @example
 * ```ts
 * import { transformArgsJson, transformSchemeJson } from "./online_transforms.ts";
 * const r4 = transformSchemeJson(
 *   { type: "hadamard", randomize: false, headDim: null, precision: "torch.float64" },
 *   [transformArgsJson(["re:.*down_proj$"], "input", false, [])],
 * );
 * ```
 */
export function transformSchemeJson(fields: TransformSchemeFields, apply: JsonValue[]): JsonValue {
  return {
    type: fields.type,
    apply,
    randomize: fields.randomize,
    requires_grad: false,
    head_dim: fields.headDim,
    precision: fields.precision,
  };
}

/**
 * A TransformArgs entry as compressed-tensors serializes it.
 *
 * @param targets module names or `re:` patterns
 * @param location e.g. `input`, `weight_input`
 * @param inverse whether the inverse is applied there
 * @param ignore patterns left out
 * @returns the JSON object
 * @example
 * ```ts
 * import { transformArgsJson } from "./online_transforms.ts";
 * transformArgsJson(["Linear"], "weight_output", false, ["lm_head"]);
 * ```
 */
export function transformArgsJson(
  targets: string[],
  location: string,
  inverse: boolean,
  ignore: string[],
): JsonValue {
  return { targets, location, inverse, ignore };
}
