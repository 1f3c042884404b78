/**
 * Wrongly typed arguments and unknown modifiers fail with the full path:
 * `<stage>_stage.<group>_modifiers.<Class>.<arg>`.
 */
import assert from "node:assert/strict";
import { GPTQModifier, parseRecipe, RecipeError, SparseGPTModifier } from "../../src/recipe/mod.ts";

function errorOf(modifier: string, args: Record<string, unknown>): string {
  try {
    parseRecipe({ quant_stage: { quant_modifiers: { [modifier]: args } } });
  } catch (e) {
    assert.ok(e instanceof RecipeError, `expected a RecipeError, got ${e}`);
    return e.message;
  }
  throw new Error("expected an error");
}

const P = "quant_stage.quant_modifiers";

Deno.test("the brief's example message, exactly", () => {
  assert.equal(
    errorOf("GPTQModifier", { block_size: "abc", scheme: "W4A16" }),
    `${P}.GPTQModifier.block_size: expected a positive integer, got "abc"`,
  );
});

Deno.test("wrong types name stage, group, modifier and field", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      "GPTQModifier",
      { scheme: "W4A16", block_size: 0 },
      /GPTQModifier\.block_size: expected a positive integer, got 0$/,
    ],
    [
      "GPTQModifier",
      { scheme: "W4A16", block_size: 12.5 },
      /GPTQModifier\.block_size: expected a positive integer/,
    ],
    [
      "GPTQModifier",
      { scheme: "W4A16", dampening_frac: -1 },
      /GPTQModifier\.dampening_frac: expected a number >= 0, got -1$/,
    ],
    [
      "GPTQModifier",
      { scheme: "W4A16", offload_hessians: "yes" },
      /GPTQModifier\.offload_hessians: expected true or false, got "yes"$/,
    ],
    [
      "GPTQModifier",
      { scheme: "W4A16", ignore: [1] },
      /GPTQModifier\.ignore: expected a string or a list of strings, got \[1\]$/,
    ],
    [
      "GPTQModifier",
      { scheme: "W4A16", index: "1" },
      /GPTQModifier\.index: expected an integer, got "1"$/,
    ],
    [
      "GPTQModifier",
      { scheme: "W4A16", start: "0" },
      /GPTQModifier\.start: expected a number, got "0"$/,
    ],
    [
      "QuantizationModifier",
      { scheme: "W5A17" },
      /QuantizationModifier\.scheme: expected a preset name \(.*\), got "W5A17"$/,
    ],
    ["QuantizationModifier", { scheme: 4 }, /QuantizationModifier\.scheme: expected a preset name/],
    [
      "QuantizationModifier",
      { scheme: { W4A16: [1] } },
      /QuantizationModifier\.scheme\.W4A16: expected a string or a list of strings/,
    ],
    [
      "QuantizationModifier",
      { targets: 5, scheme: "W4A16" },
      /QuantizationModifier\.targets: expected a string or a list of strings, got 5$/,
    ],
    [
      "QuantizationModifier",
      { weight_observer: 3, scheme: "W4A16" },
      /QuantizationModifier\.weight_observer: expected a string, got 3$/,
    ],
    [
      "QuantizationModifier",
      {
        config_groups: {
          group_0: { targets: ["Linear"], weights: { num_bits: 4, strategy: "diagonal" } },
        },
      },
      /^quant_stage\.quant_modifiers\.QuantizationModifier\.config_groups\.group_0\.weights\.strategy: expected one of/,
    ],
    [
      "QuantizationModifier",
      { config_groups: { group_0: { targets: ["Linear"], weights: { num_bits: 4 }, bogus: 1 } } },
      /QuantizationModifier\.config_groups\.group_0\.bogus: unknown field/,
    ],
    [
      "QuantizationModifier",
      { config_groups: { group_0: ["Linear"] } },
      /QuantizationModifier\.config_groups\.group_0: expected a mapping/,
    ],
    [
      "QuantizationModifier",
      { config_groups: [1] },
      /QuantizationModifier\.config_groups: expected a mapping, got \[1\]$/,
    ],
    [
      "QuantizationModifier",
      { kv_cache_scheme: { num_bits: 8, type: "complex" } },
      /QuantizationModifier\.kv_cache_scheme\.type: expected "int" or "float"/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 1.5 },
      /SparseGPTModifier\.sparsity: expected a number between 0 and 1, got 1\.5$/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: [0.5, "x"] },
      /SparseGPTModifier\.sparsity\[1\]: expected a number between 0 and 1/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, mask_structure: "4:2" },
      /SparseGPTModifier\.mask_structure: expected an "N:M" mask structure/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, sparsity_profile: "bird" },
      /SparseGPTModifier\.sparsity_profile: expected one of "owl"/,
    ],
    [
      "SparseGPTModifier",
      {},
      /^quant_stage\.quant_modifiers\.SparseGPTModifier\.sparsity: required argument is missing$/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: null },
      /SparseGPTModifier\.sparsity: required; give the fraction/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, owl_m: 5 },
      /SparseGPTModifier: give all of sparsity_profile: owl, owl_m and owl_lmbda/,
    ],
    [
      "WandaPruningModifier",
      { sparsity: 0.5, targets: {} },
      /WandaPruningModifier\.targets: expected a string or a list of strings/,
    ],
    [
      "MagnitudePruningModifier",
      { targets: ["re:.*weight"], init_sparsity: 0.1 },
      /MagnitudePruningModifier\.final_sparsity: required argument is missing/,
    ],
    [
      "ConstantPruningModifier",
      {},
      /ConstantPruningModifier\.targets: required argument is missing/,
    ],
    [
      "SmoothQuantModifier",
      { smoothing_strength: "strong" },
      /SmoothQuantModifier\.smoothing_strength: expected a number between 0 and 1/,
    ],
    [
      "SpinQuantModifier",
      { rotations: ["R5"] },
      /SpinQuantModifier\.rotations\[0\]: expected one of R1, R2, R3, R4, got "R5"$/,
    ],
    [
      "AWQModifier",
      { scheme: "W4A16", duo_scaling: "sometimes" },
      /AWQModifier\.duo_scaling: expected true or false, got "sometimes"$/,
    ],
    [
      "AWQModifier",
      { scheme: "W4A16_ASYM", config_groups: {} },
      /AWQModifier: give either scheme or config_groups, not both/,
    ],
    [
      "AutoRoundModifier",
      { scheme: "W4A16", iters: -3 },
      /AutoRoundModifier\.iters: expected a positive integer, got -3$/,
    ],
  ];
  for (const [modifier, args, pattern] of cases) {
    const message = errorOf(modifier, args);
    assert.match(message, pattern, `${modifier} ${JSON.stringify(args)}`);
    assert.ok(message.startsWith(`${P}.${modifier}`), message);
  }
});

