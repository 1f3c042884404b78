/**
 * The field tables of every modifier class, in llm-compressor 0.9's pydantic
 * field order (which is the key order of a saved `recipe.yaml`).
 *
 * Pydantic orders fields base class first along the reversed MRO. For
 * `QuantizationModifier(Modifier, QuantizationMixin)` and `GPTQModifier` that
 * puts the QuantizationMixin fields first, then Modifier's, then the class's
 * own; for the sparsity modifiers (`SparsityModifierBase(Modifier)`) Modifier's
 * fields come first. The reference `recipe.yaml` files confirm the former
 * (`config_groups, targets, ignore, scheme`).
 *
 * @module
 */

import { canonicalActorder, quantizationArgsToJson } from "../quant/args.ts";
import { parseQuantizationArgs } from "../quant/args.ts";
import { isPresetName, PRESET_NAMES } from "../quant/presets.ts";
import { parseQuantizationScheme, quantizationSchemeToJson } from "../quant/scheme.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import { asRecipeError, RecipeError } from "./errors.ts";
import {
  anyValue,
  boolean,
  describe,
  fail,
  fraction,
  integer,
  isMapping,
  mapping,
  nonNegativeNumber,
  nullable,
  number,
  oneOf,
  positiveInteger,
  type Reader,
  string,
  stringList,
  stringOrList,
  type Warn,
} from "./_fields.ts";
import { type DeprecatedKey, type FieldDef, REQUIRED, toPy } from "./_field_table.ts";
import type {
  AwqMapping,
  GptqActorder,
  ObserverOverrides,
  SchemeSetting,
  SmoothQuantMapping,
  SparsityTarget,
} from "./modifiers.ts";
import type { PyValue } from "./_pyyaml.ts";

const nullDefault = () => null;

/** Modifier's own fields (§3.2). */
export const MODIFIER_BASE: readonly FieldDef[] = [
  { key: "index", prop: "index", read: nullable(integer), default: nullDefault },
  { key: "group", prop: "group", read: nullable(string), default: nullDefault, noDump: true },
  { key: "start", prop: "start", read: nullable(number), default: nullDefault, float: true },
  { key: "end", prop: "end", read: nullable(number), default: nullDefault, float: true },
  { key: "update", prop: "update", read: nullable(number), default: nullDefault, float: true },
];

const SCHEME_BODY_KEYS = ["weights", "input_activations", "output_activations", "format"];

function readScheme(v: unknown, p: string): SchemeSetting {
  const presetHint = `a preset name (${PRESET_NAMES.join(", ")}, W{b}A{a})`;
  if (typeof v === "string") {
    if (!isPresetName(v)) return fail(p, presetHint, v);
    return { form: "preset", name: v };
  }
  if (!isMapping(v)) {
    return fail(p, `${presetHint}, a mapping of preset names to targets, or a scheme body`, v);
  }
  const keys = Object.keys(v);
  if (keys.length === 0) return fail(p, "a non-empty scheme mapping", v);
  if (keys.every((k) => isPresetName(k))) {
    const presets: Record<string, readonly string[]> = {};
    for (const k of keys) presets[k] = Object.freeze(stringList(v[k], `${p}.${k}`));
    return { form: "presets", presets: Object.freeze(presets) };
  }
  const stray = keys.find((k) => !SCHEME_BODY_KEYS.includes(k));
  if (stray !== undefined) {
    const why = stray === "targets"
      ? "a scheme body takes its targets from the modifier's `targets`"
      : `expected a preset name or one of ${SCHEME_BODY_KEYS.join(", ")}`;
    throw new RecipeError(`${p}.${stray}: ${why}`);
  }
  // Validated now (on placeholder targets) so a bad body fails at parse time.
  asRecipeError(() => parseQuantizationScheme({ targets: ["Linear"], ...v }, p));
  return { form: "body", body: Object.freeze(structuredClone(v)) };
}

function dumpScheme(v: unknown): PyValue | undefined {
  const s = v as SchemeSetting | null;
  if (s === null) return undefined;
  if (s.form === "preset") return s.name;
  if (s.form === "presets") return toPy(s.presets);
  return toPy(s.body);
}

