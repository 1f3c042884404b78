/**
 * The pieces of SmoothQuant and AWQ that need no device: scale formulas,
 * the exact rescaling of a layer, the AWQ grid, mapping resolution, and the
 * modifier registry.
 */

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import { type ModelConfig, SUPPORTED_MODEL_TYPES } from "../../src/io/model_config.ts";
import {
  applySmoothing,
  AWQ_DEFAULT_MAPPINGS,
  resolveLayerMappings,
  SmoothingMappingError,
  SMOOTHQUANT_DEFAULT_MAPPINGS,
  SMOOTHQUANT_MIXTRAL_MAPPINGS,
  smoothQuantDefaultMappings,
} from "../../src/modifiers/smoothing/layer_mappings.ts";
import {
  MINIMUM_SMOOTHING_SCALE,
  smoothingScales,
} from "../../src/modifiers/smoothquant/smoothquant_session.ts";
import {
  awqCandidateWeights,
  awqGrid,
  awqScales,
  awqWeightMeans,
} from "../../src/modifiers/awq/awq_session.ts";
import { rtnQuantizeLinears } from "../../src/modifiers/quantization/rtn_linears.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { BUILTIN_MODIFIERS, MODIFIERS } from "../../src/modifiers/builtin.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { PARSED_MODIFIERS } from "../../src/recipe/modifiers.ts";
import { parseRecipe } from "../../src/recipe/parse.ts";
import { recipeToYaml } from "../../src/recipe/serialize.ts";

const CONFIG = {
  modelType: "llama",
  numAttentionHeads: 8,
  numKeyValueHeads: 4,
  headDim: 8,
} as ModelConfig;
const MHA = { ...CONFIG, numKeyValueHeads: 8 } as ModelConfig;

Deno.test("SmoothQuant scales: act^α / (2·max|W|)^(1−α), act where the weights are zero, clamped", () => {
  const range = new Float32Array([4, 9, 0, 1]);
  // Two balance layers [2, 4]: column max |W| = 0.5, 2, 1, 0.
  const a = new Float32Array([0.5, -2, 1, 0, 0.25, 1, -0.5, 0]);
  const b = new Float32Array([-0.1, 0.5, 0.2, 0]);
  const s = smoothingScales({ type: "SmoothQuantModifier", smoothingStrength: 0.8 }, range, [a, b]);
  const expect = [
    Math.pow(4, 0.8) / Math.pow(1, 0.2),
    Math.pow(9, 0.8) / Math.pow(4, 0.2),
    MINIMUM_SMOOTHING_SCALE,
    1, // max |W| = 0: the activation range itself
  ];
  s.forEach((v, j) => assert.ok(Math.abs(v - expect[j]) < 1e-5 * Math.max(1, expect[j]), `${j}`));
  const log = smoothingScales(
    { type: "LogarithmicEqualizationModifier", smoothingStrength: 0.5 },
    range,
    [a, b],
  );
  assert.ok(Math.abs(log[1] - 9 / Math.log2(11)) < 1e-5);
  assert.equal(log[2], Math.fround(MINIMUM_SMOOTHING_SCALE));
});