Deno.test("GPTQ/SparseGPT block settings only one engine would run are refused when the recipe is read", () => {
  // The WebGPU column loop steps 8 columns, prunes in blocks of at most 256
  // and holds N:M windows of M in 1, 2, 4, 8, 16, 24, 32 dividing the block;
  // the CPU engine's loop would take more, so a recipe that only ran with
  // --engine cpu is refused for both.
  const refused: [string, Record<string, unknown>, RegExp][] = [
    [
      "GPTQModifier",
      { scheme: "W4A16", block_size: 100 },
      /\.block_size: must be a multiple of 8.*got 100$/,
    ],
    ["GPTQModifier", { scheme: "W4A16", block_size: 4 }, /\.block_size: must be a multiple of 8/],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, block_size: 12 },
      /\.block_size: must be a multiple of 8/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, block_size: 512 },
      /\.block_size: at most 256 for SparseGPT.*got 512$/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, mask_structure: "3:6" },
      /\.mask_structure: "3:6" needs M one of 1, 2, 4, 8, 16, 24, 32 dividing block_size 128$/,
    ],
    [
      "SparseGPTModifier",
      { sparsity: 0.5, mask_structure: "2:16", block_size: 24 },
      /\.mask_structure: "2:16" needs M .* dividing block_size 24$/,
    ],
  ];
  for (const [modifier, args, pattern] of refused) {
    const message = errorOf(modifier, args);
    assert.match(message, pattern, `${modifier} ${JSON.stringify(args)}`);
    assert.ok(message.startsWith(`${P}.${modifier}.`), message);
  }
  assert.throws(() => GPTQModifier({ blockSize: 12 }), RecipeError);
  assert.throws(
    () => SparseGPTModifier({ sparsity: 0.5, maskStructure: "4:8", blockSize: 36 }),
    RecipeError,
  );
  // What both engines run is accepted.
  for (const blockSize of [8, 64, 256, 1024]) GPTQModifier({ blockSize });
  for (
    const [maskStructure, blockSize] of [["0:0", 256], ["2:4", 8], ["4:8", 40], ["16:32", 64], [
      "8:24",
      24,
    ]] as const
  ) {
    SparseGPTModifier({ sparsity: 0.5, maskStructure, blockSize });
  }
});

Deno.test("unknown modifier names are errors, with a suggestion when only the case differs", () => {
  assert.equal(
    errorOf("GptqModifier", {}),
    `${P}.GptqModifier: unknown modifier "GptqModifier"; did you mean "GPTQModifier"?`,
  );
  assert.match(
    errorOf("OBCQModifier", {}),
    /unknown modifier "OBCQModifier"; known modifiers: QuantizationModifier, GPTQModifier/,
  );
});

Deno.test("constructors fail the same way, and refuse unknown options", () => {
  assert.throws(
    () => GPTQModifier({ blockSize: -1 }),
    (e) =>
      e instanceof RecipeError &&
      e.message === "GPTQModifier.block_size: expected a positive integer, got -1",
  );
  assert.throws(
    () => SparseGPTModifier({ sparsity: 0.5, blocksize: 4 } as never),
    /SparseGPTModifier\.blocksize: unknown argument/,
  );
});

Deno.test("a file name prefixes every error", () => {
  assert.throws(
    () =>
      parseRecipe("q_stage: {q_modifiers: {GPTQModifier: {block_size: x}}}", { file: "my.yaml" }),
    (e) =>
      e instanceof RecipeError &&
      e.message ===
        'my.yaml: q_stage.q_modifiers.GPTQModifier.block_size: expected a positive integer, got "x"',
  );
});