function readConfigGroups(warn: Warn): Reader<Readonly<Record<string, QuantizationScheme>>> {
  return (v, p) => {
    const m = mapping(v, p);
    const out: Record<string, QuantizationScheme> = {};
    for (const [name, raw] of Object.entries(m)) {
      out[name] = asRecipeError(() => parseQuantizationScheme(raw, `${p}.${name}`, { warn }));
    }
    return Object.freeze(out);
  };
}

function dumpConfigGroups(v: unknown): PyValue | undefined {
  if (v === null) return undefined;
  const groups = v as Record<string, QuantizationScheme>;
  return new Map(
    Object.entries(groups).map(([name, s]) => [name, toPy(quantizationSchemeToJson(s))]),
  );
}

const readObserver: Reader<ObserverOverrides> = (v, p) => {
  const m = mapping(v, p);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(m)) {
    if (k !== "weights" && k !== "input" && k !== "output") {
      throw new RecipeError(
        `${p}.${k}: unknown observer key; valid keys are weights, input, output`,
      );
    }
    out[k] = string(x, `${p}.${k}`);
  }
  return Object.freeze(out);
};

/** §3.3: the quantization fields, QuantizationMixin order. */
export function quantizationFields(warn: Warn): FieldDef[] {
  return [
    {
      key: "config_groups",
      prop: "configGroups",
      read: nullable(readConfigGroups(warn)),
      default: nullDefault,
      dump: dumpConfigGroups,
    },
    {
      key: "targets",
      prop: "targets",
      read: (v, p) => Object.freeze(stringList(v, p)),
      default: () => Object.freeze(["Linear"]),
    },
    {
      key: "ignore",
      prop: "ignore",
      read: (v, p) => Object.freeze(stringList(v, p)),
      default: () => Object.freeze([]),
    },
    {
      key: "scheme",
      prop: "scheme",
      read: nullable(readScheme),
      default: nullDefault,
      dump: dumpScheme,
    },
    {
      key: "kv_cache_scheme",
      prop: "kvCacheScheme",
      read: nullable((v, p) => asRecipeError(() => parseQuantizationArgs(v, p, { warn }))),
      default: nullDefault,
      dump: (v) =>
        v === null
          ? undefined
          : toPy(quantizationArgsToJson(v as Parameters<typeof quantizationArgsToJson>[0])),
    },
    {
      key: "weight_observer",
      prop: "weightObserver",
      read: nullable(string),
      default: nullDefault,
    },
    { key: "input_observer", prop: "inputObserver", read: nullable(string), default: nullDefault },
    {
      key: "output_observer",
      prop: "outputObserver",
      read: nullable(string),
      default: nullDefault,
    },
    { key: "observer", prop: "observer", read: nullable(readObserver), default: nullDefault },
  ];
}

const ACTORDER_VALUES = ["group", "weight", "dynamic", "static"] as const;

const readActorder: Reader<GptqActorder> = (v, p) => {
  if (v === null) return { source: "explicit", value: null };
  return { source: "explicit", value: oneOf(ACTORDER_VALUES)(v, p) };
};

function dumpActorder(v: unknown, spec: Readonly<Record<string, unknown>>): PyValue | undefined {
  const a = v as GptqActorder;
  if (a.source === "explicit") {
    // Upstream drops an explicit null (it drops every null), and reading its
    // recipe.yaml back then turns activation ordering on again. llmc writes
    // the null so the saved recipe means what was run.
    return a.value;
  }
  // Upstream dumps its sentinel as "static". Read back, an explicit "static"
  // conflicts with a config group that chose "group"; only then is the key
  // left out, which reads back as the sentinel again.
  const groups = (spec.configGroups ?? {}) as Record<string, QuantizationScheme>;
  const conflict = Object.values(groups).some((s) =>
    s.weights?.strategy === "group" && canonicalActorder(s.weights.actorder) === "group"
  );
  return conflict ? undefined : "static";
}