Deno.test("applySmoothing rescales exactly: norm γ/s and balance W·s give the same products", () => {
  const [m] = resolveLayerMappings(0, CONFIG, SMOOTHQUANT_DEFAULT_MAPPINGS, "SQ");
  assert.deepEqual(m.balance, [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.k_proj",
    "model.layers.0.self_attn.v_proj",
  ]);
  const weights = new Map<string, Float32Array>([
    ["model.layers.0.input_layernorm.weight", new Float32Array([1, 2, 3])],
    ["model.layers.0.self_attn.q_proj.weight", new Float32Array([1, 1, 1, 2, 2, 2])],
    ["model.layers.0.self_attn.k_proj.weight", new Float32Array([3, 4, 5])],
    ["model.layers.0.self_attn.v_proj.weight", new Float32Array([6, 7, 8])],
  ]);
  const before = new Map(weights);
  const s = new Float32Array([2, 0.5, 4]);
  const out = applySmoothing(weights, m, s);
  assert.deepEqual([...out.get("model.layers.0.input_layernorm.weight")!], [0.5, 4, 0.75]);
  assert.deepEqual([...out.get("model.layers.0.self_attn.q_proj.weight")!], [2, 0.5, 4, 4, 1, 8]);
  assert.deepEqual(weights, before, "the input is not modified");
  // A Linear smooth layer: its output rows and bias are divided.
  const [vo] = resolveLayerMappings(0, MHA, [AWQ_DEFAULT_MAPPINGS[1]], "AWQ");
  const w = new Map<string, Float32Array>([
    ["model.layers.0.self_attn.v_proj.weight", new Float32Array([2, 4, 6, 8])],
    ["model.layers.0.self_attn.v_proj.bias", new Float32Array([2, 8])],
    ["model.layers.0.self_attn.o_proj.weight", new Float32Array([1, 1, 1, 1])],
  ]);
  const r = applySmoothing(w, vo, new Float32Array([2, 4]));
  assert.deepEqual([...r.get("model.layers.0.self_attn.v_proj.weight")!], [1, 2, 1.5, 2]);
  assert.deepEqual([...r.get("model.layers.0.self_attn.v_proj.bias")!], [1, 2]);
  assert.deepEqual([...r.get("model.layers.0.self_attn.o_proj.weight")!], [2, 4, 2, 4]);
});

Deno.test("AWQ mappings: v_proj → o_proj is skipped under GQA, kept with equal heads", () => {
  const notes: string[] = [];
  const gqa = resolveLayerMappings(3, CONFIG, AWQ_DEFAULT_MAPPINGS, "AWQ", (m) => notes.push(m));
  assert.deepEqual(gqa.map((m) => m.smooth), [
    "model.layers.3.input_layernorm",
    "model.layers.3.post_attention_layernorm",
    "model.layers.3.mlp.up_proj",
  ]);
  assert.match(notes[0], /skipping model\.layers\.3\.self_attn\.v_proj .*grouped-query/);
  const mha = resolveLayerMappings(3, MHA, AWQ_DEFAULT_MAPPINGS, "AWQ");
  assert.deepEqual(mha.map((m) => [m.parent, m.parentName]), [
    ["self_attn", "model.layers.3.self_attn"],
    ["self_attn", "model.layers.3.self_attn.o_proj"],
    ["mlp", "model.layers.3.mlp"],
    ["mlp", "model.layers.3.mlp.down_proj"],
  ]);
  assert.throws(
    () =>
      resolveLayerMappings(0, CONFIG, [{
        smooth: "re:.*input_layernorm$",
        balance: ["re:.*up_proj$"],
      }], "AWQ"),
    SmoothingMappingError,
  );
  assert.throws(
    () =>
      resolveLayerMappings(0, CONFIG, [{ smooth: "re:.*proj$", balance: ["re:.*o_proj$"] }], "AWQ"),
    /matches .* it must match one module/,
  );
});

Deno.test("AWQ grid: ratio 1 included, identity first with duo scaling, halves with 'both'", () => {
  assert.deepEqual(awqGrid(false, 5).map((p) => p.ratio), [0, 0.25, 0.5, 0.75, 1]);
  const duo = awqGrid(true, 20);
  assert.equal(duo.length, 20);
  assert.deepEqual(duo[0], { ratio: 0, duo: false });
  assert.deepEqual(duo[1], { ratio: 0, duo: true });
  assert.deepEqual(duo[19], { ratio: 1, duo: true });
  const both = awqGrid("both", 20);
  assert.equal(both.length, 20);
  assert.deepEqual(both.slice(0, 2), [{ ratio: 0, duo: false }, { ratio: 0, duo: true }]);
});

