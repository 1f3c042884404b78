import assert from "node:assert/strict";
import {
  GPTQModifier,
  modifierArgs,
  type ModifierSpec,
  parseRecipe,
  QuantizationModifier,
  type Recipe,
  RecipeError,
  recipeFromModifiers,
  recipeToYaml,
  resolveQuantizationConfig,
  SparseGPTModifier,
} from "../../src/recipe/mod.ts";
import { SPEC_EXAMPLES } from "./_spec_examples.ts";

const REFERENCE = new URL("../../../shared/reference/", import.meta.url);

function referenceFolders(): string[] {
  const names = [...Deno.readDirSync(REFERENCE)].filter((e) => e.isDirectory).map((e) => e.name);
  return names.sort();
}

Deno.test("reference recipes: parse input_recipe.yaml, serialize → byte-identical recipe.yaml", () => {
  const folders = referenceFolders();
  assert.ok(folders.length >= 5, `expected the reference folders, found ${folders.join(", ")}`);
  for (const name of folders) {
    const input = Deno.readTextFileSync(new URL(`${name}/input_recipe.yaml`, REFERENCE));
    const saved = Deno.readTextFileSync(new URL(`${name}/recipe.yaml`, REFERENCE));
    const recipe = parseRecipe(input);
    assert.deepEqual(recipe.warnings, [], name);
    assert.equal(recipeToYaml(recipe), saved, name);
  }
});

Deno.test("reference recipe.yaml files are fixed points (parse → serialize gives them back)", () => {
  for (const name of referenceFolders()) {
    const saved = Deno.readTextFileSync(new URL(`${name}/recipe.yaml`, REFERENCE));
    assert.equal(recipeToYaml(parseRecipe(saved)), saved, name);
  }
});

Deno.test("SPEC §3.8 example: GPTQModifier(targets='Linear', scheme='W4A16', ignore=['lm_head'])", () => {
  const yaml = recipeToYaml(recipeFromModifiers([
    GPTQModifier({ targets: "Linear", scheme: "W4A16", ignore: ["lm_head"] }),
  ]));
  assert.equal(
    yaml,
    `default_stage:
  default_modifiers:
    GPTQModifier:
      targets: [Linear]
      ignore: [lm_head]
      scheme: W4A16
      block_size: 128
      dampening_frac: 0.01
      actorder: static
      offload_hessians: false
`,
  );
});

/** Upstream writes GPTQ's default actorder as "static", which reads back as explicit. */
function normalize(mods: readonly ModifierSpec[]): unknown[] {
  return mods.map((m) =>
    m.type === "GPTQModifier" && m.actorder.source === "default"
      ? { ...m, actorder: { source: "explicit", value: "static" } }
      : m
  );
}

function roundTrip(recipe: Recipe): void {
  const yaml = recipeToYaml(recipe, { stages: "preserve" });
  const again = parseRecipe(yaml);
  assert.deepEqual(again.warnings, []);
  assert.deepEqual(normalize(again.modifiers), normalize(recipe.modifiers), yaml);
  assert.equal(recipeToYaml(again, { stages: "preserve" }), yaml, "serialization is a fixed point");
  for (const [i, m] of recipe.modifiers.entries()) {
    const n = again.modifiers[i];
    if ((m.type === "GPTQModifier" || m.type === "QuantizationModifier") && n.type === m.type) {
      assert.deepEqual(resolveQuantizationConfig(n), resolveQuantizationConfig(m));
    }
  }
}

Deno.test("round trip parse → serialize → parse: every SPEC §3.9 example", () => {
  for (const [name, text] of Object.entries(SPEC_EXAMPLES)) {
    try {
      roundTrip(parseRecipe(text));
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
    }
  }
});

Deno.test("round trip: modifiers built in code, with every argument set", () => {
  roundTrip(recipeFromModifiers([
    SparseGPTModifier({
      sparsity: [0.5, 0.25],
      sparsityProfile: null,
      maskStructure: "2:4",
      sequentialTargets: "LlamaDecoderLayer",
      targets: "re:model.layers.\\d*$",
      ignore: ["re:.*lm_head"],
      blockSize: 64,
      dampeningFrac: 0.1,
      preserveSparsityMask: true,
      offloadHessians: true,
      index: 0,
      start: -1,
    }),
    GPTQModifier({
      configGroups: {
        group_0: {
          targets: ["Linear"],
          weights: {
            num_bits: 4,
            type: "int",
            symmetric: false,
            strategy: "group",
            group_size: 32,
          },
        },
      },
      actorder: null,
      dampeningFrac: 0,
      sequentialTargets: ["LlamaDecoderLayer"],
    }),
    QuantizationModifier({
      group: "attn",
      scheme: { W8A8: ["re:.*self_attn.*"], FP8: "re:.*mlp.*" },
      kvCacheScheme: {
        num_bits: 8,
        type: "float",
        strategy: "tensor",
        dynamic: false,
        symmetric: true,
      },
      observer: { weights: "mse" },
      ignore: ["lm_head", "re:.*mlp.gate$"],
    }),
  ]));
});