const GPTQ_OWN: readonly FieldDef[] = [
  {
    key: "sequential_targets",
    prop: "sequentialTargets",
    read: nullable(stringOrList),
    default: nullDefault,
  },
  { key: "block_size", prop: "blockSize", read: positiveInteger, default: () => 128 },
  {
    key: "dampening_frac",
    prop: "dampeningFrac",
    read: nullable(nonNegativeNumber),
    default: () => 0.01,
    float: true,
  },
  {
    key: "actorder",
    prop: "actorder",
    read: readActorder,
    default: () => ({ source: "default" }),
    dump: dumpActorder,
  },
  { key: "offload_hessians", prop: "offloadHessians", read: boolean, default: () => false },
];

const readSparsity: Reader<SparsityTarget> = (v, p) => {
  if (typeof v === "number") return fraction(v, p);
  if (Array.isArray(v)) return Object.freeze(v.map((x, i) => fraction(x, `${p}[${i}]`)));
  if (isMapping(v)) {
    const out: Record<string, number> = {};
    for (const [k, x] of Object.entries(v)) out[k] = fraction(x, `${p}.${k}`);
    return Object.freeze(out);
  }
  return fail(p, "a number between 0 and 1, a list of them (one per layer) or a mapping", v);
};

const readMaskStructure: Reader<string> = (v, p) => {
  if (typeof v === "number") {
    throw new RecipeError(
      `${p}: expected a string "N:M", got ${describe(v)}; quote it (YAML 1.1 reads an ` +
        `unquoted 2:4 as the base-60 number 124)`,
    );
  }
  const s = string(v, p);
  const m = /^(\d+):(\d+)$/.exec(s);
  if (!m || Number(m[1]) > Number(m[2]) || (Number(m[2]) === 0) !== (Number(m[1]) === 0)) {
    return fail(p, 'an "N:M" mask structure with N <= M, e.g. "2:4", or "0:0" for unstructured', v);
  }
  return s;
};

/** SparsityModifierBase's own fields (SparseGPT and Wanda). */
const SPARSITY_OWN: readonly FieldDef[] = [
  // Optional but without a default upstream: the key must be present (it may be null).
  {
    key: "sparsity",
    prop: "sparsity",
    read: nullable(readSparsity),
    default: REQUIRED,
    float: true,
  },
  {
    key: "sparsity_profile",
    prop: "sparsityProfile",
    read: nullable(oneOf(["owl"] as const)),
    default: nullDefault,
  },
  { key: "mask_structure", prop: "maskStructure", read: readMaskStructure, default: () => "0:0" },
  { key: "owl_m", prop: "owlM", read: nullable(integer), default: nullDefault },
  { key: "owl_lmbda", prop: "owlLmbda", read: nullable(number), default: nullDefault, float: true },
  {
    key: "sequential_targets",
    prop: "sequentialTargets",
    read: nullable(stringOrList),
    default: nullDefault,
  },
  { key: "targets", prop: "targets", read: stringOrList, default: () => Object.freeze(["Linear"]) },
  {
    key: "ignore",
    prop: "ignore",
    read: (v, p) => Object.freeze(stringList(v, p)),
    default: () => Object.freeze([]),
  },
];

/** Keys the sparsity modifiers still accept upstream but ignore. */
export const SPARSITY_DEPRECATED: readonly DeprecatedKey[] = [
  {
    key: "sequential_update",
    message: "deprecated upstream and ignored (layers are always updated sequentially)",
  },
];

const SPARSEGPT_OWN: readonly FieldDef[] = [
  { key: "block_size", prop: "blockSize", read: positiveInteger, default: () => 128 },
  {
    key: "dampening_frac",
    prop: "dampeningFrac",
    read: nullable(nonNegativeNumber),
    default: () => 0.01,
    float: true,
  },
  {
    key: "preserve_sparsity_mask",
    prop: "preserveSparsityMask",
    read: boolean,
    default: () => false,
  },
  { key: "offload_hessians", prop: "offloadHessians", read: boolean, default: () => false },
];

