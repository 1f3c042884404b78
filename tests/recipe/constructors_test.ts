import assert from "node:assert/strict";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { parseQuantizationScheme } from "../../src/quant/scheme.ts";
import {
  GPTQModifier,
  parseRecipe,
  QuantizationModifier,
  recipeFromModifiers,
  SparseGPTModifier,
} from "../../src/recipe/mod.ts";

Deno.test("constructors give the same spec as the YAML form", () => {
  const yaml = parseRecipe(`
default_stage:
  default_modifiers:
    GPTQModifier:
      targets: Linear
      scheme: W4A16
      ignore: [lm_head]
      block_size: 64
      dampening_frac: 0.05
      actorder: weight
      offload_hessians: true
    SparseGPTModifier: {sparsity: 0.5, mask_structure: "2:4", owl_m: 5, owl_lmbda: 0.08, sparsity_profile: OWL}
`).modifiers;
  const code = recipeFromModifiers([
    GPTQModifier({
      targets: "Linear",
      scheme: "W4A16",
      ignore: ["lm_head"],
      blockSize: 64,
      dampeningFrac: 0.05,
      actorder: "weight",
      offloadHessians: true,
    }),
    SparseGPTModifier({
      sparsity: 0.5,
      maskStructure: "2:4",
      owlM: 5,
      owlLmbda: 0.08,
      sparsityProfile: "owl",
    }),
  ]).modifiers;
  assert.deepEqual(code, yaml);
});

Deno.test("constructors accept parsed args and schemes from src/quant", () => {
  const kv = parseQuantizationArgs({ num_bits: 8, type: "float" }, "kv");
  const group = parseQuantizationScheme({
    targets: ["Linear"],
    weights: { num_bits: 4, group_size: 32 },
  }, "g");
  const m = QuantizationModifier({ kvCacheScheme: kv, configGroups: { group_0: group } });
  assert.deepEqual(m.kvCacheScheme, kv);
  assert.deepEqual(m.configGroups!.group_0, group);
});

Deno.test("defaults are upstream's", () => {
  const g = GPTQModifier({ scheme: "W4A16" });
  assert.deepEqual(
    [
      g.targets,
      g.ignore,
      g.blockSize,
      g.dampeningFrac,
      g.actorder,
      g.offloadHessians,
      g.sequentialTargets,
    ],
    [["Linear"], [], 128, 0.01, { source: "default" }, false, null],
  );
  assert.deepEqual([g.stage, g.group, g.index, g.start, g.end, g.update], [
    "default",
    "default",
    null,
    null,
    null,
    null,
  ]);
  const s = SparseGPTModifier({ sparsity: 0.5 });
  assert.deepEqual(
    [
      s.maskStructure,
      s.targets,
      s.ignore,
      s.blockSize,
      s.dampeningFrac,
      s.preserveSparsityMask,
      s.offloadHessians,
    ],
    ["0:0", ["Linear"], [], 128, 0.01, false, false],
  );
  assert.ok(Object.isFrozen(g));
});