Deno.test("upstream writes every modifier under the last stage; 'preserve' keeps stages", () => {
  const recipe = parseRecipe(SPEC_EXAMPLES["2of4_w4a16_group128"]);
  const upstream = recipeToYaml(recipe);
  assert.ok(
    upstream.startsWith("quantization_stage:\n  sparsity_modifiers:\n    SparseGPTModifier:\n"),
    upstream,
  );
  assert.ok(upstream.includes("\n  quantization_modifiers:\n    GPTQModifier:\n"), upstream);
  assert.equal(upstream.match(/_stage:/g)!.length, 1);
  const preserved = recipeToYaml(recipe, { stages: "preserve" });
  assert.ok(preserved.startsWith("sparsity_stage:\n  sparsity_modifiers:\n"), preserved);
  assert.ok(preserved.includes("\nquantization_stage:\n  quantization_modifiers:\n"), preserved);
});

Deno.test("two modifiers of one class that would share a group: an error, not a silent drop", () => {
  const recipe = parseRecipe(`
a_stage: {q_modifiers: {QuantizationModifier: {scheme: W8A16}}}
b_stage: {q_modifiers: {QuantizationModifier: {scheme: W4A16}}}
`);
  assert.throws(
    () => recipeToYaml(recipe),
    (e) =>
      e instanceof RecipeError &&
      /b_stage\.q_modifiers: two QuantizationModifiers would share one group/.test(e.message),
  );
  assert.doesNotThrow(() => recipeToYaml(recipe, { stages: "preserve" }));
});

Deno.test("a group split by another group's modifiers: an error, not a silent reorder", () => {
  const mods = [
    QuantizationModifier({ scheme: "W8A16" }),
    QuantizationModifier({ group: "other", scheme: "W4A16" }),
    GPTQModifier({ scheme: "W4A16" }),
  ];
  assert.throws(
    () => recipeToYaml(recipeFromModifiers(mods)),
    /default_stage\.default_modifiers: GPTQModifier would join its group after modifiers of other_modifiers/,
  );
});

Deno.test("exact bytes: field order, Python floats, quoting, SparseGPT's Modifier-first order", () => {
  const yaml = recipeToYaml(recipeFromModifiers([
    SparseGPTModifier({
      sparsity: 1,
      maskStructure: "2:4",
      targets: ["Linear"],
      ignore: ["re:.*lm_head"],
      start: 0,
    }),
    QuantizationModifier({ group: "q", scheme: "W8A16", index: 3, end: -1 }),
  ]));
  assert.equal(
    yaml,
    `default_stage:
  default_modifiers:
    SparseGPTModifier:
      start: 0.0
      sparsity: 1.0
      mask_structure: '2:4'
      targets: [Linear]
      ignore: ['re:.*lm_head']
      block_size: 128
      dampening_frac: 0.01
      preserve_sparsity_mask: false
      offload_hessians: false
  q_modifiers:
    QuantizationModifier:
      targets: [Linear]
      ignore: []
      scheme: W8A16
      index: 3
      end: -1.0
`,
  );
});

Deno.test("GPTQ actorder: explicit null is written; the default is left out only where it would conflict", () => {
  const off = modifierArgs(GPTQModifier({ scheme: "W4A16", actorder: null }));
  assert.equal(off.get("actorder"), null);
  assert.ok(off.has("actorder"));
  const chose = GPTQModifier({
    configGroups: {
      group_0: {
        targets: ["Linear"],
        weights: { num_bits: 4, group_size: 128, actorder: "group" },
      },
    },
  });
  assert.ok(!modifierArgs(chose).has("actorder"));
  const back = parseRecipe(recipeToYaml(recipeFromModifiers([chose]))).modifiers[0];
  assert.equal(back.type, "GPTQModifier");
  if (back.type === "GPTQModifier") {
    assert.equal(resolveQuantizationConfig(back).configGroups.group_0.weights!.actorder, "group");
  }
});

Deno.test("not-yet-supported modifiers are written back as given", () => {
  const recipe = parseRecipe(SPEC_EXAMPLES["smoothquant_gptq_w8a8"]);
  const yaml = recipeToYaml(recipe);
  assert.ok(
    yaml.startsWith(`quant_stage:
  quant_modifiers:
    SmoothQuantModifier:
      smoothing_strength: 0.8
      mappings:
      - - ['re:.*q_proj', 're:.*k_proj', 're:.*v_proj']
        - re:.*input_layernorm
      - - ['re:.*gate_proj', 're:.*up_proj']
        - re:.*post_attention_layernorm
    GPTQModifier:
      targets: [Linear]
`),
    yaml,
  );
});

Deno.test("an empty recipe is written as upstream writes it", () => {
  assert.equal(recipeToYaml(recipeFromModifiers([])), "default_stage: {}\n");
});