const MAGNITUDE_OWN: readonly FieldDef[] = [
  { key: "targets", prop: "targets", read: stringOrList, default: REQUIRED },
  { key: "init_sparsity", prop: "initSparsity", read: fraction, default: REQUIRED, float: true },
  { key: "final_sparsity", prop: "finalSparsity", read: fraction, default: REQUIRED, float: true },
  { key: "update_scheduler", prop: "updateScheduler", read: string, default: () => "cubic" },
  {
    key: "scheduler_args",
    prop: "schedulerArgs",
    read: (v, p) => structuredClone(mapping(v, p)),
    default: () => ({}),
  },
  { key: "mask_structure", prop: "maskStructure", read: string, default: () => "unstructured" },
  { key: "leave_enabled", prop: "leaveEnabled", read: boolean, default: () => false },
  { key: "apply_globally", prop: "applyGlobally", read: boolean, default: () => false },
];

const CONSTANT_OWN: readonly FieldDef[] = [
  { key: "targets", prop: "targets", read: stringOrList, default: REQUIRED },
];

/** A field only type-checked (for the not-yet-supported modifiers, whose args are kept raw). */
function checked(key: string, read: Reader<unknown>): FieldDef {
  return { key, prop: key, read, default: nullDefault };
}

function smoothQuantMapping(v: unknown, p: string): SmoothQuantMapping {
  if (!Array.isArray(v) || v.length !== 2) {
    return fail(p, "a pair [[balance layers...], smooth layer]", v);
  }
  const balanceAsString = typeof v[0] === "string";
  const balanceLayers = balanceAsString ? [v[0] as string] : stringList(v[0], `${p}[0]`);
  if (balanceLayers.length === 0) fail(`${p}[0]`, "at least one balance layer", v[0]);
  return Object.freeze({
    balanceLayers: Object.freeze(balanceLayers),
    balanceAsString,
    smoothLayer: string(v[1], `${p}[1]`),
  });
}

function awqMapping(v: unknown, p: string): AwqMapping {
  const m = mapping(v, p);
  for (const k of Object.keys(m)) {
    if (k !== "smooth_layer" && k !== "balance_layers" && k !== "activation_hook_target") {
      fail(`${p}.${k}`, "smooth_layer, balance_layers or activation_hook_target", k);
    }
  }
  if (m.activation_hook_target !== undefined && m.activation_hook_target !== null) {
    fail(
      `${p}.activation_hook_target`,
      "null (llmc hooks the first balance layer's input)",
      m.activation_hook_target,
    );
  }
  const balanceLayers = stringList(m.balance_layers, `${p}.balance_layers`);
  if (balanceLayers.length === 0) fail(`${p}.balance_layers`, "at least one balance layer", []);
  return Object.freeze({
    smoothLayer: string(m.smooth_layer, `${p}.smooth_layer`),
    balanceLayers: Object.freeze(balanceLayers),
  });
}

function listOf<T>(read: Reader<T>): Reader<readonly T[]> {
  return (v, p) => {
    if (!Array.isArray(v)) return fail(p, "a list of mappings", v);
    return Object.freeze(v.map((x, i) => read(x, `${p}[${i}]`)));
  };
}

const SMOOTHQUANT_OWN: readonly FieldDef[] = [
  {
    key: "smoothing_strength",
    prop: "smoothingStrength",
    read: fraction,
    default: () => 0.5,
    float: true,
  },
  {
    key: "mappings",
    prop: "mappings",
    read: nullable(listOf(smoothQuantMapping)),
    default: nullDefault,
    dump: (v) =>
      v === null ? undefined : toPy((v as readonly SmoothQuantMapping[]).map((m) => [
        m.balanceAsString ? m.balanceLayers[0] : [...m.balanceLayers],
        m.smoothLayer,
      ])),
  },
  { key: "ignore", prop: "ignore", read: nullable(stringList), default: nullDefault },
  {
    key: "num_calibration_steps",
    prop: "numCalibrationSteps",
    read: nullable(positiveInteger),
    default: nullDefault,
  },
  {
    key: "calibration_function",
    prop: "calibrationFunction",
    read: anyValue,
    default: nullDefault,
  },
];