Deno.test("AWQ scales are normalised by sqrt(max·min); ratio 0 is the identity", () => {
  const x = new Float32Array([0.5, 2, 8]);
  assert.deepEqual([...awqScales(x, null, { ratio: 0, duo: false })], [1, 1, 1]);
  const s = awqScales(x, null, { ratio: 1, duo: false });
  assert.deepEqual([...s], [0.25, 1, 4]);
  const w = awqWeightMeans(
    [{
      w: new Float32Array([1, -2, 4, 0.5, 0.5, -1]),
      args: parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w"),
    }],
    3,
  )!;
  // Rows normalised by their max (+1e-6): [0.25, 0.5, 1] and [0.5, 0.5, 1]; column means.
  [0.375, 0.5, 1].forEach((v, j) => assert.ok(Math.abs(w[j] - v) < 1e-5));
  const d = awqScales(x, w, { ratio: 0.5, duo: true });
  assert.ok(d.every(Number.isFinite));
});

Deno.test("every modifier llmc parses and runs in the graph has one registration", () => {
  const runnable = PARSED_MODIFIERS.filter((t) =>
    !["WandaPruningModifier", "MagnitudePruningModifier", "ConstantPruningModifier"].includes(t)
  );
  for (const t of runnable) assert.ok(MODIFIERS.get(t) !== undefined, t);
  assert.deepEqual(new Set(MODIFIERS.types), new Set(runnable));
});

Deno.test("no registration that infers recipe fields runs data-free (oneshot skips the registry there)", () => {
  const inferring = BUILTIN_MODIFIERS.filter((r) => r.initialized !== undefined);
  assert.ok(inferring.length >= 2, "AWQ and SmoothQuant infer their mappings");
  // planDataFree runs only a QuantizationModifier: its registration must record it as read.
  for (const r of inferring) assert.ok(!r.types.includes("QuantizationModifier"), r.types.join());
  assert.equal(MODIFIERS.get("QuantizationModifier")?.initialized, undefined);
});

Deno.test("SmoothQuant's defaults by architecture: upstream 0.9's registry (Mixtral attention only; unlisted ones the default)", () => {
  const byType = Object.fromEntries(
    SUPPORTED_MODEL_TYPES.map((t) => [
      t,
      smoothQuantDefaultMappings({ ...CONFIG, modelType: t } as ModelConfig),
    ]),
  );
  assert.deepEqual(byType, {
    llama: SMOOTHQUANT_DEFAULT_MAPPINGS,
    mistral: SMOOTHQUANT_DEFAULT_MAPPINGS,
    qwen2: SMOOTHQUANT_DEFAULT_MAPPINGS,
    qwen3: SMOOTHQUANT_DEFAULT_MAPPINGS,
    mixtral: SMOOTHQUANT_MIXTRAL_MAPPINGS,
    qwen2_moe: SMOOTHQUANT_DEFAULT_MAPPINGS,
    qwen3_moe: SMOOTHQUANT_DEFAULT_MAPPINGS,
  });
  assert.deepEqual(SMOOTHQUANT_MIXTRAL_MAPPINGS, [
    { smooth: "re:.*input_layernorm", balance: ["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"] },
  ]);
});

Deno.test("recipe.yaml records AWQ's and SmoothQuant's inferred mappings, as upstream's initialize sets them", () => {
  const yamlOf = (text: string) => recipeToYaml(MODIFIERS.initialized(parseRecipe(text), CONFIG));
  const awq = yamlOf(
    "quant_stage:\n  quant_modifiers:\n    AWQModifier: {scheme: W4A16_ASYM, targets: [Linear]}\n",
  );
  // All four defaults, v_proj → o_proj included: upstream skips it per layer under GQA, later.
  assert.ok(
    awq.includes(
      `      mappings:
      - smooth_layer: re:.*input_layernorm$
        balance_layers: ['re:.*q_proj$', 're:.*k_proj$', 're:.*v_proj$']
      - smooth_layer: re:.*v_proj$
        balance_layers: ['re:.*o_proj$']
      - smooth_layer: re:.*post_attention_layernorm$
        balance_layers: ['re:.*gate_proj$', 're:.*up_proj$']
      - smooth_layer: re:.*up_proj$
        balance_layers: ['re:.*down_proj$']
      duo_scaling: true
`,
    ),
    awq,
  );
  const sq = yamlOf(
    "s_stage:\n  s_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 0.8}\n",
  );
  assert.ok(
    sq.endsWith(
      `      smoothing_strength: 0.8
      mappings:
      - - ['re:.*q_proj', 're:.*k_proj', 're:.*v_proj']
        - re:.*input_layernorm
      - - ['re:.*gate_proj', 're:.*up_proj']
        - re:.*post_attention_layernorm
`,
    ),
    sq,
  );
  // Given mappings are written as given.
  const given = yamlOf(
    "q_stage:\n  q_modifiers:\n    AWQModifier:\n      scheme: W4A16\n      mappings:\n" +
      "      - {smooth_layer: 're:.*up_proj$', balance_layers: ['re:.*down_proj$']}\n",
  );
  assert.equal(given.match(/smooth_layer/g)?.length, 1, given);
});

