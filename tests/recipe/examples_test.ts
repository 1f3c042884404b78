/**
 * Every example recipe of SPEC §3.9 parses to the expected specs.
 */
import assert from "node:assert/strict";
import {
  assertSupported,
  GPTQModifier,
  type GPTQModifierSpec,
  type ModifierSpec,
  type NotYetSupportedModifierSpec,
  type NotYetSupportedName,
  parseRecipe,
  QuantizationModifier,
  type QuantizationModifierSpec,
  recipeFromModifiers,
  resolveQuantizationConfig,
  type SparseGPTModifierSpec,
  UnsupportedModifierError,
} from "../../src/recipe/mod.ts";
import { SPEC_EXAMPLES } from "./_spec_examples.ts";

type SpecOf<T> = T extends NotYetSupportedName ? NotYetSupportedModifierSpec
  : ModifierSpec extends infer S ? (S extends { type: infer U } ? (T extends U ? S : never) : never)
  : never;

function as<T extends ModifierSpec["type"]>(m: ModifierSpec, type: T): SpecOf<T> {
  assert.equal(m.type, type);
  return m as SpecOf<T>;
}

Deno.test("W4A16 GPTQ with actorder group (recipe_w4a16_actorder_group.yaml)", () => {
  const r = parseRecipe(SPEC_EXAMPLES["w4a16_actorder_group"]);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.modifiers.length, 1);
  const g = as(r.modifiers[0], "GPTQModifier");
  assert.deepEqual([g.stage, g.group], ["quant", "quant"]);
  assert.deepEqual(g.ignore, ["lm_head"]);
  assert.deepEqual(g.targets, ["Linear"]);
  assert.deepEqual(g.actorder, { source: "explicit", value: "group" });
  assert.equal(g.blockSize, 128);
  assert.equal(g.dampeningFrac, 0.01);
  assert.equal(g.offloadHessians, false);
  assert.equal(g.scheme, null);
  const w = g.configGroups!.group_0.weights!;
  assert.deepEqual([w.numBits, w.type, w.symmetric, w.strategy, w.groupSize], [
    4,
    "int",
    true,
    "group",
    128,
  ]);
  assert.equal(w.actorder, null, "the spec keeps the group as written");
  const resolved = resolveQuantizationConfig(g);
  assert.equal(resolved.configGroups.group_0.weights!.actorder, "group");
  assert.deepEqual(resolved.resolvedTargets, ["Linear"]);
});

Deno.test("W8A8 SmoothQuant + GPTQ (smoothquant_gptq_w8a8.yaml)", () => {
  const r = parseRecipe(SPEC_EXAMPLES["smoothquant_gptq_w8a8"]);
  assert.deepEqual(r.warnings, []);
  const sq = as(r.modifiers[0], "SmoothQuantModifier");
  assert.equal(sq.smoothingStrength, 0.8);
  assert.deepEqual(sq.mappings, [
    {
      balanceLayers: ["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"],
      balanceAsString: false,
      smoothLayer: "re:.*input_layernorm",
    },
    {
      balanceLayers: ["re:.*gate_proj", "re:.*up_proj"],
      balanceAsString: false,
      smoothLayer: "re:.*post_attention_layernorm",
    },
  ]);
  assertSupported(sq);
  const g = as(r.modifiers[1], "GPTQModifier");
  assert.deepEqual(g.scheme, { form: "preset", name: "W8A8" });
  assert.deepEqual(g.actorder, { source: "default" });
  const c = resolveQuantizationConfig(g).configGroups;
  assert.deepEqual(Object.keys(c), ["group_0"]);
  assert.equal(c.group_0.weights!.strategy, "channel");
  assert.equal(c.group_0.weights!.actorder, null, "actorder only applies to group strategy");
  assert.equal(c.group_0.inputActivations!.strategy, "token");
  assert.equal(c.group_0.inputActivations!.dynamic, true);
});

Deno.test("static asymmetric INT8 activations (recipe_w8a8_static_asym.yaml)", () => {
  const r = parseRecipe(SPEC_EXAMPLES["w8a8_static_asym"]);
  const sq = as(r.modifiers[0], "SmoothQuantModifier");
  assert.deepEqual([sq.smoothingStrength, sq.mappings, sq.ignore], [0.8, null, null]);
  const g = as(r.modifiers[1], "GPTQModifier");
  assert.deepEqual(g.actorder, { source: "explicit", value: null });
  const inputs = g.configGroups!.group_0.inputActivations!;
  assert.deepEqual(
    [inputs.symmetric, inputs.dynamic, inputs.strategy, inputs.observer, inputs.zpDtype],
    [false, false, "tensor", "minmax", "int8"],
  );
});

Deno.test("FP8 static weights/activations + FP8 KV cache (kv-cache example)", () => {
  const r = parseRecipe(SPEC_EXAMPLES["fp8_kv_cache"]);
  const q = as(r.modifiers[0], "QuantizationModifier");
  assert.deepEqual(
    [q.kvCacheScheme!.type, q.kvCacheScheme!.numBits, q.kvCacheScheme!.strategy],
    ["float", 8, "tensor"],
  );
  const resolved = resolveQuantizationConfig(q);
  assert.deepEqual(resolved.resolvedTargets, ["Linear", "re:.*self_attn$"]);
  assert.equal(resolved.kvCacheScheme, q.kvCacheScheme);
  assert.equal(resolved.configGroups.group_0.weights!.type, "float");
});