const AWQ_OWN: readonly FieldDef[] = [
  {
    key: "mappings",
    prop: "mappings",
    read: nullable(listOf(awqMapping)),
    default: nullDefault,
    dump: (v) =>
      v === null ? undefined : toPy((v as readonly AwqMapping[]).map((m) => ({
        smooth_layer: m.smoothLayer,
        balance_layers: [...m.balanceLayers],
      }))),
  },
  { key: "offload_device", prop: "offloadDevice", read: nullable(string), default: nullDefault },
  {
    key: "duo_scaling",
    prop: "duoScaling",
    read: (v, p) => v === "both" ? v : boolean(v, p),
    default: () => true,
  },
  { key: "n_grid", prop: "nGrid", read: positiveInteger, default: () => 20 },
  {
    key: "sequential_targets",
    prop: "sequentialTargets",
    read: nullable(stringOrList),
    default: nullDefault,
  },
];

const TRANSFORM_TYPES = ["hadamard", "random-hadamard", "random-matrix"] as const;

function rotations(allowed: readonly string[]): Reader<string[]> {
  return (v, p) => {
    const list = stringList(v, p);
    list.forEach((r, i) => {
      if (!allowed.includes(r)) fail(`${p}[${i}]`, `one of ${allowed.join(", ")}`, r);
    });
    return list;
  };
}

const TRANSFORM_COMMON: readonly FieldDef[] = [
  checked("transform_type", oneOf(TRANSFORM_TYPES)),
  checked("randomize", boolean),
  checked("learnable", boolean),
  checked("precision", anyValue),
  checked("transform_block_size", nullable(positiveInteger)),
  checked("transform_config", anyValue),
];

/** The field table of each class llmc parses into a typed spec. */
export interface ParsedTable {
  fields: FieldDef[];
  deprecated?: readonly DeprecatedKey[];
}

/**
 * The field tables, built for one parse (the quant readers report warnings).
 *
 * @param warn the warning sink of this parse
 * @returns class name → table
 */
export function modifierTables(warn: Warn): Record<string, ParsedTable> {
  const q = quantizationFields(warn);
  const sparsity = [...MODIFIER_BASE, ...SPARSITY_OWN];
  return {
    QuantizationModifier: { fields: [...q, ...MODIFIER_BASE] },
    GPTQModifier: { fields: [...q, ...MODIFIER_BASE, ...GPTQ_OWN] },
    SparseGPTModifier: { fields: [...sparsity, ...SPARSEGPT_OWN], deprecated: SPARSITY_DEPRECATED },
    WandaPruningModifier: { fields: sparsity, deprecated: SPARSITY_DEPRECATED },
    MagnitudePruningModifier: { fields: [...MODIFIER_BASE, ...MAGNITUDE_OWN] },
    ConstantPruningModifier: { fields: [...MODIFIER_BASE, ...CONSTANT_OWN] },
    AWQModifier: { fields: [...q, ...MODIFIER_BASE, ...AWQ_OWN] },
    SmoothQuantModifier: { fields: [...MODIFIER_BASE, ...SMOOTHQUANT_OWN] },
    LogarithmicEqualizationModifier: { fields: [...MODIFIER_BASE, ...SMOOTHQUANT_OWN] },
    // Not yet supported: only checked; their specs keep the arguments as written.
    SpinQuantModifier: {
      fields: [
        ...MODIFIER_BASE,
        checked("rotations", rotations(["R1", "R2", "R3", "R4"])),
        ...TRANSFORM_COMMON,
        checked("mappings", anyValue),
        checked("norm_mappings", anyValue),
      ],
    },
    QuIPModifier: {
      fields: [
        ...MODIFIER_BASE,
        checked("rotations", rotations(["u", "v"])),
        checked("targets", stringOrList),
        checked("ignore", stringOrList),
        ...TRANSFORM_COMMON,
      ],
    },
    AutoRoundModifier: {
      fields: [
        ...q,
        ...MODIFIER_BASE,
        checked("iters", positiveInteger),
        checked("batch_size", positiveInteger),
        checked("enable_torch_compile", boolean),
        checked("sequential_targets", nullable(stringOrList)),
      ],
    },
  };
}