Deno.test("AWQ candidates: NVFP4 global scales fused over q/k/v as upstream's grid search fuses them", () => {
  const nvfp4 = presetScheme("NVFP4A16", ["Linear"]);
  const random = (n: number, amp: number, seed: number) =>
    Float32Array.from({ length: n }, (_, i) => amp * Math.sin(seed * 12.9898 + i * 78.233));
  const names = ["q", "k", "v"];
  // Different magnitudes: unfused, each would get its own global scale.
  const layers = names.map((name, i) => ({
    b: { name, scheme: nvfp4, args: nvfp4.weights, dtype: "F32" as const },
    w: random(4 * 32, 1 + 3 * i, i + 1),
  }));
  const s = Float32Array.from({ length: 32 }, (_, j) => 0.5 + j / 32);
  const scaled = (w: Float32Array) => w.map((v, i) => v * s[i % 32]);
  const expected = (fusedSets: string[][]) =>
    rtnQuantizeLinears(
      layers.map(({ b, w }) => ({
        name: b.name,
        values: scaled(w),
        shape: [4, 32] as const,
        scheme: {
          ...nvfp4,
          weights: { ...nvfp4.weights!, observer: "memoryless_minmax" as const },
        },
        format: null,
        dtype: "F32" as const,
      })),
      { fusedSets, fakeQuantize: true },
    ).map((r) => r.fakeQuantized!.map((v, i) => v / s[i % 32]));
  const got = awqCandidateWeights(layers, s, [names]);
  const fused = expected([names]);
  const unfused = expected([]);
  names.forEach((n, i) => assert.deepEqual(got.get(`${n}.weight`), fused[i], n));
  assert.notDeepEqual(fused[0], unfused[0]);
});

Deno.test("AWQ candidates: integer grids give rtnQuantizeLinears' fake-quantized bits (asym and symmetric groups, channels), on the kernels", () => {
  const random = (n: number, amp: number, seed: number) =>
    Float32Array.from(
      { length: n },
      (_, i) => i % 29 === 0 ? -0 : amp * Math.sin(seed * 12.9898 + i * 78.233),
    );
  const [rows, cols] = [96, 384];
  const s = Float32Array.from({ length: cols }, (_, j) => 0.25 + (j % 37) / 9);
  for (const preset of ["W4A16_ASYM", "W4A16", "W8A16"]) {
    const scheme = presetScheme(preset, ["Linear"]);
    const names = ["gate", "up"];
    const layers = names.map((name, i) => ({
      b: { name, scheme, args: scheme.weights, dtype: "F32" as const },
      w: random(rows * cols, 1 + 2 * i, i + 3),
    }));
    // awqCandidateWeights before the kernels: rtnQuantizeLinears' host fakeQuantize.
    const expected = rtnQuantizeLinears(
      layers.map(({ b, w }) => ({
        name: b.name,
        values: w.map((v, i) => v * s[i % cols]),
        shape: [rows, cols] as const,
        scheme: {
          ...scheme,
          weights: { ...scheme.weights!, observer: "memoryless_minmax" as const },
        },
        format: null,
        dtype: "F32" as const,
      })),
      { fakeQuantize: true },
    ).map((r) => r.fakeQuantized!.map((v, i) => v / s[i % cols]));
    const got = awqCandidateWeights(layers, s, [names]);
    names.forEach((n, i) => assertSameBits(got.get(`${n}.weight`)!, expected[i], `${preset} ${n}`));
  }
});