Deno.test("FP8_DYNAMIC, NVFP4 and W4A16 as Python-style constructors", () => {
  const fp8 = QuantizationModifier({
    targets: "Linear",
    scheme: "FP8_DYNAMIC",
    ignore: ["lm_head"],
  });
  const g = resolveQuantizationConfig(fp8).configGroups.group_0;
  assert.deepEqual(
    [g.weights!.strategy, g.inputActivations!.strategy, g.inputActivations!.dynamic],
    [
      "channel",
      "token",
      true,
    ],
  );
  const nvfp4 = QuantizationModifier({ targets: "Linear", scheme: "NVFP4", ignore: ["lm_head"] });
  const n = resolveQuantizationConfig(nvfp4).configGroups.group_0;
  assert.deepEqual([n.weights!.strategy, n.weights!.groupSize, n.inputActivations!.dynamic], [
    "tensor_group",
    16,
    "local",
  ]);
  const recipe = recipeFromModifiers([fp8]);
  assert.deepEqual([recipe.stage, recipe.modifiers[0].stage, recipe.modifiers[0].group], [
    "default",
    "default",
    "default",
  ]);
});

Deno.test("2:4 SparseGPT then GPTQ (2of4_w4a16_group-128_recipe.yaml)", () => {
  const r = parseRecipe(SPEC_EXAMPLES["2of4_w4a16_group128"]);
  assert.equal(r.stage, "quantization");
  const s: SparseGPTModifierSpec = as(r.modifiers[0], "SparseGPTModifier");
  assert.deepEqual(
    [
      s.stage,
      s.group,
      s.sparsity,
      s.maskStructure,
      s.targets,
      s.ignore,
      s.blockSize,
      s.dampeningFrac,
    ],
    ["sparsity", "sparsity", 0.5, "2:4", ["Linear"], ["re:.*lm_head"], 128, 0.01],
  );
  assert.deepEqual([s.sparsityProfile, s.owlM, s.owlLmbda, s.preserveSparsityMask], [
    null,
    null,
    null,
    false,
  ]);
  const g: GPTQModifierSpec = as(r.modifiers[1], "GPTQModifier");
  assert.equal(resolveQuantizationConfig(g).configGroups.group_0.weights!.actorder, "static");
});

Deno.test("2:4 + FP8 dynamic (sparse_24_fp8.yaml)", () => {
  const r = parseRecipe(SPEC_EXAMPLES["sparse_24_fp8"]);
  assert.deepEqual(r.modifiers.map((m) => `${m.stage}.${m.group}.${m.type}`), [
    "pruning.obcq.SparseGPTModifier",
    "quant.quant.QuantizationModifier",
  ]);
  const q: QuantizationModifierSpec = as(r.modifiers[1], "QuantizationModifier");
  assert.equal(q.configGroups!.group_0.inputActivations!.observer, null);
});

Deno.test("SpinQuant and QuIP examples parse and run; AutoRound is refused by assertSupported", () => {
  const r = parseRecipe({
    default_stage: {
      default_modifiers: {
        SpinQuantModifier: {
          rotations: ["R1", "R2", "R4"],
          transform_block_size: 128,
          transform_type: "hadamard",
        },
        QuIPModifier: { rotations: ["v", "u"] },
        AWQModifier: { ignore: ["lm_head"], scheme: "W4A16_ASYM", targets: ["Linear"] },
        QuantizationModifier: { targets: "Linear", scheme: "W4A16", ignore: ["lm_head"] },
      },
    },
  });
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.modifiers.map((m) => m.type), [
    "SpinQuantModifier",
    "QuIPModifier",
    "AWQModifier",
    "QuantizationModifier",
  ]);
  const spin = as(r.modifiers[0], "SpinQuantModifier");
  assert.deepEqual(spin.args.rotations, ["R1", "R2", "R4"]);
  const awq = as(r.modifiers[2], "AWQModifier");
  assert.deepEqual([awq.duoScaling, awq.nGrid, awq.mappings, awq.offloadDevice], [
    true,
    20,
    null,
    null,
  ]);
  assertSupported(awq);
  assertSupported(spin);
  assertSupported(r.modifiers[1]); // QuIP runs as a whole-model transform
  const autoRound = parseRecipe({
    default_stage: { default_modifiers: { AutoRoundModifier: { scheme: "W4A16" } } },
  });
  for (const m of autoRound.modifiers) {
    assert.throws(
      () => assertSupported(m),
      (e) =>
        e instanceof UnsupportedModifierError &&
        e.message.startsWith(
          `default_stage.default_modifiers.${m.type}: ${m.type} is a valid llm-compressor modifier but is not yet supported by llmc`,
        ),
    );
  }
  assertSupported(r.modifiers[3]);
  assertSupported(GPTQModifier({ scheme: "W4A16" }));
});
